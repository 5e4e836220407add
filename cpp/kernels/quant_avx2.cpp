// AVX2 + FMA + F16C: 8-bit activation quantization and quantized-weight GEMM.
//
// A block dot is one 32-byte weight vector against one 32-byte activation vector:
// _mm256_maddubs_epi16 (unsigned x signed bytes -> int16 pairs), _mm256_madd_epi16 with ones
// (-> eight int32 partial sums), then one FMA of those as floats with d_w * d_x. The integer
// sums are exact, so only the float accumulation order differs from the scalar reference.
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "kernels/quant.h"
#include "kernels/quant_bits_avx2.h"
#include "kernels/simd_avx2.h"

namespace ninestep {
namespace {

inline float half(uint16_t h) { return _cvtsh_ss(h); }

// Q4_1's d and m are adjacent fp16s: one 32-bit load and one conversion for both.
inline void half2(const uint16_t* p, float* d, float* m) {
  int32_t u;
  std::memcpy(&u, p, 4);
  const __m128 v = _mm_cvtph_ps(_mm_cvtsi32_si128(u));
  *d = _mm_cvtss_f32(v);
  *m = _mm_cvtss_f32(_mm_movehdup_ps(v));
}

// Per weight type: the block, how it unpacks into a weight operand (once per block, reused for
// every activation row of the tile) and the integer dot of that operand with activations.
// Signed weights use |w| (unsigned) times sign(w) * x, since maddubs needs one unsigned side;
// |w| <= 128 and |x| <= 127 keep each int16 pair sum below 2^15.
struct Q8_0 {
  using Block = BlockQ8_0;
  static constexpr bool kMin = false;
  static constexpr int kOffset = 0;
  struct W { __m256i abs, sgn; };
  static W load(const Block& b) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
    return {_mm256_sign_epi8(w, w), w};
  }
  static __m256i dot(const W& w, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w.abs, _mm256_sign_epi8(x, w.sgn)), _mm256_set1_epi16(1));
  }
};

struct Q4_0 {
  using Block = BlockQ4_0;
  static constexpr bool kMin = false;
  static constexpr int kOffset = 0;
  using W = Q8_0::W;
  static W load(const Block& b) {
    const __m256i w = _mm256_sub_epi8(unpack_nibbles(b.qs), _mm256_set1_epi8(8));
    return {_mm256_sign_epi8(w, w), w};
  }
  static __m256i dot(const W& w, __m256i x) { return Q8_0::dot(w, x); }
};

// Q4_1: x = d * q + m with q in [0, 15] unsigned, so maddubs takes q directly; the minimum adds
// m * d_x * sum(x_q), precomputed per activation block as BlockQ8Act::s.
struct Q4_1 {
  using Block = BlockQ4_1;
  static constexpr bool kMin = true;
  static constexpr int kOffset = 0;
  using W = __m256i;
  static W load(const Block& b) { return unpack_nibbles(b.qs); }
  static __m256i dot(const W& w, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
  }
};


// Q5_1: q unsigned and a minimum, as Q4_1.
struct Q5_1 {
  using Block = BlockQ5_1;
  static constexpr bool kMin = true;
  static constexpr int kOffset = 0;
  using W = __m256i;
  static W load(const Block& b) { return q5_bytes(b.qs, b.qh); }
  static __m256i dot(const W& w, __m256i x) { return Q4_1::dot(w, x); }
};

// Q5_0: x = d * (q - 16). q goes unsigned straight into maddubs (no sign operations, unlike
// Q4_0), and the offset's -16 d_w * s_x joins the block's float term as one more FMA:
// d_w * (d_x * p + c) with c = -16 s_x spread over the 8 lanes, the exact -2 s_x each.
struct Q5_0 {
  using Block = BlockQ5_0;
  static constexpr bool kMin = false;
  static constexpr int kOffset = 16;
  using W = __m256i;
  static W load(const Block& b) { return q5_bytes(b.qs, b.qh); }
  static __m256i dot(const W& w, __m256i x) { return Q4_1::dot(w, x); }
};

