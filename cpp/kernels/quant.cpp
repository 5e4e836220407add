#include "kernels/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dispatch.h"
#include "core/fp16.h"

namespace ninestep {

static void quantize_block_q8_0(BlockQ8_0* b, const float* x) {
  float amax = 0.0f;
  for (int i = 0; i < QK; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
  b->d = f32_to_fp16(d);
  for (int i = 0; i < QK; ++i) b->qs[i] = (int8_t)std::roundf(x[i] * id);
}

static void quantize_block_q4_0(BlockQ4_0* b, const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < QK; ++i)
    if (std::fabs(x[i]) > amax) { amax = std::fabs(x[i]); max = x[i]; }
  const float d = max / -8.0f, id = d ? 1.0f / d : 0.0f;
  b->d = f32_to_fp16(d);
  for (int i = 0; i < QK / 2; ++i) {
    const uint8_t lo = (uint8_t)std::min(15, (int)(int8_t)(x[i] * id + 8.5f));
    const uint8_t hi = (uint8_t)std::min(15, (int)(int8_t)(x[i + QK / 2] * id + 8.5f));
    b->qs[i] = lo | (hi << 4);
  }
}

static void quantize_block_q4_1(BlockQ4_1* b, const float* x) {
  float min = x[0], max = x[0];
  for (int i = 1; i < QK; ++i) { min = std::min(min, x[i]); max = std::max(max, x[i]); }
  const float d = (max - min) / 15.0f, id = d ? 1.0f / d : 0.0f;
  b->d = f32_to_fp16(d);
  b->m = f32_to_fp16(min);
  for (int i = 0; i < QK / 2; ++i) {
    const uint8_t lo = (uint8_t)std::min(15, (int)(int8_t)((x[i] - min) * id + 0.5f));
    const uint8_t hi = (uint8_t)std::min(15, (int)(int8_t)((x[i + QK / 2] - min) * id + 0.5f));
    b->qs[i] = lo | (hi << 4);
  }
}

// ggml's (int8_t)(v) then MIN(hi, .) for the v >= 0 its quantizers form from finite input, made
// total: NaN (and anything below 1) gives 0, v beyond hi gives hi, never an out-of-range cast.
static inline int trunc_to(float v, int hi) { return v >= 1.0f ? (int)std::min(v, (float)hi) : 0; }

// 32 values in [0, 31] -> Q5's nibbles (element j low in byte j, j + 16 high) and fifth bits (bit j).
static void pack_q5(uint8_t* qs, uint8_t* qh, const int* q) {
  uint32_t h = 0;
  for (int i = 0; i < QK / 2; ++i) {
    qs[i] = (uint8_t)((q[i] & 0xf) | ((q[i + QK / 2] & 0xf) << 4));
    h |= (uint32_t)(q[i] >> 4) << i | (uint32_t)(q[i + QK / 2] >> 4) << (i + QK / 2);
  }
  std::memcpy(qh, &h, 4);  // little-endian, as the file stores it
}

// The inverse: q[j] in [0, 31] for j in [0, 32).
static void unpack_q5(int* q, const uint8_t* qs, const uint8_t* qh) {
  uint32_t h;
  std::memcpy(&h, qh, 4);
  for (int i = 0; i < QK / 2; ++i) {
    q[i] = (qs[i] & 0xf) | (int)((h >> i) & 1) << 4;
    q[i + QK / 2] = (qs[i] >> 4) | (int)((h >> (i + QK / 2)) & 1) << 4;
  }
}

// As ggml's quantize_row_q5_0_ref: d = (the value of largest magnitude) / -16, q = trunc(x / d + 16.5).
static void quantize_block_q5_0(BlockQ5_0* b, const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < QK; ++i)
    if (std::fabs(x[i]) > amax) { amax = std::fabs(x[i]); max = x[i]; }
  const float d = max / -16.0f, id = d ? 1.0f / d : 0.0f;
  b->d = f32_to_fp16(d);
  int q[QK];
  for (int i = 0; i < QK; ++i) q[i] = trunc_to(x[i] * id + 16.5f, 31);
  pack_q5(b->qs, b->qh, q);
}

