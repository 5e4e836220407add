// SiLU, GELU (tanh and erf forms) and SwiGLU, AVX2 + FMA.
#include <immintrin.h>

#include "kernels/nn.h"
#include "kernels/simd_avx2.h"
#include "kernels/vexp_avx2.h"

namespace ninestep {

namespace {

// x / (1 + exp(-a)); exp = inf gives the right limit, -0.
inline __m256 times_sigmoid(__m256 x, __m256 a) {
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), vexp(_mm256_sub_ps(_mm256_setzero_ps(), a))));
}

inline __m256 silu8(__m256 x) { return times_sigmoid(x, x); }

// 0.5 x (1 + tanh(u)) == x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)
inline __m256 gelu_tanh8(__m256 x) {
  const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
  const __m256 u2 = _mm256_mul_ps(_mm256_set1_ps(2.0f * 0.7978845608028654f),
                                  _mm256_fmadd_ps(x3, _mm256_set1_ps(0.044715f), x));
  return times_sigmoid(x, u2);
}

// 0.5 x (1 + erf(x / sqrt 2)) (BERT's GELU) through erfc(z), z = |x| / sqrt 2, as Numerical Recipes'
// Chebyshev fit erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z / 2), fractional error < 1.2e-7
// everywhere. -z^2 + P(t) is summed with its rounding errors (an FMA for z^2, a two-sum for the
// add) and folded back as exp(s) (1 + c), so the tail x < 0, where the result is x/2 erfc(z), keeps
// ~1e-6 relative accuracy, not the ~ulp(z^2) an exponent of 25 would lose. x >= 0: x (1 - erfc(z)/2) (inf stays inf).
inline __m256 gelu_erf8(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 z = _mm256_min_ps(_mm256_mul_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(0.7071067811865476f)),
                                 _mm256_set1_ps(12.0f));  // erfc(12) underflows: keeps the two-sum finite
  const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(z, _mm256_set1_ps(0.5f), _mm256_set1_ps(1.0f)));
  __m256 p = _mm256_set1_ps(0.17087277f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
  const __m256 e = _mm256_mul_ps(z, z);
  const __m256 e_err = _mm256_fmsub_ps(z, z, e);  // z^2 = e + e_err exactly
  const __m256 ne = _mm256_sub_ps(_mm256_setzero_ps(), e);
  const __m256 s = _mm256_add_ps(ne, p);           // two-sum: ne + p = s + c exactly
  const __m256 bp = _mm256_sub_ps(s, ne);
  const __m256 c = _mm256_add_ps(_mm256_sub_ps(ne, _mm256_sub_ps(s, bp)), _mm256_sub_ps(p, bp));
  const __m256 r = _mm256_mul_ps(_mm256_mul_ps(t, vexp(s)),
                                 _mm256_add_ps(_mm256_set1_ps(1.0f), _mm256_sub_ps(c, e_err)));  // erfc(z)
  const __m256 half_x = _mm256_mul_ps(x, _mm256_set1_ps(0.5f));
  const __m256 neg = _mm256_mul_ps(half_x, r);        // x < 0: x/2 erfc(z)
  const __m256 pos = _mm256_mul_ps(x, _mm256_fnmadd_ps(_mm256_set1_ps(0.5f), r, _mm256_set1_ps(1.0f)));  // x >= 0
  return _mm256_blendv_ps(neg, pos, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ));
}

template <class F>
inline void map1(float* y, const float* x, int64_t i0, int64_t i1, F f) {
  int64_t i = i0;
  for (; i + 8 <= i1; i += 8) _mm256_storeu_ps(y + i, f(_mm256_loadu_ps(x + i)));
  if (i < i1) {
    const __m256i mt = first_n(i1 - i);
    _mm256_maskstore_ps(y + i, mt, f(_mm256_maskload_ps(x + i, mt)));
  }
}

}  // namespace

void silu_range_avx2(float* y, const float* x, int64_t i0, int64_t i1) { map1(y, x, i0, i1, silu8); }

void gelu_range_avx2(float* y, const float* x, bool tanh_approx, int64_t i0, int64_t i1) {
  if (tanh_approx)
    map1(y, x, i0, i1, gelu_tanh8);
  else
    map1(y, x, i0, i1, gelu_erf8);
}

void swiglu_range_avx2(float* y, const float* gate, const float* up, int64_t i0, int64_t i1) {
  int64_t i = i0;
  for (; i + 8 <= i1; i += 8)
    _mm256_storeu_ps(y + i, _mm256_mul_ps(silu8(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
  if (i < i1) {
    const __m256i mt = first_n(i1 - i);
    _mm256_maskstore_ps(y + i, mt, _mm256_mul_ps(silu8(_mm256_maskload_ps(gate + i, mt)), _mm256_maskload_ps(up + i, mt)));
  }
}

}  // namespace ninestep