// Rows j0 and j1's d_w in the lanes of a pair (see tile): [d0, d0, d1, d1, d0, d0, d1, d1].
inline __m256 pair_scales(float d0, float d1) {
  return _mm256_blend_ps(_mm256_set1_ps(d0), _mm256_set1_ps(d1), 0xcc);
}

// The weight side of a tile: block b of its row j as the unpacked operand, d_w broadcast and (for
// Q4_1 / Q5_1) the minimum. Direct unpacks from the GGUF blocks; Panel reads what Direct unpacked
// once for a whole chunk of activation rows.
template <class T>
struct Direct {
  using Block = typename T::Block;
  const uint8_t* w;  // the tile's first row
  int64_t rb;        // bytes per row
  const Block& block(int j, int64_t b) const { return reinterpret_cast<const Block*>(w + j * rb)[b]; }
  typename T::W operand(int j, int64_t b) const { return T::load(block(j, b)); }
  void scales(int j, int64_t b, float* d, float* m) const {
    if constexpr (T::kMin)
      half2(&block(j, b).d, d, m);
    else
      *d = half(block(j, b).d), *m = 0.0f;
  }
  // pair p's d_w, rows 2p and 2p + 1 of this block having scales d0, d1
  __m256 pair(int, int64_t, float d0, float d1) const { return pair_scales(d0, d1); }
};


// Up to kPanelBlocks blocks (K <= 8192) of NR weight rows, unpacked: [b][j] operands and scales.
constexpr int64_t kPanelBlocks = 256;
template <class T, int NR>
struct Panel {
  static constexpr int NP = (NR + 1) / 2;
  typename T::W op[kPanelBlocks][NR];
  float d[kPanelBlocks][NR], m[kPanelBlocks][NR];
  __m256 dp[kPanelBlocks][NP];  // pair_scales of rows 2p, 2p + 1
  // ahead: as tile's (the next rows' bytes, spread over the blocks), or null.
  void fill(const Direct<T>& src, int64_t nb, const char* ahead) {
    constexpr int64_t kStep = NR * (int64_t)sizeof(typename T::Block);
    for (int64_t b = 0; b < nb; ++b)
      for (int j = 0; j < NR; ++j) {
        if (ahead && j == 0)
          for (int64_t o = 0; o < kStep; o += 64) _mm_prefetch(ahead + b * kStep + o, _MM_HINT_T0);
        op[b][j] = src.operand(j, b);
        src.scales(j, b, &d[b][j], &m[b][j]);
        if (j % 2 == 1 || j == NR - 1) dp[b][j / 2] = pair_scales(d[b][j - j % 2], d[b][j]);
      }
  }
  typename T::W operand(int j, int64_t b) const { return op[b][j]; }
  void scales(int j, int64_t b, float* dv, float* mv) const { *dv = d[b][j], *mv = m[b][j]; }
  __m256 pair(int p, int64_t b, float, float) const { return dp[b][p]; }
};

