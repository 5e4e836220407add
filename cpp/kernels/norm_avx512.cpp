// RMSNorm and LayerNorm over the last axis, AVX-512. Sums run in float over 4 vector
// accumulators (n / 64 terms per lane: ~9 for d_model 576, far from losing digits).
#include <immintrin.h>

#include <cmath>

#include "kernels/nn.h"

namespace ninestep {

namespace {

inline __mmask16 first_n(int64_t n) { return (__mmask16)((1u << n) - 1u); }

// sum over i of f(x[i]) where f acts on a vector; the tail's masked-off lanes are dropped.
template <class F>
inline float reduce_row(const float* x, int64_t n, F f) {
  const int64_t nv = n & ~int64_t(15);
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 64 <= nv; i += 64) {
    a0 = _mm512_add_ps(a0, f(_mm512_loadu_ps(x + i)));
    a1 = _mm512_add_ps(a1, f(_mm512_loadu_ps(x + i + 16)));
    a2 = _mm512_add_ps(a2, f(_mm512_loadu_ps(x + i + 32)));
    a3 = _mm512_add_ps(a3, f(_mm512_loadu_ps(x + i + 48)));
  }
  for (; i < nv; i += 16) a0 = _mm512_add_ps(a0, f(_mm512_loadu_ps(x + i)));
  if (nv < n) a1 = _mm512_add_ps(a1, _mm512_maskz_mov_ps(first_n(n - nv), f(_mm512_maskz_loadu_ps(first_n(n - nv), x + nv))));
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

}  // namespace

void rmsnorm_rows_avx512(float* y, const float* x, const float* w, float eps, int64_t n, int64_t r0, int64_t r1) {
  const int64_t nv = n & ~int64_t(15);
  const __mmask16 mt = first_n(n - nv);
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    const float ss = reduce_row(xr, n, [](__m512 v) { return _mm512_mul_ps(v, v); });
    const __m512 inv = _mm512_set1_ps(1.0f / std::sqrt(ss / (float)n + eps));
    for (int64_t i = 0; i < nv; i += 16)
      _mm512_storeu_ps(yr + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(xr + i), inv), _mm512_loadu_ps(w + i)));
    if (mt)
      _mm512_mask_storeu_ps(yr + nv, mt, _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mt, xr + nv), inv),
                                                       _mm512_maskz_loadu_ps(mt, w + nv)));
  }
}

void layernorm_rows_avx512(float* y, const float* x, const float* w, const float* b, float eps, int64_t n, int64_t r0,
                           int64_t r1) {
  const int64_t nv = n & ~int64_t(15);
  const __mmask16 mt = first_n(n - nv);
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    const float mean = reduce_row(xr, n, [](__m512 v) { return v; }) / (float)n;
    const __m512 vm = _mm512_set1_ps(mean);
    // two passes: no cancellation when |mean| >> std; the tail's zero lanes are masked in reduce_row
    const float var = reduce_row(xr, n, [&](__m512 v) {
      const __m512 c = _mm512_sub_ps(v, vm);
      return _mm512_mul_ps(c, c);
    }) / (float)n;
    const __m512 inv = _mm512_set1_ps(1.0f / std::sqrt(var + eps));
    for (int64_t i = 0; i < n; i += 16) {
      const __mmask16 mk = i < nv ? (__mmask16)0xFFFF : mt;
      const __m512 c = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, xr + i), vm), inv);
      const __m512 bb = b ? _mm512_maskz_loadu_ps(mk, b + i) : _mm512_setzero_ps();
      _mm512_mask_storeu_ps(yr + i, mk, _mm512_fmadd_ps(c, _mm512_maskz_loadu_ps(mk, w + i), bb));
    }
  }
}

}  // namespace ninestep
