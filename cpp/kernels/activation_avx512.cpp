// SiLU, GELU (tanh form) and SwiGLU, AVX-512. The erf form of GELU (BERT) runs the AVX2 kernel
// (activation_avx2.cpp): an AVX-512 machine has AVX2, and no AVX-512 host was at hand to test a
// 16-lane copy.
#include <immintrin.h>

#include "kernels/nn.h"
#include "kernels/vexp_avx512.h"

namespace ninestep {

void gelu_range_avx2(float* y, const float* x, bool tanh_approx, int64_t i0, int64_t i1);  // activation_avx2.cpp

namespace {

// x * sigmoid(a * x'): x / (1 + exp(-a)) with a given; exp = inf gives the right limit, -0.
inline __m512 times_sigmoid(__m512 x, __m512 a) {
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), vexp(_mm512_sub_ps(_mm512_setzero_ps(), a))));
}

inline __m512 silu16(__m512 x) { return times_sigmoid(x, x); }

// 0.5 x (1 + tanh(u)) == x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)
inline __m512 gelu_tanh16(__m512 x) {
  const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
  const __m512 u2 = _mm512_mul_ps(_mm512_set1_ps(2.0f * 0.7978845608028654f),
                                  _mm512_fmadd_ps(x3, _mm512_set1_ps(0.044715f), x));
  return times_sigmoid(x, u2);
}

// y[i] = f(x[i]) (and of up[i]) over [i0, i1), full vectors then one masked tail.
template <class F>
inline void map1(float* y, const float* x, int64_t i0, int64_t i1, F f) {
  int64_t i = i0;
  for (; i + 16 <= i1; i += 16) _mm512_storeu_ps(y + i, f(_mm512_loadu_ps(x + i)));
  if (i < i1) {
    const __mmask16 mt = (__mmask16)((1u << (i1 - i)) - 1u);
    _mm512_mask_storeu_ps(y + i, mt, f(_mm512_maskz_loadu_ps(mt, x + i)));
  }
}

}  // namespace

void silu_range_avx512(float* y, const float* x, int64_t i0, int64_t i1) { map1(y, x, i0, i1, silu16); }

void gelu_range_avx512(float* y, const float* x, bool tanh_approx, int64_t i0, int64_t i1) {
  if (!tanh_approx) return gelu_range_avx2(y, x, false, i0, i1);
  map1(y, x, i0, i1, gelu_tanh16);
}

void swiglu_range_avx512(float* y, const float* gate, const float* up, int64_t i0, int64_t i1) {
  int64_t i = i0;
  for (; i + 16 <= i1; i += 16)
    _mm512_storeu_ps(y + i, _mm512_mul_ps(silu16(_mm512_loadu_ps(gate + i)), _mm512_loadu_ps(up + i)));
  if (i < i1) {
    const __mmask16 mt = (__mmask16)((1u << (i1 - i)) - 1u);
    _mm512_mask_storeu_ps(y + i, mt,
                          _mm512_mul_ps(silu16(_mm512_maskz_loadu_ps(mt, gate + i)), _mm512_maskz_loadu_ps(mt, up + i)));
  }
}

}  // namespace ninestep
