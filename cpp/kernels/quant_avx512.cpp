// AVX-512: 8-bit activation quantization (the quantized GEMMs run the AVX2 kernels on AVX-512
// machines, and with VNNI the packed one, quant_packed_avx512.cpp).
#include <immintrin.h>

#include "kernels/quant.h"

namespace ninestep {

void quantize_act_row_avx512(BlockQ8Act* dst, const float* x, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b) {
    const __m512 f0 = _mm512_loadu_ps(x + b * QK), f1 = _mm512_loadu_ps(x + b * QK + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(f0), _mm512_abs_ps(f1)));
    const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
    // cvtps rounds to nearest even under the default MXCSR, as std::nearbyint in the reference.
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(f0, _mm512_set1_ps(id)));
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(f1, _mm512_set1_ps(id)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[b].qs), _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[b].qs + 16), _mm512_cvtsepi32_epi8(q1));
    dst[b].d = d;
    dst[b].s = d * (float)_mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  }
}

}  // namespace ninestep