// y[i0 + i, j0 + j] for an MR x NR tile: each weight block is unpacked (or read from the panel)
// once and used MR times. Weight rows go in pairs: _mm256_hadd_epi32 packs two rows' eight int32
// partial sums into one vector (lanes 0, 1, 4, 5: the first row; 2, 3, 6, 7: the second), so one
// convert and one FMA serve both, with the pair's d_w in its lanes. An odd NR's last pair repeats
// its row.
// ahead (decode): the tile's NR rows are one contiguous stretch of W, consumed NR blocks per step;
// each step asks for the bytes `ahead` points to, so DRAM reads are spread evenly over the loop
// (a burst of prefetches per tile measured 2.5x slower from DRAM than this on Zen 3).
template <class T, int MR, int NR, class Src>
void tile(float* y, int64_t ldy, const BlockQ8Act* act, int64_t nb, const Src& src, int64_t i0, int64_t j0,
          const char* ahead = nullptr) {
  using Block = typename T::Block;
  constexpr int NP = (NR + 1) / 2;
  const BlockQ8Act* ar[MR];  // row i0 + i of the activations
  for (int i = 0; i < MR; ++i) ar[i] = act + (i0 + i) * nb;
  __m256 acc[MR][NP];
  float macc[MR][NR];  // Q4_1's / Q5_1's minimum terms
  for (int i = 0; i < MR; ++i) {
    for (int p = 0; p < NP; ++p) acc[i][p] = _mm256_setzero_ps();
    for (int j = 0; j < NR; ++j) macc[i][j] = 0.0f;
  }
  constexpr int64_t kStep = NR * (int64_t)sizeof(Block);
  for (int64_t b = 0; b < nb; ++b) {
    if (ahead)
      for (int64_t o = 0; o < kStep; o += 64) _mm_prefetch(ahead + b * kStep + o, _MM_HINT_T0);
    typename T::W wv[NR];
    float dj[NR], mw[NR];
    for (int j = 0; j < NR; ++j) {
      wv[j] = src.operand(j, b);
      src.scales(j, b, &dj[j], &mw[j]);
    }
    __m256 dw[NP];  // the pair's d_w in its lanes
    for (int p = 0; p < NP; ++p) dw[p] = src.pair(p, b, dj[2 * p], dj[2 * p + 1 < NR ? 2 * p + 1 : 2 * p]);
    for (int i = 0; i < MR; ++i) {
      const BlockQ8Act& a = ar[i][b];
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs));
      const __m256 da = _mm256_broadcast_ss(&a.d);
      __m256i v[NR];
      for (int j = 0; j < NR; ++j) v[j] = T::dot(wv[j], x);
      for (int p = 0; p < NP; ++p) {
        const __m256 h = _mm256_cvtepi32_ps(_mm256_hadd_epi32(v[2 * p], v[2 * p + 1 < NR ? 2 * p + 1 : 2 * p]));
        if constexpr (T::kOffset != 0) {  // the offset's sum spread over the 4 lanes of each row
          const __m256 c = _mm256_set1_ps(a.s * (-T::kOffset / 4.0f));
          acc[i][p] = _mm256_fmadd_ps(_mm256_fmadd_ps(h, da, c), dw[p], acc[i][p]);
        } else {
          acc[i][p] = _mm256_fmadd_ps(h, _mm256_mul_ps(dw[p], da), acc[i][p]);
        }
      }
      if constexpr (T::kMin)
        for (int j = 0; j < NR; ++j) macc[i][j] += mw[j] * a.s;
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* yr = y + (i0 + i) * ldy + j0;
    for (int p = 0; p < NP; ++p) {
      const __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc[i][p]), _mm256_extractf128_ps(acc[i][p], 1));
      // h = [j0, j0, j1, j1]
      yr[2 * p] = _mm_cvtss_f32(h) + _mm_cvtss_f32(_mm_shuffle_ps(h, h, 1)) + macc[i][2 * p];
      if (2 * p + 1 < NR)
        yr[2 * p + 1] = _mm_cvtss_f32(_mm_shuffle_ps(h, h, 2)) + _mm_cvtss_f32(_mm_shuffle_ps(h, h, 3)) +
                        macc[i][2 * p + 1];
    }
  }
}

// Activation rows [i, i1) in MR-row tiles, the rest in halving tiles; the first tile prefetches
// from `ahead` (or nothing).
template <class T, int MR, int NR, class Src>
void tiles(float* y, int64_t ldy, const BlockQ8Act* act, int64_t nb, const Src& src, int64_t i, int64_t i1,
           int64_t j0, const char* ahead) {
  for (; i + MR <= i1; i += MR, ahead = nullptr) tile<T, MR, NR>(y, ldy, act, nb, src, i, j0, ahead);
  if constexpr (MR > 1) {
    if (i < i1) tiles<T, MR / 2, NR>(y, ldy, act, nb, src, i, i1, j0, ahead);
  }
}

