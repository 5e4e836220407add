// The sampler's exp pass (sample.h) with 16 lanes: at Gemma's 262k vocabulary the weights of a
// temperature draw are most of its time (the other scans take the AVX2 versions).
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/sample.h"
#include "kernels/sample_scalar.h"
#include "kernels/vexp_avx512.h"

namespace ninestep {

double sample_exp_weights_avx512(float* w, const float* z, int64_t n, float lmax, float inv_t) {
  const __m512 mx = _mm512_set1_ps(lmax), s = _mm512_set1_ps(inv_t), ninf = _mm512_set1_ps(-INFINITY);
  double total = 0.0;
  int64_t i = 0;
  while (i + 16 <= n) {  // float sums of up to 1024 weights <= 1 each, then into the double total
    __m512 acc = _mm512_setzero_ps();
    for (const int64_t end = std::min(n, i + 1024); i + 16 <= end; i += 16) {
      const __m512 x = _mm512_loadu_ps(z + i);
      // NaN and -inf logits weigh exactly 0
      const __mmask16 real = _mm512_cmp_ps_mask(x, ninf, _CMP_GT_OQ);
      const __m512 e = _mm512_maskz_mov_ps(real, vexp(_mm512_mul_ps(_mm512_sub_ps(x, mx), s)));
      _mm512_storeu_ps(w + i, e);
      acc = _mm512_add_ps(acc, e);
    }
    total += _mm512_reduce_add_ps(acc);
  }
  return exp_weights_from(w, z, i, n, lmax, inv_t, total);
}

}  // namespace ninestep
