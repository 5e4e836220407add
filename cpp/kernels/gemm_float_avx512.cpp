// AVX-512 float-weight matmul. Two paths:
//  - few rows of x (decode): dot products that stream W once, several W rows at a time, reduced at the end;
//  - many rows: W is packed panel by panel (NR rows x KC columns, transposed to [KC][NR], converted to f32)
//    into a stack buffer, and an MR x NR register tile of broadcast-x times packed-W FMAs sweeps all of x.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

#include "core/fp16.h"
#include "kernels/gemm_float.h"

namespace ninestep {
namespace {

constexpr int NV = 3;            // zmm of outputs per x row in a tile
constexpr int NR = 16 * NV;      // W rows per packed panel
constexpr int MR = 8;            // x rows per register tile: 24 accumulators (8x48 beat 12x32, 14x32, 6x64)
constexpr int64_t KC = 256;      // k columns per panel (48 KiB packed): best of 160..768 measured at K=576
constexpr int64_t kSmallM = 7;   // below this many rows of x, packing W costs more than it saves (measured)

// Loads of W elements as f32, one struct per storage type.
struct F32 {
  using T = float;
  static __m512 load16(const T* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
  static __m256 load8(const T* p) { return _mm256_loadu_ps(p); }
  static float one(const T* p) { return *p; }
};
struct F16 {
  using T = uint16_t;
  static __m512 load16(const T* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
  static __m256 load8(const T* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
  static float one(const T* p) { return fp16_to_f32(*p); }
};
struct BF16 {
  using T = uint16_t;
  static __m512 load16(const T* p, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
  }
  static __m256 load8(const T* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16));
  }
  static float one(const T* p) { return bf16_to_f32(*p); }
};

inline __mmask16 tail_mask(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

// ---- few rows of x: y[i, j..j+R) for MX rows of x at once, W rows read once ----

// acc[i][t] += x[i, c..c+16) * W[t, c..c+16), lanes outside mk zero. x: [MX, k]; w: [R, k].
template <class L, int MX, int R>
inline void dot_step(__m512 (&acc)[MX][R], const float* x, const typename L::T* w, const typename L::T* pf,
                     int64_t k, int64_t c, __mmask16 mk) {
  __m512 xv[MX];
#pragma GCC unroll 16
  for (int i = 0; i < MX; ++i) xv[i] = _mm512_maskz_loadu_ps(mk, x + i * k + c);
#pragma GCC unroll 16
  for (int t = 0; t < R; ++t) {
    const __m512 wv = L::load16(w + t * k + c, mk);
    // the same columns of the next block's row: R short rows are too many fresh streams for the
    // hardware prefetcher to ramp up on, and this is memory bound (measured: -12% time at 1x576x49152)
    _mm_prefetch((const char*)(pf + t * k + c), _MM_HINT_T0);
#pragma GCC unroll 16
    for (int i = 0; i < MX; ++i) acc[i][t] = _mm512_fmadd_ps(xv[i], wv, acc[i][t]);
  }
}

// y[i, t] = x[i, :] . W[t, :] for i < MX, t < R. y: [MX, ldy] at column j; x: [MX, k]; w: [R, k];
// pf: [R, k], the rows to prefetch while these are read.
template <class L, int MX, int R>
inline void dot_block(float* y, int64_t ldy, const float* x, const typename L::T* w, const typename L::T* pf,
                      int64_t k) {
  __m512 acc[MX][R];
#pragma GCC unroll 16
  for (int i = 0; i < MX; ++i)
#pragma GCC unroll 16
    for (int t = 0; t < R; ++t) acc[i][t] = _mm512_setzero_ps();
  const int64_t k16 = k & ~int64_t(15);
  for (int64_t c = 0; c < k16; c += 16) dot_step<L, MX, R>(acc, x, w, pf, k, c, 0xFFFF);
  if (k16 < k) dot_step<L, MX, R>(acc, x, w, pf, k, k16, tail_mask(k - k16));
#pragma GCC unroll 16
  for (int i = 0; i < MX; ++i)
#pragma GCC unroll 16
    for (int t = 0; t < R; ++t) y[i * ldy + t] = _mm512_reduce_add_ps(acc[i][t]);
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

// One pass over W for up to 6 rows of x (24 accumulators); one x row gets 8 W rows so 8 FMA chains overlap.
template <class L>
void gemm_small_m(float* y, int64_t ldy, const float* x, const typename L::T* w, int64_t m, int64_t k, int64_t n0,
                  int64_t n1) {
  switch (m) {
    case 1: return dot_rows<L, 1, 8>(y, ldy, x, w, k, n0, n1);
    case 2: return dot_rows<L, 2, 4>(y, ldy, x, w, k, n0, n1);
    case 3: return dot_rows<L, 3, 4>(y, ldy, x, w, k, n0, n1);
    case 4: return dot_rows<L, 4, 4>(y, ldy, x, w, k, n0, n1);
    case 5: return dot_rows<L, 5, 4>(y, ldy, x, w, k, n0, n1);
    default: return dot_rows<L, 6, 4>(y, ldy, x, w, k, n0, n1);
  }
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

// y[i, 0..nr) (+)= sum_c x[i, c] * pack[c, 0..nr) for i < MX. x: [MX, ldx]; pack: [kc, NR]; y: [MX, ldy].
// mask[v]: the valid lanes of output vector v (the panel's last rows may be padding).
template <int MX>
void tile(float* y, int64_t ldy, const float* x, int64_t ldx, const float* pack, int64_t kc, bool accumulate,
          const __mmask16* mask) {
  __m512 acc[MX][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MX; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t c = 0; c < kc; ++c) {
    __m512 wv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) wv[v] = _mm512_load_ps(pack + c * NR + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MX; ++i) {
      const __m512 xb = _mm512_set1_ps(x[i * ldx + c]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(xb, wv[v], acc[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MX; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* yv = y + i * ldy + 16 * v;
      if (accumulate) acc[i][v] = _mm512_add_ps(acc[i][v], _mm512_maskz_loadu_ps(mask[v], yv));
      _mm512_mask_storeu_ps(yv, mask[v], acc[i][v]);
    }
}

using TileFn = void (*)(float*, int64_t, const float*, int64_t, const float*, int64_t, bool, const __mmask16*);
template <size_t... I>
constexpr auto make_tiles(std::index_sequence<I...>) {
  return std::array<TileFn, MR>{tile<I + 1>...};
}
constexpr auto kTiles = make_tiles(std::make_index_sequence<MR>{});  // kTiles[mr - 1] handles mr rows

template <class L>
void gemm_packed(float* y, int64_t ldy, const float* x, const typename L::T* w, int64_t m, int64_t k, int64_t n0,
                 int64_t n1) {
  alignas(64) float pack[KC * NR];  // [kc, NR]
  // equal k blocks, so a k just above KC is not split into a big block and a sliver (k >= 1: matmul checks)
  const int64_t nkb = (k + KC - 1) / KC, kcb = (k + nkb - 1) / nkb;
  for (int64_t kb = 0; kb < k; kb += kcb) {
    const int64_t kc = std::min(kcb, k - kb);
    for (int64_t j = n0; j < n1; j += NR) {
      const int64_t nr = std::min<int64_t>(NR, n1 - j);
      pack_panel<L>(pack, w + j * k + kb, k, nr, kc);
      __mmask16 mask[NV];
      for (int v = 0; v < NV; ++v) mask[v] = nr > 16 * v ? tail_mask(nr - 16 * v) : 0;
      for (int64_t i = 0; i < m; i += MR) {
        const int64_t mr = std::min<int64_t>(MR, m - i);
        kTiles[mr - 1](y + i * ldy + j, ldy, x + i * k + kb, k, pack, kc, kb > 0, mask);
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

void gemm_float_rows_avx512(float* y, int64_t ldy, const float* x, const void* w, DType wtype, int64_t m, int64_t k,
                            int64_t n0, int64_t n1) {
  switch (wtype) {
    case DType::f16: return gemm_typed<F16>(y, ldy, x, w, m, k, n0, n1);
    case DType::bf16: return gemm_typed<BF16>(y, ldy, x, w, m, k, n0, n1);
    default: return gemm_typed<F32>(y, ldy, x, w, m, k, n0, n1);
  }
}

}  // namespace ninestep
