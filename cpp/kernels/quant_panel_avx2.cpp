// AVX2 + FMA + F16C: the quantized GEMM (two or more activation rows) of every block type (Q4_0,
// Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K) on a column-interleaved panel.
//
// The GGUF blocks of NC = 8 weight rows are unpacked, per 32-element group, into eight 32-byte
// vectors q[t] whose byte 4c + e is element 4t + e of row c (an 8 x 8 transpose of 4-byte quads).
// One broadcast activation quad (4 bytes) then meets the same 4 elements of all 8 rows in one
// _mm256_maddubs_epi16, and the eight int32 results of a group are the eight rows' dots in eight
// lanes: no horizontal sums, one convert and two FMAs per group for 8 outputs, and a row of 8
// outputs is one store. Unsigned quants (every type but Q8_0) go straight into maddubs; their
// int16 pair sums are added kDepth times before widening (kDepth * 2 * max_q * 127 < 2^15).
//
// Every output y[i, j] is exactly
//     acc = 0; for each group g (each half h of it, Q6_K): P = the exact integer dot of the
//     unsigned quants with the activation quants; acc = fma(float(P), sc * d_x, acc);
//     acc = fma(mn, s_x, acc)          (types with a minimum or an offset)
// with sc the group's (half's) float scale of row j, mn its additive term (Q4_1/Q5_1: m; Q4_0:
// -8 d; Q5_0: -16 d; Q4_K/Q5_K: -dmin * min; Q6_K: -32 d * scale), d_x the activation block's
// scale and s_x = d_x * the sum of its quants (Q6_K: of the half). So a row's result is the same
// bits in any batch of two or more rows (a lone row takes the type's GEMV: see qgemm_panel_avx2).
#include <immintrin.h>

#include <cstring>

#include "kernels/quant.h"
#include "kernels/quant_bits_avx2.h"
#include "kernels/quant_k.h"
#include "kernels/quant_packed.h"
#include "kernels/quant_tile_avx2.h"

namespace ninestep {
namespace {

constexpr int NC = tile_avx2::kCols;  // weight rows per panel column group: one float lane each
constexpr int64_t kMaxGroups = 256;  // K <= 8192 on the panel; larger K falls back

inline float half(uint16_t h) { return _cvtsh_ss(h); }

// out[t] lane c = r[c] lane t (32-bit lanes): an 8 x 8 transpose.
inline void transpose8(__m256i* out, const __m256i* r) {
  __m256i t[8], u[8];
  for (int p = 0; p < 4; ++p) {
    t[2 * p] = _mm256_unpacklo_epi32(r[2 * p], r[2 * p + 1]);
    t[2 * p + 1] = _mm256_unpackhi_epi32(r[2 * p], r[2 * p + 1]);
  }
  for (int p = 0; p < 2; ++p) {
    u[4 * p + 0] = _mm256_unpacklo_epi64(t[4 * p], t[4 * p + 2]);
    u[4 * p + 1] = _mm256_unpackhi_epi64(t[4 * p], t[4 * p + 2]);
    u[4 * p + 2] = _mm256_unpacklo_epi64(t[4 * p + 1], t[4 * p + 3]);
    u[4 * p + 3] = _mm256_unpackhi_epi64(t[4 * p + 1], t[4 * p + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    out[c] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x20);
    out[4 + c] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x31);
  }
}

inline __m256 as_ps(__m256i v) { return _mm256_castsi256_ps(v); }
// out[t] lane c = r[c] lane t for 8 float vectors.
inline void transpose8_ps(__m256* out, const __m256* r) {
  __m256i ri[8], o[8];
  for (int c = 0; c < 8; ++c) ri[c] = _mm256_castps_si256(r[c]);
  transpose8(o, ri);
  for (int t = 0; t < 8; ++t) out[t] = as_ps(o[t]);
}

// Per weight type: group g of a row's blocks (row points at the row's first block) as 32 quants
// in element order (quants); RowScales below gives the groups' scales and additive terms.
//   kDepth   maddubs results summed in int16 before widening
//   kHalves  2 when each 16-element half has its own scale (Q6_K), else 1
//   kSigned  the quants are signed (Q8_0: |w| meets sign(w) * x), else unsigned
//   kSum     the additive term exists (mn multiplies the activation sum)
// The 32-element types give kMin (mn = the block's m) or kOffset (mn = -kOffset * d); the
// K-quants super(), a super-block's scales for 8 rows.
template <class B, int Depth, bool Signed, bool Min, int Offset>
struct Type32 {
  using Block = B;
  static constexpr int kDepth = Depth, kHalves = 1, kOffset = Offset;
  static constexpr bool kSigned = Signed, kMin = Min, kSum = Min || Offset != 0, kHalfScales = true;
  static const Block& block(const uint8_t* row, int64_t g) { return reinterpret_cast<const Block*>(row)[g]; }
};
struct Q8_0 : Type32<BlockQ8_0, 1, true, false, 0> {
  static __m256i quants(const uint8_t* row, int64_t g) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block(row, g).qs));
  }
};
struct Q4_0 : Type32<BlockQ4_0, 8, false, false, 8> {
  static __m256i quants(const uint8_t* row, int64_t g) { return unpack_nibbles(block(row, g).qs); }
};
struct Q4_1 : Type32<BlockQ4_1, 8, false, true, 0> {
  static __m256i quants(const uint8_t* row, int64_t g) { return unpack_nibbles(block(row, g).qs); }
};
struct Q5_0 : Type32<BlockQ5_0, 4, false, false, 16> {
  static __m256i quants(const uint8_t* row, int64_t g) {
    const Block& b = block(row, g);
    return q5_bytes(b.qs, b.qh);
  }
};
struct Q5_1 : Type32<BlockQ5_1, 4, false, true, 0> {
  static __m256i quants(const uint8_t* row, int64_t g) {
    const Block& b = block(row, g);
    return q5_bytes(b.qs, b.qh);
  }
};

