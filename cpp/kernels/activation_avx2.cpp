// SiLU, GELU (tanh form) and SwiGLU, AVX2 + FMA. The erf form of GELU stays on the scalar
// reference (see activation_avx512.cpp).
#include <immintrin.h>

#include "kernels/nn.h"

namespace ninestep {

void gelu_range_generic(float* y, const float* x, bool tanh_approx, int64_t i0, int64_t i1);  // activation.cpp

namespace {

// exp(x), 8 lanes, ~1 ulp; the same as softmax_avx2.cpp (see there).
inline __m256 vexp(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(-104.0f), _mm256_min_ps(_mm256_set1_ps(89.0f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
}

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

inline __m256i first_n(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
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
