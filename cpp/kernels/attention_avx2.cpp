// Grouped-query attention with an online softmax, AVX2 + FMA. The same two shapes of work as
// attention_avx512.cpp (see there), with 8 lanes: a 16-query tile runs as two 8-query halves.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "kernels/nn.h"
#include "kernels/attention_kv_avx2.h"
#include "kernels/simd_avx2.h"
#include "kernels/vexp_avx2.h"

namespace ninestep {

namespace {

constexpr int64_t kMaxTileD = 256;  // the lane-per-query tile keeps q and the output ([D][8]) on the stack
constexpr int64_t kMinTileQueries = 4;

const float kNegInf = -std::numeric_limits<float>::infinity();

// One query, lanes over D. o [D] is the output row and the accumulator; q [D]; the head of key /
// value row s at kg / vg + s * row_bytes.
template <DType KT>
void attend_row(float* o, const float* q, const uint8_t* kg, const uint8_t* vg, int64_t row_bytes, int64_t lo,
                int64_t n_keys, int64_t D, float scale) {
  using L = KvAvx2<KT>;
  const int64_t dv = D & ~int64_t(7);
  const __m256i md = first_n(D - dv);
  const bool dtail = dv < D;
  alignas(32) float p[8];
  float m = kNegInf, l = 0.0f;
  std::fill(o, o + D, 0.0f);
  for (int64_t s0 = lo; s0 < n_keys; s0 += 8) {
    const int64_t nb = std::min<int64_t>(8, n_keys - s0);
    for (int64_t j = 0; j < nb; ++j) {
      const uint8_t* kr = kg + (s0 + j) * row_bytes;
      __m256 a = _mm256_setzero_ps();
      for (int64_t d = 0; d < dv; d += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), L::load8(kr, d), a);
      if (dtail) a = _mm256_fmadd_ps(_mm256_maskload_ps(q + dv, md), L::load_part(kr, dv, D - dv), a);
      p[j] = hsum(a);
    }
    const __m256 sc = _mm256_blendv_ps(_mm256_set1_ps(kNegInf), _mm256_mul_ps(_mm256_load_ps(p), _mm256_set1_ps(scale)),
                                       _mm256_castsi256_ps(first_n(nb)));
    const float m_new = std::max(m, hmax(sc));
    const __m256 pv = vexp(_mm256_sub_ps(sc, _mm256_set1_ps(m_new)));
    _mm256_store_ps(p, pv);
    const __m256 corr = vexp(_mm256_set1_ps(m - m_new));  // 0 on the first block
    l = l * _mm256_cvtss_f32(corr) + hsum(pv);
    m = m_new;
    for (int64_t d = 0; d < dv; d += 8) {
      __m256 acc = _mm256_mul_ps(_mm256_loadu_ps(o + d), corr);
      for (int64_t j = 0; j < nb; ++j)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), L::load8(vg + (s0 + j) * row_bytes, d), acc);
      _mm256_storeu_ps(o + d, acc);
    }
    if (dtail) {
      __m256 acc = _mm256_mul_ps(_mm256_maskload_ps(o + dv, md), corr);
      for (int64_t j = 0; j < nb; ++j)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), L::load_part(vg + (s0 + j) * row_bytes, dv, D - dv), acc);
      _mm256_maskstore_ps(o + dv, md, acc);
    }
  }
  const float inv = 1.0f / l;
  for (int64_t d = 0; d < D; ++d) o[d] *= inv;
}

// Scores of KJ keys (rows kr[0 .. KJ)) for the 8 query lanes of each of NH heads (qT[h] [D][8]):
// lane t of sc[h][c0 + j] = q_{h,t} . k_j. Each key element is broadcast once for all NH heads.
template <int NH, int KJ, int W>
inline void scores(__m256 (*sc)[W], int c0, const float* const* qT, const float* const* kr, int64_t D) {
  __m256 a[NH][KJ];
  for (int h = 0; h < NH; ++h)
    for (int j = 0; j < KJ; ++j) a[h][j] = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int64_t d = 0; d < D; ++d) {
    __m256 qv[NH];
    for (int h = 0; h < NH; ++h) qv[h] = _mm256_load_ps(qT[h] + d * 8);
    for (int j = 0; j < KJ; ++j) {
      const __m256 b = _mm256_broadcast_ss(kr[j] + d);
      for (int h = 0; h < NH; ++h) a[h][j] = _mm256_fmadd_ps(qv[h], b, a[h][j]);
    }
  }
  for (int h = 0; h < NH; ++h)
    for (int j = 0; j < KJ; ++j) sc[h][c0 + j] = a[h][j];
}

