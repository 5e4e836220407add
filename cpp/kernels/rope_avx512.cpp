// Rotary position embedding, AVX-512. Eight frequencies at a time: the angle pos * f is formed
// and reduced modulo pi/2 in double (an FMA against a two-part pi/2, so positions in the millions
// keep ~1e-16 absolute error), then sin and cos of the reduced angle run in float on [-pi/4, pi/4]
// and the quadrant swaps and signs them. Each token's cos/sin serve all H heads.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/nn.h"
#include "kernels/rope_freqs.h"

namespace ninestep {

namespace {

// cos and sin of pos * f for 8 frequencies f.
inline void sincos8(double pos, __m512d f, __m256* c_out, __m256* s_out) {
  const __m512d ang = _mm512_mul_pd(_mm512_set1_pd(pos), f);
  const __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(ang, _mm512_set1_pd(0.63661977236758134308)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(1.5707963267948966), ang);
  r = _mm512_fnmadd_pd(k, _mm512_set1_pd(6.123233995736766e-17), r);
  const __m256i q = _mm512_cvtpd_epi32(k);  // quadrant; |k| < 2^31 for int32 positions and f <= 1
  const __m256 x = _mm512_cvtpd_ps(r), x2 = _mm256_mul_ps(x, x);
  // Cephes sinf / cosf minimax polynomials on [-pi/4, pi/4]
  __m256 sp = _mm256_fmadd_ps(_mm256_set1_ps(-1.9515295891e-4f), x2, _mm256_set1_ps(8.3321608736e-3f));
  sp = _mm256_fmadd_ps(sp, x2, _mm256_set1_ps(-1.6666654611e-1f));
  const __m256 sn = _mm256_fmadd_ps(_mm256_mul_ps(sp, x2), x, x);
  __m256 cp = _mm256_fmadd_ps(_mm256_set1_ps(2.443315711809948e-5f), x2, _mm256_set1_ps(-1.388731625493765e-3f));
  cp = _mm256_fmadd_ps(cp, x2, _mm256_set1_ps(4.166664568298827e-2f));
  const __m256 cs = _mm256_fmadd_ps(cp, _mm256_mul_ps(x2, x2), _mm256_fnmadd_ps(_mm256_set1_ps(0.5f), x2, _mm256_set1_ps(1.0f)));
  // quadrant q: sin = (sn, cs, -sn, -cs)[q & 3], cos = (cs, -sn, -cs, sn)[q & 3]
  const __mmask8 odd = _mm256_test_epi32_mask(q, _mm256_set1_epi32(1));
  const __m256 s = _mm256_mask_blend_ps(odd, sn, cs), c = _mm256_mask_blend_ps(odd, cs, sn);
  const __m256i sign = _mm256_set1_epi32(INT32_MIN);
  const __m256i s_neg = _mm256_and_si256(_mm256_slli_epi32(q, 30), sign);
  const __m256i c_neg = _mm256_and_si256(_mm256_slli_epi32(_mm256_add_epi32(q, _mm256_set1_epi32(1)), 30), sign);
  *s_out = _mm256_xor_ps(s, _mm256_castsi256_ps(s_neg));
  *c_out = _mm256_xor_ps(c, _mm256_castsi256_ps(c_neg));
}

}  // namespace

void rope_rows_avx512(float* x, const int32_t* pos, int64_t H, int64_t D, float theta, RopeStyle style, int64_t t0,
                      int64_t t1) {
  const int64_t half = D / 2;
  alignas(64) double fbuf[kFreqBlock];
  const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512 alt = _mm512_setr_ps(-1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1);
  for (int64_t ib = 0; ib < half; ib += kFreqBlock) {
    const int64_t nf = std::min(kFreqBlock, half - ib);
    const double* f = freq_block(fbuf, theta, D, ib, nf);
    for (int64_t t = t0; t < t1; ++t) {
      float* xt = x + t * H * D;
      for (int64_t i = 0; i < nf; i += 8) {
        const int64_t n = std::min<int64_t>(8, nf - i), a = ib + i;
        __m256 c, s;
        sincos8((double)pos[t], _mm512_loadu_pd(f + i), &c, &s);
        if (style == RopeStyle::norm) {
          // 16 floats (x[2a], x[2a+1], ...): y = x * (c, c) + swap_pairs(x) * (-s, s)
          const __m512 cc = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(c));
          const __m512 ss = _mm512_mul_ps(_mm512_permutexvar_ps(dup, _mm512_castps256_ps512(s)), alt);
          const __mmask16 mk = (__mmask16)((1u << (2 * n)) - 1u);
          for (int64_t h = 0; h < H; ++h) {
            float* p = xt + h * D + 2 * a;
            const __m512 v = _mm512_maskz_loadu_ps(mk, p);
            _mm512_mask_storeu_ps(p, mk, _mm512_fmadd_ps(v, cc, _mm512_mul_ps(_mm512_permute_ps(v, 0xB1), ss)));
          }
        } else {
          const __mmask8 mk = (__mmask8)((1u << n) - 1u);
          for (int64_t h = 0; h < H; ++h) {
            float* p0 = xt + h * D + a;
            float* p1 = p0 + half;
            const __m256 v0 = _mm256_maskz_loadu_ps(mk, p0), v1 = _mm256_maskz_loadu_ps(mk, p1);
            _mm256_mask_storeu_ps(p0, mk, _mm256_fmsub_ps(v0, c, _mm256_mul_ps(v1, s)));
            _mm256_mask_storeu_ps(p1, mk, _mm256_fmadd_ps(v0, s, _mm256_mul_ps(v1, c)));
          }
        }
      }
    }
  }
}

}  // namespace ninestep
