// AVX-512 with VNNI: 8-bit activation quantization and quantized-weight GEMM.
//
// One 512-bit vector holds two consecutive 32-element blocks, and one vpdpbusd (unsigned x
// signed bytes, four products summed into each int32 lane) does the integer part of both block
// dots. Then one FMA as floats with d_w * d_x spread over each block's eight lanes. An odd
// last block runs with the second block zeroed (weights and scales), which adds exact zeros.
// Integer sums are exact; only the float order differs from the scalar reference. Each
// activation row's operands (bytes, spread scales, offset sums) are prepared once per call and
// row chunk rather than once per weight tile.
//
// The build compiles this file with -mavx512f/bw/vl/dq only, so the GEMM functions carry
// target("avx512vnni") themselves and run only after a CPUID check; a CPU with AVX-512 but no
// VNNI (Skylake-X) takes the AVX2 GEMM. quantize_act_row needs no VNNI.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/quant.h"

#define NS_VNNI __attribute__((target("avx512vnni")))

namespace ninestep {
namespace {

// Two 32-byte vectors -> one 512-bit vector [lo, hi].
inline __m512i join(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }
inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Two blocks share a vector in one of two byte orders. Canonical (Q8_0): [block b | block b+1],
// so int32 lanes 0-7 belong to b and 8-15 to b+1. Split (Q4_0, Q4_1: their nibbles unpack to it
// without a cross-lane shuffle): [b 0-15 | b+1 0-15 | b 16-31 | b+1 16-31], lanes 0-3 and 8-11
// belong to b. spread2 puts v[L0] over block b's lanes and v[L1] over block b+1's.
template <bool Split, int L0 = 0, int L1 = 1>
inline __m512 spread2(__m128 v) {
  const __m512i idx = Split ? _mm512_setr_epi32(L0, L0, L0, L0, L1, L1, L1, L1, L0, L0, L0, L0, L1, L1, L1, L1)
                            : _mm512_setr_epi32(L0, L0, L0, L0, L0, L0, L0, L0, L1, L1, L1, L1, L1, L1, L1, L1);
  return _mm512_permutexvar_ps(idx, _mm512_zextps128_ps512(v));
}

// Activation operand for blocks b and b+1 (b+1 only if `two`).
struct Act {
  __m512i x;   // the 64 quantized values
  __m512 d;    // scales, spread
  __m128 ds;   // [d_b, s_b, d_b+1, s_b+1], s = d * sum(q)
};
template <bool Split>
inline Act load_act(const BlockQ8Act* a, bool two) {
  __m512i x = join(load32(a[0].qs), two ? load32(a[1].qs) : _mm256_setzero_si256());
  if (Split) x = _mm512_shuffle_i64x2(x, x, _MM_SHUFFLE(3, 1, 2, 0));
  // [d_b, s_b, d_b+1, s_b+1]: d and s sit next to each other in a block
  const __m128 ds = two ? _mm_loadh_pi(_mm_loadl_pi(_mm_setzero_ps(), reinterpret_cast<const __m64*>(&a[0].d)),
                                       reinterpret_cast<const __m64*>(&a[1].d))
                        : _mm_loadl_pi(_mm_setzero_ps(), reinterpret_cast<const __m64*>(&a[0].d));
  return {x, spread2<Split, 0, 2>(ds), ds};
}

// 16 bytes of nibbles per block, two blocks -> 64 unsigned bytes in the split order.
inline __m512i unpack_nibbles2(const uint8_t* q0, const uint8_t* q1) {
  const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q0));
  const __m128i b = q1 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(q1)) : _mm_setzero_si128();
  const __m256i q = _mm256_set_m128i(b, a);
  return _mm512_and_si512(join(q, _mm256_srli_epi16(q, 4)), _mm512_set1_epi8(0x0f));
}

// Two fp16 fields, 32 bits each (d, or d and m), of blocks b and b+1 -> floats [x0, y0, x1, y1].
inline __m128 halves2(const uint16_t* p0, const uint16_t* p1) {
  int32_t u0, u1 = 0;
  std::memcpy(&u0, p0, 4);
  if (p1) std::memcpy(&u1, p1, 4);
  return _mm_cvtph_ps(_mm_setr_epi32(u0, u1, 0, 0));
}

