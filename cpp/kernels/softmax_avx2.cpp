// softmax over the last axis, AVX2 + FMA. Same special rows as the scalar reference (softmax.cpp).
#include <immintrin.h>

#include <cmath>
#include <limits>

#include "kernels/nn.h"
#include "kernels/simd_avx2.h"
#include "kernels/vexp_avx2.h"

namespace ninestep {

void softmax_row_no_max(float* y, const float* x, int64_t n);  // softmax.cpp: the all -inf row

void softmax_rows_avx2(float* y, const float* x, int64_t n, int64_t r0, int64_t r1) {
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  const int64_t nv = n & ~int64_t(7);
  const __m256i mt = first_n(n - nv);
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
