// softmax over the last axis, AVX-512. Same special rows as the scalar reference (softmax.cpp).
#include <immintrin.h>

#include <cmath>
#include <limits>

#include "kernels/nn.h"
#include "kernels/vexp_avx512.h"

namespace ninestep {

void softmax_row_no_max(float* y, const float* x, int64_t n);  // softmax.cpp: the all -inf row

namespace {

inline __mmask16 tail_mask(int64_t left) { return (__mmask16)((1u << left) - 1u); }

}  // namespace

void softmax_rows_avx512(float* y, const float* x, int64_t n, int64_t r0, int64_t r1) {
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const int64_t nv = n & ~int64_t(15);
  const __mmask16 mt = tail_mask(n - nv);
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    __m512 m0 = ninf, m1 = ninf;
    int64_t i = 0;
    for (; i + 32 <= nv; i += 32) {
      m0 = _mm512_max_ps(m0, _mm512_loadu_ps(xr + i));
      m1 = _mm512_max_ps(m1, _mm512_loadu_ps(xr + i + 16));
    }
    if (i < nv) m0 = _mm512_max_ps(m0, _mm512_loadu_ps(xr + i));
    if (mt) m1 = _mm512_max_ps(m1, _mm512_mask_loadu_ps(ninf, mt, xr + nv));
    const float mx = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
    if (mx == -std::numeric_limits<float>::infinity()) {
      softmax_row_no_max(yr, xr, n);
      continue;
    }
    // exp and sum; partial sums go to double every 1024 elements so long rows stay accurate
    const __m512 vm = _mm512_set1_ps(mx);
    double sum = 0.0;
    for (int64_t b = 0; b < nv; b += 1024) {
      const int64_t e = b + 1024 < nv ? b + 1024 : nv;
      __m512 s = _mm512_setzero_ps();
      for (int64_t j = b; j < e; j += 16) {
        const __m512 v = vexp(_mm512_sub_ps(_mm512_loadu_ps(xr + j), vm));
        _mm512_storeu_ps(yr + j, v);
        s = _mm512_add_ps(s, v);
      }
      sum += _mm512_reduce_add_ps(s);
    }
    if (mt) {
      const __m512 v = vexp(_mm512_sub_ps(_mm512_maskz_loadu_ps(mt, xr + nv), vm));
      _mm512_mask_storeu_ps(yr + nv, mt, v);
      sum += _mm512_mask_reduce_add_ps(mt, v);
    }
    const __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
    for (int64_t j = 0; j < nv; j += 16) _mm512_storeu_ps(yr + j, _mm512_mul_ps(_mm512_loadu_ps(yr + j), inv));
    if (mt) _mm512_mask_storeu_ps(yr + nv, mt, _mm512_mul_ps(_mm512_maskz_loadu_ps(mt, yr + nv), inv));
  }
}

}  // namespace ninestep
