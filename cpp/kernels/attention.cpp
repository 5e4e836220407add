// Grouped-query attention with an online softmax: scalar reference + dispatch + the standalone op.
//
// Each query keeps a running max m, a running sum l of exp(score - m) and an unnormalised output
// accumulator (the output row itself); when a larger score arrives, l and the accumulator are
// rescaled by exp(m_old - m_new). No [T, S] score matrix exists at any point.
#include "kernels/attention_scalar.h"
#include "kernels/nn.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "core/dispatch.h"
#include "core/threads.h"

namespace ninestep {

namespace {
int64_t head_passes(int64_t group) { return (group + kAttnPassHeads - 1) / kAttnPassHeads; }
int64_t query_tiles(int64_t T) { return (T + kAttnTile - 1) / kAttnTile; }
}  // namespace

int64_t attention_items(int64_t T, int64_t Hq, int64_t Hkv) { return Hkv * head_passes(Hq / Hkv) * query_tiles(T); }

AttnItem attention_item(int64_t item, int64_t T, int64_t Hq, int64_t Hkv) {
  const int64_t group = Hq / Hkv, passes = head_passes(group), tiles = query_tiles(T);
  const int64_t unit = item / tiles, g = unit / passes;  // unit: pass (unit % passes) of KV head g
  int64_t a, b;
  split_range(group, int(passes), int(unit % passes), &a, &b);
  const int64_t t0 = (item % tiles) * kAttnTile;
  return AttnItem{g * group + a, b - a, t0, std::min(T, t0 + kAttnTile)};
}

namespace {

template <DType KT>
void range_generic(float* out, const float* q, const uint8_t* k, const uint8_t* v, int64_t row_bytes, int64_t hs,
                   int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t D, float scale, bool causal, int64_t window,
                   int64_t i0, int64_t i1) {
  for (int64_t item = i0; item < i1; ++item) {
    const AttnItem it = attention_item(item, T, Hq, Hkv);
    const int64_t g = it.h0 / (Hq / Hkv);
    for (int64_t h = it.h0; h < it.h0 + it.nh; ++h)
      for (int64_t t = it.t0; t < it.t1; ++t) {
        const float* qt = q + (t * Hq + h) * D;  // [D]
        float* acc = out + (t * Hq + h) * D;     // [D]
        const int64_t n_keys = causal ? S - T + t + 1 : S;
        const int64_t lo = causal && window > 0 ? std::max<int64_t>(0, n_keys - window) : 0;
        float m, l;
        attend_keys_scalar<KT>(acc, &m, &l, qt, k, v, row_bytes, g * hs, D, scale, lo, n_keys);
        const float inv = 1.0f / l;
        for (int64_t d = 0; d < D; ++d) acc[d] *= inv;
      }
  }
}

}  // namespace

void attention_range_generic(float* out, const float* q, const void* k, const void* v, DType kv_type, int64_t kv_stride,
                             int64_t head_stride, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                             bool causal, int64_t window, int64_t i0, int64_t i1) {
  const int64_t rb = dtype_row_bytes(kv_type, kv_stride);
  with_kv_type(kv_type, [&](auto kt) {
    range_generic<decltype(kt)::value>(out, q, static_cast<const uint8_t*>(k), static_cast<const uint8_t*>(v), rb,
                                       head_stride, T, S, Hq, Hkv, D, scale, causal, window, i0, i1);
  });
}

using AttnFn = void (*)(float*, const float*, const void*, const void*, DType, int64_t, int64_t, int64_t, int64_t,
                        int64_t, int64_t, int64_t, float, bool, int64_t, int64_t, int64_t);
void attention_range_avx2(float*, const float*, const void*, const void*, DType, int64_t, int64_t, int64_t, int64_t,
                          int64_t, int64_t, int64_t, float, bool, int64_t, int64_t, int64_t);
void attention_range_avx512(float*, const float*, const void*, const void*, DType, int64_t, int64_t, int64_t, int64_t,
                            int64_t, int64_t, int64_t, float, bool, int64_t, int64_t, int64_t);
static const Dispatch<AttnFn> kAttn{attention_range_generic, NS_AVX2(attention_range_avx2),
                                    NS_AVX512(attention_range_avx512)};

void attention_range(float* out, const float* q, const void* k, const void* v, DType kv_type, int64_t kv_stride,
                     int64_t head_stride, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                     bool causal, int64_t window, int64_t i0, int64_t i1) {
  kAttn.get()(out, q, k, v, kv_type, kv_stride, head_stride, T, S, Hq, Hkv, D, scale, causal, window, i0, i1);
}

void attention(float* out, const float* q, const void* k, const void* v, DType kv_type, int64_t kv_stride,
               int64_t head_stride, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t D, float scale, bool causal,
               int64_t window) {
  const bool parallel = T * S * Hq * D >= kMinParallelWork;
  if (!causal || window >= S) window = 0;  // the window hides nothing
  if (T <= kAttnSplitMaxT && window == 0) {  // decode shape: key blocks per KV head, then the merge
    const int nth = parallel ? num_threads() : 1;
    const int64_t n_split = attention_splits(S, Hkv, nth), items = attention_split_items(Hkv, n_split);
    std::vector<float> part(attention_part_floats(T, Hq, D, n_split));  // [Hkv, n_split, T, Hq / Hkv, D + 2]
    std::atomic<int64_t> next_item{0}, next_row{0};
#pragma omp parallel num_threads(nth)
    {
      const int n = omp_get_num_threads();
      claim_chunks(next_item, items, n, [&](int64_t b, int64_t e) {
        attention_split_range(part.data(), q, k, v, kv_type, kv_stride, head_stride, T, S, Hq, Hkv, D, scale, causal,
                              n_split, b, e);
      });
#pragma omp barrier
      claim_chunks(next_row, T * Hq, n,
                   [&](int64_t b, int64_t e) { attention_merge_rows(out, part.data(), T, Hq, Hkv, D, n_split, b, e); });
    }
    return;
  }
  const AttnFn fn = kAttn.get();
  const int64_t items = attention_items(T, Hq, Hkv);
  std::atomic<int64_t> next_item{0};
#pragma omp parallel num_threads(num_threads()) if(parallel)
  claim_chunks(next_item, items, omp_get_num_threads(), [&](int64_t b, int64_t e) {
    fn(out, q, k, v, kv_type, kv_stride, head_stride, T, S, Hq, Hkv, D, scale, causal, window, b, e);
  });
}

}  // namespace ninestep
