// softmax over the last axis, AVX2 + FMA. Same special rows as the scalar reference (softmax.cpp).
#include <immintrin.h>

#include <cmath>
#include <limits>

#include "kernels/nn.h"

namespace ninestep {

void softmax_row_no_max(float* y, const float* x, int64_t n);  // softmax.cpp: the all -inf row

namespace {

// exp(x), 8 lanes, ~1 ulp: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two so n ln2 is exact),
// e^r = 1 + r + r^2 P(r) with Cephes' degree-5 minimax P, times 2^n built in the exponent bits as
// 2^(n/2) 2^(n - n/2) so inf, subnormals and 0 come out right. NaN stays NaN.
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

inline __m256i tail_mask(int64_t left) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

}  // namespace

void softmax_rows_avx2(float* y, const float* x, int64_t n, int64_t r0, int64_t r1) {
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  const int64_t nv = n & ~int64_t(7);
  const __m256i mt = tail_mask(n - nv);
  const bool tail = nv < n;
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    __m256 m0 = ninf, m1 = ninf;
    int64_t i = 0;
    for (; i + 16 <= nv; i += 16) {
      m0 = _mm256_max_ps(m0, _mm256_loadu_ps(xr + i));
      m1 = _mm256_max_ps(m1, _mm256_loadu_ps(xr + i + 8));
    }
    if (i < nv) m0 = _mm256_max_ps(m0, _mm256_loadu_ps(xr + i));
    if (tail) m1 = _mm256_max_ps(m1, _mm256_blendv_ps(ninf, _mm256_maskload_ps(xr + nv, mt), _mm256_castsi256_ps(mt)));
    const float mx = hmax(_mm256_max_ps(m0, m1));
    if (mx == -std::numeric_limits<float>::infinity()) {
      softmax_row_no_max(yr, xr, n);
      continue;
    }
    // exp and sum; partial sums go to double every 1024 elements so long rows stay accurate
    const __m256 vm = _mm256_set1_ps(mx);
    double sum = 0.0;
    for (int64_t b = 0; b < nv; b += 1024) {
      const int64_t e = b + 1024 < nv ? b + 1024 : nv;
      __m256 s = _mm256_setzero_ps();
      for (int64_t j = b; j < e; j += 8) {
        const __m256 v = vexp(_mm256_sub_ps(_mm256_loadu_ps(xr + j), vm));
        _mm256_storeu_ps(yr + j, v);
        s = _mm256_add_ps(s, v);
      }
      sum += hsum(s);
    }
    if (tail) {
      const __m256 v = _mm256_and_ps(vexp(_mm256_sub_ps(_mm256_maskload_ps(xr + nv, mt), vm)), _mm256_castsi256_ps(mt));
      _mm256_maskstore_ps(yr + nv, mt, v);
      sum += hsum(v);
    }
    const __m256 inv = _mm256_set1_ps((float)(1.0 / sum));
    for (int64_t j = 0; j < nv; j += 8) _mm256_storeu_ps(yr + j, _mm256_mul_ps(_mm256_loadu_ps(yr + j), inv));
    if (tail) _mm256_maskstore_ps(yr + nv, mt, _mm256_mul_ps(_mm256_maskload_ps(yr + nv, mt), inv));
  }
}

}  // namespace ninestep
