// The tiles of the quantized GEMMs over eight interleaved weight rows, shared by the panel over
// GGUF rows (quant_panel_avx2.cpp) and the packed weights (quant_packed_x86.h). It is compiled once
// per including file's ISA flags (its contents have internal linkage, so the copies never meet at
// link time): with AVX2, micro's 256-bit tile, each quad's integer dot _mm256_maddubs_epi16 summed
// in int16 and widened with _mm256_madd_epi16; with AVX-512 VNNI + VL (quant_packed_avx512.cpp),
// micro2's 512-bit tile over two column groups, each dot one vpdpbusd straight into int32. The
// integer sums are exact either way and the float steps the same, so both give the same bits.
//
// A source S of weight groups gives, per group g of a column group of 8 weight rows:
//   at(base, g)            the group's quad bytes
//   quads(Q, t)            quad t (0..7): byte 4c + e = element 4t + e of row c, the unsigned
//                          maddubs operand (|w| for signed types)
//   signs(Q, t)            (kSigned) the weights whose signs go onto the activations
//   scales(base, g, sc, mn) per half of the group: the rows' scales and additive terms as floats
//   kDepth                 maddubs results summed in int16 before widening (AVX2)
//   kHalves                2 with a scale per 16-element half (Q6_K), else 1
//   kSigned, kSum          |w| meets sign(w) * x; the term mn * s_x exists
//   kStride                bytes per group (prefetch distance along a column group)
// and every output is, in this order,
//     acc = 0; per group g, per half h: P = the exact integer dot of the quads with the activation
//     quants; acc = fma(float(P), sc * d_x, acc); acc = fma(mn, s_x, acc)   (kSum)
// with s_x = d_x * the sum of the activation quants (of the half: the caller's half sums hs).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/traits.h"

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define NS_TILE_VNNI 1
#else
#define NS_TILE_VNNI 0
#endif

