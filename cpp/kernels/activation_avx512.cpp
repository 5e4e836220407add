// SiLU, GELU (tanh and erf forms) and SwiGLU, AVX-512.
#include <immintrin.h>

#include "kernels/nn.h"
#include "kernels/vexp_avx512.h"

namespace ninestep {

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

// 0.5 x (1 + erf(x / sqrt 2)), the 16-lane form of activation_avx2.cpp's gelu_erf8 (the same
// Chebyshev fit of erfc and the same error-compensated exponent; see there), with the reciprocal as
// rcp14 and one Newton step (~1e-8 relative) instead of a division. Run as the AVX2 kernel, it was
// a third of BERT's FFN-up phase (measured, Zen 5).
inline __m512 gelu_erf16(__m512 x) {
  const __m512 z = _mm512_min_ps(_mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.7071067811865476f)),
                                 _mm512_set1_ps(12.0f));  // erfc(12) underflows: keeps the two-sum finite
  const __m512 den = _mm512_fmadd_ps(z, _mm512_set1_ps(0.5f), _mm512_set1_ps(1.0f));  // in [1, 7]
  __m512 t = _mm512_rcp14_ps(den);
  t = _mm512_mul_ps(t, _mm512_fnmadd_ps(den, t, _mm512_set1_ps(2.0f)));
  // P(t) by Estrin's scheme (4 dependent FMAs, not Horner's 9: this function is latency bound)
  const __m512 t2 = _mm512_mul_ps(t, t), t4 = _mm512_mul_ps(t2, t2), t8 = _mm512_mul_ps(t4, t4);
  const __m512 q0 = _mm512_fmadd_ps(_mm512_set1_ps(1.00002368f), t, _mm512_set1_ps(-1.26551223f));
  const __m512 q1 = _mm512_fmadd_ps(_mm512_set1_ps(0.09678418f), t, _mm512_set1_ps(0.37409196f));
  const __m512 q2 = _mm512_fmadd_ps(_mm512_set1_ps(0.27886807f), t, _mm512_set1_ps(-0.18628806f));
  const __m512 q3 = _mm512_fmadd_ps(_mm512_set1_ps(1.48851587f), t, _mm512_set1_ps(-1.13520398f));
  const __m512 q4 = _mm512_fmadd_ps(_mm512_set1_ps(0.17087277f), t, _mm512_set1_ps(-0.82215223f));
  const __m512 p = _mm512_fmadd_ps(q4, t8, _mm512_fmadd_ps(_mm512_fmadd_ps(q3, t2, q2), t4, _mm512_fmadd_ps(q1, t2, q0)));
  const __m512 e = _mm512_mul_ps(z, z);
  const __m512 e_err = _mm512_fmsub_ps(z, z, e);  // z^2 = e + e_err exactly
  const __m512 ne = _mm512_sub_ps(_mm512_setzero_ps(), e);
  const __m512 s = _mm512_add_ps(ne, p);  // two-sum: ne + p = s + c exactly
  const __m512 bp = _mm512_sub_ps(s, ne);
  const __m512 c = _mm512_add_ps(_mm512_sub_ps(ne, _mm512_sub_ps(s, bp)), _mm512_sub_ps(p, bp));
  const __m512 r = _mm512_mul_ps(_mm512_mul_ps(t, vexp(s)),
                                 _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_sub_ps(c, e_err)));  // erfc(z)
  const __m512 neg = _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), r);  // x < 0: x/2 erfc(z)
  const __m512 pos = _mm512_mul_ps(x, _mm512_fnmadd_ps(_mm512_set1_ps(0.5f), r, _mm512_set1_ps(1.0f)));
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ), neg, pos);
}

// y[i] = f(x[i]) (and of up[i]) over [i0, i1), full vectors then one masked tail.
template <class F>
inline void map1(float* y, const float* x, int64_t i0, int64_t i1, F f) {
  int64_t i = i0;
  for (; i + 32 <= i1; i += 32) {  // two independent vectors in flight: these functions are latency bound
    const __m512 a = f(_mm512_loadu_ps(x + i)), b = f(_mm512_loadu_ps(x + i + 16));
    _mm512_storeu_ps(y + i, a);
    _mm512_storeu_ps(y + i + 16, b);
  }
  for (; i + 16 <= i1; i += 16) _mm512_storeu_ps(y + i, f(_mm512_loadu_ps(x + i)));
  if (i < i1) {
    const __mmask16 mt = (__mmask16)((1u << (i1 - i)) - 1u);
    _mm512_mask_storeu_ps(y + i, mt, f(_mm512_maskz_loadu_ps(mt, x + i)));
  }
}

}  // namespace

void silu_range_avx512(float* y, const float* x, int64_t i0, int64_t i1) { map1(y, x, i0, i1, silu16); }

void gelu_range_avx512(float* y, const float* x, bool tanh_approx, int64_t i0, int64_t i1) {
  if (tanh_approx)
    map1(y, x, i0, i1, gelu_tanh16);
  else
    map1(y, x, i0, i1, gelu_erf16);
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