// Activation rows [i0, i1) against weight rows [j0, j0 + NR) in tiles of up to MR rows. With more
// than one tile, the weights are unpacked into `panel` once first; either way the first pass over
// the weights also prefetches the weight rows pf bytes on (0: none).
template <class T, int MR, int NR>
void column(float* y, int64_t ldy, const BlockQ8Act* act, int64_t nb, const uint8_t* w, int64_t rb, int64_t i0,
            int64_t i1, int64_t j0, int64_t pf, Panel<T, NR>* panel) {
  const Direct<T> direct{w + j0 * rb, rb};
  const char* ahead = pf ? reinterpret_cast<const char*>(w + j0 * rb + pf) : nullptr;
  if (i1 - i0 > MR && nb <= kPanelBlocks) {
    panel->fill(direct, nb, ahead);
    tiles<T, MR, NR>(y, ldy, act, nb, *panel, i0, i1, j0, nullptr);
  } else {
    tiles<T, MR, NR>(y, ldy, act, nb, direct, i0, i1, j0, ahead);
  }
}

// Activation rows per prefill tile: 8 x 2 keeps 8 pair accumulators beside the 2 weight operands
// (callgrind, 256x896x1024, q5_0 / q4_1 / q8_0: 4 x 2 67.6M / 91.2M / 74.5M instructions, 6 x 2
// 79.9M / 94.7M / 66.4M, 8 x 2 59.9M / 74.8M / 64.2M).
constexpr int kPrefillRows = 8;


// Decode GEMV: 4 weight rows (one contiguous stretch of W) against one activation row, with the
// arithmetic of tile<T, 1, NR> (the same bits as this file's tiles; AVX2 GEMMs of 2+ rows run on
// quant_panel_avx2.cpp's panel, which rounds in another order): per row
// and block the integer sums P_q of elements [8q, 8q + 8) as floats, each into its own accumulator
// with d_w * d_x (Q5_0: fma(fma(P_q, d_x, -4 s_x), d_w)), the row's minimum m * s_x in one more
// chain, and y = ((A_0 + A_2) + (A_1 + A_3)) + minimum. What differs is only how the lanes are
// filled, with fewer instructions per block:
//  - the 4 rows' fp16 d (and m) go into one vector with one conversion; each pair of rows picks its
//    d_w * d_x from it with one permute, the minimum terms of all 4 rows take one FMA;
//  - the nibble types unpack two rows at once (row j's 16 bytes in the low lane, row j + 1's in the
//    high lane) against the activation halves broadcast to both lanes, and one hadd makes
//    [P_0..P_3 of row j | P_0..P_3 of row j + 1] ("split" lanes). Q8_0 keeps tile's hadd of two
//    rows' full dots: [P_0, P_1 of j, P_0, P_1 of j + 1 | P_2, P_3 of j, P_2, P_3 of j + 1].
template <class T>
struct Gemv {
  using Block = typename T::Block;
  static constexpr int NR = 4;
  static constexpr bool kMin = T::kMin;
  static constexpr bool kSplit = !std::is_same<T, Q8_0>::value;  // two rows per unpack (nibble types)
  static constexpr bool kFifth = std::is_same<T, Q5_0>::value || std::is_same<T, Q5_1>::value;
  static constexpr bool kSigned = std::is_same<T, Q4_0>::value;  // q - 8 through the sign trick

  // lane of row j's d_w in the converted scales
  static constexpr int lane(int j) { return kMin ? 2 * j : j; }