// Q4_K / Q5_K group s of a super-block: its low four bits.
template <class Block>
inline __m256i k_low_bits(const Block& b, int s) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * (s / 2)));
  return _mm256_and_si256(s % 2 ? _mm256_srli_epi16(v, 4) : v, _mm256_set1_epi8(0x0f));
}
template <class B, int Depth, int Halves>
struct TypeK {
  using Block = B;
  static constexpr int kDepth = Depth, kHalves = Halves;
  static constexpr bool kSigned = false, kSum = true, kHalfScales = false;
  static const Block& block(const uint8_t* row, int64_t g) { return reinterpret_cast<const Block*>(row)[g / 8]; }
};
// Super-block sb of 8 rows: [group][row] scales d * sc and terms -dmin * mn, as k_scales gives them.
template <class Block>
inline void k_super(const uint8_t* const* rows, int64_t sb, __m256* sc, __m256* mn) {
  __m256 s[NC], m[NC];
  for (int c = 0; c < NC; ++c) {
    const Block& b = reinterpret_cast<const Block*>(rows[c])[sb];
    const __m128i sm = k_scales_mins(b.scales);
    s[c] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm)), _mm256_set1_ps(half(b.d)));
    m[c] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8))), _mm256_set1_ps(-half(b.dmin)));
  }
  transpose8_ps(sc, s);
  transpose8_ps(mn, m);
}
struct Q4K : TypeK<BlockQ4K, 8, 1> {
  static void super(const uint8_t* const* rows, int64_t sb, __m256* sc, __m256* mn) { k_super<Block>(rows, sb, sc, mn); }
  static __m256i quants(const uint8_t* row, int64_t g) { return k_low_bits(block(row, g), (int)(g % 8)); }
};
struct Q5K : TypeK<BlockQ5K, 4, 1> {
  static void super(const uint8_t* const* rows, int64_t sb, __m256* sc, __m256* mn) { k_super<Block>(rows, sb, sc, mn); }
  static __m256i quants(const uint8_t* row, int64_t g) {
    const Block& b = block(row, g);
    const int s = (int)(g % 8);
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
    // bit s of each qh byte to bit 4 (bits shifted in from the neighbouring byte are masked off)
    const __m256i hb = s < 4 ? _mm256_slli_epi16(h, 4 - s) : _mm256_srli_epi16(h, s - 4);
    return _mm256_or_si256(k_low_bits(b, s), _mm256_and_si256(hb, _mm256_set1_epi8(0x10)));
  }
};
// Q6_K group g: elements 128 h + 32 t + l (h = g / 4, t = g % 4), q in [0, 63], w = d * scale * (q - 32)
// with one scale per half (sub-blocks 2g, 2g + 1; d * scale exact in float).
struct Q6K : TypeK<BlockQ6K, 2, 2> {
  // [sub-block = 2 * group + half][row]: d * scale, -32 d * scale
  static void super(const uint8_t* const* rows, int64_t sb, __m256* sc, __m256* mn) {
    __m256 lo[NC], hi[NC];
    for (int c = 0; c < NC; ++c) {
      const Block& b = reinterpret_cast<const Block*>(rows[c])[sb];
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
      const __m256 d = _mm256_set1_ps(half(b.d));
      lo[c] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)), d);
      hi[c] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8))), d);
    }
    transpose8_ps(sc, lo);
    transpose8_ps(sc + 8, hi);
    for (int e = 0; e < 16; ++e) mn[e] = _mm256_mul_ps(sc[e], _mm256_set1_ps(-32.0f));
  }
  static __m256i quants(const uint8_t* row, int64_t g) {
    const Block& b = block(row, g);
    const int s = (int)(g % 8), h = s / 4, t = s % 4;
    const __m256i l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * h + 32 * (t % 2)));
    const __m256i lo = _mm256_and_si256(t < 2 ? l : _mm256_srli_epi16(l, 4), _mm256_set1_epi8(0x0f));
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h));
    const __m256i hb = t < 3 ? _mm256_slli_epi16(q, 4 - 2 * t) : _mm256_srli_epi16(q, 2);  // bits 2t, 2t+1 -> 4, 5
    return _mm256_or_si256(lo, _mm256_and_si256(hb, _mm256_set1_epi8(0x30)));
  }
};

