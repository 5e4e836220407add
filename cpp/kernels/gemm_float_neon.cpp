// NEON float-weight matmul (base ARMv8.0: f16 -> f32 with vcvt_f32_f16, bf16 by a 16-bit shift).
// Same two paths as the AVX2 variant:
//  - few rows of x (decode): dot products that stream W once, several W rows at a time, reduced at the end;
//  - many rows: W is packed panel by panel (NR rows x KC columns, transposed to [KC][NR], converted to f32)
//    into a stack buffer, and an MR x NR register tile of scalar-x times packed-W FMAs sweeps all of x.
#include <arm_neon.h>

#include <algorithm>

#include "core/fp16.h"
#include "kernels/gemm_float.h"

namespace ninestep {
namespace {

constexpr int NR = 16;          // W rows per packed panel: four q registers of outputs per x row
constexpr int MR = 6;           // x rows per register tile: 24 accumulators of the 32 registers
constexpr int64_t KC = 256;     // k columns per panel (16 KiB packed): panel + an MR-row slice of x fit in L1
constexpr int64_t kSmallM = 4;  // below this many rows of x, packing W costs more than it saves

// Loads of 4 W elements as f32, one struct per storage type.
struct F32 {
  using T = float;
  static float32x4_t load4(const T* p) { return vld1q_f32(p); }
  static float one(const T* p) { return *p; }
};
struct F16 {
  using T = uint16_t;
  static float32x4_t load4(const T* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
  static float one(const T* p) { return fp16_to_f32(*p); }
};
struct BF16 {
  using T = uint16_t;
  static float32x4_t load4(const T* p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
  static float one(const T* p) { return bf16_to_f32(*p); }
};

// ---- few rows of x: y[i, j..j+R) for MX rows of x at once, W rows read once ----

// y[i, t] = x[i, :] . W[t, :] for i < MX, t < R. y: [MX, ldy] at column j; x: [MX, k]; w: [R, k];
// pf: [R, k], the rows to prefetch while these are read.
template <class L, int MX, int R>
inline void dot_block(float* y, int64_t ldy, const float* x, const typename L::T* w, const typename L::T* pf,
                      int64_t k) {
  float32x4_t acc[MX][R];
#pragma GCC unroll 16
  for (int i = 0; i < MX; ++i)
#pragma GCC unroll 16
    for (int t = 0; t < R; ++t) acc[i][t] = vdupq_n_f32(0.0f);
  const int64_t k4 = k & ~int64_t(3);
  for (int64_t c = 0; c < k4; c += 4) {
    float32x4_t xv[MX];
#pragma GCC unroll 16
    for (int i = 0; i < MX; ++i) xv[i] = vld1q_f32(x + i * k + c);
#pragma GCC unroll 16
    for (int t = 0; t < R; ++t) {
      const float32x4_t wv = L::load4(w + t * k + c);
      if ((c & 15) == 0) __builtin_prefetch(pf + t * k + c);  // one per 64-byte line of f32 (two of f16)
#pragma GCC unroll 16
      for (int i = 0; i < MX; ++i) acc[i][t] = vfmaq_f32(acc[i][t], xv[i], wv);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MX; ++i)
#pragma GCC unroll 16
    for (int t = 0; t < R; ++t) {
      float s = vaddvq_f32(acc[i][t]);
      for (int64_t c = k4; c < k; ++c) s += x[i * k + c] * L::one(w + t * k + c);
      y[i * ldy + t] = s;
    }
}

template <class L, int MX, int R>
void dot_rows(float* y, int64_t ldy, const float* x, const typename L::T* w, int64_t k, int64_t n0, int64_t n1) {
  int64_t j = n0;
  for (; j + R <= n1; j += R) {
    const int64_t next = j + 2 * R <= n1 ? j + R : j;  // prefetch no further than the slice
    dot_block<L, MX, R>(y + j, ldy, x, w + j * k, w + next * k, k);
  }
  for (; j < n1; ++j) dot_block<L, MX, 1>(y + j, ldy, x, w + j * k, w + j * k, k);
}

template <class L>
void gemm_small_m(float* y, int64_t ldy, const float* x, const typename L::T* w, int64_t m, int64_t k, int64_t n0,
                  int64_t n1) {
  int64_t i = 0;
  for (; i + 3 <= m; i += 3) dot_rows<L, 3, 4>(y + i * ldy, ldy, x + i * k, w, k, n0, n1);
  if (m - i == 2) dot_rows<L, 2, 4>(y + i * ldy, ldy, x + i * k, w, k, n0, n1);
  if (m - i == 1) dot_rows<L, 1, 8>(y + i * ldy, ldy, x + i * k, w, k, n0, n1);
}

// ---- many rows of x: packed W panels ----

// 4x4 transpose of the rows in r[0..4).
inline void transpose4(float32x4_t r[4]) {
  const float32x4_t t0 = vtrn1q_f32(r[0], r[1]), t1 = vtrn2q_f32(r[0], r[1]);
  const float32x4_t t2 = vtrn1q_f32(r[2], r[3]), t3 = vtrn2q_f32(r[2], r[3]);
  const float64x2_t d0 = vreinterpretq_f64_f32(t0), d1 = vreinterpretq_f64_f32(t1);
  const float64x2_t d2 = vreinterpretq_f64_f32(t2), d3 = vreinterpretq_f64_f32(t3);
  r[0] = vreinterpretq_f32_f64(vzip1q_f64(d0, d2));
  r[1] = vreinterpretq_f32_f64(vzip1q_f64(d1, d3));
  r[2] = vreinterpretq_f32_f64(vzip2q_f64(d0, d2));
  r[3] = vreinterpretq_f32_f64(vzip2q_f64(d1, d3));
}

// pack[c * NR + r] = W[r, c] as f32 for r < nr, 0 for nr <= r < NR; c < kc. w: [nr, k] at column kb.
template <class L>
void pack_panel(float* pack, const typename L::T* w, int64_t k, int64_t nr, int64_t kc) {
  const int64_t kc4 = kc & ~int64_t(3);
  for (int r0 = 0; r0 < NR; r0 += 4) {
    const typename L::T* rows[4];
    for (int t = 0; t < 4; ++t) rows[t] = r0 + t < nr ? w + (r0 + t) * k : nullptr;
    for (int64_t c = 0; c < kc4; c += 4) {
      float32x4_t v[4];
      for (int t = 0; t < 4; ++t) v[t] = rows[t] ? L::load4(rows[t] + c) : vdupq_n_f32(0.0f);
      transpose4(v);
      for (int t = 0; t < 4; ++t) vst1q_f32(pack + (c + t) * NR + r0, v[t]);
    }
    for (int64_t c = kc4; c < kc; ++c)
      for (int t = 0; t < 4; ++t) pack[c * NR + r0 + t] = rows[t] ? L::one(rows[t] + c) : 0.0f;
  }
}

// y[i, 0..nr) (+)= sum_c x[i, c] * pack[c, 0..nr) for i < MX. x: [MX, ldx]; pack: [kc, NR]; y: [MX, ldy].
template <int MX>
void tile(float* y, int64_t ldy, const float* x, int64_t ldx, const float* pack, int64_t kc, bool accumulate,
          int64_t nr) {
  float32x4_t a[MX][4];
#pragma GCC unroll 16
  for (int i = 0; i < MX; ++i)
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) a[i][q] = vdupq_n_f32(0.0f);
  for (int64_t c = 0; c < kc; ++c) {
    float32x4_t wv[4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) wv[q] = vld1q_f32(pack + c * NR + 4 * q);
#pragma GCC unroll 16
    for (int i = 0; i < MX; ++i) {
      const float xs = x[i * ldx + c];
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) a[i][q] = vfmaq_n_f32(a[i][q], wv[q], xs);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MX; ++i) {
    float* yi = y + i * ldy;
    if (nr == NR) {
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        if (accumulate) a[i][q] = vaddq_f32(a[i][q], vld1q_f32(yi + 4 * q));
        vst1q_f32(yi + 4 * q, a[i][q]);
      }
    } else {  // a partial panel: only y[i, 0..nr) belongs to this slice
      float buf[NR];
      for (int q = 0; q < 4; ++q) vst1q_f32(buf + 4 * q, a[i][q]);
      for (int64_t r = 0; r < nr; ++r) yi[r] = accumulate ? yi[r] + buf[r] : buf[r];
    }
  }
}

using TileFn = void (*)(float*, int64_t, const float*, int64_t, const float*, int64_t, bool, int64_t);
constexpr TileFn kTiles[MR + 1] = {nullptr, tile<1>, tile<2>, tile<3>, tile<4>, tile<5>, tile<6>};

template <class L>
void gemm_packed(float* y, int64_t ldy, const float* x, const typename L::T* w, int64_t m, int64_t k, int64_t n0,
                 int64_t n1) {
  alignas(16) float pack[KC * NR];  // [kc, NR]
  // equal k blocks, so a k just above KC is not split into a big block and a sliver (k >= 1: matmul checks)
  const int64_t nkb = (k + KC - 1) / KC, kcb = (k + nkb - 1) / nkb;
  for (int64_t kb = 0; kb < k; kb += kcb) {
    const int64_t kc = std::min(kcb, k - kb);
    for (int64_t j = n0; j < n1; j += NR) {
      const int64_t nr = std::min<int64_t>(NR, n1 - j);
      pack_panel<L>(pack, w + j * k + kb, k, nr, kc);
      for (int64_t i = 0; i < m; i += MR) {
        const int64_t mr = std::min<int64_t>(MR, m - i);
        kTiles[mr](y + i * ldy + j, ldy, x + i * k + kb, k, pack, kc, kb > 0, nr);
      }
    }
  }
}

template <class L>
void gemm_typed(float* y, int64_t ldy, const float* x, const void* w, int64_t m, int64_t k, int64_t n0, int64_t n1) {
  const auto* wt = static_cast<const typename L::T*>(w);
  if (m < kSmallM)
    gemm_small_m<L>(y, ldy, x, wt, m, k, n0, n1);
  else
    gemm_packed<L>(y, ldy, x, wt, m, k, n0, n1);
}

}  // namespace

void gemm_float_rows_neon(float* y, int64_t ldy, const float* x, const void* w, DType wtype, int64_t m, int64_t k,
                          int64_t n0, int64_t n1) {
  switch (wtype) {
    case DType::f16: return gemm_typed<F16>(y, ldy, x, w, m, k, n0, n1);
    case DType::bf16: return gemm_typed<BF16>(y, ldy, x, w, m, k, n0, n1);
    default: return gemm_typed<F32>(y, ldy, x, w, m, k, n0, n1);
  }
}

}  // namespace ninestep
