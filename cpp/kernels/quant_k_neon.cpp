// NEON (base ARMv8.0, no dotprod): Q8_K activation quantization and the Q4_K / Q5_K / Q6_K GEMM tiles.
//
// A super-block is eight groups of 32 weights, each meeting one 32-element activation block
// (BlockQ8Act), as two units of 16. Per unit: the quants as signed bytes (Q6_K: q - 32) times the
// activations with vmull_s8 + vmlal_high_s8 (eight int16 pair sums), widened to four int32 by
// vpaddlq_s16. Q4_K / Q5_K: the group's int sum, one FMA by d_a * d * sc, and the minimum meets
// the activation block's s; Q6_K: the two units' sub-scales in int, one FMA by d_a * d.
// Blocking loops: quant_k_driver.h.
#include <arm_neon.h>

#include <cmath>
#include <cstring>

#include "kernels/quant_k_driver.h"

namespace ninestep {
namespace {

inline float half(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }

// A weight block's scale per unit of 16, its minimum per group of 32 (Q4_K / Q5_K: -dmin * mn[g]
// meets the activation block's s) and d.
struct Prep {
  int16_t sc[16];  // scale of unit u
  float mn[8];     // Q4_K / Q5_K: -dmin * mn[g]
  float d;
};

inline uint8x16_t shr(uint8x16_t v, int n) { return vshlq_u8(v, vdupq_n_s8((int8_t)-n)); }

inline void prep_k_min(Prep* p, uint16_t d, uint16_t dmin, const uint8_t* packed) {
  const float m = -half(dmin);
  for (int s = 0; s < 8; ++s) {
    uint8_t sc, mn;
    k_scale_min(s, packed, &sc, &mn);
    p->sc[2 * s] = p->sc[2 * s + 1] = sc;
    p->mn[s] = m * (float)mn;
  }
  p->d = half(d);
}

// Unit u's low four bits in the Q4_K / Q5_K layout: group g = u / 2 of 32, bytes 16 * (u % 2).
inline uint8x16_t low_nibbles(const uint8_t* qs, int u) {
  const int g = u / 2;
  const uint8x16_t v = vld1q_u8(qs + 32 * (g / 2) + 16 * (u % 2));
  return g % 2 ? vshrq_n_u8(v, 4) : vandq_u8(v, vdupq_n_u8(0x0f));
}

// quants(b, u): unit u's 16 weight quants as signed bytes (Q6_K: q - 32, in [-32, 31]).
struct Q4K {
  using Block = BlockQ4K;
  static constexpr bool kHasMin = true;
  static void prep(Prep* p, const Block& b) { prep_k_min(p, b.d, b.dmin, b.scales); }
  static int8x16_t quants(const Block& b, int u) { return vreinterpretq_s8_u8(low_nibbles(b.qs, u)); }
};

struct Q5K {
  using Block = BlockQ5K;
  static constexpr bool kHasMin = true;
  static void prep(Prep* p, const Block& b) { prep_k_min(p, b.d, b.dmin, b.scales); }
  static int8x16_t quants(const Block& b, int u) {
    const uint8x16_t h = vld1q_u8(b.qh + 16 * (u % 2));
    const uint8x16_t hb = vandq_u8(shr(h, u / 2), vdupq_n_u8(1));
    return vreinterpretq_s8_u8(vorrq_u8(low_nibbles(b.qs, u), vshlq_n_u8(hb, 4)));
  }
};

struct Q6K {
  using Block = BlockQ6K;
  static constexpr bool kHasMin = false;
  static void prep(Prep* p, const Block& b) {
    for (int t = 0; t < 16; ++t) p->sc[t] = b.scales[t];
    p->d = half(b.d);
  }
  static int8x16_t quants(const Block& b, int u) {
    const int g = u / 2, h = g / 4, t = g % 4, o = 16 * (u % 2);
    const uint8x16_t l = vld1q_u8(b.ql + 64 * h + 32 * (t % 2) + o);
    const uint8x16_t lo = t < 2 ? vandq_u8(l, vdupq_n_u8(0x0f)) : vshrq_n_u8(l, 4);
    const uint8x16_t q = vld1q_u8(b.qh + 32 * h + o);
    const uint8x16_t hi = vandq_u8(shr(q, 2 * t), vdupq_n_u8(3));
    return vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, vshlq_n_u8(hi, 4))), vdupq_n_s8(32));
  }
};

// 16 signed products (|w| <= 63, pair sums <= 2 * 63 * 128) -> four int32 sums.
inline int32x4_t dot16(int8x16_t w, int8x16_t x) {
  int16x8_t p = vmull_s8(vget_low_s8(w), vget_low_s8(x));
  p = vmlal_high_s8(p, w, x);
  return vpaddlq_s16(p);
}

template <class T>
struct KernelNeon {
  using Block = typename T::Block;
  static constexpr int kPrefillRows = 4;
  static constexpr int kPrefillCols = 1;
  static constexpr int kDecodeCols = 4;