// One 32-element group of NC weight rows on the panel.
template <class T>
struct alignas(32) Group {
  __m256i q[8];                        // q[t] byte 4c + e: element 4t + e of row c (Q8_0: |w|)
  __m256i sg[T::kSigned ? 8 : 1];      // Q8_0: the signed weights, whose signs go onto x
  float sc[T::kHalves][NC];            // the group's (half's) scale per row
  float mn[T::kSum ? T::kHalves : 1][NC];  // its additive term per row
};

// The scales and terms of NC weight rows group by group (rows[c]: row c's first block; a tail
// repeats rows[0], whose lanes are never stored): sc[h] lane c, the group's (half's) scale of
// row c, mn[h] its term (see the file comment for each type's), in vectors: the 32-element types gather
// the eight blocks' fp16 fields and convert them at once; the K-quants unpack a super-block's
// scales for all groups when the group loop enters it.
template <class T>
struct RowScales {
  const uint8_t* const* rows;
  __m256i off;                          // rows[c] - rows[0] in bytes (32-element types)
  __m256 ksc[8 * T::kHalves], kmn[8 * T::kHalves];  // K-quants: the super-block's, [group * kHalves + half]

  explicit RowScales(const uint8_t* const* r) : rows(r) {
    alignas(32) int32_t o[NC];
    for (int c = 0; c < NC; ++c) o[c] = (int32_t)(rows[c] - rows[0]);
    off = _mm256_load_si256(reinterpret_cast<const __m256i*>(o));
  }

  void at(int64_t g, __m256* sc, __m256* mn) {
    if constexpr (T::kHalfScales) {
      // bytes 0-3 of each row's block: d (and Q4_1 / Q5_1's m)
      const __m256i dm = _mm256_i32gather_epi32(
          reinterpret_cast<const int*>(rows[0] + g * (int64_t)sizeof(typename T::Block)), off, 1);
      const __m256i split = _mm256_shuffle_epi8(dm, _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
                                                                    0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15));
      const __m256i both = _mm256_permute4x64_epi64(split, 0xd8);  // [d0..d7 | m0..m7]
      sc[0] = _mm256_cvtph_ps(_mm256_castsi256_si128(both));
      if constexpr (T::kMin)
        mn[0] = _mm256_cvtph_ps(_mm256_extracti128_si256(both, 1));
      else if constexpr (T::kSum)
        mn[0] = _mm256_mul_ps(sc[0], _mm256_set1_ps(-(float)T::kOffset));
    } else {
      if (g % 8 == 0) T::super(rows, g / 8, ksc, kmn);
      for (int h = 0; h < T::kHalves; ++h) sc[h] = ksc[(g % 8) * T::kHalves + h], mn[h] = kmn[(g % 8) * T::kHalves + h];
    }
  }
};

