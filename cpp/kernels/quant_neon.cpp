// NEON (base ARMv8.0, no dotprod): 8-bit activation quantization and quantized-weight GEMM.
//
// A block dot is 2 x 16 signed bytes of weights against 2 x 16 of activations: vmull_s8 of the
// low halves plus vmlal_high_s8 of the high halves gives eight int16 pair sums (|w| <= 128,
// |x| <= 127: each pair sum stays below 2^15), vpaddlq/vpadalq_s16 widen them to four int32,
// then one float FMA with d_w * d_x. vdotq_s32 would halve the work but is an optional
// extension (ARMv8.2 dotprod); this tier must run on every aarch64 core.
#include <arm_neon.h>

#include <cstring>

#include "kernels/quant.h"

namespace ninestep {
namespace {

inline float half(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }

// 16 bytes of nibbles -> elements 0..15 (low nibbles) and 16..31 (high nibbles) as bytes.
struct Nibbles { uint8x16_t lo, hi; };
inline Nibbles unpack_nibbles(const uint8_t* qs) {
  const uint8x16_t b = vld1q_u8(qs);
  return {vandq_u8(b, vdupq_n_u8(0x0f)), vshrq_n_u8(b, 4)};
}

// Q5's fifth bits (bit j of the little-endian uint32 qh is element j's) -> 0xff bytes where set:
// byte j takes byte j / 8 of qh and tests its bit j % 8. lo: elements 0..15, hi: 16..31.
inline Nibbles fifth_bits(const uint8_t* qh) {
  uint32_t u;
  std::memcpy(&u, qh, 4);
  const uint8x16_t word = vreinterpretq_u8_u32(vdupq_n_u32(u));
  static const uint8_t kSpreadLo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
  static const uint8_t kSpreadHi[16] = {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
  static const uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x16_t bit = vld1q_u8(kBit);
  return {vtstq_u8(vqtbl1q_u8(word, vld1q_u8(kSpreadLo)), bit), vtstq_u8(vqtbl1q_u8(word, vld1q_u8(kSpreadHi)), bit)};
}

// A weight block unpacked to 32 signed bytes, elements 0..15 in lo and 16..31 in hi.
struct W { int8x16_t lo, hi; };

inline int32x4_t dot(const W& w, int8x16_t x0, int8x16_t x1) {
  int16x8_t p0 = vmull_s8(vget_low_s8(w.lo), vget_low_s8(x0));
  p0 = vmlal_high_s8(p0, w.lo, x0);
  int16x8_t p1 = vmull_s8(vget_low_s8(w.hi), vget_low_s8(x1));
  p1 = vmlal_high_s8(p1, w.hi, x1);
  return vpadalq_s16(vpaddlq_s16(p0), p1);
}

// Per weight type: the block and how it unpacks (once per block, reused for every activation
// row of the tile). Q4_1's / Q5_1's q in [0, 31] fits a signed byte, so all share one dot.
struct Q8_0 {
  using Block = BlockQ8_0;
  static constexpr bool kMin = false;
  static W load(const Block& b) { return {vld1q_s8(b.qs), vld1q_s8(b.qs + 16)}; }
};

struct Q4_0 {
  using Block = BlockQ4_0;
  static constexpr bool kMin = false;
  static W load(const Block& b) {
    const Nibbles n = unpack_nibbles(b.qs);
    const int8x16_t eight = vdupq_n_s8(8);
    return {vsubq_s8(vreinterpretq_s8_u8(n.lo), eight), vsubq_s8(vreinterpretq_s8_u8(n.hi), eight)};
  }
};

// Q4_1: x = d * q + m; the minimum adds m * d_x * sum(x_q), precomputed as BlockQ8Act::s.
struct Q4_1 {
  using Block = BlockQ4_1;
  static constexpr bool kMin = true;
  static W load(const Block& b) {
    const Nibbles n = unpack_nibbles(b.qs);
    return {vreinterpretq_s8_u8(n.lo), vreinterpretq_s8_u8(n.hi)};
  }
};

// Q5_0: q - 16 in [-16, 15] is the nibble with 0xf0 or-ed in where the fifth bit is clear.
struct Q5_0 {
  using Block = BlockQ5_0;
  static constexpr bool kMin = false;
  static W load(const Block& b) {
    const Nibbles n = unpack_nibbles(b.qs), h = fifth_bits(b.qh);
    const uint8x16_t f0 = vdupq_n_u8(0xf0);
    return {vreinterpretq_s8_u8(vorrq_u8(n.lo, vbicq_u8(f0, h.lo))),
            vreinterpretq_s8_u8(vorrq_u8(n.hi, vbicq_u8(f0, h.hi)))};
  }
};

// Q5_1: q in [0, 31] (fits a signed byte) and a minimum, as Q4_1.
struct Q5_1 {
  using Block = BlockQ5_1;
  static constexpr bool kMin = true;
  static W load(const Block& b) {
    const Nibbles n = unpack_nibbles(b.qs), h = fifth_bits(b.qh);
    const uint8x16_t b4 = vdupq_n_u8(0x10);
    return {vreinterpretq_s8_u8(vorrq_u8(n.lo, vandq_u8(h.lo, b4))),
            vreinterpretq_s8_u8(vorrq_u8(n.hi, vandq_u8(h.hi, b4)))};
  }
};

// y[i0 + i, j0 + j] for an MR x NR tile: each weight block is unpacked once and used MR times.
template <class T, int MR, int NR>
void tile(float* y, int64_t ldy, const BlockQ8Act* act, int64_t nb, const uint8_t* w, int64_t row_bytes,
          int64_t i0, int64_t j0) {
  using Block = typename T::Block;
  const Block* wr[NR];  // row j0 + j of W
  for (int j = 0; j < NR; ++j) wr[j] = reinterpret_cast<const Block*>(w + (j0 + j) * row_bytes);
  const BlockQ8Act* ar[MR];  // row i0 + i of the activations
  for (int i = 0; i < MR; ++i) ar[i] = act + (i0 + i) * nb;
  float32x4_t acc[MR][NR];
  float macc[MR][NR];  // Q4_1's / Q5_1's minimum terms
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = vdupq_n_f32(0.0f), macc[i][j] = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    W wv[NR];
    float dw[NR], mw[NR];
    for (int j = 0; j < NR; ++j) {
      wv[j] = T::load(wr[j][b]);
      dw[j] = half(wr[j][b].d);
      if constexpr (T::kMin) mw[j] = half(wr[j][b].m);
    }
    for (int i = 0; i < MR; ++i) {
      const BlockQ8Act& a = ar[i][b];
      const int8x16_t x0 = vld1q_s8(a.qs), x1 = vld1q_s8(a.qs + 16);
      for (int j = 0; j < NR; ++j) {
        const float32x4_t p = vcvtq_f32_s32(dot(wv[j], x0, x1));
        acc[i][j] = vfmaq_n_f32(acc[i][j], p, dw[j] * a.d);
        if constexpr (T::kMin) macc[i][j] += mw[j] * a.s;
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* yr = y + (i0 + i) * ldy + j0;
    for (int j = 0; j < NR; ++j) yr[j] = vaddvq_f32(acc[i][j]) + macc[i][j];
  }
}

// Activation rows [i0, i1) against weight rows [j0, j0 + NR) in tiles of up to MR rows.
template <class T, int MR, int NR>
void column(float* y, int64_t ldy, const BlockQ8Act* act, int64_t nb, const uint8_t* w, int64_t rb, int64_t i0,
            int64_t i1, int64_t j0) {
  int64_t i = i0;
  for (; i + MR <= i1; i += MR) tile<T, MR, NR>(y, ldy, act, nb, w, rb, i, j0);
  switch (i1 - i) {
    case 3: tile<T, 3, NR>(y, ldy, act, nb, w, rb, i, j0); break;
    case 2: tile<T, 2, NR>(y, ldy, act, nb, w, rb, i, j0); break;
    case 1: tile<T, 1, NR>(y, ldy, act, nb, w, rb, i, j0); break;
    default: break;
  }
}

template <class T>
void qgemm(float* y, int64_t ldy, const BlockQ8Act* act, const void* wv, int64_t m, int64_t k, int64_t n0,
           int64_t n1) {
  const int64_t nb = k / QK, rb = nb * (int64_t)sizeof(typename T::Block);
  const uint8_t* w = static_cast<const uint8_t*>(wv);
  if (m == 1) {  // matrix-vector: four weight rows keep four FMA chains in flight
    int64_t j = n0;
    for (; j + 4 <= n1; j += 4) tile<T, 1, 4>(y, ldy, act, nb, w, rb, 0, j);
    for (; j < n1; ++j) tile<T, 1, 1>(y, ldy, act, nb, w, rb, 0, j);
    return;
  }
  // Prefill: a chunk of activation rows small enough to stay in L1 meets every weight row of the
  // slice before the next chunk. 4 x 4 tiles: 16 accumulators + 8 unpacked weight vectors fit
  // the 32 NEON registers.
  constexpr int64_t kRowChunk = 32;
  for (int64_t i0 = 0; i0 < m; i0 += kRowChunk) {
    const int64_t i1 = i0 + kRowChunk < m ? i0 + kRowChunk : m;
    int64_t j = n0;
    for (; j + 4 <= n1; j += 4) column<T, 4, 4>(y, ldy, act, nb, w, rb, i0, i1, j);
    for (; j < n1; ++j) column<T, 4, 1>(y, ldy, act, nb, w, rb, i0, i1, j);
  }
}

}  // namespace

void quantize_act_row_neon(BlockQ8Act* dst, const float* x, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b) {
    const float* v = x + b * QK;
    float32x4_t f[8];
    for (int t = 0; t < 8; ++t) f[t] = vld1q_f32(v + 4 * t);
    float32x4_t mx = vabsq_f32(f[0]);
    for (int t = 1; t < 8; ++t) mx = vmaxq_f32(mx, vabsq_f32(f[t]));
    const float amax = vmaxvq_f32(mx);
    const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
    // vcvtnq rounds to nearest even, as std::nearbyint in the reference.
    int32x4_t q[8];
    for (int t = 0; t < 8; ++t) q[t] = vcvtnq_s32_f32(vmulq_n_f32(f[t], id));
    int32x4_t sum = q[0];
    for (int t = 1; t < 8; ++t) sum = vaddq_s32(sum, q[t]);
    for (int h = 0; h < 2; ++h) {
      const int16x8_t a = vcombine_s16(vqmovn_s32(q[4 * h]), vqmovn_s32(q[4 * h + 1]));
      const int16x8_t c = vcombine_s16(vqmovn_s32(q[4 * h + 2]), vqmovn_s32(q[4 * h + 3]));
      vst1q_s8(dst[b].qs + 16 * h, vcombine_s8(vqmovn_s16(a), vqmovn_s16(c)));
    }
    dst[b].d = d;
    dst[b].s = d * (float)vaddvq_s32(sum);
  }
}

void qgemm_rows_neon(float* y, int64_t ldy, const BlockQ8Act* act, const void* w, DType wtype, int64_t m, int64_t k,
                     int64_t n0, int64_t n1) {
  switch (wtype) {
    case DType::q8_0: qgemm<Q8_0>(y, ldy, act, w, m, k, n0, n1); break;
    case DType::q4_0: qgemm<Q4_0>(y, ldy, act, w, m, k, n0, n1); break;
    case DType::q4_1: qgemm<Q4_1>(y, ldy, act, w, m, k, n0, n1); break;
    case DType::q5_0: qgemm<Q5_0>(y, ldy, act, w, m, k, n0, n1); break;
    case DType::q5_1: qgemm<Q5_1>(y, ldy, act, w, m, k, n0, n1); break;
    default: qgemm_rows_generic(y, ldy, act, w, wtype, m, k, n0, n1); break;
  }
}

}  // namespace ninestep
