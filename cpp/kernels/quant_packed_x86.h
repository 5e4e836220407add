// The quantized GEMM over weights packed at load (quant_packed.h), for x86: the packed types and
// the driver, compiled once per including file's ISA (quant_packed_avx2.cpp: AVX2 + FMA + F16C;
// quant_packed_avx512.cpp: the same with AVX-512 VNNI + VL); the contents have internal linkage.
//
// The arithmetic is quant_panel_avx2.cpp's on its unpacked panel, in the same order, so every
// output has the same bits: per group (per half of it, Q6_K), one broadcast activation quad meets
// the same 4 elements of the 8 rows (quant_tile_avx2.h: _mm256_maddubs_epi16, kDepth int16 results
// summed before widening; or one _mm256_dpbusd_epi32; Q8_0: |w| against sign(w) * x), and the
// eight int32 lanes are the 8 rows' exact integer dots;
//     acc = fma(float(P), sc * d_x, acc);  acc = fma(mn, s_x, acc)
// with sc, mn the group's scale and additive term per row as the panel makes them. What the
// packing saves is the per-group unpack and 8 x 8 transpose: a nibble's quads come out of the
// packed bytes with one AND (low nibbles) or a shift and an AND (high nibbles), each higher bit
// with a shift, an AND and an OR from its plane.
#pragma once
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "kernels/quant.h"
#include "kernels/quant_packed.h"
#include "kernels/quant_tile_avx2.h"