// Groups [0, ng) of weight rows [j, j + nc) (nc <= NC; missing rows get zero quants and their
// lanes are never stored) onto the panel;
// while at it, asks for the same bytes of the next NC rows (`next`, or null).
template <class T>
void fill(Group<T>* pg, const uint8_t* w, int64_t rb, int nc, int64_t ng, const uint8_t* next) {
  const int64_t gb = rb / ng;  // bytes per group, rounded down (K-quants: a block per 8 groups)
  const uint8_t* rows[NC];
  for (int c = 0; c < NC; ++c) rows[c] = w + (c < nc ? c : 0) * rb;
  RowScales<T> scales(rows);
  constexpr int GS = T::kHalfScales ? 1 : 8;  // K-quants: a super-block's groups unrolled
  for (int64_t g0 = 0; g0 < ng; g0 += GS)
#pragma GCC unroll 8
  for (int gi = 0; gi < GS; ++gi) {
    const int64_t g = g0 + gi;
    Group<T>& G = pg[g];
    __m256i r[NC];
    for (int c = 0; c < NC; ++c) {
      if (next) _mm_prefetch(reinterpret_cast<const char*>(next + c * rb + g * gb), _MM_HINT_T0);
      r[c] = c < nc ? T::quants(rows[c], g) : _mm256_setzero_si256();
    }
    __m256 sc[T::kHalves], mn[T::kHalves];
    scales.at(g, sc, mn);
    for (int h = 0; h < T::kHalves; ++h) {
      _mm256_store_ps(G.sc[h], sc[h]);
      if constexpr (T::kSum) _mm256_store_ps(G.mn[h], mn[h]);
    }
    if constexpr (T::kSigned) {
      transpose8(G.sg, r);
      for (int t = 0; t < 8; ++t) G.q[t] = _mm256_sign_epi8(G.sg[t], G.sg[t]);
    } else {
      transpose8(G.q, r);
    }
  }
}

// The panel as a tile source (quant_tile_avx2.h): Group<T>s in a row, |w| in q, signs in sg.
template <class T>
struct PanelSource {
  static constexpr int kDepth = T::kDepth, kHalves = T::kHalves, kStride = (int)sizeof(Group<T>);
  static constexpr bool kSigned = T::kSigned, kSum = T::kSum;
  static const uint8_t* at(const uint8_t* base, int64_t g) { return base + g * kStride; }
  static const Group<T>& group(const uint8_t* Q) { return *reinterpret_cast<const Group<T>*>(Q); }
  static __m256i quads(const uint8_t* Q, int t) { return _mm256_load_si256(&group(Q).q[t]); }
  static __m256i signs(const uint8_t* Q, int t) { return _mm256_load_si256(&group(Q).sg[T::kSigned ? t : 0]); }
  static void scales(const uint8_t* base, int64_t g, __m256* sc, __m256* mn) {
    const Group<T>& G = group(at(base, g));
    for (int h = 0; h < kHalves; ++h) {
      sc[h] = _mm256_load_ps(G.sc[h]);
      mn[h] = kSum ? _mm256_load_ps(G.mn[kSum ? h : 0]) : _mm256_setzero_ps();
    }
  }
};

// Per thread: the panel (<= 256 groups, 80-144 KB) and the Q6_K half sums of a chunk of rows. Up
// to 128 rows per chunk (64 before: each column group was unpacked twice as often; measured with
// bench/decode_ab.py --prefill, 512-token prefill: SmolLM2 1.058x and 1.093x, Gemma 3 1.061x).
template <class T>
struct Scratch {
  Group<T> groups[kMaxGroups];
  float hs[T::kHalves == 2 ? tile_avx2::kChunkRows * kMaxGroups * 2 : 1];
};

template <class T>
void panel_gemm(float* y, int64_t ldy, const BlockQ8Act* act, const uint8_t* w, int64_t m, int64_t ng, int64_t rb,
                int64_t n0, int64_t n1) {
  static thread_local Scratch<T> scratch;
  // Each chunk of activation rows (as many as stay in L2) meets every column group of the slice;
  // each column group is unpacked once per chunk.
  const uint8_t* panel = reinterpret_cast<const uint8_t*>(scratch.groups);
  tile_avx2::for_chunks<T::kHalves>(act, scratch.hs, m, ng, n0, n1, [&](int64_t i0, int64_t i1, int64_t j, int nc) {
    const uint8_t* next = j + 2 * NC <= n1 ? w + (j + NC) * rb : nullptr;
    fill<T>(scratch.groups, w + j * rb, rb, nc, ng, next);
    tile_avx2::tiles<PanelSource<T>>(y + i0 * ldy + j, ldy, act + i0 * ng, scratch.hs, 2 * ng, 0, i1 - i0, panel, panel,
                                     ng, nc, nullptr);
  });
}

