// AVX2 + FMA + F16C: the quantized GEMM over weights packed at load (quant_packed.h).
//
// The arithmetic is quant_panel_avx2.cpp's on its unpacked panel, in the same order, so every
// output has the same bits: per group, one broadcast activation quad meets the same 4 elements
// of the 8 rows in one _mm256_maddubs_epi16 (Q8_0: |w| against sign(w) * x), kDepth int16 results
// are summed before widening, and the eight int32 lanes are the 8 rows' exact integer dots;
//     acc = fma(float(P), d_w * d_x, acc);  acc = fma(mn, s_x, acc)   (mn: Q4_1 m, Q4_0 -8 d)
// What the packing saves is the per-group unpack and 8 x 8 transpose; a nibble type's quads come
// out of its 128 bytes with one AND (low nibbles) or a shift and an AND (high nibbles).
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "kernels/quant.h"
#include "kernels/quant_packed.h"

namespace ninestep {
namespace {

constexpr int NC = kPackRows;

inline __m256i load(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m256 halves(const uint8_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

// Per packed type: quads(G, t), the 8 rows' elements 4t .. 4t + 3 of group G; kQuad bytes of
// quads, then d[8] (and m[8]) fp16; the additive term mn as the panel's (Q4_1 / Q5_1 m, Q4_0 -8 d,
// Q5_0 -16 d).
template <int Quad, int Depth, bool Signed, bool Min, int Offset>
struct Layout {
  static constexpr int kQuad = Quad, kDepth = Depth, kOffset = Offset, kBytes = Quad + (Min ? 32 : 16);
  static constexpr bool kSigned = Signed, kMin = Min, kSum = Min || Offset != 0;
  static __m256 scales(const uint8_t* G) { return halves(G + Quad); }
  static __m256 terms(const uint8_t* G, __m256 sc) {
    if constexpr (Min) return halves(G + Quad + 16);
    if constexpr (Offset != 0) return _mm256_mul_ps(sc, _mm256_set1_ps(-(float)Offset));
    return _mm256_setzero_ps();
  }
};
struct Q8_0 : Layout<256, 1, true, false, 0> {
  static __m256i quads(const uint8_t* G, int t) { return load(G + 32 * t); }
};
template <bool Min>
struct Q4 : Layout<128, 8, false, Min, Min ? 0 : 8> {
  static __m256i quads(const uint8_t* G, int t) {
    const __m256i v = load(G + 32 * (t % 4));
    return _mm256_and_si256(t < 4 ? v : _mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0f));
  }
};
// Q5: Q4's nibbles, then 32 bytes whose bit t (of byte 4c + e) is quad t's fifth bit.
template <bool Min>
struct Q5 : Layout<160, 4, false, Min, Min ? 0 : 16> {
  static __m256i quads(const uint8_t* G, int t) {
    const __m256i h = load(G + 128);
    const __m256i hb = t <= 4 ? _mm256_slli_epi16(h, 4 - t) : _mm256_srli_epi16(h, t - 4);  // bit t -> bit 4
    return _mm256_or_si256(Q4<Min>::quads(G, t), _mm256_and_si256(hb, _mm256_set1_epi8(0x10)));
  }
};
// A nibble type's group with its quads spread to bytes (as Q8_0's, unsigned), for a chunk of
// many activation rows: each tile then loads its quads instead of unpacking them again.
template <class P>
struct Bytes : Layout<256, P::kDepth, false, P::kMin, P::kOffset> {
  static __m256i quads(const uint8_t* G, int t) { return load(G + 32 * t); }
  static void spread(uint8_t* dst, const uint8_t* G) {
    for (int t = 0; t < 8; ++t) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32 * t), P::quads(G, t));
    std::memcpy(dst + 256, G + P::kQuad, P::kBytes - P::kQuad);
  }
};

inline __m256i quad(const int8_t* p) {  // 4 activation bytes in every 32-bit lane
  int32_t u;
  std::memcpy(&u, p, 4);
  return _mm256_set1_epi32(u);
}

// y[i, 0 .. nc) for the MR activation rows ar[0..MR) over one column group's ng packed groups;
// ahead: the same point of the next column group (prefetched as this one is read), or null.
template <class T, int MR>
void micro(float* y, int64_t ldy, const BlockQ8Act* const* ar, const uint8_t* cg, int64_t ng, int nc,
           const uint8_t* ahead) {
  constexpr int D = T::kDepth;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[MR];
  for (int i = 0; i < MR; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t g = 0; g < ng; ++g) {
    const uint8_t* G = cg + g * T::kBytes;
    if (ahead)
      for (int o = 0; o < T::kBytes; o += 64)
        _mm_prefetch(reinterpret_cast<const char*>(ahead + g * T::kBytes + o), _MM_HINT_T0);
    __m256i s32[MR];
#pragma GCC unroll 8
    for (int p = 0; p < 8 / D; ++p) {
      __m256i a16[MR];
#pragma GCC unroll 8
      for (int e = 0; e < D; ++e) {
        const int t = D * p + e;
        const __m256i q = T::quads(G, t);
        const __m256i wq = T::kSigned ? _mm256_sign_epi8(q, q) : q;
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) {
          __m256i x = quad(ar[i][g].qs + 4 * t);
          if constexpr (T::kSigned) x = _mm256_sign_epi8(x, q);
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
    const __m256 sc = T::scales(G);
    const __m256 mn = T::terms(G, sc);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 scd = _mm256_mul_ps(sc, _mm256_broadcast_ss(&ar[i][g].d));
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32[i]), scd, acc[i]);
      if constexpr (T::kSum) acc[i] = _mm256_fmadd_ps(mn, _mm256_broadcast_ss(&ar[i][g].s), acc[i]);
    }
  }
  if (nc == NC) {
    for (int i = 0; i < MR; ++i) _mm256_storeu_ps(y + i * ldy, acc[i]);
  } else {
    alignas(32) float tmp[MR][NC];
    for (int i = 0; i < MR; ++i) _mm256_store_ps(tmp[i], acc[i]);
    for (int i = 0; i < MR; ++i)
      for (int c = 0; c < nc; ++c) y[i * ldy + c] = tmp[i][c];
  }
}

