// Decode-shaped attention items (see attention_decode.cpp), AVX-512: up to kRows queries of one KV
// head walk a key block together, 16 keys at a time. Each K row is loaded once for all of them
// (lanes over D), the 16 dot products of a query are summed across lanes by one transposing tree
// instead of 16 horizontal sums, and each V row is loaded once for all their accumulators.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/threads.h"
#include "kernels/nn.h"
#include "kernels/vexp_avx512.h"

namespace ninestep {

namespace {

constexpr int kRows = 4;  // queries per pass: 2 * kRows accumulators stay in registers
const float kNegInf = -std::numeric_limits<float>::infinity();

inline __mmask16 first_n(int64_t n) { return (__mmask16)((1u << n) - 1u); }

// Lane j of the result = the sum of a[slot(j)]'s lanes, slot(j) = 4 (j % 4) + j / 4: four rounds
// of shuffles, each halving the vectors and the lanes still to add.
inline int slot(int j) { return 4 * (j & 3) + (j >> 2); }
inline __m512 sum_lanes16(const __m512* a) {
  __m512 b[8], c[4], d[2];
  for (int i = 0; i < 8; ++i)
    b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
  for (int i = 0; i < 4; ++i)
    c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xDD));
  for (int i = 0; i < 2; ++i)
    d[i] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0x44),
                         _mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0xEE));
  return _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], 0x88), _mm512_shuffle_ps(d[0], d[1], 0xDD));
}

// Softmax states st[i] [D + 2] of NQ queries qr[i] [D] over keys [lo, hi) of one KV head (row s at
// kg / vg + s * kv_stride); query i sees keys up to last[i] only.
template <int NQ>
void attend_keys(float* const* st, const float* const* qr, const int64_t* last, const float* kg, const float* vg,
                 int64_t kv_stride, int64_t lo, int64_t hi, int64_t D, float scale) {
  const int64_t dv = D & ~int64_t(15);
  const __mmask16 md = first_n(D - dv);
  float m[NQ], l[NQ];
  alignas(64) float p[NQ][16];
  alignas(64) __m512 dots[NQ][16];
  int64_t hi_all = lo;  // past the last key any of the queries sees
  for (int i = 0; i < NQ; ++i) {
    std::fill(st[i], st[i] + D, 0.0f);
    m[i] = kNegInf, l[i] = 0.0f;
    hi_all = std::max(hi_all, std::min(hi, last[i] + 1));
  }
  for (int64_t s0 = lo; s0 < hi_all; s0 += 16) {
    const int64_t nb = std::min<int64_t>(16, hi_all - s0);
    for (int j = 0; j < 16; ++j) {
      const float* kr = kg + std::min<int64_t>(s0 + j, hi_all - 1) * kv_stride;  // past nb: repeats, masked
      __m512 a[NQ];
      for (int i = 0; i < NQ; ++i) a[i] = _mm512_setzero_ps();
      for (int64_t d = 0; d < dv; d += 16) {
        const __m512 kv = _mm512_loadu_ps(kr + d);
        for (int i = 0; i < NQ; ++i) a[i] = _mm512_fmadd_ps(_mm512_loadu_ps(qr[i] + d), kv, a[i]);
      }
      if (md) {
        const __m512 kv = _mm512_maskz_loadu_ps(md, kr + dv);
        for (int i = 0; i < NQ; ++i) a[i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(md, qr[i] + dv), kv, a[i]);
      }
      for (int i = 0; i < NQ; ++i) dots[i][slot(j)] = a[i];
    }
    __m512 corr[NQ];
    for (int i = 0; i < NQ; ++i) {
      const int64_t seen = std::min(nb, last[i] + 1 - s0);  // keys of this block query i sees
      if (seen <= 0) {
        corr[i] = _mm512_set1_ps(1.0f);
        _mm512_store_ps(p[i], _mm512_setzero_ps());
        continue;
      }
      const __m512 sc = _mm512_mask_mov_ps(_mm512_set1_ps(kNegInf), first_n(seen),
                                           _mm512_mul_ps(sum_lanes16(dots[i]), _mm512_set1_ps(scale)));
      const float m_new = std::max(m[i], _mm512_reduce_max_ps(sc));
      const __m512 pv = vexp(_mm512_sub_ps(sc, _mm512_set1_ps(m_new)));
      _mm512_store_ps(p[i], pv);
      corr[i] = vexp(_mm512_set1_ps(m[i] - m_new));  // 0 on the first block
      // fused, as the compiler fuses it in attention_avx512.cpp: one key block gives the same bits
      l[i] = std::fma(l[i], _mm512_cvtss_f32(corr[i]), _mm512_reduce_add_ps(pv));
      m[i] = m_new;
    }
    for (int64_t d = 0; d < D; d += 16) {
      const __mmask16 mk = d < dv ? (__mmask16)0xFFFF : md;
      __m512 o[NQ];
      for (int i = 0; i < NQ; ++i) o[i] = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, st[i] + d), corr[i]);
      for (int64_t j = 0; j < nb; ++j) {
        const __m512 vv = _mm512_maskz_loadu_ps(mk, vg + (s0 + j) * kv_stride + d);
        for (int i = 0; i < NQ; ++i) o[i] = _mm512_fmadd_ps(_mm512_set1_ps(p[i][j]), vv, o[i]);
      }
      for (int i = 0; i < NQ; ++i) _mm512_mask_storeu_ps(st[i] + d, mk, o[i]);
    }
  }
  for (int i = 0; i < NQ; ++i) st[i][D] = m[i], st[i][D + 1] = l[i];
}

using AttendFn = void (*)(float* const*, const float* const*, const int64_t*, const float*, const float*, int64_t,
                          int64_t, int64_t, int64_t, float);
constexpr AttendFn kAttend[kRows + 1] = {nullptr, attend_keys<1>, attend_keys<2>, attend_keys<3>, attend_keys<4>};

}  // namespace

void attention_split_range_avx512(float* part, const float* q, const float* k, const float* v, int64_t kv_stride,
                                  int64_t head_stride, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t D,
                                  float scale, bool causal, int64_t n_split, int64_t i0, int64_t i1) {
  // query i of KV head g: token i / group, head g * group + i % group
  const int64_t group = Hq / Hkv, rows = T * group;
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t g = item / n_split;
    int64_t lo, hi;
    split_range(S, int(n_split), int(item % n_split), &lo, &hi, 16);
    for (int64_t i0r = 0; i0r < rows; i0r += kRows) {
      const int nq = int(std::min<int64_t>(kRows, rows - i0r));
      float* st[kRows];
      const float* qr[kRows];
      int64_t last[kRows];
      for (int i = 0; i < nq; ++i) {
        const int64_t t = (i0r + i) / group, h = g * group + (i0r + i) % group;
        st[i] = part + (item * rows + i0r + i) * (D + 2);
        qr[i] = q + (t * Hq + h) * D;
        last[i] = causal ? S - T + t : S - 1;
      }
      kAttend[nq](st, qr, last, k + g * head_stride, v + g * head_stride, kv_stride, lo, hi, D, scale);
    }
  }
}

}  // namespace ninestep
