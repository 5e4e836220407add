// RMSNorm and LayerNorm over the last axis, AVX2 + FMA. Sums run in float over 4 vector
// accumulators (n / 32 terms per lane: ~20 for d_model 576, far from losing digits).
#include <immintrin.h>

#include <cmath>

#include "kernels/nn.h"
#include "kernels/simd_avx2.h"

namespace ninestep {

namespace {

// sum over i of f(x[i]) where f acts on a vector; the tail's masked-off lanes are dropped.
template <class F>
inline float reduce_row(const float* x, int64_t n, F f) {
  const int64_t nv = n & ~int64_t(7);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= nv; i += 32) {
    a0 = _mm256_add_ps(a0, f(_mm256_loadu_ps(x + i)));
    a1 = _mm256_add_ps(a1, f(_mm256_loadu_ps(x + i + 8)));
    a2 = _mm256_add_ps(a2, f(_mm256_loadu_ps(x + i + 16)));
    a3 = _mm256_add_ps(a3, f(_mm256_loadu_ps(x + i + 24)));
  }
  for (; i < nv; i += 8) a0 = _mm256_add_ps(a0, f(_mm256_loadu_ps(x + i)));
  if (nv < n) {
    const __m256i mt = first_n(n - nv);
    a1 = _mm256_add_ps(a1, _mm256_and_ps(f(_mm256_maskload_ps(x + nv, mt)), _mm256_castsi256_ps(mt)));
  }
  return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

}  // namespace

void rmsnorm_rows_avx2(float* y, const float* x, const float* w, float eps, int64_t n, int64_t r0, int64_t r1) {
  const int64_t nv = n & ~int64_t(7);
  const __m256i mt = first_n(n - nv);
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    const float ss = reduce_row(xr, n, [](__m256 v) { return _mm256_mul_ps(v, v); });
    const __m256 inv = _mm256_set1_ps(1.0f / std::sqrt(ss / (float)n + eps));
    for (int64_t i = 0; i < nv; i += 8)
      _mm256_storeu_ps(yr + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xr + i), inv), _mm256_loadu_ps(w + i)));
    if (nv < n)
      _mm256_maskstore_ps(yr + nv, mt, _mm256_mul_ps(_mm256_mul_ps(_mm256_maskload_ps(xr + nv, mt), inv),
                                                     _mm256_maskload_ps(w + nv, mt)));
  }
}

void layernorm_rows_avx2(float* y, const float* x, const float* w, const float* b, float eps, int64_t n, int64_t r0,
                         int64_t r1) {
  const int64_t nv = n & ~int64_t(7);
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    const float mean = reduce_row(xr, n, [](__m256 v) { return v; }) / (float)n;
    const __m256 vm = _mm256_set1_ps(mean);
    // two passes: no cancellation when |mean| >> std
    const float var = reduce_row(xr, n, [&](__m256 v) {
      const __m256 c = _mm256_sub_ps(v, vm);
      return _mm256_mul_ps(c, c);
    }) / (float)n;
    const __m256 inv = _mm256_set1_ps(1.0f / std::sqrt(var + eps));
    for (int64_t i = 0; i < n; i += 8) {
      const __m256i mk = i < nv ? _mm256_set1_epi32(-1) : first_n(n - nv);
      const __m256 c = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(xr + i, mk), vm), inv);
      const __m256 bb = b ? _mm256_maskload_ps(b + i, mk) : _mm256_setzero_ps();
      _mm256_maskstore_ps(yr + i, mk, _mm256_fmadd_ps(c, _mm256_maskload_ps(w + i, mk), bb));
    }
  }
}

}  // namespace ninestep
