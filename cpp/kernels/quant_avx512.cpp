// AVX-512 (F, BW, VL, DQ): 8-bit activation quantization and quantized-weight GEMM.
//
// One 512-bit vector holds two consecutive 32-element blocks, so every integer op covers two
// block dots: _mm512_maddubs_epi16 (unsigned x signed bytes -> int16 pairs), _mm512_madd_epi16
// with ones (-> int32), then one FMA as floats with [d_w * d_x of block b] x 8 lanes,
// [of block b+1] x 8 lanes. An odd last block runs with the upper half zeroed (weights and
// scales), which adds exact zeros. Integer sums are exact; only the float order differs from
// the scalar reference.
#include <immintrin.h>

#include "kernels/quant.h"

namespace ninestep {
namespace {

inline __m512i ones16() { return _mm512_set1_epi16(1); }

// Two 32-byte vectors -> one 512-bit vector [lo, hi].
inline __m512i join(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }
inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// [a x 8 lanes, b x 8 lanes] from the two floats in lanes 0 and 1 of v.
inline __m512 spread2(__m128 v) {
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                               _mm512_castps128_ps512(v));
}

// Activation operand for blocks b and b+1 (b+1 only if `two`): the bytes and the scales.
struct Act {
  __m512i x;
  __m512 d;
};
inline Act load_act(const BlockQ8Act* a, bool two) {
  if (two)
    return {join(load32(a[0].qs), load32(a[1].qs)), spread2(_mm_setr_ps(a[0].d, a[1].d, 0.0f, 0.0f))};
  return {_mm512_castsi256_si512(load32(a[0].qs)), spread2(_mm_setr_ps(a[0].d, 0.0f, 0.0f, 0.0f))};
}

// 16 bytes of nibbles per block, two blocks -> 64 unsigned bytes in element order
// [lo nibbles b, hi nibbles b, lo nibbles b+1, hi nibbles b+1].
inline __m512i unpack_nibbles2(const uint8_t* q0, const uint8_t* q1) {
  const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q0));
  const __m128i b = q1 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(q1)) : _mm_setzero_si128();
  const __m256i q = _mm256_set_m128i(b, a);
  const __m512i t = join(q, _mm256_srli_epi16(q, 4));  // [a, b, a >> 4, b >> 4]
  return _mm512_and_si512(_mm512_shuffle_i64x2(t, t, _MM_SHUFFLE(3, 1, 2, 0)), _mm512_set1_epi8(0x0f));
}

// Signed weights: maddubs needs one unsigned side, so |w| times x with w's sign moved onto x.
// |w| <= 128 and |x| <= 127 keep each int16 pair sum below 2^15.
struct Signed {
  __m512i abs;
  __mmask64 neg;
  static Signed of(__m512i w) { return {_mm512_abs_epi8(w), _mm512_movepi8_mask(w)}; }
  __m512i dot(__m512i x) const {
    const __m512i sx = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
    return _mm512_madd_epi16(_mm512_maddubs_epi16(abs, sx), ones16());
  }
};

// Per weight type: load blocks b and b+1 (b+1 only if `two`) as an operand with a dot against
// activations, plus the scales as [d_b x 8, d_b+1 x 8] and, for Q4_1, the two minimums.
struct Q8_0 {
  using Block = BlockQ8_0;
  static constexpr bool kMin = false;
  using W = Signed;
  static W load(const Block* b, bool two, __m512* d, float*) {
    const __m256i hi = two ? load32(b[1].qs) : _mm256_setzero_si256();
    *d = spread2(_mm_cvtph_ps(_mm_setr_epi16(b[0].d, two ? b[1].d : 0, 0, 0, 0, 0, 0, 0)));
    return Signed::of(join(load32(b[0].qs), hi));
  }
};

struct Q4_0 {
  using Block = BlockQ4_0;
  static constexpr bool kMin = false;
  using W = Signed;
  static W load(const Block* b, bool two, __m512* d, float*) {
    *d = spread2(_mm_cvtph_ps(_mm_setr_epi16(b[0].d, two ? b[1].d : 0, 0, 0, 0, 0, 0, 0)));
    // nibbles - 8; a missing second block must stay 0, not -8.
    const __m512i eight = _mm512_maskz_set1_epi8(two ? ~0ull : 0xffffffffull, 8);
    return Signed::of(_mm512_sub_epi8(unpack_nibbles2(b[0].qs, two ? b[1].qs : nullptr), eight));
  }
};

// Q4_1: x = d * q + m with q in [0, 15] unsigned, so maddubs takes q directly; the minimum adds
// m * d_x * sum(x_q), precomputed per activation block as BlockQ8Act::s.
struct Q4_1 {
  using Block = BlockQ4_1;
  static constexpr bool kMin = true;
  struct W {
    __m512i q;
    __m512i dot(__m512i x) const { return _mm512_madd_epi16(_mm512_maddubs_epi16(q, x), ones16()); }
  };
  static W load(const Block* b, bool two, __m512* d, float* m) {
    const __m128 dm = _mm_cvtph_ps(_mm_setr_epi16(b[0].d, b[0].m, two ? b[1].d : 0, two ? b[1].m : 0, 0, 0, 0, 0));
    *d = spread2(_mm_shuffle_ps(dm, dm, _MM_SHUFFLE(3, 1, 2, 0)));  // [d0, d1, m0, m1]
    m[0] = _mm_cvtss_f32(_mm_movehdup_ps(dm));
    m[1] = _mm_cvtss_f32(_mm_shuffle_ps(dm, dm, _MM_SHUFFLE(3, 3, 3, 3)));
    return {unpack_nibbles2(b[0].qs, two ? b[1].qs : nullptr)};
  }
};