// Per weight type: blocks b and b+1 (b+1 only if `two`) as unsigned bytes u = q + kOffset for
// vpdpbusd, the scales spread over the lanes of each block and, for Q4_1, [d_b, m_b, d_b+1,
// m_b+1]. A missing block b+1 loads as zero weights and zero scales.
struct Q8_0 {
  using Block = BlockQ8_0;
  static constexpr bool kSplit = false;
  static constexpr int kOffset = 128;  // q in [-128, 127] -> q ^ 0x80 = q + 128 in [0, 255]
  static constexpr bool kMin = false;
  static __m512i load(const Block* b, bool two, __m512* d, __m128*) {
    const __m128 h = _mm_cvtph_ps(_mm_setr_epi16((short)b[0].d, two ? (short)b[1].d : 0, 0, 0, 0, 0, 0, 0));
    *d = spread2<false>(h);
    const __m512i w = join(load32(b[0].qs), two ? load32(b[1].qs) : _mm256_setzero_si256());
    return _mm512_xor_si512(w, _mm512_set1_epi8((char)0x80));
  }
};

struct Q4_0 {
  using Block = BlockQ4_0;
  static constexpr bool kSplit = true;
  static constexpr int kOffset = 8;  // the stored nibble is q + 8
  static constexpr bool kMin = false;
  static __m512i load(const Block* b, bool two, __m512* d, __m128*) {
    *d = spread2<true>(_mm_cvtph_ps(_mm_setr_epi16((short)b[0].d, two ? (short)b[1].d : 0, 0, 0, 0, 0, 0, 0)));
    return unpack_nibbles2(b[0].qs, two ? b[1].qs : nullptr);
  }
};

// Q4_1: x = d * q + m with q in [0, 15]; the minimum adds m * d_x * sum(x_q), precomputed per
// activation block as BlockQ8Act::s.
struct Q4_1 {
  using Block = BlockQ4_1;
  static constexpr bool kSplit = true;
  static constexpr int kOffset = 0;
  static constexpr bool kMin = true;
  static __m512i load(const Block* b, bool two, __m512* d, __m128* dm) {
    *dm = halves2(&b[0].d, two ? &b[1].d : nullptr);  // [d0, m0, d1, m1]
    *d = spread2<true, 0, 2>(*dm);
    return unpack_nibbles2(b[0].qs, two ? b[1].qs : nullptr);
  }
};

// The lane sums of a, b, c, d as [sum a, sum b, sum c, sum d]: 13 shuffles and adds for all four.
inline __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
  const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
  const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
  const __m512 abcd = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));  // per 128-bit lane
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(abcd), _mm512_extractf32x8_ps(abcd, 1));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// One activation row's operands for blocks b and b+1, prepared once per chunk of rows rather
// than once per weight tile.
struct PreAct {
  __m512i x;    // the 64 quantized values in T's byte order
  __m512 d;     // scales, spread
  __m512i aux;  // Q8_0, Q4_0: -offset * sum(x) per int32 lane; Q4_1: the bits of [s_b, s_b+1] x 8
};

template <class T>
NS_VNNI void prepare(PreAct* dst, const BlockQ8Act* a, int64_t nb) {
  for (int64_t b = 0; b < nb; b += 2) {
    const Act v = load_act<T::kSplit>(a + b, b + 1 < nb);
    PreAct& p = dst[b / 2];
    p.x = v.x;
    p.d = v.d;
    // sum((q + offset) * x) = sum(q * x) + offset * sum(x): dots start at -offset * sum(x)
    if constexpr (T::kMin)
      p.aux = _mm512_castps_si512(_mm512_permutexvar_ps(_mm512_setr_epi32(1, 3, 1, 3, 1, 3, 1, 3, 1, 3, 1, 3, 1, 3, 1, 3),
                                                        _mm512_zextps128_ps512(v.ds)));
    else
      p.aux = _mm512_sub_epi32(_mm512_setzero_si512(),
                               _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)T::kOffset), v.x));
  }
}

