// Thread count and work splitting. All parallelism is OpenMP; kernels take a row range so a
// caller that already runs inside a parallel region (the forward pass) can hand each thread
// its slice without starting a new region per op.
#pragma once
#include <algorithm>
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

}  // namespace ninestep
