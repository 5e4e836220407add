// Decode-shaped grouped-query attention (few queries, flash-decoding): the scalar reference of a
// (KV head, key block) item, its dispatch, and the merge of the blocks' softmax states.
//
// A state is what the online softmax keeps (see attention.cpp): the unnormalised output, the
// running max m and the sum l of exp(score - m). Two states of the same query over disjoint keys
// combine exactly: rescale each by exp(m_i - max(m_1, m_2)) and add.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/dispatch.h"
#include "core/threads.h"
#include "kernels/attention_scalar.h"
#include "kernels/nn.h"

namespace ninestep {

int64_t attention_splits(int64_t S, int64_t Hkv, int nthreads) {
  const int64_t even = nthreads / std::gcd<int64_t>(Hkv, nthreads);  // Hkv * even is a multiple of nthreads
  return std::max<int64_t>(1, std::min(even, S / kAttnMinSplitKeys));
}

namespace {

template <DType KT>
void split_generic(float* part, const float* q, const uint8_t* k, const uint8_t* v, int64_t row_bytes, int64_t hs,
                   int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t D, float scale, bool causal, int64_t n_split,
                   int64_t i0, int64_t i1) {
  const int64_t group = Hq / Hkv;
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t g = item / n_split;
    int64_t lo, hi;
    split_range(S, int(n_split), int(item % n_split), &lo, &hi, 16);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t end = std::min(hi, causal ? S - T + t + 1 : S);  // keys [lo, end) are visible
      for (int64_t r = 0; r < group; ++r) {
        const float* qt = q + (t * Hq + g * group + r) * D;          // [D]
        float* st = part + (item * T * group + t * group + r) * (D + 2);  // [D + 2]
        attend_keys_scalar<KT>(st, &st[D], &st[D + 1], qt, k, v, row_bytes, g * hs, D, scale, lo, end);
      }
    }
  }
}

}  // namespace

void attention_split_range_generic(float* part, const float* q, const void* k, const void* v, DType kv_type,
                                   int64_t kv_stride, int64_t head_stride, int64_t T, int64_t S, int64_t Hq,
                                   int64_t Hkv, int64_t D, float scale, bool causal, int64_t n_split, int64_t i0,
                                   int64_t i1) {
  const int64_t rb = dtype_row_bytes(kv_type, kv_stride);
  with_kv_type(kv_type, [&](auto kt) {
    split_generic<decltype(kt)::value>(part, q, static_cast<const uint8_t*>(k), static_cast<const uint8_t*>(v), rb,
                                       head_stride, T, S, Hq, Hkv, D, scale, causal, n_split, i0, i1);
  });
}

using SplitFn = void (*)(float*, const float*, const void*, const void*, DType, int64_t, int64_t, int64_t, int64_t,
                         int64_t, int64_t, int64_t, float, bool, int64_t, int64_t, int64_t);
void attention_split_range_avx2(float*, const float*, const void*, const void*, DType, int64_t, int64_t, int64_t,
                                int64_t, int64_t, int64_t, int64_t, float, bool, int64_t, int64_t, int64_t);
void attention_split_range_avx512(float*, const float*, const void*, const void*, DType, int64_t, int64_t, int64_t,
                                  int64_t, int64_t, int64_t, int64_t, float, bool, int64_t, int64_t, int64_t);
static const Dispatch<SplitFn> kSplit{attention_split_range_generic, NS_AVX2(attention_split_range_avx2),
                                      NS_AVX512(attention_split_range_avx512)};

void attention_split_range(float* part, const float* q, const void* k, const void* v, DType kv_type, int64_t kv_stride,
                           int64_t head_stride, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                           bool causal, int64_t n_split, int64_t i0, int64_t i1) {
  kSplit.get()(part, q, k, v, kv_type, kv_stride, head_stride, T, S, Hq, Hkv, D, scale, causal, n_split, i0, i1);
}

// A few multiply-adds per output element: plain C++ the compiler vectorises is enough.
void attention_merge_rows(float* out, const float* part, int64_t T, int64_t Hq, int64_t Hkv, int64_t D,
                          int64_t n_split, int64_t r0, int64_t r1) {
  const int64_t group = Hq / Hkv;
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t row = r0; row < r1; ++row) {
    const int64_t t = row / Hq, h = row % Hq, g = h / group;
    // state of block j: part + ((g * n_split + j) * T * group + t * group + h % group) * (D + 2)
    const float* st0 = part + (g * n_split * T * group + t * group + h % group) * (D + 2);
    const int64_t block = T * group * (D + 2);
    float m = ninf;
    for (int64_t j = 0; j < n_split; ++j) m = std::max(m, st0[j * block + D]);
    float* o = out + row * D;  // [D]
    std::fill(o, o + D, 0.0f);
    float l = 0.0f;
    for (int64_t j = 0; j < n_split; ++j) {
      const float* st = st0 + j * block;
      if (st[D] == ninf) continue;  // a block with no visible key
      const float w = std::exp(st[D] - m);
      l += w * st[D + 1];
      for (int64_t d = 0; d < D; ++d) o[d] += w * st[d];
    }
    const float inv = 1.0f / l;
    for (int64_t d = 0; d < D; ++d) o[d] *= inv;
  }
}

}  // namespace ninestep