// Adds block pair bp (blocks 2bp and 2bp+1, the second only if TWO) of an MR x NR tile to its
// accumulators. Q4_1's minimums: M = [m_j0 b, m_j0 b+1, m_j1 b, ..., m_j3 b+1] against [s_b,
// s_b+1] x 4 is one FMA per activation row for the whole tile row, into macc.
template <class T, int MR, int NR, bool TWO>
NS_VNNI __attribute__((always_inline)) inline void tile_step(__m512 (&acc)[MR][NR], __m256 (&macc)[MR],
                                                               const typename T::Block* const* wr,
                                                               const PreAct* const* ar, int64_t bp) {
  __m512i wv[NR];
  __m512 dw[NR];
  __m128 dm[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};  // [d, m, d, m]
  for (int j = 0; j < NR; ++j) wv[j] = T::load(wr[j] + 2 * bp, TWO, &dw[j], &dm[j]);
  __m256 mins;
  if constexpr (T::kMin)
    mins = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_shuffle_ps(dm[0], dm[1], _MM_SHUFFLE(3, 1, 3, 1))),
                                _mm_shuffle_ps(dm[2], dm[3], _MM_SHUFFLE(3, 1, 3, 1)), 1);
  for (int i = 0; i < MR; ++i) {
    const PreAct& a = ar[i][bp];
    const __m512i base = T::kMin ? _mm512_setzero_si512() : a.aux;
    for (int j = 0; j < NR; ++j) {
      const __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(base, wv[j], a.x));
      acc[i][j] = _mm512_fmadd_ps(p, _mm512_mul_ps(dw[j], a.d), acc[i][j]);
    }
    if constexpr (T::kMin) macc[i] = _mm256_fmadd_ps(mins, _mm512_castps512_ps256(_mm512_castsi512_ps(a.aux)), macc[i]);
  }
}

// y[i0 + i, j0 + j] for an MR x NR tile, activation row i0 + i prepared at pre + (il + i) * np;
// each pair of weight blocks is unpacked once and used MR times.
template <class T, int MR, int NR>
NS_VNNI void tile(float* y, int64_t ldy, const PreAct* pre, int64_t nb, const uint8_t* w, int64_t row_bytes,
                  int64_t i0, int64_t il, int64_t j0) {
  static_assert(NR <= 4, "one reduce4 per activation row");
  using Block = typename T::Block;
  const int64_t np = (nb + 1) / 2;
  const Block* wr[NR];  // row j0 + j of W
  for (int j = 0; j < NR; ++j) wr[j] = reinterpret_cast<const Block*>(w + (j0 + j) * row_bytes);
  const PreAct* ar[MR];  // row i0 + i of the activations
  for (int i = 0; i < MR; ++i) ar[i] = pre + (il + i) * np;
  __m512 acc[MR][NR];
  __m256 macc[MR];  // Q4_1: [j0 b, j0 b+1, j1 b, ...] minimum terms
  for (int i = 0; i < MR; ++i) {
    macc[i] = _mm256_setzero_ps();
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  }
  int64_t bp = 0;
  for (; 2 * bp + 2 <= nb; ++bp) tile_step<T, MR, NR, true>(acc, macc, wr, ar, bp);
  if (2 * bp < nb) tile_step<T, MR, NR, false>(acc, macc, wr, ar, bp);
  for (int i = 0; i < MR; ++i) {
    __m512 r[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int j = 0; j < NR; ++j) r[j] = acc[i][j];
    __m128 sums = reduce4(r[0], r[1], r[2], r[3]);
    if constexpr (T::kMin) {  // pairwise sums of macc: [j0, j1, j2, j3]
      const __m256 e = _mm256_permutevar8x32_ps(macc[i], _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
      sums = _mm_add_ps(sums, _mm_add_ps(_mm256_castps256_ps128(e), _mm256_extractf128_ps(e, 1)));
    }
    _mm_mask_storeu_ps(y + (i0 + i) * ldy + j0, (1 << NR) - 1, sums);
  }
}

// Activation rows [i0, i1), prepared in pre from its first entry on, against weight rows
// [j0, j0 + NR) in tiles of up to MR rows.
template <class T, int MR, int NR>
NS_VNNI void column(float* y, int64_t ldy, const PreAct* pre, int64_t nb, const uint8_t* w, int64_t rb, int64_t i0,
                    int64_t i1, int64_t j0) {
  int64_t i = i0;
  for (; i + MR <= i1; i += MR) tile<T, MR, NR>(y, ldy, pre, nb, w, rb, i, i - i0, j0);
  switch (i1 - i) {
    case 3: tile<T, 3, NR>(y, ldy, pre, nb, w, rb, i, i - i0, j0); break;
    case 2: tile<T, 2, NR>(y, ldy, pre, nb, w, rb, i, i - i0, j0); break;
    case 1: tile<T, 1, NR>(y, ldy, pre, nb, w, rb, i, i - i0, j0); break;
    default: break;
  }
}

// Prepared activations live on the stack (48 KB, the size of L1): at least 4 rows of up to
// kMaxPairs block pairs, so K <= 4096. Longer rows take the AVX2 kernels.
constexpr int64_t kPreEntries = 48 * 1024 / sizeof(PreAct);
constexpr int64_t kMaxPairs = kPreEntries / 4;

template <class T>
NS_VNNI void qgemm(float* y, int64_t ldy, const BlockQ8Act* act, const void* wv, int64_t m, int64_t k, int64_t n0,
                   int64_t n1) {
  const int64_t nb = k / QK, np = (nb + 1) / 2, rb = nb * (int64_t)sizeof(typename T::Block);
  const uint8_t* w = static_cast<const uint8_t*>(wv);
  PreAct pre[kPreEntries];
  if (m == 1) {  // matrix-vector: four weight rows keep four FMA chains in flight
    prepare<T>(pre, act, nb);
    int64_t j = n0;
    for (; j + 4 <= n1; j += 4) {
      // Weights stream from DRAM once (the LM head is 30 MB): ask for the rows 16 ahead now.
      if (j + 20 <= n1)
        for (int64_t o = (j + 16) * rb; o < (j + 20) * rb; o += 64)
          _mm_prefetch(reinterpret_cast<const char*>(w + o), _MM_HINT_T0);
      tile<T, 1, 4>(y, ldy, pre, nb, w, rb, 0, 0, j);
    }
    for (; j < n1; ++j) tile<T, 1, 1>(y, ldy, pre, nb, w, rb, 0, 0, j);
    return;
  }
  // Prefill: a chunk of activation rows, prepared once and small enough to stay in L1, meets every
  // weight row of the slice before the next chunk, so weights stream from L2 once per chunk.
  // 4 x 4 tiles: 16 accumulators + 4 unpacked weight pairs with their scales (+ Q4_1's 4 minimum
  // accumulators) fit the 32 ZMM registers.
  constexpr int NR = 4;
  const int64_t chunk = std::min<int64_t>(32, kPreEntries / np / 4 * 4);
  for (int64_t i0 = 0; i0 < m; i0 += chunk) {
    const int64_t i1 = std::min(m, i0 + chunk);
    for (int64_t i = i0; i < i1; ++i) prepare<T>(pre + (i - i0) * np, act + i * nb, nb);
    int64_t j = n0;
    for (; j + NR <= n1; j += NR) column<T, 4, NR>(y, ldy, pre, nb, w, rb, i0, i1, j);
    for (; j < n1; ++j) column<T, 4, 1>(y, ldy, pre, nb, w, rb, i0, i1, j);
  }
}

}  // namespace