// oT[h] [D][8] += sum over keys j < nb of pb[h][j] (8 lanes) * value row vr[j]: each value element
// is broadcast once for all NH heads, DB output rows at a time.
template <int NH>
inline void add_values(float* const* oT, const float* const* pb, const float* const* vr, int64_t nb, int64_t D) {
  constexpr int DB = NH == 1 ? 8 : 4;  // NH * DB accumulators + NH probabilities + 1 broadcast <= 16 registers
  int64_t d0 = 0;
  for (; d0 + DB <= D; d0 += DB) {
    __m256 o[NH][DB];
    for (int h = 0; h < NH; ++h)
      for (int i = 0; i < DB; ++i) o[h][i] = _mm256_load_ps(oT[h] + (d0 + i) * 8);
#pragma GCC unroll 4
    for (int64_t j = 0; j < nb; ++j) {
      __m256 p[NH];
      for (int h = 0; h < NH; ++h) p[h] = _mm256_load_ps(pb[h] + j * 8);
      const float* vrow = vr[j] + d0;
      for (int i = 0; i < DB; ++i) {
        const __m256 b = _mm256_broadcast_ss(vrow + i);
        for (int h = 0; h < NH; ++h) o[h][i] = _mm256_fmadd_ps(p[h], b, o[h][i]);
      }
    }
    for (int h = 0; h < NH; ++h)
      for (int i = 0; i < DB; ++i) _mm256_store_ps(oT[h] + (d0 + i) * 8, o[h][i]);
  }
  for (; d0 < D; ++d0)  // head sizes that are not a multiple of DB
    for (int h = 0; h < NH; ++h) {
      __m256 o = _mm256_load_ps(oT[h] + d0 * 8);
      for (int64_t j = 0; j < nb; ++j)
        o = _mm256_fmadd_ps(_mm256_load_ps(pb[h] + j * 8), _mm256_broadcast_ss(vr[j] + d0), o);
      _mm256_store_ps(oT[h] + d0 * 8, o);
    }
}

