// SiLU, GELU (tanh form) and SwiGLU, AVX2 + FMA. The erf form of GELU stays on the scalar
// reference (see activation_avx512.cpp).
#include <immintrin.h>

#include "kernels/nn.h"
#include "kernels/simd_avx2.h"
#include "kernels/vexp_avx2.h"

namespace ninestep {

void gelu_range_generic(float* y, const float* x, bool tanh_approx, int64_t i0, int64_t i1);  // activation.cpp

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
  if (!tanh_approx) return gelu_range_generic(y, x, false, i0, i1);
  map1(y, x, i0, i1, gelu_tanh8);
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