namespace ninestep {
namespace tile_avx2 {
namespace {

constexpr bool kVnni = NS_TILE_VNNI;
constexpr int kCols = 8;  // weight rows per column group: one float lane each
// Activation rows per tile. AVX2: 4 float and 4 int16 (and for kDepth < 8, 4 int32) accumulators
// beside the quad and the broadcast in 16 registers; VNNI: 8 float and 8 int32 accumulators in 32
// (1 x 1536 x 576 Q4_1, 1 thread: 8 rows best of 4-12; 10 and more spill).
constexpr int kRows = kVnni ? 8 : 4;
constexpr int64_t kStep = kVnni ? 2 * kCols : kCols;  // weight rows per tile: one column group, or two (micro2)
constexpr int64_t kChunkRows = 128;  // activation rows that meet each column group before the next

inline __m256i quad(const int8_t* p) {  // 4 activation bytes in every 32-bit lane
  int32_t u;
  std::memcpy(&u, p, 4);
  return _mm256_set1_epi32(u);
}

// Calls f(X{}) with X the one of the caller's types Q8, Q40, Q41, Q50, Q51, Q4K, Q5K, Q6K that
// stands for weight type t; false (f not called) for any other type.
template <class Q8, class Q40, class Q41, class Q50, class Q51, class Q4K, class Q5K, class Q6K, class F>
bool with_type(DType t, F f) {
  switch (t) {
    case DType::q8_0:
      return f(Q8{}), true;
    case DType::q4_0:
      return f(Q40{}), true;
    case DType::q4_1:
      return f(Q41{}), true;
    case DType::q5_0:
      return f(Q50{}), true;
    case DType::q5_1:
      return f(Q51{}), true;
    case DType::q4_k:
      return f(Q4K{}), true;
    case DType::q5_k:
      return f(Q5K{}), true;
    case DType::q6_k:
      return f(Q6K{}), true;
    default:
      return false;
  }
}

// Activation rows per chunk: as many as stay in L2 (<= 128 KB), a multiple of kRows, <= kChunkRows.
inline int64_t chunk_rows(int64_t ng) {
  const int64_t c = (128 * 1024) / (ng * (int64_t)sizeof(BlockQ8Act));
  return c < kRows ? kRows : c > kChunkRows ? kChunkRows : c - c % kRows;
}

// hs[i * 2 ng + 2 g + h] = d_x * the sum of the quants of half h of block g of row i (Q6_K's s_x).
inline void half_sums(float* hs, const BlockQ8Act* a, int64_t rows, int64_t ng) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t g = 0; g < ng; ++g)
      for (int h = 0; h < 2; ++h) {
        int sum = 0;
        for (int e = 0; e < 16; ++e) sum += a[i * ng + g].qs[16 * h + e];
        hs[i * 2 * ng + 2 * g + h] = a[i * ng + g].d * (float)sum;
      }
}

// Calls f(i0, i1, j, nc) for every chunk of activation rows [i0, i1) (chunk_rows(ng) at a time;
// with Halves == 2 their half sums made into hs first) and, within it, every kStep weight rows
// from j in [n0, n1) (nc <= kStep of them: one column group, with VNNI two).
template <int Halves, class F>
void for_chunks(const BlockQ8Act* act, float* hs, int64_t m, int64_t ng, int64_t n0, int64_t n1, F f) {
  const int64_t chunk = chunk_rows(ng);
  for (int64_t i0 = 0; i0 < m; i0 += chunk) {
    const int64_t i1 = i0 + chunk < m ? i0 + chunk : m;
    if constexpr (Halves == 2) half_sums(hs, act + i0 * ng, i1 - i0, ng);
    for (int64_t j = n0; j < n1; j += kStep) f(i0, i1, j, n1 - j < kStep ? (int)(n1 - j) : (int)kStep);
  }
}

// y[i, 0 .. nc) for the MR activation rows ar[0..MR) over one column group's ng groups: quads from
// qb, scales from sb (S::at, S::scales); hs: the half sums ([rows][ng][2], row stride hstride) for
// kHalves == 2; ahead: the same point of the next column group (prefetched as this one is read),
// or null.
template <class S, int MR>
void micro(float* y, int64_t ldy, const BlockQ8Act* const* ar, const float* hs, int64_t hstride, const uint8_t* qb,
           const uint8_t* sb, int64_t ng, int nc, const uint8_t* ahead) {
  constexpr int D = S::kDepth, TH = 8 / S::kHalves;  // quads per int16 partial, per half
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[MR];
  for (int i = 0; i < MR; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t g = 0; g < ng; ++g) {
    const uint8_t* Q = S::at(qb, g);
    if (ahead)
      for (int o = 0; o < S::kStride; o += 64)
        _mm_prefetch(reinterpret_cast<const char*>(ahead + g * S::kStride + o), _MM_HINT_T0);
    __m256 sc[S::kHalves], mn[S::kHalves];
    S::scales(sb, g, sc, mn);
#pragma GCC unroll 2
    for (int h = 0; h < S::kHalves; ++h) {
      __m256i s32[MR];
#pragma GCC unroll 8
      for (int p = 0; p < TH / D; ++p) {
        __m256i a16[MR];
#pragma GCC unroll 8
        for (int e = 0; e < D; ++e) {
          const int t = TH * h + D * p + e;
          const __m256i wq = S::quads(Q, t);
#pragma GCC unroll 8
          for (int i = 0; i < MR; ++i) {
            __m256i x = quad(ar[i][g].qs + 4 * t);
            if constexpr (S::kSigned) x = _mm256_sign_epi8(x, S::signs(Q, t));
            const __m256i prod = _mm256_maddubs_epi16(wq, x);
            a16[i] = e == 0 ? prod : _mm256_add_epi16(a16[i], prod);
          }
        }
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) {
          const __m256i v = _mm256_madd_epi16(a16[i], ones);
          s32[i] = p == 0 ? v : _mm256_add_epi32(s32[i], v);
        }
      }
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m256 scd = _mm256_mul_ps(sc[h], _mm256_broadcast_ss(&ar[i][g].d));
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32[i]), scd, acc[i]);
        if constexpr (S::kSum) {
          const float* s = S::kHalves == 2 ? hs + i * hstride + 2 * g + h : &ar[i][g].s;
          acc[i] = _mm256_fmadd_ps(mn[h], _mm256_broadcast_ss(s), acc[i]);
        }
      }
    }
  }
  if (nc == kCols) {
    for (int i = 0; i < MR; ++i) _mm256_storeu_ps(y + i * ldy, acc[i]);
  } else {
    alignas(32) float tmp[MR][kCols];
    for (int i = 0; i < MR; ++i) _mm256_store_ps(tmp[i], acc[i]);
    for (int i = 0; i < MR; ++i)
      for (int c = 0; c < nc; ++c) y[i * ldy + c] = tmp[i][c];
  }
}

// Calls f(Rows, i, first) for activation rows [i, i1) in tiles of MR rows (Rows: an
// std::integral_constant of the tile's rows), the rest in smaller tiles; first for the first one.
template <int MR, class F>
void row_tiles(int64_t i, int64_t i1, F f, bool first = true) {
  for (; i + MR <= i1; i += MR, first = false) f(std::integral_constant<int, MR>{}, i, first);
  if constexpr (MR > 1) {
    if (i < i1) row_tiles<MR - 1>(i, i1, f, first);
  }
}

// Activation rows [i, i1) in micro tiles; the first tile prefetches from `ahead` (or nothing).
template <class S>
void tiles(float* y, int64_t ldy, const BlockQ8Act* act, const float* hs, int64_t hstride, int64_t i, int64_t i1,
           const uint8_t* qb, const uint8_t* sb, int64_t ng, int nc, const uint8_t* ahead) {
  row_tiles<kRows>(i, i1, [&](auto rows, int64_t r0, bool first) {
    constexpr int MR = decltype(rows)::value;
    const BlockQ8Act* ar[MR];
    for (int r = 0; r < MR; ++r) ar[r] = act + (r0 + r) * ng;
    micro<S, MR>(y + r0 * ldy, ldy, ar, hs + r0 * hstride, hstride, qb, sb, ng, nc, first ? ahead : nullptr);
  });
}