  // Rows j (low lane) and j + 1 (high lane) of block b: [P_0..P_3 | P_0..P_3] (split) or tile's hadd layout.
  static __m256i pair_sums(const Block& r0, const Block& r1, __m256i x, __m256i xlo, __m256i xhi) {
    const __m256i ones = _mm256_set1_epi16(1);
    if constexpr (!kSplit) {
      return _mm256_hadd_epi32(T::dot(T::load(r0), x), T::dot(T::load(r1), x));
    } else {
      const __m256i q = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(r1.qs),
                                            reinterpret_cast<const __m128i*>(r0.qs));
      const __m256i m4 = _mm256_set1_epi8(0x0f);
      __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if constexpr (kFifth) {  // byte i of lo takes bit i of its row's qh, byte i of hi bit 16 + i
        int32_t u0, u1;
        std::memcpy(&u0, r0.qh, 4);
        std::memcpy(&u1, r1.qh, 4);
        const __m256i u = _mm256_setr_epi32(u0, 0, 0, 0, u1, 0, 0, 0);
        const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
        const __m256i s_lo = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                              0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        const __m256i s_hi = _mm256_add_epi8(s_lo, _mm256_set1_epi8(2));
        const __m256i x10 = _mm256_set1_epi8(0x10);
        const __m256i b_lo = _mm256_and_si256(_mm256_shuffle_epi8(u, s_lo), bit);
        const __m256i b_hi = _mm256_and_si256(_mm256_shuffle_epi8(u, s_hi), bit);
        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(b_lo, bit), x10));
        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(b_hi, bit), x10));
      }
      __m256i a, c;
      if constexpr (kSigned) {
        const __m256i e8 = _mm256_set1_epi8(8);
        lo = _mm256_sub_epi8(lo, e8), hi = _mm256_sub_epi8(hi, e8);
        a = _mm256_maddubs_epi16(_mm256_sign_epi8(lo, lo), _mm256_sign_epi8(xlo, lo));
        c = _mm256_maddubs_epi16(_mm256_sign_epi8(hi, hi), _mm256_sign_epi8(xhi, hi));
      } else {
        a = _mm256_maddubs_epi16(lo, xlo), c = _mm256_maddubs_epi16(hi, xhi);
      }
      // int16 pair sums of 4 products (|q| <= 31, |x| <= 127: below 2^15), then 8: the same P_q
      return _mm256_madd_epi16(_mm256_hadd_epi16(a, c), ones);
    }
  }

  static void run(float* y, const BlockQ8Act* act, int64_t nb, const uint8_t* w, int64_t rb, const char* ahead) {
    constexpr int64_t kStep = NR * (int64_t)sizeof(Block);
    // per pair p, the lanes' scale index in the converted scales
    const __m256i idx0 = kSplit ? _mm256_setr_epi32(lane(0), lane(0), lane(0), lane(0), lane(1), lane(1), lane(1),
                                                    lane(1))
                                : _mm256_setr_epi32(lane(0), lane(0), lane(1), lane(1), lane(0), lane(0), lane(1),
                                                    lane(1));
    const __m256i idx1 = _mm256_add_epi32(idx0, _mm256_set1_epi32(lane(2)));
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 macc = _mm256_setzero_ps();  // lane 2j + 1: row j's minimum terms (kMin)
    const Block* r0 = reinterpret_cast<const Block*>(w);
    const Block* r1 = reinterpret_cast<const Block*>(w + rb);
    const Block* r2 = reinterpret_cast<const Block*>(w + 2 * rb);
    const Block* r3 = reinterpret_cast<const Block*>(w + 3 * rb);
    // No `ahead`: the prefetches ask for the bytes being read (no branch in the loop).
    const char* pf = ahead ? ahead : reinterpret_cast<const char*>(w);
#pragma GCC unroll 2
    for (int64_t b = 0; b < nb; ++b) {
      for (int64_t o = 0; o < kStep; o += 64) _mm_prefetch(pf + b * kStep + o, _MM_HINT_T0);
      const BlockQ8Act& a = act[b];
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs));
      __m256i xlo = x, xhi = x;
      if constexpr (kSplit) {
        xlo = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.qs)));
        xhi = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.qs + 16)));
      }
      __m128i h;  // kMin: [d_0, m_0, d_1, m_1, ...]; else [d_0, d_1, d_2, d_3, 0, ...] as fp16
      if constexpr (kMin) {
        int32_t u0, u1, u2, u3;
        std::memcpy(&u0, &r0[b].d, 4), std::memcpy(&u1, &r1[b].d, 4);
        std::memcpy(&u2, &r2[b].d, 4), std::memcpy(&u3, &r3[b].d, 4);
        h = _mm_setr_epi32(u0, u1, u2, u3);
      } else {
        h = _mm_setr_epi16((short)r0[b].d, (short)r1[b].d, (short)r2[b].d, (short)r3[b].d, 0, 0, 0, 0);
      }
      const __m256 dm = _mm256_cvtph_ps(h);
      const __m256 da = _mm256_broadcast_ss(&a.d);
      if constexpr (kMin) macc = _mm256_fmadd_ps(dm, _mm256_broadcast_ss(&a.s), macc);
      const __m256 h0 = _mm256_cvtepi32_ps(pair_sums(r0[b], r1[b], x, xlo, xhi));
      const __m256 h1 = _mm256_cvtepi32_ps(pair_sums(r2[b], r3[b], x, xlo, xhi));
      if constexpr (T::kOffset != 0) {  // the offset's sum spread over the 4 lanes of each row
        const __m256 c = _mm256_set1_ps(a.s * (-T::kOffset / 4.0f));
        acc0 = _mm256_fmadd_ps(_mm256_fmadd_ps(h0, da, c), _mm256_permutevar8x32_ps(dm, idx0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_fmadd_ps(h1, da, c), _mm256_permutevar8x32_ps(dm, idx1), acc1);
      } else {
        const __m256 dd = _mm256_mul_ps(dm, da);
        acc0 = _mm256_fmadd_ps(h0, _mm256_permutevar8x32_ps(dd, idx0), acc0);
        acc1 = _mm256_fmadd_ps(h1, _mm256_permutevar8x32_ps(dd, idx1), acc1);
      }
    }
    if constexpr (kSplit) {  // to tile's lanes: [A_0, A_1 of j, A_0, A_1 of j + 1 | A_2, A_3 ...]
      acc0 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(acc0), _MM_SHUFFLE(3, 1, 2, 0)));
      acc1 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(acc1), _MM_SHUFFLE(3, 1, 2, 0)));
    }
    // [A_0 + A_2, A_1 + A_3] per row, then their sum per row: [y_0, y_1, y_2, y_3]
    const __m128 s0 = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
    const __m128 s1 = _mm_add_ps(_mm256_castps256_ps128(acc1), _mm256_extractf128_ps(acc1, 1));
    __m128 r = _mm_hadd_ps(s0, s1);
    if constexpr (kMin)
      r = _mm_add_ps(r, _mm256_castps256_ps128(_mm256_permutevar8x32_ps(macc, _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7))));
    _mm_storeu_ps(y, r);
  }
};