// Activation rows [i, i1) in tiles of MR rows, the rest in smaller tiles; the first tile
// prefetches the next column group.
template <class T, int MR>
void tiles(float* y, int64_t ldy, const BlockQ8Act* act, int64_t i, int64_t i1, const uint8_t* cg, int64_t ng, int nc,
           const uint8_t* ahead) {
  for (; i + MR <= i1; i += MR, ahead = nullptr) {
    const BlockQ8Act* ar[MR];
    for (int r = 0; r < MR; ++r) ar[r] = act + (i + r) * ng;
    micro<T, MR>(y + i * ldy, ldy, ar, cg, ng, nc, ahead);
  }
  if constexpr (MR > 1) {
    if (i < i1) tiles<T, MR - 1>(y, ldy, act, i, i1, cg, ng, nc, ahead);
  }
}

constexpr int kRows = 4;             // activation rows per tile, as the panel's
constexpr int64_t kChunkRows = 128;  // activation rows that meet each column group before the next
constexpr int64_t kSpreadRows = 16;  // a Q4 column group met by more rows than this is spread to bytes first
constexpr int64_t kMaxSpread = 256;  // groups (K <= 8192) the per-thread byte panel holds

// The nibble types spread a column group to bytes (Bytes) when a chunk has more than kSpreadRows
// rows; Q8_0's packed quads are bytes already.
template <class T>
struct Spread {
  using Type = Bytes<T>;
};
template <>
struct Spread<Q8_0> {
  using Type = void;
};

template <class T>
void packed_gemm(float* y, int64_t ldy, const BlockQ8Act* act, const uint8_t* w, int64_t m, int64_t ng, int64_t n0,
                 int64_t n1) {
  using Wide = typename Spread<T>::Type;
  constexpr bool kCanSpread = !std::is_void<Wide>::value;
  const int64_t cgb = ng * T::kBytes;  // bytes per column group
  // A chunk of activation rows that stays in L2 (<= 128 KB) meets every column group of the slice.
  int64_t chunk = (128 * 1024) / (ng * (int64_t)sizeof(BlockQ8Act));
  chunk = chunk < kRows ? kRows : chunk > kChunkRows ? kChunkRows : chunk - chunk % kRows;
  // The first tile of a column group asks for the bytes `far` on (at least the next column group,
  // at least kGemvAhead: from DRAM for a batch of decodes, from L2 for a prompt's later chunks).
  const int64_t far = gemm_ahead(T::kBytes) > cgb ? gemm_ahead(T::kBytes) : cgb;
  const uint8_t* end = w + ((n1 + NC - 1) / NC) * cgb;
  prefetch_slice_start(w + (n0 / NC) * cgb, end - (w + (n0 / NC) * cgb));
  for (int64_t i0 = 0; i0 < m; i0 += chunk) {
    const int64_t i1 = i0 + chunk < m ? i0 + chunk : m;
    const BlockQ8Act* a = act + i0 * ng;
    for (int64_t j = n0; j < n1; j += NC) {
      const int nc = n1 - j < NC ? (int)(n1 - j) : NC;
      const uint8_t* cg = w + (j / NC) * cgb;
      const uint8_t* ahead = cg + far + cgb <= end ? cg + far : nullptr;
      if constexpr (kCanSpread) {
        if (i1 - i0 > kSpreadRows && ng <= kMaxSpread) {
          alignas(64) static thread_local uint8_t bytes[kMaxSpread * Wide::kBytes];
          for (int64_t g = 0; g < ng; ++g) {
            if (ahead)
              for (int o = 0; o < T::kBytes; o += 64)
                _mm_prefetch(reinterpret_cast<const char*>(ahead + g * T::kBytes + o), _MM_HINT_T0);
            Wide::spread(bytes + g * Wide::kBytes, cg + g * T::kBytes);
          }
          tiles<Wide, kRows>(y + i0 * ldy + j, ldy, a, 0, i1 - i0, bytes, ng, nc, nullptr);
          continue;
        }
      }
      tiles<T, kRows>(y + i0 * ldy + j, ldy, a, 0, i1 - i0, cg, ng, nc, ahead);
    }
  }
}

}  // namespace

bool qgemm_packed_avx2(float* y, int64_t ldy, const BlockQ8Act* act, const void* packed, DType t, int64_t m, int64_t k,
                       int64_t n0, int64_t n1) {
  if (n0 % NC != 0) return false;
  const int64_t ng = k / QK;
  const uint8_t* w = static_cast<const uint8_t*>(packed);
  switch (t) {
    case DType::q8_0:
      packed_gemm<Q8_0>(y, ldy, act, w, m, ng, n0, n1);
      return true;
    case DType::q4_0:
      packed_gemm<Q4<false>>(y, ldy, act, w, m, ng, n0, n1);
      return true;
    case DType::q4_1:
      packed_gemm<Q4<true>>(y, ldy, act, w, m, ng, n0, n1);
      return true;
    default:
      return false;
  }
}

}  // namespace ninestep