#if NS_TILE_VNNI
// Two column groups side by side (16 weight rows) in 512-bit vectors: micro's arithmetic lane for
// lane, so the same bits, with one vpdpbusd per activation row doing 16 rows' quads. The quads,
// scales and terms of each column group come from S as above (qb[c], sb[c]: column group c's
// bases; a lone column group goes in as both, and only its nc <= 8 lanes are stored). Signed
// weights (Q8_0) go in as w + 128 (one XOR per quad for all the rows) and each dot starts from
// base[i * ng + g] = -128 * the sum of the row's block quants (offset_sums), so the integer dot is
// exactly sum(w * x), as |w| * sign(w) x is for activation quants within +-127.
inline __m512i join(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }
inline __m512 join(__m256 lo, __m256 hi) { return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1); }
inline __m512i quad16(const int8_t* p) {
  int32_t u;
  std::memcpy(&u, p, 4);
  return _mm512_set1_epi32(u);
}

// base[i * ng + g] = -128 * the sum of the quants of block g of activation row i.
inline void offset_sums(int32_t* base, const BlockQ8Act* a, int64_t rows, int64_t ng) {
  for (int64_t i = 0; i < rows * ng; ++i) {
    int sum = 0;
    for (int e = 0; e < QK; ++e) sum += a[i].qs[e];
    base[i] = -128 * sum;
  }
}

template <class S, int MR>
void micro2(float* y, int64_t ldy, const BlockQ8Act* const* ar, const float* hs, int64_t hstride, const int32_t* base,
            const uint8_t* const* qb, const uint8_t* const* sb, int64_t ng, int nc, const uint8_t* const* ahead) {
  constexpr int TH = 8 / S::kHalves;
  __m512 acc[MR];
  for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t g = 0; g < ng; ++g) {
    const uint8_t* Q[2] = {S::at(qb[0], g), S::at(qb[1], g)};
    for (int c = 0; c < 2; ++c)
      if (ahead[c])
        for (int o = 0; o < S::kStride; o += 64)
          _mm_prefetch(reinterpret_cast<const char*>(ahead[c] + g * S::kStride + o), _MM_HINT_T0);
    __m256 sc[2][S::kHalves], mn[2][S::kHalves];
    for (int c = 0; c < 2; ++c) {
      for (int h = 0; h < S::kHalves; ++h) mn[c][h] = _mm256_setzero_ps();
      S::scales(sb[c], g, sc[c], mn[c]);
    }
#pragma GCC unroll 2
    for (int h = 0; h < S::kHalves; ++h) {
      __m512i s32[MR];
      for (int i = 0; i < MR; ++i) s32[i] = S::kSigned ? _mm512_set1_epi32(base[i * ng + g]) : _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int e = 0; e < TH; ++e) {
        const int t = TH * h + e;
        __m512i wq;
        if constexpr (S::kSigned)
          wq = _mm512_xor_si512(join(S::signs(Q[0], t), S::signs(Q[1], t)), _mm512_set1_epi8(static_cast<char>(0x80)));
        else
          wq = join(S::quads(Q[0], t), S::quads(Q[1], t));
#pragma GCC unroll 12
        for (int i = 0; i < MR; ++i) s32[i] = _mm512_dpbusd_epi32(s32[i], wq, quad16(ar[i][g].qs + 4 * t));
      }
      const __m512 sch = join(sc[0][h], sc[1][h]), mnh = join(mn[0][h], mn[1][h]);
#pragma GCC unroll 12
      for (int i = 0; i < MR; ++i) {
        const __m512 scd = _mm512_mul_ps(sch, _mm512_set1_ps(ar[i][g].d));
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s32[i]), scd, acc[i]);
        if constexpr (S::kSum) {
          const float* s = S::kHalves == 2 ? hs + i * hstride + 2 * g + h : &ar[i][g].s;
          acc[i] = _mm512_fmadd_ps(mnh, _mm512_set1_ps(*s), acc[i]);
        }
      }
    }
  }
  const __mmask16 keep = nc >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nc) - 1);
  for (int i = 0; i < MR; ++i) _mm512_mask_storeu_ps(y + i * ldy, keep, acc[i]);
}

// tiles for two column groups (nc <= 16 rows of them); base: the chunk's offset_sums (signed S).
template <class S>
void tiles2(float* y, int64_t ldy, const BlockQ8Act* act, const float* hs, int64_t hstride, const int32_t* base,
            int64_t i, int64_t i1, const uint8_t* const* qb, const uint8_t* const* sb, int64_t ng, int nc,
            const uint8_t* const* ahead) {
  const uint8_t* none[2] = {nullptr, nullptr};
  row_tiles<kRows>(i, i1, [&](auto rows, int64_t r0, bool first) {
    constexpr int MR = decltype(rows)::value;
    const BlockQ8Act* ar[MR];
    for (int r = 0; r < MR; ++r) ar[r] = act + (r0 + r) * ng;
    micro2<S, MR>(y + r0 * ldy, ldy, ar, hs + r0 * hstride, hstride, S::kSigned ? base + r0 * ng : nullptr, qb, sb, ng,
                  nc, first ? ahead : none);
  });
}
#endif

}  // namespace
}  // namespace tile_avx2
}  // namespace ninestep