namespace ninestep {
namespace packed_x86 {
namespace {

constexpr int NC = kPackRows;
static_assert(NC == tile_avx2::kCols, "a packed column group is one tile wide");

inline __m256i load(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m256 halves(const uint8_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m256 bytes_u8(const uint8_t* p) {  // 8 unsigned bytes as floats
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
inline __m256 bytes_i8(const uint8_t* p) {  // 8 signed bytes as floats
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// Quad t (0..7) of a group's low nibbles (n[t % 4], low or high half).
inline __m256i nibbles(const uint8_t* Q, int t) {
  const __m256i v = load(Q + 32 * (t % 4));
  return _mm256_and_si256(t < 4 ? v : _mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0f));
}
// Bit t of each byte of a 32-byte plane moved to bit `to`, the rest cleared.
inline __m256i plane_bit(const uint8_t* plane, int t, int to) {
  const __m256i h = load(plane);
  const __m256i b = t <= to ? _mm256_slli_epi16(h, to - t) : _mm256_srli_epi16(h, t - to);
  return _mm256_and_si256(b, _mm256_set1_epi8((char)(1 << to)));
}

// Per packed type:
//   at(cg, g)       group g's quad bytes in column group cg; quads(Q, t) its quad t (8 rows x 4)
//   scales(cg, g)   the group's (halves') scales sc and terms mn, one float per row
//   kStride         packed bytes per group (K-quants: a super-block's over its 8 groups)
//   kDepth          maddubs results summed in int16 before widening; kHalves: 2 with a scale per
//                   16-element half (Q6_K); kSigned: |w| meets sign(w) * x (Q8_0); kSum: mn exists
// 32-element types: group g = kQuad bytes of quads, then d[8] (and m[8]) fp16.
template <int Quad, int Depth, bool Signed, bool Min, int Offset>
struct Layout32 {
  static constexpr int kQuad = Quad, kDepth = Depth, kHalves = 1, kStride = Quad + (Min ? 32 : 16), kSuper = 0;
  static constexpr bool kSigned = Signed, kSum = Min || Offset != 0;
  static const uint8_t* at(const uint8_t* cg, int64_t g) { return cg + g * kStride; }
  static void scales(const uint8_t* cg, int64_t g, __m256* sc, __m256* mn) {
    const uint8_t* s = at(cg, g) + Quad;
    sc[0] = halves(s);
    if constexpr (Min)
      mn[0] = halves(s + 16);
    else if constexpr (Offset != 0)
      mn[0] = _mm256_mul_ps(sc[0], _mm256_set1_ps(-(float)Offset));
  }
};
struct Q8_0 : Layout32<256, 1, true, false, 0> {
  static __m256i quads(const uint8_t* Q, int t) { return _mm256_sign_epi8(signs(Q, t), signs(Q, t)); }  // |w|
  static __m256i signs(const uint8_t* Q, int t) { return load(Q + 32 * t); }
};
template <bool Min>
struct Q4 : Layout32<128, 8, false, Min, Min ? 0 : 8> {
  static __m256i quads(const uint8_t* Q, int t) { return nibbles(Q, t); }
};
template <bool Min>
struct Q5 : Layout32<160, 4, false, Min, Min ? 0 : 16> {
  static __m256i quads(const uint8_t* Q, int t) { return _mm256_or_si256(nibbles(Q, t), plane_bit(Q + 128, t, 4)); }
};

// K-quants: a super-block of 8 rows = its 8 groups' quads (kQuad bytes each), then the trailer.
template <int Quad, int Depth, int Halves, int Trailer>
struct LayoutK {
  static constexpr int kQuad = Quad, kDepth = Depth, kHalves = Halves, kSuper = 8 * Quad + Trailer,
                       kStride = kSuper / 8;
  static constexpr bool kSigned = false, kSum = true;
  static const uint8_t* at(const uint8_t* cg, int64_t g) { return cg + (g / 8) * kSuper + (g % 8) * Quad; }
  static const uint8_t* trailer(const uint8_t* cg, int64_t g) { return cg + (g / 8) * kSuper + 8 * Quad; }
};
// Q4_K / Q5_K trailer: sc[8 groups][8 rows], mn[8][8] (6-bit, as bytes), d[8], dmin[8] fp16;
// sc = d * sc, mn = -dmin * mn as the panel's k_super.
template <int Quad, int Depth>
struct KMin : LayoutK<Quad, Depth, 1, 160> {
  static void scales(const uint8_t* cg, int64_t g, __m256* sc, __m256* mn) {
    const uint8_t* t = KMin::trailer(cg, g);
    const int s = (int)(g % 8);
    sc[0] = _mm256_mul_ps(bytes_u8(t + 8 * s), halves(t + 128));
    mn[0] = _mm256_mul_ps(bytes_u8(t + 64 + 8 * s), _mm256_xor_ps(halves(t + 144), _mm256_set1_ps(-0.0f)));
  }
};
struct Q4K : KMin<128, 8> {
  static __m256i quads(const uint8_t* Q, int t) { return nibbles(Q, t); }
};
struct Q5K : KMin<160, 4> {
  static __m256i quads(const uint8_t* Q, int t) { return _mm256_or_si256(nibbles(Q, t), plane_bit(Q + 128, t, 4)); }
};
// Q6_K: quads = nibbles | bit 4 plane | bit 5 plane; trailer: int8 scales[16 halves][8 rows],
// d[8] fp16; sc = d * scale, mn = -32 sc.
struct Q6K : LayoutK<192, 2, 2, 144> {
  static __m256i quads(const uint8_t* Q, int t) {
    return _mm256_or_si256(_mm256_or_si256(nibbles(Q, t), plane_bit(Q + 128, t, 4)), plane_bit(Q + 160, t, 5));
  }
  static void scales(const uint8_t* cg, int64_t g, __m256* sc, __m256* mn) {
    const uint8_t* t = trailer(cg, g);
    const __m256 d = halves(t + 128);
    for (int h = 0; h < 2; ++h) {
      sc[h] = _mm256_mul_ps(bytes_i8(t + 8 * (2 * (g % 8) + h)), d);
      mn[h] = _mm256_mul_ps(sc[h], _mm256_set1_ps(-32.0f));
    }
  }
};

// A nibble type's column group spread to bytes for a chunk of many activation rows, as the
// panel keeps it: per group the 8 quads (256 bytes), then per half the scales and terms as floats,
// so each tile loads them instead of unpacking them again.
template <class P>
struct Bytes {
  static constexpr int kDepth = P::kDepth, kHalves = P::kHalves, kStride = 256 + 64 * P::kHalves;
  static constexpr bool kSigned = false, kSum = P::kSum;
  static const uint8_t* at(const uint8_t* q, int64_t g) { return q + kStride * g; }
  static __m256i quads(const uint8_t* Q, int t) { return load(Q + 32 * t); }
  static void scales(const uint8_t* q, int64_t g, __m256* sc, __m256* mn) {
    const float* f = reinterpret_cast<const float*>(at(q, g) + 256);
    for (int h = 0; h < kHalves; ++h) sc[h] = _mm256_load_ps(f + 16 * h), mn[h] = _mm256_load_ps(f + 16 * h + 8);
  }
  static void spread(uint8_t* dst, const uint8_t* cg, int64_t g) {
    uint8_t* G = dst + kStride * g;
    for (int t = 0; t < 8; ++t) _mm256_store_si256(reinterpret_cast<__m256i*>(G + 32 * t), P::quads(P::at(cg, g), t));
    __m256 sc[kHalves], mn[kHalves];
    for (int h = 0; h < kHalves; ++h) mn[h] = _mm256_setzero_ps();
    P::scales(cg, g, sc, mn);
    float* f = reinterpret_cast<float*>(G + 256);
    for (int h = 0; h < kHalves; ++h) _mm256_store_ps(f + 16 * h, sc[h]), _mm256_store_ps(f + 16 * h + 8, mn[h]);
  }
};

constexpr int64_t kSpreadRows = 16;  // a column group met by more rows than this is spread to bytes first
constexpr int64_t kMaxGroups = 256;  // groups (K <= 8192) the per-thread byte panel and half sums hold

// The nibble types spread a column group to bytes (Bytes) when a chunk has more than kSpreadRows
// rows; Q8_0's packed quads are bytes already. With VNNI only Q6_K pays for it (its two bit planes;
// 1 x 1536 x 512, 64 and 512 rows: 1.2-1.5x), the others run 0.9-0.8x spread.
template <class T>
struct Spread {
  using Type = std::conditional_t<tile_avx2::kVnni, void, Bytes<T>>;
};
template <>
struct Spread<Q6K> {
  using Type = Bytes<Q6K>;
};
template <>
struct Spread<Q8_0> {
  using Type = void;
};

template <class T>
struct Scratch {
  using Wide = typename Spread<T>::Type;
  // Wide's groups of a tile's column groups, one after the other
  alignas(
      64) uint8_t bytes[std::is_void<Wide>::value ? 1 : tile_avx2::kStep / NC * kMaxGroups * (256 + 64 * T::kHalves)];
  float hs[T::kHalves == 2 ? tile_avx2::kChunkRows * kMaxGroups * 2 : 1];
  int32_t base[T::kSigned && tile_avx2::kVnni ? tile_avx2::kChunkRows * kMaxGroups : 1];  // offset_sums
};

template <class T>
void packed_gemm(float* y, int64_t ldy, const BlockQ8Act* act, const uint8_t* w, int64_t m, int64_t ng, int64_t n0,
                 int64_t n1) {
  using Wide = typename Scratch<T>::Wide;
  constexpr bool kCanSpread = !std::is_void<Wide>::value;
  static thread_local Scratch<T> scratch;
  const int64_t cgb = ng * T::kStride;  // bytes per column group
  const int64_t hstride = 2 * ng;
  // The first tile of a column group asks for the bytes `far` on (at least the next column group,
  // at least kGemvAhead: from DRAM for a batch of decodes, from L2 for a prompt's later chunks).
  const int64_t far = gemm_ahead(T::kStride) > cgb ? gemm_ahead(T::kStride) : cgb;
  const uint8_t* end = w + ((n1 + NC - 1) / NC) * cgb;
  prefetch_slice_start(w + (n0 / NC) * cgb, end - (w + (n0 / NC) * cgb));
  // Each chunk of activation rows (as many as stay in L2) meets every column group of the slice.
  tile_avx2::for_chunks<T::kHalves>(act, scratch.hs, m, ng, n0, n1, [&](int64_t i0, int64_t i1, int64_t j, int nc) {
    const BlockQ8Act* a = act + i0 * ng;
    const int ncg = nc > NC ? 2 : 1;  // column groups in this tile
#if NS_TILE_VNNI
    if (T::kSigned && j == n0) tile_avx2::offset_sums(scratch.base, a, i1 - i0, ng);  // once per chunk
#endif
    const uint8_t* cg[2] = {w + (j / NC) * cgb, w + (j / NC + ncg - 1) * cgb};  // a lone one twice
    const uint8_t* ahead[2] = {nullptr, nullptr};
    for (int c = 0; c < ncg; ++c) {
      const uint8_t* next = cg[c] + (ncg - 1) * cgb + far;  // at least the same column group of the next tile
      if (next + cgb <= end) ahead[c] = next;
    }
    float* yt = y + i0 * ldy + j;
    if constexpr (kCanSpread) {
      if (i1 - i0 > kSpreadRows) {
        uint8_t* panel[2] = {scratch.bytes, scratch.bytes + (ncg - 1) * kMaxGroups * Wide::kStride};
        for (int c = 0; c < ncg; ++c)
          for (int64_t g = 0; g < ng; ++g) {
            if (ahead[c])
              for (int o = 0; o < T::kStride; o += 64)
                _mm_prefetch(reinterpret_cast<const char*>(ahead[c] + g * T::kStride + o), _MM_HINT_T0);
            Wide::spread(panel[c], cg[c], g);
          }
        const uint8_t* p[2] = {panel[0], panel[1]};
        const uint8_t* none[2] = {nullptr, nullptr};
#if NS_TILE_VNNI
        return tile_avx2::tiles2<Wide>(yt, ldy, a, scratch.hs, hstride, scratch.base, 0, i1 - i0, p, p, ng, nc, none);
#else
        return tile_avx2::tiles<Wide>(yt, ldy, a, scratch.hs, hstride, 0, i1 - i0, p[0], p[0], ng, nc, none[0]);
#endif
      }
    }
#if NS_TILE_VNNI
    tile_avx2::tiles2<T>(yt, ldy, a, scratch.hs, hstride, scratch.base, 0, i1 - i0, cg, cg, ng, nc, ahead);
#else
    tile_avx2::tiles<T>(yt, ldy, a, scratch.hs, hstride, 0, i1 - i0, cg[0], cg[0], ng, nc, ahead[0]);
#endif
  });
}

// Calls f(T{}) with this file's type of t; false when it has none.
template <class F>
bool with_type(DType t, F f) {
  return tile_avx2::with_type<Q8_0, Q4<false>, Q4<true>, Q5<false>, Q5<true>, Q4K, Q5K, Q6K>(t, f);
}

// The packed layout of t as this file's types read it (none: all zero).
inline PackedLayout layout(DType t) {
  PackedLayout lay;
  with_type(t, [&](auto T) {
    using P = decltype(T);
    lay = PackedLayout{P::kStride, P::kSuper, P::kQuad};
  });
  return lay;
}

// qgemm_packed's contract (quant_packed.h) at this file's ISA.
inline bool gemm(float* y, int64_t ldy, const BlockQ8Act* act, const void* packed, DType t, int64_t m, int64_t k,
                 int64_t n0, int64_t n1) {
  const int64_t ng = k / QK;
  if (n0 % NC != 0 || ng > kMaxGroups) return false;
  const uint8_t* w = static_cast<const uint8_t*>(packed);
  return with_type(t, [&](auto T) { packed_gemm<decltype(T)>(y, ldy, act, w, m, ng, n0, n1); });
}

}  // namespace
}  // namespace packed_x86
}  // namespace ninestep
