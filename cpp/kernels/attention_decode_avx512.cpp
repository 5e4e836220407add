// Decode-shaped attention items (see attention_decode.cpp) with AVX-512, for f32, f16 and q8_0
// caches whose head size is a multiple of 16 (others go to the AVX2 kernel): the walk of
// attention_decode_avx2.cpp with 16 lanes, so half the multiply-adds and conversions per key. Up
// to kRows queries of one KV head walk a key block together, 16 keys at a time; each K row is
// loaded once for all of them (lanes over D), a query's 16 dot products are summed across lanes by
// one transposing tree, each V row is loaded once for all their accumulators, and the online
// softmax steps 32 keys at a time.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/attention_decode_items.h"
#include "kernels/attention_scalar.h"
#include "kernels/nn.h"
#include "kernels/vexp_avx512.h"

namespace ninestep {

void attention_split_range_avx2(float*, const float*, const void*, const void*, DType, int64_t, int64_t, int64_t,
                                int64_t, int64_t, int64_t, int64_t, float, bool, int64_t, int64_t, int64_t);

namespace {

constexpr int kRows = 4;  // queries per pass

template <DType KT>
struct Kv16;
template <>
struct Kv16<DType::f32> {
  static __m512 load(const uint8_t* h, int64_t d) { return _mm512_loadu_ps(reinterpret_cast<const float*>(h) + d); }
};
template <>
struct Kv16<DType::f16> {
  static __m512 load(const uint8_t* h, int64_t d) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + 2 * d)));
  }
};
// Heads start on a block (D % 32 == 0, checked by kv_cache_type_error), so d counts from a block edge.
template <>
struct Kv16<DType::q8_0> {
  static __m512 load(const uint8_t* h, int64_t d) {
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(h) + d / QK;
    const __m128i q8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs + d % QK));
    const __m512 q = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q8));
    return _mm512_mul_ps(q, _mm512_set1_ps(_cvtsh_ss(b->d)));
  }
};

// Lane j of the result = the sum of a[slot(j)]'s lanes, slot(j) = j / 4 + 4 (j % 4): four rounds
// of shuffles, each halving the vectors and the lanes still to add.
inline int slot(int j) { return (j >> 2) + 4 * (j & 3); }
inline __m512 sum_lanes16(const __m512* a) {
  __m512 b[8], c[4], e[2];
  for (int i = 0; i < 8; ++i)  // 256-bit halves: lanes 0-7 a[2i]'s, 8-15 a[2i + 1]'s
    b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
  for (int i = 0; i < 4; ++i)  // 128-bit chunk m: a[4i + m]'s
    c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xDD));
  for (int i = 0; i < 2; ++i)  // in chunk m, lanes 0-1: a[8i + m]'s, 2-3: a[8i + 4 + m]'s
    e[i] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0x44),
                         _mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0xEE));
  return _mm512_add_ps(_mm512_shuffle_ps(e[0], e[1], 0x88), _mm512_shuffle_ps(e[0], e[1], 0xDD));
}