void quantize_act_row_avx512(BlockQ8Act* dst, const float* x, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b) {
    const __m512 f0 = _mm512_loadu_ps(x + b * QK), f1 = _mm512_loadu_ps(x + b * QK + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(f0), _mm512_abs_ps(f1)));
    const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
    // cvtps rounds to nearest even under the default MXCSR, as std::nearbyint in the reference.
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(f0, _mm512_set1_ps(id)));
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(f1, _mm512_set1_ps(id)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[b].qs), _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[b].qs + 16), _mm512_cvtsepi32_epi8(q1));
    dst[b].d = d;
    dst[b].s = d * (float)_mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  }
}

void qgemm_rows_avx512(float* y, int64_t ldy, const BlockQ8Act* act, const void* w, DType wtype, int64_t m,
                       int64_t k, int64_t n0, int64_t n1) {
  static const bool vnni = __builtin_cpu_supports("avx512vnni");
  if (!vnni || (k / QK + 1) / 2 > kMaxPairs) return qgemm_rows_avx2(y, ldy, act, w, wtype, m, k, n0, n1);
  switch (wtype) {
    case DType::q8_0: qgemm<Q8_0>(y, ldy, act, w, m, k, n0, n1); break;
    case DType::q4_0: qgemm<Q4_0>(y, ldy, act, w, m, k, n0, n1); break;
    case DType::q4_1: qgemm<Q4_1>(y, ldy, act, w, m, k, n0, n1); break;
    default: qgemm_rows_generic(y, ldy, act, w, wtype, m, k, n0, n1); break;
  }
}

}  // namespace ninestep
