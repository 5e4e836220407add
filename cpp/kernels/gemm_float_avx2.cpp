// AVX2 + FMA + F16C float-weight matmul. Same two paths as the AVX-512 variant:
//  - few rows of x (decode): dot products that stream W once, several W rows at a time, reduced at the end;
//  - many rows: W is packed panel by panel (NR rows x KC columns, transposed to [KC][NR], converted to f32)
//    into a stack buffer, and an MR x NR register tile of broadcast-x times packed-W FMAs sweeps all of x.
#include <immintrin.h>

#include <algorithm>

#include "core/fp16.h"
#include "kernels/gemm_float.h"
#include "kernels/simd_avx2.h"

namespace ninestep {
namespace {

constexpr int NR = 16;          // W rows per packed panel: two ymm of outputs per x row
constexpr int MR = 6;           // x rows per register tile: 12 accumulators
constexpr int64_t KC = 256;     // k columns per panel (16 KiB packed): panel + an MR-row slice of x fit in L1
constexpr int64_t kSmallM = 4;  // below this many rows of x, packing W costs more than it saves

// Loads of 8 W elements as f32, one struct per storage type.
struct F32 {
  using T = float;
  static __m256 load8(const T* p) { return _mm256_loadu_ps(p); }
  static float one(const T* p) { return *p; }
};
struct F16 {
  using T = uint16_t;
  static __m256 load8(const T* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
  static float one(const T* p) { return fp16_to_f32(*p); }
};
struct BF16 {
  using T = uint16_t;
  static __m256 load8(const T* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16));
  }
  static float one(const T* p) { return bf16_to_f32(*p); }
};

// ---- few rows of x: y[i, j..j+R) for MX rows of x at once, W rows read once ----

// y[i, t] = x[i, :] . W[t, :] for i < MX, t < R. y: [MX, ldy] at column j; x: [MX, k]; w: [R, k];
// pf: [R, k], the rows to prefetch while these are read.
template <class L, int MX, int R>
inline void dot_block(float* y, int64_t ldy, const float* x, const typename L::T* w, const typename L::T* pf,
                      int64_t k) {
  __m256 acc[MX][R];
#pragma GCC unroll 16
  for (int i = 0; i < MX; ++i)
#pragma GCC unroll 16
    for (int t = 0; t < R; ++t) acc[i][t] = _mm256_setzero_ps();
  const int64_t k8 = k & ~int64_t(7);
  for (int64_t c = 0; c < k8; c += 8) {
    __m256 xv[MX];
#pragma GCC unroll 16
    for (int i = 0; i < MX; ++i) xv[i] = _mm256_loadu_ps(x + i * k + c);
#pragma GCC unroll 16
    for (int t = 0; t < R; ++t) {
      const __m256 wv = L::load8(w + t * k + c);
      _mm_prefetch((const char*)(pf + t * k + c), _MM_HINT_T0);  // the next block's row: see avx512
#pragma GCC unroll 16
      for (int i = 0; i < MX; ++i) acc[i][t] = _mm256_fmadd_ps(xv[i], wv, acc[i][t]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MX; ++i)
#pragma GCC unroll 16
    for (int t = 0; t < R; ++t) {
      float s = hsum(acc[i][t]);
      for (int64_t c = k8; c < k; ++c) s += x[i * k + c] * L::one(w + t * k + c);
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

// 8x8 transpose of the rows in r[0..8).
inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// pack[c * NR + r] = W[r, c] as f32 for r < nr, 0 for nr <= r < NR; c < kc. w: [nr, k] at column kb.
template <class L>
void pack_panel(float* pack, const typename L::T* w, int64_t k, int64_t nr, int64_t kc) {
  const int64_t kc8 = kc & ~int64_t(7);
  for (int r0 = 0; r0 < NR; r0 += 8) {
    const typename L::T* rows[8];
    for (int t = 0; t < 8; ++t) rows[t] = r0 + t < nr ? w + (r0 + t) * k : nullptr;
    for (int64_t c = 0; c < kc8; c += 8) {
      __m256 v[8];
      for (int t = 0; t < 8; ++t) v[t] = rows[t] ? L::load8(rows[t] + c) : _mm256_setzero_ps();
      transpose8(v);
      for (int t = 0; t < 8; ++t) _mm256_store_ps(pack + (c + t) * NR + r0, v[t]);
    }
    for (int64_t c = kc8; c < kc; ++c)
      for (int t = 0; t < 8; ++t) pack[c * NR + r0 + t] = rows[t] ? L::one(rows[t] + c) : 0.0f;
  }
}

inline __m256i lane_mask(int64_t n) {  // lanes [0, n) set
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)std::min<int64_t>(n, 8)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// y[i, 0..nr) (+)= sum_c x[i, c] * pack[c, 0..nr) for i < MX. x: [MX, ldx]; pack: [kc, NR]; y: [MX, ldy].
template <int MX>
void tile(float* y, int64_t ldy, const float* x, int64_t ldx, const float* pack, int64_t kc, bool accumulate,
          int64_t nr) {
  __m256 a0[MX], a1[MX];
#pragma GCC unroll 16
  for (int i = 0; i < MX; ++i) a0[i] = a1[i] = _mm256_setzero_ps();
  for (int64_t c = 0; c < kc; ++c) {
    const __m256 w0 = _mm256_load_ps(pack + c * NR), w1 = _mm256_load_ps(pack + c * NR + 8);
#pragma GCC unroll 16
    for (int i = 0; i < MX; ++i) {
      const __m256 xb = _mm256_broadcast_ss(x + i * ldx + c);
      a0[i] = _mm256_fmadd_ps(xb, w0, a0[i]);
      a1[i] = _mm256_fmadd_ps(xb, w1, a1[i]);
    }
  }
  if (nr == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < MX; ++i) {
      float* yi = y + i * ldy;
      if (accumulate) {
        a0[i] = _mm256_add_ps(a0[i], _mm256_loadu_ps(yi));
        a1[i] = _mm256_add_ps(a1[i], _mm256_loadu_ps(yi + 8));
      }
      _mm256_storeu_ps(yi, a0[i]);
      _mm256_storeu_ps(yi + 8, a1[i]);
    }
    return;
  }
  const __m256i m0 = lane_mask(nr), m1 = lane_mask(nr - 8);
#pragma GCC unroll 16
  for (int i = 0; i < MX; ++i) {
    float* yi = y + i * ldy;
    if (accumulate) {
      a0[i] = _mm256_add_ps(a0[i], _mm256_maskload_ps(yi, m0));
      a1[i] = _mm256_add_ps(a1[i], _mm256_maskload_ps(yi + 8, m1));
    }
    _mm256_maskstore_ps(yi, m0, a0[i]);
    _mm256_maskstore_ps(yi + 8, m1, a1[i]);
  }
}

using TileFn = void (*)(float*, int64_t, const float*, int64_t, const float*, int64_t, bool, int64_t);
constexpr TileFn kTiles[MR + 1] = {nullptr, tile<1>, tile<2>, tile<3>, tile<4>, tile<5>, tile<6>};

template <class L>
void gemm_packed(float* y, int64_t ldy, const float* x, const typename L::T* w, int64_t m, int64_t k, int64_t n0,
                 int64_t n1) {
  alignas(32) float pack[KC * NR];  // [kc, NR]
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

void gemm_float_rows_avx2(float* y, int64_t ldy, const float* x, const void* w, DType wtype, int64_t m, int64_t k,
                          int64_t n0, int64_t n1) {
  switch (wtype) {
    case DType::f16: return gemm_typed<F16>(y, ldy, x, w, m, k, n0, n1);
    case DType::bf16: return gemm_typed<BF16>(y, ldy, x, w, m, k, n0, n1);
    default: return gemm_typed<F32>(y, ldy, x, w, m, k, n0, n1);
  }
}

}  // namespace ninestep