// Column group w (nc <= NC GGUF rows of rb bytes, ng groups) into quant_packed.h's layout from the
// panel's unpacked groups (lay: the packed type's sizes): group g's quads at dst + g * group_bytes,
// or for the K-quants at dst + (g / 8) * super_bytes + (g % 8) * quad_bytes; the 32-element types'
// d (and m) fp16 after them
// (the panel's floats came from fp16, so they convert back exactly). The K-quants' trailers are
// the caller's.
template <class T>
void pack_column(uint8_t* dst, const uint8_t* w, int64_t rb, int nc, int64_t ng, const PackedLayout& lay) {
  static thread_local Scratch<T> scratch;
  fill<T>(scratch.groups, w, rb, nc, ng, nullptr);
  const int quad_bytes = lay.quad_bytes, planes = quad_bytes / 32 - 4;
  for (int64_t g = 0; g < ng; ++g) {
    const Group<T>& G = scratch.groups[g];
    uint8_t* Q = lay.super_bytes ? dst + (g / 8) * lay.super_bytes + (g % 8) * quad_bytes : dst + g * lay.group_bytes;
    __m256i* out = reinterpret_cast<__m256i*>(Q);
    if constexpr (T::kSigned) {
      for (int t = 0; t < 8; ++t) _mm256_storeu_si256(out + t, G.sg[t]);
    } else {
      const __m256i m4 = _mm256_set1_epi8(0x0f);
      for (int t = 0; t < 4; ++t)
        _mm256_storeu_si256(out + t, _mm256_or_si256(_mm256_and_si256(G.q[t], m4),
                                                     _mm256_slli_epi16(_mm256_and_si256(G.q[t + 4], m4), 4)));
      for (int p = 0; p < planes; ++p) {  // bit 4 + p of quad t -> bit t
        __m256i plane = _mm256_setzero_si256();
        for (int t = 0; t < 8; ++t) {
          const int from = 4 + p;
          const __m256i b = t <= from ? _mm256_srli_epi16(G.q[t], from - t) : _mm256_slli_epi16(G.q[t], t - from);
          plane = _mm256_or_si256(plane, _mm256_and_si256(b, _mm256_set1_epi8((char)(1 << t))));
        }
        _mm256_storeu_si256(out + 4 + p, plane);
      }
    }
    if constexpr (T::kHalfScales) {  // the 32-element types: d, then m (Q4_1, Q5_1)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(Q + quad_bytes),
                       _mm256_cvtps_ph(_mm256_load_ps(G.sc[0]), _MM_FROUND_TO_NEAREST_INT));
      if constexpr (T::kMin)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(Q + quad_bytes + 16),
                         _mm256_cvtps_ph(_mm256_load_ps(G.mn[0]), _MM_FROUND_TO_NEAREST_INT));
    }
  }
}

// Calls f(T{}) with this file's type of t; false when it has none.
template <class F>
bool with_type(DType t, F f) {
  return tile_avx2::with_type<Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4K, Q5K, Q6K>(t, f);
}

}  // namespace

bool qgemm_panel_avx2(float* y, int64_t ldy, const BlockQ8Act* act, const void* w, DType wtype, int64_t m, int64_t k,
                      int64_t n0, int64_t n1) {
  const int64_t ng = k / QK;
  // One activation row (decode) goes to the type's GEMV, which streams the GGUF rows 4 at a time:
  // measured 1.6-1.8x faster from DRAM than a GEMV over this file's 8-row groups (LM head 49152 x
  // 576 Q8_0, 2 threads: 16.4 vs 9.8 GB/s). It rounds differently (same integer dots, another
  // float order), so a lone row differs from the same row in a batch by float rounding.
  if (m < 2 || ng > kMaxGroups) return false;
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  return with_type(wtype,
                   [&](auto T) { panel_gemm<decltype(T)>(y, ldy, act, wb, m, ng, dtype_row_bytes(wtype, k), n0, n1); });
}

bool pack_panel_avx2(uint8_t* dst, const uint8_t* w, DType t, int64_t rb, int nc, int64_t ng, const PackedLayout& lay) {
  if (ng > kMaxGroups) return false;
  return with_type(t, [&](auto T) { pack_column<decltype(T)>(dst, w, rb, nc, ng, lay); });
}

}  // namespace ninestep