// y[i0 + i, j0 + j] for an MR x NR tile; each pair of weight blocks is unpacked once, used MR times.
template <class T, int MR, int NR>
void tile(float* y, int64_t ldy, const BlockQ8Act* act, int64_t nb, const uint8_t* w, int64_t row_bytes,
          int64_t i0, int64_t j0) {
  using Block = typename T::Block;
  const Block* wr[NR];  // row j0 + j of W
  for (int j = 0; j < NR; ++j) wr[j] = reinterpret_cast<const Block*>(w + (j0 + j) * row_bytes);
  const BlockQ8Act* ar[MR];  // row i0 + i of the activations
  for (int i = 0; i < MR; ++i) ar[i] = act + (i0 + i) * nb;
  __m512 acc[MR][NR];
  float macc[MR][NR];  // Q4_1's minimum terms
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps(), macc[i][j] = 0.0f;
  for (int64_t b = 0; b < nb; b += 2) {
    const bool two = b + 1 < nb;
    typename T::W wv[NR];
    __m512 dw[NR];
    float mw[NR][2];
    for (int j = 0; j < NR; ++j) wv[j] = T::load(wr[j] + b, two, &dw[j], mw[j]);
    for (int i = 0; i < MR; ++i) {
      const Act a = load_act(ar[i] + b, two);
      for (int j = 0; j < NR; ++j) {
        const __m512 p = _mm512_cvtepi32_ps(wv[j].dot(a.x));
        acc[i][j] = _mm512_fmadd_ps(p, _mm512_mul_ps(dw[j], a.d), acc[i][j]);
        if constexpr (T::kMin) macc[i][j] += mw[j][0] * ar[i][b].s + (two ? mw[j][1] * ar[i][b + 1].s : 0.0f);
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) y[(i0 + i) * ldy + j0 + j] = _mm512_reduce_add_ps(acc[i][j]) + macc[i][j];
}

// Activation rows [i0, i1) against weight rows [j0, j0 + NR) in tiles of up to MR rows.
template <class T, int MR, int NR>
void column(float* y, int64_t ldy, const BlockQ8Act* act, int64_t nb, const uint8_t* w, int64_t rb, int64_t i0,
            int64_t i1, int64_t j0) {
  int64_t i = i0;
  for (; i + MR <= i1; i += MR) tile<T, MR, NR>(y, ldy, act, nb, w, rb, i, j0);
  switch (i1 - i) {
    case 3: tile<T, 3, NR>(y, ldy, act, nb, w, rb, i, j0); break;
    case 2: tile<T, 2, NR>(y, ldy, act, nb, w, rb, i, j0); break;
    case 1: tile<T, 1, NR>(y, ldy, act, nb, w, rb, i, j0); break;
    default: break;
  }
}

template <class T>
void qgemm(float* y, int64_t ldy, const BlockQ8Act* act, const void* wv, int64_t m, int64_t k, int64_t n0,
           int64_t n1) {
  const int64_t nb = k / QK, rb = nb * (int64_t)sizeof(typename T::Block);
  const uint8_t* w = static_cast<const uint8_t*>(wv);
  if (m == 1) {  // matrix-vector: four weight rows keep four FMA chains in flight
    int64_t j = n0;
    for (; j + 4 <= n1; j += 4) tile<T, 1, 4>(y, ldy, act, nb, w, rb, 0, j);
    for (; j < n1; ++j) tile<T, 1, 1>(y, ldy, act, nb, w, rb, 0, j);
    return;
  }
  // Prefill: a chunk of activation rows small enough to stay in L1 meets every weight row of the
  // slice before the next chunk, so weights stream from L2 once per chunk, not once per 4 rows.
  constexpr int64_t kRowChunk = 32;
  for (int64_t i0 = 0; i0 < m; i0 += kRowChunk) {
    const int64_t i1 = i0 + kRowChunk < m ? i0 + kRowChunk : m;
    int64_t j = n0;
    for (; j + 4 <= n1; j += 4) column<T, 4, 4>(y, ldy, act, nb, w, rb, i0, i1, j);
    for (; j < n1; ++j) column<T, 4, 1>(y, ldy, act, nb, w, rb, i0, i1, j);
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
  switch (wtype) {
    case DType::q8_0: qgemm<Q8_0>(y, ldy, act, w, m, k, n0, n1); break;
    case DType::q4_0: qgemm<Q4_0>(y, ldy, act, w, m, k, n0, n1); break;
    case DType::q4_1: qgemm<Q4_1>(y, ldy, act, w, m, k, n0, n1); break;
    default: qgemm_rows_generic(y, ldy, act, w, wtype, m, k, n0, n1); break;
  }
}

}  // namespace ninestep
