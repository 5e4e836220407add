// Rotary position embedding, AVX2 + FMA: the method of rope_avx512.cpp (see there) with the
// double-precision angle reduction done as two 4-lane halves.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/nn.h"
#include "kernels/rope_freqs.h"
#include "kernels/simd_avx2.h"

namespace ninestep {

namespace {

// pos * f reduced modulo pi/2 for 4 frequencies: the float remainder and the quadrant.
inline void reduce4(double pos, __m256d f, __m128* r_out, __m128i* q_out) {
  const __m256d ang = _mm256_mul_pd(_mm256_set1_pd(pos), f);
  const __m256d k = _mm256_round_pd(_mm256_mul_pd(ang, _mm256_set1_pd(0.63661977236758134308)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_fnmadd_pd(k, _mm256_set1_pd(1.5707963267948966), ang);
  r = _mm256_fnmadd_pd(k, _mm256_set1_pd(6.123233995736766e-17), r);
  *r_out = _mm256_cvtpd_ps(r);
  *q_out = _mm256_cvtpd_epi32(k);
}

// cos and sin of pos * f for 8 frequencies f[0..8).
inline void sincos8(double pos, const double* f, __m256* c_out, __m256* s_out) {
  __m128 r0, r1;
  __m128i q0, q1;
  reduce4(pos, _mm256_load_pd(f), &r0, &q0);
  reduce4(pos, _mm256_load_pd(f + 4), &r1, &q1);
  const __m256 x = _mm256_set_m128(r1, r0), x2 = _mm256_mul_ps(x, x);
  const __m256i q = _mm256_set_m128i(q1, q0);
  // Cephes sinf / cosf minimax polynomials on [-pi/4, pi/4]
  __m256 sp = _mm256_fmadd_ps(_mm256_set1_ps(-1.9515295891e-4f), x2, _mm256_set1_ps(8.3321608736e-3f));
  sp = _mm256_fmadd_ps(sp, x2, _mm256_set1_ps(-1.6666654611e-1f));
  const __m256 sn = _mm256_fmadd_ps(_mm256_mul_ps(sp, x2), x, x);
  __m256 cp = _mm256_fmadd_ps(_mm256_set1_ps(2.443315711809948e-5f), x2, _mm256_set1_ps(-1.388731625493765e-3f));
  cp = _mm256_fmadd_ps(cp, x2, _mm256_set1_ps(4.166664568298827e-2f));
  const __m256 cs = _mm256_fmadd_ps(cp, _mm256_mul_ps(x2, x2), _mm256_fnmadd_ps(_mm256_set1_ps(0.5f), x2, _mm256_set1_ps(1.0f)));
  // quadrant q: sin = (sn, cs, -sn, -cs)[q & 3], cos = (cs, -sn, -cs, sn)[q & 3]
  const __m256 odd = _mm256_castsi256_ps(_mm256_slli_epi32(q, 31));  // blendv reads the top bit
  const __m256 s = _mm256_blendv_ps(sn, cs, odd), c = _mm256_blendv_ps(cs, sn, odd);
  const __m256i sign = _mm256_set1_epi32(INT32_MIN);
  const __m256i s_neg = _mm256_and_si256(_mm256_slli_epi32(q, 30), sign);
  const __m256i c_neg = _mm256_and_si256(_mm256_slli_epi32(_mm256_add_epi32(q, _mm256_set1_epi32(1)), 30), sign);
  *s_out = _mm256_xor_ps(s, _mm256_castsi256_ps(s_neg));
  *c_out = _mm256_xor_ps(c, _mm256_castsi256_ps(c_neg));
}

// y = x * c2 + swap_pairs(x) * s2 on 8 floats (4 adjacent pairs), masked by mk.
inline void rotate_pairs(float* p, __m256i mk, __m256 c2, __m256 s2) {
  const __m256 v = _mm256_maskload_ps(p, mk);
  _mm256_maskstore_ps(p, mk, _mm256_fmadd_ps(v, c2, _mm256_mul_ps(_mm256_permute_ps(v, 0xB1), s2)));
}

}  // namespace

void rope_rows_avx2(float* x, const int32_t* pos, int64_t H, int64_t D, float theta, RopeStyle style, int64_t t0,
                    int64_t t1) {
  const int64_t half = D / 2;
  alignas(32) double fbuf[kFreqBlock];
  const __m256i dup_lo = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3), dup_hi = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
  const __m256 alt = _mm256_setr_ps(-1, 1, -1, 1, -1, 1, -1, 1);
  for (int64_t ib = 0; ib < half; ib += kFreqBlock) {
    const int64_t nf = std::min(kFreqBlock, half - ib);
    const double* f = freq_block(fbuf, theta, D, ib, nf);
    for (int64_t t = t0; t < t1; ++t) {
      float* xt = x + t * H * D;
      for (int64_t i = 0; i < nf; i += 8) {
        const int64_t n = std::min<int64_t>(8, nf - i), a = ib + i;
        __m256 c, s;
        sincos8((double)pos[t], f + i, &c, &s);
        if (style == RopeStyle::norm) {
          // x[2a], x[2a+1], ...: y = x * (c, c) + swap_pairs(x) * (-s, s), 4 pairs per register
          const __m256 c_lo = _mm256_permutevar8x32_ps(c, dup_lo), c_hi = _mm256_permutevar8x32_ps(c, dup_hi);
          const __m256 s_lo = _mm256_mul_ps(_mm256_permutevar8x32_ps(s, dup_lo), alt);
          const __m256 s_hi = _mm256_mul_ps(_mm256_permutevar8x32_ps(s, dup_hi), alt);
          const __m256i m_lo = first_n(2 * n), m_hi = first_n(2 * n - 8);
          for (int64_t h = 0; h < H; ++h) {
            float* p = xt + h * D + 2 * a;
            rotate_pairs(p, m_lo, c_lo, s_lo);
            if (n > 4) rotate_pairs(p + 8, m_hi, c_hi, s_hi);
          }
        } else {
          const __m256i mk = first_n(n);
          for (int64_t h = 0; h < H; ++h) {
            float* p0 = xt + h * D + a;
            float* p1 = p0 + half;
            const __m256 v0 = _mm256_maskload_ps(p0, mk), v1 = _mm256_maskload_ps(p1, mk);
            _mm256_maskstore_ps(p0, mk, _mm256_fmsub_ps(v0, c, _mm256_mul_ps(v1, s)));
            _mm256_maskstore_ps(p1, mk, _mm256_fmadd_ps(v0, s, _mm256_mul_ps(v1, c)));
          }
        }
      }
    }
  }
}

}  // namespace ninestep