  template <int MR, int NR>
  static void tile(float* y, int64_t ldy, const BlockQ8Act* act, int64_t nb, const uint8_t* w, int64_t rb,
                   int64_t i0, int64_t j0, int64_t pf) {
    const Block* wr[NR];  // row j0 + j of W
    for (int j = 0; j < NR; ++j) wr[j] = reinterpret_cast<const Block*>(w + (j0 + j) * rb);
    const BlockQ8Act* ar[MR];  // row i0 + i of the activations: 8 blocks per super-block
    for (int i = 0; i < MR; ++i) ar[i] = act + (i0 + i) * nb * 8;
    float32x4_t acc[MR][NR];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] = vdupq_n_f32(0.0f);
    float macc[MR][NR] = {};  // Q4_K / Q5_K: sum of -dmin * mn * s_a
    for (int64_t b = 0; b < nb; ++b) {
      for (int j = 0; j < NR; ++j) {
        const Block& wb = wr[j][b];
        if (pf) prefetch_range(reinterpret_cast<const uint8_t*>(&wb) + pf, (int64_t)sizeof(Block));
        Prep p;
        T::prep(&p, wb);
#pragma GCC unroll 8
        for (int g = 0; g < 8; ++g) {
          const int8x16_t q0 = T::quants(wb, 2 * g), q1 = T::quants(wb, 2 * g + 1);
          for (int i = 0; i < MR; ++i) {
            const BlockQ8Act& a = ar[i][8 * b + g];
            const int32x4_t d0 = dot16(q0, vld1q_s8(a.qs)), d1 = dot16(q1, vld1q_s8(a.qs + 16));
            if constexpr (T::kHasMin) {
              // one scale per group: d_a * d * sc * isum - dmin * mn * s_a
              const float32x4_t v = vcvtq_f32_s32(vaddq_s32(d0, d1));
              acc[i][j] = vfmaq_n_f32(acc[i][j], v, a.d * p.d * (float)p.sc[2 * g]);
              macc[i][j] += p.mn[g] * a.s;
            } else {
              const int32x4_t v = vmlaq_n_s32(vmulq_n_s32(d0, p.sc[2 * g]), d1, p.sc[2 * g + 1]);
              acc[i][j] = vfmaq_n_f32(acc[i][j], vcvtq_f32_s32(v), a.d * p.d);
            }
          }
        }
      }
    }
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) y[(i0 + i) * ldy + j0 + j] = vaddvq_f32(acc[i][j]) + macc[i][j];
  }
};

}  // namespace

void quantize_q8k_row_neon(void* dst, const float* x, int64_t k) {
  for (int64_t b = 0; b < k / QK_K; ++b, x += QK_K) {
    BlockQ8K& out = static_cast<BlockQ8K*>(dst)[b];
    float32x4_t mx = vdupq_n_f32(0.0f);
    for (int t = 0; t < QK_K / 4; ++t) mx = vmaxq_f32(mx, vabsq_f32(vld1q_f32(x + 4 * t)));
    const float amax = vmaxvq_f32(mx);
    if (!(amax > 0.0f)) {  // all zero (or NaN): as the reference's zero block
      std::memset(&out, 0, sizeof(out));
      continue;
    }
    int first = 0;  // the reference scales by the first element of largest magnitude, sign included
    while (first < QK_K - 1 && std::fabs(x[first]) != amax) ++first;
    const float iscale = -127.f / x[first];
    const int32x4_t cap = vdupq_n_s32(127);
    for (int c = 0; c < QK_K / 16; ++c) {
      int32x4_t q[4];  // vcvtnq rounds to nearest even, as the reference
      for (int t = 0; t < 4; ++t) q[t] = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 16 * c + 4 * t), iscale)), cap);
      const int16x8_t a = vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1]));
      const int16x8_t e = vcombine_s16(vqmovn_s32(q[2]), vqmovn_s32(q[3]));
      vst1q_s8(out.qs + 16 * c, vcombine_s8(vqmovn_s16(a), vqmovn_s16(e)));
      out.bsums[c] = (int16_t)vaddvq_s32(vaddq_s32(vaddq_s32(q[0], q[1]), vaddq_s32(q[2], q[3])));
    }
    out.d = 1 / iscale;
  }
}

void gemm_q4_k_neon(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                    int64_t n1) {
  gemm_k_rows<KernelNeon<Q4K>>(y, ldy, act, w, m, k, n0, n1);
}
void gemm_q5_k_neon(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                    int64_t n1) {
  gemm_k_rows<KernelNeon<Q5K>>(y, ldy, act, w, m, k, n0, n1);
}
void gemm_q6_k_neon(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                    int64_t n1) {
  gemm_k_rows<KernelNeon<Q6K>>(y, ldy, act, w, m, k, n0, n1);
}

}  // namespace ninestep
