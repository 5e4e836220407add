// The sampler's scans over a row of logits (sample.h), AVX2: 8 floats per compare instead of one
// value per branch, which made the sampler ~150 us per token at SmolLM2's 49k vocabulary and
// ~0.7 ms at Gemma's 262k (default filters; the forward step itself is a few ms).
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/sample.h"
#include "kernels/sample_scalar.h"
#include "kernels/simd_avx2.h"
#include "kernels/vexp_avx2.h"

namespace ninestep {

int64_t sample_argmax_avx2(const float* v, int64_t n) {
  // max(x, acc) keeps acc where x is NaN, so NaN never wins (as the scalar loop)
  __m256 a[4];
  for (auto& x : a) x = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int u = 0; u < 4; ++u) a[u] = _mm256_max_ps(_mm256_loadu_ps(v + i + 8 * u), a[u]);
  float m = hmax(_mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3])));
  for (; i < n; ++i) m = v[i] > m ? v[i] : m;
  // the first index holding it, or n - 1 when none does (every value NaN)
  const __m256 mv = _mm256_set1_ps(m);
  for (i = 0; i + 8 <= n; i += 8)
    if (const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(v + i), mv, _CMP_EQ_OQ)))
      return i + __builtin_ctz(hit);
  for (; i < n; ++i)
    if (v[i] == m) return i;
  return n - 1;
}

int64_t sample_first_at_least_avx2(const float* v, int64_t i, int64_t n, float thr) {
  const __m256 t = _mm256_set1_ps(thr);
  for (; i + 32 <= n; i += 32) {
    const __m256 c0 = _mm256_cmp_ps(_mm256_loadu_ps(v + i), t, _CMP_GE_OQ);
    const __m256 c1 = _mm256_cmp_ps(_mm256_loadu_ps(v + i + 8), t, _CMP_GE_OQ);
    const __m256 c2 = _mm256_cmp_ps(_mm256_loadu_ps(v + i + 16), t, _CMP_GE_OQ);
    const __m256 c3 = _mm256_cmp_ps(_mm256_loadu_ps(v + i + 24), t, _CMP_GE_OQ);
    const int any = _mm256_movemask_ps(_mm256_or_ps(_mm256_or_ps(c0, c1), _mm256_or_ps(c2, c3)));
    if (any) {
      const __m256 c[4] = {c0, c1, c2, c3};
      for (int u = 0; u < 4; ++u)
        if (const int hit = _mm256_movemask_ps(c[u])) return i + 8 * u + __builtin_ctz(hit);
    }
  }
  return first_at_least_from(v, i, n, thr);
}

double sample_exp_weights_avx2(float* w, const float* z, int64_t n, float lmax, float inv_t) {
  const __m256 mx = _mm256_set1_ps(lmax), s = _mm256_set1_ps(inv_t), ninf = _mm256_set1_ps(-INFINITY);
  double total = 0.0;
  int64_t i = 0;
  while (i + 8 <= n) {  // float sums of up to 1024 weights <= 1 each, then into the double total
    __m256 acc = _mm256_setzero_ps();
    for (const int64_t end = std::min(n, i + 1024); i + 8 <= end; i += 8) {
      const __m256 x = _mm256_loadu_ps(z + i);
      // NaN and -inf logits weigh exactly 0 (vexp's clamp would give them 1e-45)
      const __m256 e = _mm256_and_ps(vexp(_mm256_mul_ps(_mm256_sub_ps(x, mx), s)), _mm256_cmp_ps(x, ninf, _CMP_GT_OQ));
      _mm256_storeu_ps(w + i, e);
      acc = _mm256_add_ps(acc, e);
    }
    total += hsum(acc);
  }
  return exp_weights_from(w, z, i, n, lmax, inv_t, total);
}

int64_t sample_walk_avx2(const float* p, int64_t n, double r) {
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {  // whole blocks of 64 while r stays above their sum
    __m256 s = _mm256_loadu_ps(p + i);
    for (int u = 1; u < 8; ++u) s = _mm256_add_ps(s, _mm256_loadu_ps(p + i + 8 * u));
    const double b = hsum(s);
    if (r - b < 0) break;
    r -= b;
  }
  return walk_from(p, i, n, r);
}

}  // namespace ninestep
