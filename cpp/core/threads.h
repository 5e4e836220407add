// Thread count and work splitting. All parallelism is OpenMP; kernels take a row range so a
// caller that already runs inside a parallel region (the forward pass) can hand each thread
// its slice without starting a new region per op.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>

namespace ninestep {

int num_threads();
void set_num_threads(int n);   // n >= 1
int default_num_threads();     // the cores this process may run on

// Thread `ith` of `nth` gets rows [*begin, *end) of n; boundaries are multiples of `align`.
inline void split_range(int64_t n, int nth, int ith, int64_t* begin, int64_t* end, int64_t align = 1) {
  const int64_t chunks = (n + align - 1) / align;
  const int64_t per = chunks / nth, rem = chunks % nth;
  const int64_t c0 = ith * per + std::min<int64_t>(ith, rem);
  const int64_t c1 = c0 + per + (ith < rem ? 1 : 0);
  *begin = std::min(n, c0 * align);
  *end = std::min(n, c1 * align);
}

// Inside a parallel region of nth threads: f(b, e) for chunks [b, e) of [0, n), each taken by
// whichever thread asks first (about 8 per thread), from a counter `next` shared by the region and
// starting at 0. A thread the OS wakes late leaves its share to the others instead of having them
// wait for it at the region's end (a 2-vCPU VM took 0.5-1 ms to wake an idle sibling, as long as
// a whole T=128 prefill attention). The caller makes each item's result independent of its thread.
template <class F>
void claim_chunks(std::atomic<int64_t>& next, int64_t n, int nth, F f) {
  const int64_t chunk = std::max<int64_t>(1, n / (8 * int64_t(nth)));
  for (int64_t b = next.fetch_add(chunk, std::memory_order_relaxed); b < n;
       b = next.fetch_add(chunk, std::memory_order_relaxed))
    f(b, std::min(n, b + chunk));
}

}  // namespace ninestep