// Queries ta .. ta + nq - 1 (nq <= 8, one per lane) of the NH query heads h0 .. h0 + NH - 1, which
// share the KV head at kg / vg (position 0, rows row_bytes apart). f32 rows are read in place; other
// types are converted a block of 8 keys at a time into kp / vp first, once for all NH heads. Each
// head's arithmetic is the same, in the same order, as it would be alone.
template <DType KT, int NH>
void attend_tile(float* out, const float* q, const uint8_t* kg, const uint8_t* vg, int64_t row_bytes, int64_t T,
                 int64_t S, int64_t Hq, int64_t h0, int64_t D, float scale, bool causal, int64_t window, int64_t ta,
                 int64_t nq) {
  constexpr bool in_place = KT == DType::f32;
  constexpr int KJ = NH == 1 ? 8 : 4;  // keys per pass of the scores: NH * KJ accumulators
  // Keys per softmax step: kSub sub-blocks of 8. One max, one rescale and one pass of the output
  // accumulators through the registers per kBlock keys instead of per 8.
  constexpr int kSub = 4, kBlock = 8 * kSub;
  alignas(32) float kp[in_place ? 1 : kBlock * kMaxTileD];  // [kBlock][D] this block's keys and values as floats
  alignas(32) float vp[in_place ? 1 : kBlock * kMaxTileD];
  alignas(32) float qT[NH][kMaxTileD * 8];  // [D][8] per head, pre-scaled
  alignas(32) float oT[NH][kMaxTileD * 8];  // [D][8] per head, unnormalised output
  alignas(32) float pb[NH][kBlock * 8];     // [key][8] per head: probabilities of the current block
  const float* qTh[NH];
  float* oTh[NH];
  const float* pbh[NH];
  for (int h = 0; h < NH; ++h) {
    for (int64_t t = 0; t < 8; ++t)
      for (int64_t d = 0; d < D; ++d) qT[h][d * 8 + t] = t < nq ? q[((ta + t) * Hq + h0 + h) * D + d] * scale : 0.0f;
    std::fill(oT[h], oT[h] + D * 8, 0.0f);
    qTh[h] = qT[h], oTh[h] = oT[h], pbh[h] = pb[h];
  }
  // lane t sees keys s <= lane_last[t]; padding lanes see everything (their results are dropped)
  const int64_t first_last = causal ? S - T + ta : S - 1;
  const __m256i lane_last = _mm256_blendv_epi8(
      _mm256_set1_epi32(INT32_MAX),
      causal ? _mm256_add_epi32(_mm256_set1_epi32((int32_t)first_last), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
             : _mm256_set1_epi32((int32_t)first_last),
      first_n(nq));
  const int64_t n_keys = causal ? first_last + nq : S;
  // With a window, lane t also hides keys s < lane_first[t] = lane_last[t] - window + 1; the block
  // loop starts at lane 0's first key (the smallest), rounded down to a multiple of 8.
  const bool windowed = causal && window > 0;
  const int64_t first_first = windowed ? std::max<int64_t>(0, first_last - window + 1) : 0;
  const __m256i lane_first = _mm256_and_si256(  // padding lanes: 0
      _mm256_sub_epi32(lane_last, _mm256_set1_epi32(windowed ? (int32_t)(window - 1) : 0)), first_n(nq));
  __m256 m[NH], l[NH];
  for (int h = 0; h < NH; ++h) m[h] = _mm256_set1_ps(kNegInf), l[h] = _mm256_setzero_ps();
  for (int64_t s0 = first_first & ~int64_t(7); s0 < n_keys; s0 += kBlock) {
    const int64_t nb = std::min<int64_t>(kBlock, n_keys - s0);
    const int nsub = (int)((nb + 7) / 8);
    __m256 sc[NH][kBlock];
    const float* vr[kBlock];  // [nb] value rows
    for (int b = 0; b < nsub; ++b) {
      const int64_t sb = s0 + 8 * b, nbb = std::min<int64_t>(8, nb - 8 * b);
      const float* kr[8];  // rows past the last key repeat it; their scores are masked below
      for (int64_t j = 0; j < 8; ++j) {
        const int64_t s = std::min(sb + j, sb + nbb - 1);
        if constexpr (in_place) {
          kr[j] = reinterpret_cast<const float*>(kg + s * row_bytes);
          vr[8 * b + j] = reinterpret_cast<const float*>(vg + s * row_bytes);
        } else {
          float* kj = kp + (8 * b + j) * D;
          float* vj = vp + (8 * b + j) * D;
          kr[j] = kj, vr[8 * b + j] = vj;
          if (j < nbb) {
            kv_head_to_f32<KT>(kj, kg + s * row_bytes, D);
            kv_head_to_f32<KT>(vj, vg + s * row_bytes, D);
          }
        }
      }
      for (int j0 = 0; j0 < 8; j0 += KJ) scores<NH, KJ, kBlock>(sc, 8 * b + j0, qTh, kr + j0, D);
      // the sub-block reaches past what every lane may see, or (windowed) before what some lane may see
      if (sb + 8 > first_last + 1 || (windowed && sb < first_last - window + nq)) {
        for (int64_t j = 0; j < 8; ++j) {
          const __m256i s = _mm256_set1_epi32((int32_t)(sb + j));
          __m256i hide = j >= nbb ? _mm256_set1_epi32(-1) : _mm256_cmpgt_epi32(s, lane_last);
          if (windowed) hide = _mm256_or_si256(hide, _mm256_cmpgt_epi32(lane_first, s));
          for (int h = 0; h < NH; ++h)
            sc[h][8 * b + j] = _mm256_blendv_ps(sc[h][8 * b + j], _mm256_set1_ps(kNegInf), _mm256_castsi256_ps(hide));
        }
      }
    }
    for (int h = 0; h < NH; ++h) {
      __m256 bm = sc[h][0];
      for (int64_t j = 1; j < 8 * nsub; ++j) bm = _mm256_max_ps(bm, sc[h][j]);
      const __m256 m_new = _mm256_max_ps(m[h], bm);
      // A windowed lane may see no key of a block yet (max -inf): exponents relative to 0 keep its
      // state (0, 0) instead of exp(-inf - -inf) = NaN.
      const __m256 m_ref = windowed ? _mm256_blendv_ps(m_new, _mm256_setzero_ps(),
                                                       _mm256_cmp_ps(m_new, _mm256_set1_ps(kNegInf), _CMP_EQ_OQ))
                                    : m_new;
      const __m256 corr = vexp(_mm256_sub_ps(m[h], m_ref));
      __m256 sum = _mm256_setzero_ps();
      for (int64_t j = 0; j < nb; ++j) {
        const __m256 pj = vexp(_mm256_sub_ps(sc[h][j], m_ref));
        _mm256_store_ps(pb[h] + j * 8, pj);
        sum = _mm256_add_ps(sum, pj);
      }
      l[h] = _mm256_fmadd_ps(l[h], corr, sum);
      if (_mm256_movemask_ps(_mm256_cmp_ps(m_new, m[h], _CMP_NEQ_UQ)))  // some lane's max moved: rescale
        for (int64_t d = 0; d < D; ++d)
          _mm256_store_ps(oT[h] + d * 8, _mm256_mul_ps(_mm256_load_ps(oT[h] + d * 8), corr));
      m[h] = m_new;
    }
    add_values<NH>(oTh, pbh, vr, nb, D);
  }
  for (int h = 0; h < NH; ++h) {
    alignas(32) float inv[8];
    _mm256_store_ps(inv, _mm256_div_ps(_mm256_set1_ps(1.0f), l[h]));
    for (int64_t t = 0; t < nq; ++t)
      for (int64_t d = 0; d < D; ++d) out[((ta + t) * Hq + h0 + h) * D + d] = oT[h][d * 8 + t] * inv[t];
  }
}

using TileFn = void (*)(float*, const float*, const uint8_t*, const uint8_t*, int64_t, int64_t, int64_t, int64_t,
                        int64_t, int64_t, float, bool, int64_t, int64_t, int64_t);

template <DType KT>
void run_items(float* out, const float* q, const uint8_t* k, const uint8_t* v, int64_t row_bytes, int64_t hs, int64_t T,
               int64_t S, int64_t Hq, int64_t Hkv, int64_t D, float scale, bool causal, int64_t window, int64_t i0,
               int64_t i1) {
  static_assert(kAttnPassHeads == 3, "one tile per pass size");
  static constexpr TileFn kTile[4] = {nullptr, attend_tile<KT, 1>, attend_tile<KT, 2>, attend_tile<KT, 3>};
  for (int64_t item = i0; item < i1; ++item) {
    const AttnItem it = attention_item(item, T, Hq, Hkv);
    const int64_t g = it.h0 / (Hq / Hkv);
    const uint8_t* kg = KvAvx2<KT>::head(k, g * hs);
    const uint8_t* vg = KvAvx2<KT>::head(v, g * hs);
    for (int64_t ta = it.t0; ta < it.t1; ta += 8) {
      const int64_t nq = std::min<int64_t>(8, it.t1 - ta);
      if (nq >= kMinTileQueries && D <= kMaxTileD) {
        kTile[it.nh](out, q, kg, vg, row_bytes, T, S, Hq, it.h0, D, scale, causal, window, ta, nq);
        continue;
      }
      for (int64_t h = it.h0; h < it.h0 + it.nh; ++h)
        for (int64_t t = ta; t < ta + nq; ++t) {
          const int64_t n_keys = causal ? S - T + t + 1 : S;
          const int64_t lo = causal && window > 0 ? std::max<int64_t>(0, n_keys - window) : 0;
          attend_row<KT>(out + (t * Hq + h) * D, q + (t * Hq + h) * D, kg, vg, row_bytes, lo, n_keys, D, scale);
        }
    }
  }
}

}  // namespace

void attention_range_avx2(float* out, const float* q, const void* k, const void* v, DType kv_type, int64_t kv_stride,
                          int64_t head_stride, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                          bool causal, int64_t window, int64_t i0, int64_t i1) {
  const int64_t rb = dtype_row_bytes(kv_type, kv_stride);
  with_kv_type(kv_type, [&](auto kt) {
    run_items<decltype(kt)::value>(out, q, static_cast<const uint8_t*>(k), static_cast<const uint8_t*>(v), rb,
                                   head_stride, T, S, Hq, Hkv, D, scale, causal, window, i0, i1);
  });
}

}  // namespace ninestep