// As ggml's quantize_row_q5_1_ref: d = (max - min) / 31, m = min, q = trunc((x - min) / d + 0.5).
static void quantize_block_q5_1(BlockQ5_1* b, const float* x) {
  float min = x[0], max = x[0];
  for (int i = 1; i < QK; ++i) { min = std::min(min, x[i]); max = std::max(max, x[i]); }
  const float d = (max - min) / 31.0f, id = d ? 1.0f / d : 0.0f;
  b->d = f32_to_fp16(d);
  b->m = f32_to_fp16(min);
  int q[QK];
  for (int i = 0; i < QK; ++i) q[i] = trunc_to((x[i] - min) * id + 0.5f, 31);
  pack_q5(b->qs, b->qh, q);
}

void quantize_row_q8_0(void* dst, const float* x, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b) quantize_block_q8_0(static_cast<BlockQ8_0*>(dst) + b, x + b * QK);
}
void quantize_row_q4_0(void* dst, const float* x, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b) quantize_block_q4_0(static_cast<BlockQ4_0*>(dst) + b, x + b * QK);
}
void quantize_row_q4_1(void* dst, const float* x, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b) quantize_block_q4_1(static_cast<BlockQ4_1*>(dst) + b, x + b * QK);
}
void quantize_row_q5_0(void* dst, const float* x, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b) quantize_block_q5_0(static_cast<BlockQ5_0*>(dst) + b, x + b * QK);
}
void quantize_row_q5_1(void* dst, const float* x, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b) quantize_block_q5_1(static_cast<BlockQ5_1*>(dst) + b, x + b * QK);
}

void dequantize_row_f32(float* y, const void* x, int64_t k) { std::memcpy(y, x, k * sizeof(float)); }
void dequantize_row_f16(float* y, const void* x, int64_t k) {
  for (int64_t i = 0; i < k; ++i) y[i] = fp16_to_f32(static_cast<const uint16_t*>(x)[i]);
}
void dequantize_row_bf16(float* y, const void* x, int64_t k) {
  for (int64_t i = 0; i < k; ++i) y[i] = bf16_to_f32(static_cast<const uint16_t*>(x)[i]);
}
void dequantize_row_q8_0(float* y, const void* x, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b, y += QK) {
    const BlockQ8_0& blk = static_cast<const BlockQ8_0*>(x)[b];
    const float d = fp16_to_f32(blk.d);
    for (int i = 0; i < QK; ++i) y[i] = d * blk.qs[i];
  }
}
void dequantize_row_q4_0(float* y, const void* x, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b, y += QK) {
    const BlockQ4_0& blk = static_cast<const BlockQ4_0*>(x)[b];
    const float d = fp16_to_f32(blk.d);
    for (int i = 0; i < QK / 2; ++i) {
      y[i] = d * ((blk.qs[i] & 0xf) - 8);
      y[i + QK / 2] = d * ((blk.qs[i] >> 4) - 8);
    }
  }
}
void dequantize_row_q4_1(float* y, const void* x, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b, y += QK) {
    const BlockQ4_1& blk = static_cast<const BlockQ4_1*>(x)[b];
    const float d = fp16_to_f32(blk.d), m = fp16_to_f32(blk.m);
    for (int i = 0; i < QK / 2; ++i) {
      y[i] = d * (blk.qs[i] & 0xf) + m;
      y[i + QK / 2] = d * (blk.qs[i] >> 4) + m;
    }
  }
}
void dequantize_row_q5_0(float* y, const void* x, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b, y += QK) {
    const BlockQ5_0& blk = static_cast<const BlockQ5_0*>(x)[b];
    const float d = fp16_to_f32(blk.d);
    int q[QK];
    unpack_q5(q, blk.qs, blk.qh);
    for (int i = 0; i < QK; ++i) y[i] = d * (q[i] - 16);
  }
}
void dequantize_row_q5_1(float* y, const void* x, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b, y += QK) {
    const BlockQ5_1& blk = static_cast<const BlockQ5_1*>(x)[b];
    const float d = fp16_to_f32(blk.d), m = fp16_to_f32(blk.m);
    int q[QK];
    unpack_q5(q, blk.qs, blk.qh);
    for (int i = 0; i < QK; ++i) y[i] = d * q[i] + m;
  }
}