template <class T>
void qgemm(float* y, int64_t ldy, const BlockQ8Act* act, const void* wv, int64_t m, int64_t k, int64_t n0,
           int64_t n1) {
  const int64_t nb = k / QK, rb = nb * (int64_t)sizeof(typename T::Block);
  const uint8_t* w = static_cast<const uint8_t*>(wv);
  // Matrix-vector: Gemv's 4 weight rows at a time, the rows left over by the 1-row tile.
  if (m == 1) {
    prefetch_slice_start(w + n0 * rb, (n1 - n0) * rb);
    int64_t j = n0;
    constexpr int NR = 4;
    for (; j + NR <= n1; j += NR) {
      // Weights stream from DRAM once (the LM head is 30 MB), read kGemvAhead bytes ahead; near
      // the slice's end the hardware prefetcher has the rest.
      const bool inside = (j + NR) * rb + kGemvAhead <= n1 * rb;
      const char* ahead = reinterpret_cast<const char*>(w + j * rb + kGemvAhead);
      Gemv<T>::run(y + j, act, nb, w + j * rb, rb, inside ? ahead : nullptr);
    }
    for (; j < n1; ++j) tile<T, 1, 1>(y, ldy, act, nb, Direct<T>{w + j * rb, rb}, 0, j);
    return;
  }
  // Prefill: a chunk of activation rows small enough to stay in L1/L2 meets every weight row of the
  // slice before the next chunk, so weights stream from L2 once per chunk and are unpacked into
  // the panel once per chunk.
  constexpr int64_t kRowChunk = 4 * kPrefillRows;
  static thread_local Panel<T, 2> panel2;  // ~25-40 KB each: not on the stack
  static thread_local Panel<T, 1> panel1;
  for (int64_t i0 = 0; i0 < m; i0 += kRowChunk) {
    const int64_t i1 = i0 + kRowChunk < m ? i0 + kRowChunk : m;
    // The next columns arrive while these are computed: from DRAM for a batch of decodes, from L2
    // for the later chunks of a prompt.
    const int64_t ahead = gemm_ahead(2 * rb);
    int64_t j = n0;
    for (; j + 2 <= n1; j += 2) {
      const bool inside = (j + 2) * rb + ahead <= n1 * rb;
      column<T, kPrefillRows, 2>(y, ldy, act, nb, w, rb, i0, i1, j, inside ? ahead : 0, &panel2);
    }
    for (; j < n1; ++j) column<T, kPrefillRows, 1>(y, ldy, act, nb, w, rb, i0, i1, j, 0, &panel1);
  }
}

}  // namespace