// attention_decode_avx2.cpp's attend_keys (the same contract) for D % 16 == 0.
template <DType KT, int NQ>
void attend_keys(float* const* st, const float* const* qr, const int64_t* last, const uint8_t* kg, const uint8_t* vg,
                 int64_t row_bytes, int64_t lo, int64_t hi, int64_t D, float scale) {
  using L = Kv16<KT>;
  constexpr int KJ = NQ <= 2 ? 8 : 4;  // keys per pass of the scores: NQ * KJ accumulators
  constexpr int DG = 4;                // 16-float columns per pass of the values
  constexpr int kSub = 2, kBlock = 16 * kSub;
  const int64_t head_bytes = dtype_row_bytes(KT, D);
  float m[NQ], l[NQ];
  alignas(64) float p[NQ][kBlock];
  __m512 dots[NQ][16];
  const int64_t hi_all = start_pass<NQ>(st, m, l, last, lo, hi, D);  // past the last key any query sees
  for (int64_t s0 = lo; s0 < hi_all; s0 += kBlock) {
    const int64_t nb = std::min<int64_t>(kBlock, hi_all - s0);
    const int nsub = int((nb + 15) / 16);
    __m512 sc[NQ][kSub];
    for (int sub = 0; sub < nsub; ++sub) {
      const int64_t b0 = s0 + 16 * sub;
      prefetch_keys_ahead(kg, vg, row_bytes, head_bytes, b0, 16, hi_all);
      for (int jb = 0; jb < 16; jb += KJ) {
        const uint8_t* kr[KJ];
        key_rows<KJ>(kr, kg, row_bytes, b0 + jb, hi_all);
        __m512 a[NQ][KJ];
        for (int i = 0; i < NQ; ++i)
          for (int jj = 0; jj < KJ; ++jj) a[i][jj] = _mm512_setzero_ps();
        for (int64_t d = 0; d < D; d += 16) {
          __m512 qv[NQ];
          for (int i = 0; i < NQ; ++i) qv[i] = _mm512_loadu_ps(qr[i] + d);
          for (int jj = 0; jj < KJ; ++jj) {
            const __m512 kv = L::load(kr[jj], d);
            for (int i = 0; i < NQ; ++i) a[i][jj] = _mm512_fmadd_ps(qv[i], kv, a[i][jj]);
          }
        }
        for (int i = 0; i < NQ; ++i)
          for (int jj = 0; jj < KJ; ++jj) dots[i][slot(jb + jj)] = a[i][jj];
      }
      for (int i = 0; i < NQ; ++i) {
        // keys of this sub-block query i sees (the block's last sub-block may be short)
        const int64_t seen = std::min<int64_t>(std::min<int64_t>(16, s0 + nb - b0), last[i] + 1 - b0);
        sc[i][sub] = seen <= 0 ? _mm512_set1_ps(kNegInf)
                               : _mm512_mask_mov_ps(_mm512_set1_ps(kNegInf), __mmask16((1u << seen) - 1),
                                                    _mm512_mul_ps(sum_lanes16(dots[i]), _mm512_set1_ps(scale)));
      }
    }
    float corr[NQ];
    for (int i = 0; i < NQ; ++i) {
      __m512 mx = sc[i][0];
      for (int sub = 1; sub < nsub; ++sub) mx = _mm512_max_ps(mx, sc[i][sub]);
      const float bmax = _mm512_reduce_max_ps(mx);
      if (bmax == kNegInf) {  // query i sees none of this block's keys
        corr[i] = 1.0f;
        std::fill(p[i], p[i] + kBlock, 0.0f);
        continue;
      }
      const float m_new = std::max(m[i], bmax);
      __m512 sum = _mm512_setzero_ps();
      for (int sub = 0; sub < nsub; ++sub) {
        const __m512 pv = vexp(_mm512_sub_ps(sc[i][sub], _mm512_set1_ps(m_new)));
        _mm512_store_ps(p[i] + 16 * sub, pv);
        sum = _mm512_add_ps(sum, pv);
      }
      corr[i] = _mm512_cvtss_f32(vexp(_mm512_set1_ps(m[i] - m_new)));  // 0 on the first block
      l[i] = std::fma(l[i], corr[i], _mm512_reduce_add_ps(sum));
      m[i] = m_new;
    }
    // the values: NQ * DG accumulators, one FMA chain step per key
    auto values = [&](auto cols, int64_t d0) {
      constexpr int C = decltype(cols)::value;
      __m512 o[NQ][C];
      for (int i = 0; i < NQ; ++i)
        for (int c = 0; c < C; ++c)
          o[i][c] = _mm512_mul_ps(_mm512_loadu_ps(st[i] + d0 + 16 * c), _mm512_set1_ps(corr[i]));
      for (int64_t j = 0; j < nb; ++j) {
        const uint8_t* vr = vg + (s0 + j) * row_bytes;
        __m512 pj[NQ];
        for (int i = 0; i < NQ; ++i) pj[i] = _mm512_set1_ps(p[i][j]);
        for (int c = 0; c < C; ++c) {
          const __m512 vv = L::load(vr, d0 + 16 * c);
          for (int i = 0; i < NQ; ++i) o[i][c] = _mm512_fmadd_ps(pj[i], vv, o[i][c]);
        }
      }
      for (int i = 0; i < NQ; ++i)
        for (int c = 0; c < C; ++c) _mm512_storeu_ps(st[i] + d0 + 16 * c, o[i][c]);
    };
    int64_t d0 = 0;
    for (; d0 + 16 * DG <= D; d0 += 16 * DG) values(std::integral_constant<int, DG>{}, d0);
    for (; d0 < D; d0 += 16) values(std::integral_constant<int, 1>{}, d0);
  }
  end_pass<NQ>(st, m, l, D);
}

template <DType KT, int NQ>
struct Keys {
  static constexpr DecodeAttendFn run = attend_keys<KT, NQ>;
};

}  // namespace

void attention_split_range_avx512(float* part, const float* q, const void* k, const void* v, DType kv_type,
                                  int64_t kv_stride, int64_t head_stride, int64_t T, int64_t S, int64_t Hq,
                                  int64_t Hkv, int64_t D, float scale, bool causal, int64_t n_split, int64_t i0,
                                  int64_t i1) {
  if (D % 16 != 0)
    return attention_split_range_avx2(part, q, k, v, kv_type, kv_stride, head_stride, T, S, Hq, Hkv, D, scale, causal,
                                      n_split, i0, i1);
  decode_split_range<kRows, Keys>(part, q, k, v, kv_type, kv_stride, head_stride, T, S, Hq, Hkv, D, scale, causal,
                                  n_split, i0, i1);
}

}  // namespace ninestep