void quantize_act_row_generic(BlockQ8Act* dst, const float* x, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b) {
    const float* v = x + b * QK;
    float amax = 0.0f;
    for (int i = 0; i < QK; ++i) amax = std::max(amax, std::fabs(v[i]));
    const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int i = 0; i < QK; ++i) {
      dst[b].qs[i] = (int8_t)std::nearbyint(v[i] * id);
      sum += dst[b].qs[i];
    }
    dst[b].d = d;
    dst[b].s = d * sum;
  }
}

// Scalar reference: sum over blocks of the integer dot times the scales.
static float dot_generic(const void* wrow, DType wtype, const BlockQ8Act* a, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int isum = 0;
    if (wtype == DType::q8_0) {
      const BlockQ8_0& w = static_cast<const BlockQ8_0*>(wrow)[b];
      for (int i = 0; i < QK; ++i) isum += w.qs[i] * a[b].qs[i];
      acc += fp16_to_f32(w.d) * a[b].d * isum;
    } else if (wtype == DType::q4_0) {
      const BlockQ4_0& w = static_cast<const BlockQ4_0*>(wrow)[b];
      for (int i = 0; i < QK / 2; ++i)
        isum += ((w.qs[i] & 0xf) - 8) * a[b].qs[i] + ((w.qs[i] >> 4) - 8) * a[b].qs[i + QK / 2];
      acc += fp16_to_f32(w.d) * a[b].d * isum;
    } else if (wtype == DType::q4_1) {
      const BlockQ4_1& w = static_cast<const BlockQ4_1*>(wrow)[b];
      for (int i = 0; i < QK / 2; ++i) isum += (w.qs[i] & 0xf) * a[b].qs[i] + (w.qs[i] >> 4) * a[b].qs[i + QK / 2];
      acc += fp16_to_f32(w.d) * a[b].d * isum + fp16_to_f32(w.m) * a[b].s;
    } else if (wtype == DType::q5_0) {
      const BlockQ5_0& w = static_cast<const BlockQ5_0*>(wrow)[b];
      int q[QK];
      unpack_q5(q, w.qs, w.qh);
      for (int i = 0; i < QK; ++i) isum += (q[i] - 16) * a[b].qs[i];
      acc += fp16_to_f32(w.d) * a[b].d * isum;
    } else if (wtype == DType::q5_1) {
      const BlockQ5_1& w = static_cast<const BlockQ5_1*>(wrow)[b];
      int q[QK];
      unpack_q5(q, w.qs, w.qh);
      for (int i = 0; i < QK; ++i) isum += q[i] * a[b].qs[i];
      acc += fp16_to_f32(w.d) * a[b].d * isum + fp16_to_f32(w.m) * a[b].s;
    } else {
      return std::nanf("");  // unreachable: the trait table routes only its own types here
    }
  }
  return acc;
}

void qgemm_rows_generic(float* y, int64_t ldy, const BlockQ8Act* act, const void* w, DType wtype, int64_t m,
                        int64_t k, int64_t n0, int64_t n1) {
  const int64_t nb = k / QK, row_bytes = dtype_row_bytes(wtype, k);
  for (int64_t j = n0; j < n1; ++j) {
    const void* wrow = static_cast<const uint8_t*>(w) + j * row_bytes;
    for (int64_t i = 0; i < m; ++i) y[i * ldy + j] = dot_generic(wrow, wtype, act + i * nb, nb);
  }
}

}  // namespace ninestep