void quantize_act_row_avx2(BlockQ8Act* dst, const float* x, int64_t k) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < k / QK; ++b) {
    const float* v = x + b * QK;
    __m256 f[4];
    for (int t = 0; t < 4; ++t) f[t] = _mm256_loadu_ps(v + 8 * t);
    __m256 mx = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(f[0], abs_mask), _mm256_and_ps(f[1], abs_mask)),
                              _mm256_max_ps(_mm256_and_ps(f[2], abs_mask), _mm256_and_ps(f[3], abs_mask)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    const float amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
    const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
    // cvtps rounds to nearest even under the default MXCSR, as std::nearbyint in the reference.
    __m256i q[4];
    for (int t = 0; t < 4; ++t) q[t] = _mm256_cvtps_epi32(_mm256_mul_ps(f[t], _mm256_set1_ps(id)));
    const __m256i sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
    // packs interleave 128-bit lanes; the permute puts the 32 bytes back in element order.
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    const __m256i qs = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst[b].qs), qs);
    dst[b].d = d;
    dst[b].s = d * (float)_mm_cvtsi128_si32(s4);
  }
}

void qgemm_rows_avx2(float* y, int64_t ldy, const BlockQ8Act* act, const void* w, DType wtype, int64_t m, int64_t k,
                     int64_t n0, int64_t n1) {
  switch (wtype) {
    case DType::q8_0: qgemm<Q8_0>(y, ldy, act, w, m, k, n0, n1); break;
    case DType::q4_0: qgemm<Q4_0>(y, ldy, act, w, m, k, n0, n1); break;
    case DType::q4_1: qgemm<Q4_1>(y, ldy, act, w, m, k, n0, n1); break;
    case DType::q5_0: qgemm<Q5_0>(y, ldy, act, w, m, k, n0, n1); break;
    case DType::q5_1: qgemm<Q5_1>(y, ldy, act, w, m, k, n0, n1); break;
    default: qgemm_rows_generic(y, ldy, act, w, wtype, m, k, n0, n1); break;
  }
}

}  // namespace ninestep
