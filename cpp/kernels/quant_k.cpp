// K-quants, scalar: ggml-compatible quantize (the reference quantizers' search, operation for
// operation, so the bytes equal llama-quantize's without an importance matrix), dequantize, Q8_K
// activations, and the reference GEMM the SIMD kernels are tested against.
#include "kernels/quant_k.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp16.h"

// The quantizers must round exactly as ggml's C, which is built without fused multiply-adds:
// a contracted a * b + c would change the search on targets where FMA is baseline (aarch64).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace ninestep {
namespace {

constexpr float kGroupMaxEps = 1e-15f;  // ggml's GROUP_MAX_EPS: a sub-block below this is all zero

// Round to nearest (ties to even) by adding 1.5 * 2^23 and reading the mantissa, as ggml does;
// exact for |f| <= 2^22 - 1, and for larger |f| the same bits ggml gets.
inline int nearest_int(float f) {
  const float v = f + 12582912.f;
  int32_t i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// Asymmetric search of ggml's make_qkx2_quants: L[i] in [0, nmax] with x ~= scale * L - the_min,
// minimizing the weighted squared error over nstep + 1 candidate scales. Returns the scale.
float search_scale_min(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = (uint8_t)std::max(0, std::min(nmax, l));
    float diff = scale * L[i] + min - x[i];
    diff = diff * diff;
    best_error += weights[i] * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = (uint8_t)l;
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Symmetric search of ggml's make_qx_quants with rmse_type 1 (weights x^2): L[i] in [0, 2 nmax)
// holding l + nmax, x ~= scale * l. Returns the scale.
float search_scale_sym(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) { amax = ax; max = x[i]; }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = (int8_t)(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = (int8_t)(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// The shared first half of Q4_K and Q5_K: per sub-block of 32 a (scale, min) search, both
// requantized to 6 bits against the super-block's d and dmin, then every element re-rounded
// against the stored scales. Writes d, dmin, the 12 scale bytes and L[256] in [0, nmax].
void quantize_scales_mins(uint16_t* d_out, uint16_t* dmin_out, uint8_t* packed, uint8_t* L, const float* x, int nmax,
                          float rmin, int nstep) {
  constexpr int kSub = QK_K / 32;
  float scales[kSub], mins[kSub], weights[32];
  uint8_t Laux[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < kSub; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = search_scale_min(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < kSub; ++j) {
    const uint8_t ls = std::min<uint8_t>(63, (uint8_t)nearest_int(inv_scale * scales[j]));
    const uint8_t lm = std::min<uint8_t>(63, (uint8_t)nearest_int(inv_min * mins[j]));
    if (j < 4) {
      packed[j] = ls;
      packed[j + 4] = lm;
    } else {
      packed[j + 4] = (uint8_t)((ls & 0xf) | ((lm & 0xf) << 4));
      packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
      packed[j] |= (uint8_t)((lm >> 4) << 6);
    }
  }
  *d_out = f32_to_fp16(max_scale / 63.f);
  *dmin_out = f32_to_fp16(max_min / 63.f);
  const float d = fp16_to_f32(*d_out), dmin = fp16_to_f32(*dmin_out);
  for (int j = 0; j < kSub; ++j) {
    uint8_t sc, mn;
    k_scale_min(j, packed, &sc, &mn);
    const float dj = d * sc;
    if (!dj) continue;
    const float dm = dmin * mn;
    for (int l = 0; l < 32; ++l) {
      const int q = nearest_int((x[32 * j + l] + dm) / dj);
      L[32 * j + l] = (uint8_t)std::max(0, std::min(nmax, q));
    }
  }
}

void quantize_block_q4_k(BlockQ4K* b, const float* x) {
  uint8_t L[QK_K];
  quantize_scales_mins(&b->d, &b->dmin, b->scales, L, x, 15, -1.f, 20);
  for (int g = 0; g < 4; ++g)
    for (int l = 0; l < 32; ++l) b->qs[32 * g + l] = (uint8_t)(L[64 * g + l] | (L[64 * g + 32 + l] << 4));
}

void quantize_block_q5_k(BlockQ5K* b, const float* x) {
  uint8_t L[QK_K];
  quantize_scales_mins(&b->d, &b->dmin, b->scales, L, x, 31, -0.5f, 15);
  std::memset(b->qh, 0, sizeof(b->qh));
  for (int g = 0; g < 4; ++g)
    for (int l = 0; l < 32; ++l) {
      const int lo = L[64 * g + l], hi = L[64 * g + 32 + l];
      b->qs[32 * g + l] = (uint8_t)((lo & 0xf) | ((hi & 0xf) << 4));
      b->qh[l] |= (uint8_t)(((lo >> 4) << (2 * g)) | ((hi >> 4) << (2 * g + 1)));
    }
}

void quantize_block_q6_k(BlockQ6K* b, const float* x) {
  constexpr int kSub = QK_K / 16;
  int8_t L[QK_K];
  float scales[kSub];
  float max_scale = 0, max_abs_scale = 0;
  for (int s = 0; s < kSub; ++s) {
    scales[s] = search_scale_sym(16, 32, x + 16 * s, L + 16 * s);
    const float a = std::fabs(scales[s]);
    if (a > max_abs_scale) { max_abs_scale = a; max_scale = scales[s]; }
  }
  if (max_abs_scale < kGroupMaxEps) {
    std::memset(b, 0, sizeof(*b));
    return;
  }
  const float iscale = -128.f / max_scale;
  b->d = f32_to_fp16(1 / iscale);
  for (int s = 0; s < kSub; ++s) b->scales[s] = (int8_t)std::min(127, nearest_int(iscale * scales[s]));
  const float d = fp16_to_f32(b->d);
  for (int s = 0; s < kSub; ++s) {
    const float ds = d * b->scales[s];
    if (!ds) continue;
    for (int l = 0; l < 16; ++l) {
      const int q = nearest_int(x[16 * s + l] / ds);
      L[16 * s + l] = (int8_t)(std::max(-32, std::min(31, q)) + 32);
    }
  }
  for (int h = 0; h < 2; ++h) {
    const int8_t* Lh = L + 128 * h;
    for (int l = 0; l < 32; ++l) {
      const int q0 = Lh[l], q1 = Lh[l + 32], q2 = Lh[l + 64], q3 = Lh[l + 96];
      b->ql[64 * h + l] = (uint8_t)((q0 & 0xf) | ((q2 & 0xf) << 4));
      b->ql[64 * h + 32 + l] = (uint8_t)((q1 & 0xf) | ((q3 & 0xf) << 4));
      b->qh[32 * h + l] = (uint8_t)((q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) | ((q3 >> 4) << 6));
    }
  }
}

// One weight row of nb super-blocks against one activation row of 8 * nb BlockQ8Act: Q4_K / Q5_K
// (quant(b, e) = quant of element e). Group s of super-block b meets activation block 8 * b + s:
//   d_a * d * sc * sum(q * qa) - dmin * mn * s_a     (s_a = d_a * sum(qa), BlockQ8Act::s)
template <class Block, class Quant>
float dot_k_min(const Block* w, const BlockQ8Act* a, int64_t nb, Quant quant) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const float d = fp16_to_f32(w[b].d), dmin = fp16_to_f32(w[b].dmin);
    for (int s = 0; s < 8; ++s) {
      const BlockQ8Act& x = a[8 * b + s];
      uint8_t sc, mn;
      k_scale_min(s, w[b].scales, &sc, &mn);
      int32_t isum = 0;
      for (int l = 0; l < 32; ++l) isum += quant(w[b], 32 * s + l) * x.qs[l];
      acc += x.d * (d * (float)(sc * isum)) - dmin * (float)mn * x.s;
    }
  }
  return acc;
}

// Q6_K: group s (two sub-blocks of 16) combines its two scaled integer sums, then one float step.
float dot_q6_k(const BlockQ6K* w, const BlockQ8Act* a, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const float d = fp16_to_f32(w[b].d);
    for (int s = 0; s < 8; ++s) {
      const BlockQ8Act& x = a[8 * b + s];
      int32_t sumi = 0;
      for (int h = 0; h < 2; ++h) {
        int32_t isum = 0;
        for (int l = 0; l < 16; ++l) isum += (k_q6(w[b], 32 * s + 16 * h + l) - 32) * x.qs[16 * h + l];
        sumi += w[b].scales[2 * s + h] * isum;
      }
      acc += (d * x.d) * (float)sumi;
    }
  }
  return acc;
}

template <class Block, class Dot>
void gemm_generic(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                  int64_t n1, Dot dot) {
  const int64_t nb = k / QK_K;
  const Block* wb = static_cast<const Block*>(w);
  const BlockQ8Act* ab = static_cast<const BlockQ8Act*>(act);
  for (int64_t j = n0; j < n1; ++j)
    for (int64_t i = 0; i < m; ++i) y[i * ldy + j] = dot(wb + j * nb, ab + i * (k / QK), nb);
}

}  // namespace

void quantize_row_q4_k(void* dst, const float* x, int64_t k) {
  for (int64_t b = 0; b < k / QK_K; ++b) quantize_block_q4_k(static_cast<BlockQ4K*>(dst) + b, x + b * QK_K);
}
void quantize_row_q5_k(void* dst, const float* x, int64_t k) {
  for (int64_t b = 0; b < k / QK_K; ++b) quantize_block_q5_k(static_cast<BlockQ5K*>(dst) + b, x + b * QK_K);
}
void quantize_row_q6_k(void* dst, const float* x, int64_t k) {
  for (int64_t b = 0; b < k / QK_K; ++b) quantize_block_q6_k(static_cast<BlockQ6K*>(dst) + b, x + b * QK_K);
}

void dequantize_row_q4_k(float* y, const void* x, int64_t k) {
  for (int64_t b = 0; b < k / QK_K; ++b, y += QK_K) {
    const BlockQ4K& blk = static_cast<const BlockQ4K*>(x)[b];
    const float d = fp16_to_f32(blk.d), dmin = fp16_to_f32(blk.dmin);
    for (int s = 0; s < 8; ++s) {
      uint8_t sc, mn;
      k_scale_min(s, blk.scales, &sc, &mn);
      const float ds = d * sc, ms = dmin * mn;
      for (int l = 0; l < 32; ++l) y[32 * s + l] = ds * k_nibble(blk.qs, 32 * s + l) - ms;
    }
  }
}
void dequantize_row_q5_k(float* y, const void* x, int64_t k) {
  for (int64_t b = 0; b < k / QK_K; ++b, y += QK_K) {
    const BlockQ5K& blk = static_cast<const BlockQ5K*>(x)[b];
    const float d = fp16_to_f32(blk.d), dmin = fp16_to_f32(blk.dmin);
    for (int s = 0; s < 8; ++s) {
      uint8_t sc, mn;
      k_scale_min(s, blk.scales, &sc, &mn);
      const float ds = d * sc, ms = dmin * mn;
      for (int l = 0; l < 32; ++l) y[32 * s + l] = ds * k_q5(blk, 32 * s + l) - ms;
    }
  }
}
void dequantize_row_q6_k(float* y, const void* x, int64_t k) {
  for (int64_t b = 0; b < k / QK_K; ++b, y += QK_K) {
    const BlockQ6K& blk = static_cast<const BlockQ6K*>(x)[b];
    const float d = fp16_to_f32(blk.d);
    for (int s = 0; s < 16; ++s) {
      const float ds = d * blk.scales[s];
      for (int l = 0; l < 16; ++l) y[16 * s + l] = ds * (k_q6(blk, 16 * s + l) - 32);
    }
  }
}

void quantize_q8k_row_generic(void* dst, const float* x, int64_t k) {
  for (int64_t b = 0; b < k / QK_K; ++b, x += QK_K) {
    BlockQ8K& out = static_cast<BlockQ8K*>(dst)[b];
    float max = 0, amax = 0;  // the first element of largest magnitude, with its sign
    for (int j = 0; j < QK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) { amax = ax; max = x[j]; }
    }
    if (!amax) {
      std::memset(&out, 0, sizeof(out));
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < QK_K; ++j) out.qs[j] = (int8_t)std::min(127, nearest_int(iscale * x[j]));
    for (int t = 0; t < QK_K / 16; ++t) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += out.qs[16 * t + l];
      out.bsums[t] = (int16_t)sum;
    }
    out.d = 1 / iscale;
  }
}

void gemm_q4_k_generic(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                       int64_t n1) {
  gemm_generic<BlockQ4K>(y, ldy, act, w, m, k, n0, n1, [](const BlockQ4K* wr, const BlockQ8Act* a, int64_t nb) {
    return dot_k_min(wr, a, nb, [](const BlockQ4K& b, int e) { return k_nibble(b.qs, e); });
  });
}
void gemm_q5_k_generic(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                       int64_t n1) {
  gemm_generic<BlockQ5K>(y, ldy, act, w, m, k, n0, n1, [](const BlockQ5K* wr, const BlockQ8Act* a, int64_t nb) {
    return dot_k_min(wr, a, nb, k_q5);
  });
}
void gemm_q6_k_generic(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                       int64_t n1) {
  gemm_generic<BlockQ6K>(y, ldy, act, w, m, k, n0, n1, dot_q6_k);
}

}  // namespace ninestep
