// KV cache rows written with F16C: f16 rounds to nearest even (the hardware's IEEE conversion, as
// f32_to_fp16 does); the other types take the generic writer.
#include <immintrin.h>

#include <cstdint>

#include "kernels/nn.h"

namespace ninestep {

void kv_store_row_generic(void* dst, const float* src, DType type, int64_t n);

void kv_store_row_avx2(void* dst, const float* src, DType type, int64_t n) {
  if (type != DType::f16) return kv_store_row_generic(dst, src, type, n);
  uint16_t* h = static_cast<uint16_t*>(dst);  // [n]
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  if (i < n) kv_store_row_generic(h + i, src + i, type, n - i);
}

}  // namespace ninestep
