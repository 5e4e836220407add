// AVX2 unpacking of GGUF quant bits shared by the quantized kernels (include only from *_avx2.cpp).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace ninestep {

// 16 bytes of nibbles -> 32 unsigned bytes in element order: low nibbles (elements 0..15),
// then high nibbles (elements 16..31).
// (The 16 bytes load into both lanes at once; the upper lane shifts right by 4.)
inline __m256i unpack_nibbles(const uint8_t* qs) {
  const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
  const __m256i x = _mm256_srlv_epi32(b, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
  return _mm256_and_si256(x, _mm256_set1_epi8(0x0f));
}

// Q5's fifth bits (bit j of the little-endian uint32 qh is element j's) -> 32 bytes, 0xff where
// the bit is set: byte j takes byte j / 8 of qh, then tests its bit j % 8.
inline __m256i fifth_bits(const uint8_t* qh) {
  int32_t u;
  std::memcpy(&u, qh, 4);
  const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
  const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(u), spread);
  return _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
}

// Q5: the nibbles with the fifth bit as 0x10, q in [0, 31] unsigned.
inline __m256i q5_bytes(const uint8_t* qs, const uint8_t* qh) {
  return _mm256_or_si256(unpack_nibbles(qs), _mm256_and_si256(fifth_bits(qh), _mm256_set1_epi8(0x10)));
}

// The 12 packed Q4_K / Q5_K scale bytes -> bytes 0..7 the 6-bit scales, 8..15 the minimums
// (k_scale_min, four at a time).
inline __m128i k_scales_mins(const uint8_t* p) {
  uint32_t a, b, c;
  std::memcpy(&a, p, 4);
  std::memcpy(&b, p + 4, 4);
  std::memcpy(&c, p + 8, 4);
  const uint32_t sc_lo = a & 0x3f3f3f3f, mn_lo = b & 0x3f3f3f3f;
  const uint32_t sc_hi = (c & 0x0f0f0f0f) | ((a >> 2) & 0x30303030);
  const uint32_t mn_hi = ((c >> 4) & 0x0f0f0f0f) | ((b >> 2) & 0x30303030);
  return _mm_set_epi32((int)mn_hi, (int)mn_lo, (int)sc_hi, (int)sc_lo);
}

}  // namespace ninestep
