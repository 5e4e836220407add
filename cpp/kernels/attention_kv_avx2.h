// AVX2 + F16C readers of KV cache rows (include only from *_avx2.cpp): KvAvx2<T>::load8 gives
// elements [d, d + 8) of a head as 8 floats, load_part the first n (< 8) of them, the rest 0.
// `h` points at the head's first element: KvAvx2<T>::head(row, g * D).
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "core/dtype.h"
#include "kernels/attention_scalar.h"
#include "kernels/simd_avx2.h"

namespace ninestep {

template <DType KT>
struct KvAvx2;

template <>
struct KvAvx2<DType::f32> {
  static const uint8_t* head(const uint8_t* row, int64_t e0) { return row + e0 * 4; }
  static __m256 load8(const uint8_t* h, int64_t d) { return _mm256_loadu_ps(reinterpret_cast<const float*>(h) + d); }
  static __m256 load_part(const uint8_t* h, int64_t d, int64_t n) {
    return _mm256_maskload_ps(reinterpret_cast<const float*>(h) + d, first_n(n));
  }
};

template <>
struct KvAvx2<DType::f16> {
  static const uint8_t* head(const uint8_t* row, int64_t e0) { return row + e0 * 2; }
  static __m256 load8(const uint8_t* h, int64_t d) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + d * 2)));
  }
  static __m256 load_part(const uint8_t* h, int64_t d, int64_t n) {
    alignas(16) uint16_t b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i < n; ++i) b[i] = reinterpret_cast<const uint16_t*>(h)[d + i];
    return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(b)));
  }
};

// Heads start on a block (D % 32 == 0, checked by kv_cache_type_error), so d counts from a block edge.
template <>
struct KvAvx2<DType::q8_0> {
  static const uint8_t* head(const uint8_t* row, int64_t e0) { return row + (e0 / QK) * sizeof(BlockQ8_0); }
  static __m256 load8(const uint8_t* h, int64_t d) {
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(h) + d / QK;
    const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b->qs + d % QK))));
    return _mm256_mul_ps(q, _mm256_set1_ps(_cvtsh_ss(b->d)));
  }
  static __m256 load_part(const uint8_t* h, int64_t d, int64_t n) {
    alignas(32) float b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i < n; ++i) b[i] = kv_at<DType::q8_0>(h, d + i);
    return _mm256_load_ps(b);
  }
};

// Elements [0, D) of a head as floats into dst [D].
template <DType KT>
inline void kv_head_to_f32(float* dst, const uint8_t* h, int64_t D) {
  int64_t d = 0;
  for (; d + 8 <= D; d += 8) _mm256_storeu_ps(dst + d, KvAvx2<KT>::load8(h, d));
  if (d < D) _mm256_maskstore_ps(dst + d, first_n(D - d), KvAvx2<KT>::load_part(h, d, D - d));
}

}  // namespace ninestep
