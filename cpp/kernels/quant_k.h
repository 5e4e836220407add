// K-quants (ggml's Q4_K, Q5_K, Q6_K): super-blocks of 256 weights, byte-identical to ggml's
// blocks, multiplied against the 8-bit activation blocks of 32 (BlockQ8Act, one scale per 32
// elements: finer than ggml's Q8_K, which Gemma's heavy-tailed GeGLU output into ffn_down needs).
//
//   Q4_K / Q5_K:  w = d * sc[g] * q - dmin * mn[g]          (8 groups of 32, q in [0, 15] / [0, 31])
//   Q6_K:         w = d * sc[t] * (q - 32)                  (16 sub-blocks of 16, q in [0, 63], sc int8)
// Group g of a super-block meets activation block a_g (x = d_a * qa, s_a = d_a * sum(qa)) with an
// exact integer sum and one float step:
//   Q4_K / Q5_K:  d_a * (d * sc[g] * sum(q * qa))  -  dmin * mn[g] * s_a
//   Q6_K:         (d * d_a) * (sc[2g] * sum_16(...) + sc[2g + 1] * sum_16(...)),  ... = (q - 32) * qa
// (The Q8_K activation conversion, ggml's quantize_row_q8_K_ref, stays as the q8_k format.)
#pragma once
#include <cstdint>

#include "kernels/traits.h"

namespace ninestep {

constexpr int kKScaleBytes = 12;  // 8 six-bit scales + 8 six-bit minimums

struct BlockQ4K {
  uint16_t d;                     // fp16 scale of the sub-block scales
  uint16_t dmin;                  // fp16 scale of the sub-block minimums
  uint8_t scales[kKScaleBytes];   // packed 6-bit (scale, min) per sub-block of 32 (see k_scale_min)
  uint8_t qs[QK_K / 2];           // byte 32*g + l: low nibble element 64*g + l, high nibble 64*g + 32 + l
};
struct BlockQ5K {
  uint16_t d;                     // as BlockQ4K
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[QK_K / 8];           // bit s of byte l: the fifth bit of element 32*s + l
  uint8_t qs[QK_K / 2];           // the low four bits, packed as BlockQ4K::qs
};
struct BlockQ6K {
  uint8_t ql[QK_K / 2];           // low four bits: half h (128 elements) at 64*h; byte l (l < 64): low
                                  // nibble element 128*h + l, high nibble element 128*h + 64 + l
  uint8_t qh[QK_K / 4];           // top two bits: byte 32*h + l, bits 2t..2t+1: element 128*h + 32*t + l
  int8_t scales[QK_K / 16];       // one per sub-block of 16
  uint16_t d;                     // fp16 super-block scale
};
static_assert(sizeof(BlockQ4K) == 144, "Q4_K block must be 144 bytes");
static_assert(sizeof(BlockQ5K) == 176, "Q5_K block must be 176 bytes");
static_assert(sizeof(BlockQ6K) == 210, "Q6_K block must be 210 bytes");
static_assert(sizeof(BlockQ8K) == 292, "Q8_K block must be 292 bytes");

// Element e (0..255) of a Q4_K / Q5_K block's low four bits.
inline int k_nibble(const uint8_t* qs, int e) {
  const uint8_t b = qs[32 * (e / 64) + e % 32];
  return (e % 64) < 32 ? (b & 0xf) : (b >> 4);
}
inline int k_q5(const BlockQ5K& b, int e) { return k_nibble(b.qs, e) | (((b.qh[e % 32] >> (e / 32)) & 1) << 4); }
// Element e of a Q6_K block, unsigned (0..63; the value is q - 32).
inline int k_q6(const BlockQ6K& b, int e) {
  const int h = e / 128, r = e % 128;
  const uint8_t lo = b.ql[64 * h + r % 64];
  const int low = r < 64 ? (lo & 0xf) : (lo >> 4);
  return low | (((b.qh[32 * h + r % 32] >> (2 * (r / 32))) & 3) << 4);
}

// The 6-bit scale and minimum of sub-block s (0..7) from the 12 packed bytes: s < 4 sit in the low
// six bits of bytes s and s + 4; s >= 4 take four bits from byte s + 4 and two from the top of
// bytes s - 4 (scale) and s (minimum).
inline void k_scale_min(int s, const uint8_t* q, uint8_t* sc, uint8_t* mn) {
  if (s < 4) {
    *sc = q[s] & 63;
    *mn = q[s + 4] & 63;
  } else {
    *sc = (q[s + 4] & 0xf) | ((q[s - 4] >> 6) << 4);
    *mn = (q[s + 4] >> 4) | ((q[s] >> 6) << 4);
  }
}

// Rows of k elements (k a multiple of 256). quantize_row_* are ggml's reference quantizers
// (quantize_row_q*_K_ref, no importance weights): same search, same float operations.
void quantize_row_q4_k(void* dst, const float* x, int64_t k);
void quantize_row_q5_k(void* dst, const float* x, int64_t k);
void quantize_row_q6_k(void* dst, const float* x, int64_t k);
void dequantize_row_q4_k(float* y, const void* x, int64_t k);
void dequantize_row_q5_k(float* y, const void* x, int64_t k);
void dequantize_row_q6_k(float* y, const void* x, int64_t k);

// Activations x [k] -> k / 256 BlockQ8K, rounding as ggml's quantize_row_q8_K_ref.
void quantize_q8k_row_generic(void* dst, const float* x, int64_t k);
void quantize_q8k_row_avx2(void* dst, const float* x, int64_t k);
void quantize_q8k_row_neon(void* dst, const float* x, int64_t k);

// GemmRowsFn (traits.h) per type and ISA: y[i * ldy + j] = x[i] . W[j], act = m rows of k / 32
// BlockQ8Act, w = rows of the type's blocks. *_generic is the scalar reference.
void gemm_q4_k_generic(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                       int64_t n1);
void gemm_q5_k_generic(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                       int64_t n1);
void gemm_q6_k_generic(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                       int64_t n1);
void gemm_q4_k_avx2(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                    int64_t n1);
void gemm_q5_k_avx2(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                    int64_t n1);
void gemm_q6_k_avx2(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                    int64_t n1);
void gemm_q4_k_neon(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                    int64_t n1);
void gemm_q5_k_neon(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                    int64_t n1);
void gemm_q6_k_neon(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                    int64_t n1);

}  // namespace ninestep
