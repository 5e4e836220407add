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

// Scores of 8 keys (rows kr[0..8)) for the 8 lanes of qT [D][8]: lane t of sc[j] = q_t . k_j.
inline void scores8(__m256* sc, const float* qT, const float* const* kr, int64_t D) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (int64_t d = 0; d < D; ++d) {
    const __m256 qv = _mm256_load_ps(qT + d * 8);
    a0 = _mm256_fmadd_ps(qv, _mm256_broadcast_ss(kr[0] + d), a0);
    a1 = _mm256_fmadd_ps(qv, _mm256_broadcast_ss(kr[1] + d), a1);
    a2 = _mm256_fmadd_ps(qv, _mm256_broadcast_ss(kr[2] + d), a2);
    a3 = _mm256_fmadd_ps(qv, _mm256_broadcast_ss(kr[3] + d), a3);
    a4 = _mm256_fmadd_ps(qv, _mm256_broadcast_ss(kr[4] + d), a4);
    a5 = _mm256_fmadd_ps(qv, _mm256_broadcast_ss(kr[5] + d), a5);
    a6 = _mm256_fmadd_ps(qv, _mm256_broadcast_ss(kr[6] + d), a6);
    a7 = _mm256_fmadd_ps(qv, _mm256_broadcast_ss(kr[7] + d), a7);
  }
  sc[0] = a0, sc[1] = a1, sc[2] = a2, sc[3] = a3, sc[4] = a4, sc[5] = a5, sc[6] = a6, sc[7] = a7;
}

// Queries ta .. ta + nq - 1 (nq <= 8) of head h, one per lane; kg / vg point at the KV head of
// position 0, rows row_bytes apart. f32 rows are read in place; other types are converted a block
// of 8 keys at a time into kp / vp first.
template <DType KT>
void attend_tile(float* out, const float* q, const uint8_t* kg, const uint8_t* vg, int64_t row_bytes, int64_t T,
                 int64_t S, int64_t Hq, int64_t h, int64_t D, float scale, bool causal, int64_t window, int64_t ta,
                 int64_t nq) {
  constexpr bool in_place = KT == DType::f32;
  alignas(32) float kp[in_place ? 1 : 8 * kMaxTileD];  // [8][D] this block's keys and values as floats
  alignas(32) float vp[in_place ? 1 : 8 * kMaxTileD];
  alignas(32) float qT[kMaxTileD * 8];  // [D][8], pre-scaled
  alignas(32) float oT[kMaxTileD * 8];  // [D][8], unnormalised output
  alignas(32) float pb[8 * 8];          // [key][8] probabilities of the current block
  for (int64_t t = 0; t < 8; ++t)
    for (int64_t d = 0; d < D; ++d) qT[d * 8 + t] = t < nq ? q[((ta + t) * Hq + h) * D + d] * scale : 0.0f;
  std::fill(oT, oT + D * 8, 0.0f);
  // lane t sees keys s <= lane_last[t]; padding lanes see everything (their results are dropped)
  const int64_t first_last = causal ? S - T + ta : S - 1;
  const __m256i lane_last = _mm256_blendv_epi8(
      _mm256_set1_epi32(INT32_MAX),
      causal ? _mm256_add_epi32(_mm256_set1_epi32((int32_t)first_last), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
             : _mm256_set1_epi32((int32_t)first_last),
      first_n(nq));
  const int64_t n_keys = causal ? first_last + nq : S;
  // With a window, lane t also hides keys s < lane_first[t] = lane_last[t] - window + 1; the block
  // loop starts at lane 0's first key (the smallest), rounded down to a block of 8.
  const bool windowed = causal && window > 0;
  const int64_t first_first = windowed ? std::max<int64_t>(0, first_last - window + 1) : 0;
  const __m256i lane_first = _mm256_and_si256(  // padding lanes: 0
      _mm256_sub_epi32(lane_last, _mm256_set1_epi32(windowed ? (int32_t)(window - 1) : 0)), first_n(nq));
  __m256 m = _mm256_set1_ps(kNegInf), l = _mm256_setzero_ps();
  for (int64_t s0 = first_first & ~int64_t(7); s0 < n_keys; s0 += 8) {
    const int64_t nb = std::min<int64_t>(8, n_keys - s0);
    __m256 sc[8];
    const float* kr[8];  // rows past the last key repeat it; their scores are masked below
    const float* vr[8];  // [nb] value rows
    for (int64_t j = 0; j < 8; ++j) {
      const int64_t s = std::min(s0 + j, s0 + nb - 1);
      if constexpr (in_place) {
        kr[j] = reinterpret_cast<const float*>(kg + s * row_bytes);
        vr[j] = reinterpret_cast<const float*>(vg + s * row_bytes);
      } else {
        kr[j] = kp + j * D, vr[j] = vp + j * D;
        if (j < nb) {
          kv_head_to_f32<KT>(kp + j * D, kg + s * row_bytes, D);
          kv_head_to_f32<KT>(vp + j * D, vg + s * row_bytes, D);
        }
      }
    }
    scores8(sc, qT, kr, D);
    // the block reaches past what every lane may see, or (windowed) before what some lane may see
    if (s0 + 8 > first_last + 1 || (windowed && s0 < first_last - window + nq)) {
      for (int64_t j = 0; j < 8; ++j) {
        const __m256i s = _mm256_set1_epi32((int32_t)(s0 + j));
        __m256i hide = j >= nb ? _mm256_set1_epi32(-1) : _mm256_cmpgt_epi32(s, lane_last);
        if (windowed) hide = _mm256_or_si256(hide, _mm256_cmpgt_epi32(lane_first, s));
        sc[j] = _mm256_blendv_ps(sc[j], _mm256_set1_ps(kNegInf), _mm256_castsi256_ps(hide));
      }
    }
    __m256 bm = sc[0];
    for (int64_t j = 1; j < 8; ++j) bm = _mm256_max_ps(bm, sc[j]);
    const __m256 m_new = _mm256_max_ps(m, bm);
    // A windowed lane may see no key of a block yet (max -inf): exponents relative to 0 keep its
    // state (0, 0) instead of exp(-inf - -inf) = NaN.
    const __m256 m_ref =
        windowed ? _mm256_blendv_ps(m_new, _mm256_setzero_ps(), _mm256_cmp_ps(m_new, _mm256_set1_ps(kNegInf), _CMP_EQ_OQ))
                 : m_new;
    const __m256 corr = vexp(_mm256_sub_ps(m, m_ref));
    __m256 sum = _mm256_setzero_ps();
    for (int64_t j = 0; j < nb; ++j) {
      const __m256 pj = vexp(_mm256_sub_ps(sc[j], m_ref));
      _mm256_store_ps(pb + j * 8, pj);
      sum = _mm256_add_ps(sum, pj);
    }
    l = _mm256_fmadd_ps(l, corr, sum);
    if (_mm256_movemask_ps(_mm256_cmp_ps(m_new, m, _CMP_NEQ_UQ)))  // some lane's max moved: rescale
      for (int64_t d = 0; d < D; ++d) _mm256_store_ps(oT + d * 8, _mm256_mul_ps(_mm256_load_ps(oT + d * 8), corr));
    m = m_new;
    int64_t d0 = 0;
    for (; d0 + 8 <= D; d0 += 8) {
      __m256 o0 = _mm256_load_ps(oT + (d0 + 0) * 8), o1 = _mm256_load_ps(oT + (d0 + 1) * 8);
      __m256 o2 = _mm256_load_ps(oT + (d0 + 2) * 8), o3 = _mm256_load_ps(oT + (d0 + 3) * 8);
      __m256 o4 = _mm256_load_ps(oT + (d0 + 4) * 8), o5 = _mm256_load_ps(oT + (d0 + 5) * 8);
      __m256 o6 = _mm256_load_ps(oT + (d0 + 6) * 8), o7 = _mm256_load_ps(oT + (d0 + 7) * 8);
      for (int64_t j = 0; j < nb; ++j) {
        const __m256 pj = _mm256_load_ps(pb + j * 8);
        const float* vrow = vr[j] + d0;
        o0 = _mm256_fmadd_ps(pj, _mm256_broadcast_ss(vrow + 0), o0);
        o1 = _mm256_fmadd_ps(pj, _mm256_broadcast_ss(vrow + 1), o1);
        o2 = _mm256_fmadd_ps(pj, _mm256_broadcast_ss(vrow + 2), o2);
        o3 = _mm256_fmadd_ps(pj, _mm256_broadcast_ss(vrow + 3), o3);
        o4 = _mm256_fmadd_ps(pj, _mm256_broadcast_ss(vrow + 4), o4);
        o5 = _mm256_fmadd_ps(pj, _mm256_broadcast_ss(vrow + 5), o5);
        o6 = _mm256_fmadd_ps(pj, _mm256_broadcast_ss(vrow + 6), o6);
        o7 = _mm256_fmadd_ps(pj, _mm256_broadcast_ss(vrow + 7), o7);
      }
      _mm256_store_ps(oT + (d0 + 0) * 8, o0), _mm256_store_ps(oT + (d0 + 1) * 8, o1);
      _mm256_store_ps(oT + (d0 + 2) * 8, o2), _mm256_store_ps(oT + (d0 + 3) * 8, o3);
      _mm256_store_ps(oT + (d0 + 4) * 8, o4), _mm256_store_ps(oT + (d0 + 5) * 8, o5);
      _mm256_store_ps(oT + (d0 + 6) * 8, o6), _mm256_store_ps(oT + (d0 + 7) * 8, o7);
    }
    for (; d0 < D; ++d0) {  // head sizes that are not a multiple of 8
      __m256 o = _mm256_load_ps(oT + d0 * 8);
      for (int64_t j = 0; j < nb; ++j)
        o = _mm256_fmadd_ps(_mm256_load_ps(pb + j * 8), _mm256_broadcast_ss(vr[j] + d0), o);
      _mm256_store_ps(oT + d0 * 8, o);
    }
  }
  alignas(32) float inv[8];
  _mm256_store_ps(inv, _mm256_div_ps(_mm256_set1_ps(1.0f), l));
  for (int64_t t = 0; t < nq; ++t)
    for (int64_t d = 0; d < D; ++d) out[((ta + t) * Hq + h) * D + d] = oT[d * 8 + t] * inv[t];
}

template <DType KT>
void run_items(float* out, const float* q, const uint8_t* k, const uint8_t* v, int64_t row_bytes, int64_t hs, int64_t T,
               int64_t S, int64_t Hq, int64_t Hkv, int64_t D, float scale, bool causal, int64_t window, int64_t i0,
               int64_t i1) {
  const int64_t tiles = (T + kAttnTile - 1) / kAttnTile, group = Hq / Hkv;
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t h = item / tiles, g = h / group;
    const int64_t t_end = std::min(T, (item % tiles + 1) * kAttnTile);
    const uint8_t* kg = KvAvx2<KT>::head(k, g * hs);
    const uint8_t* vg = KvAvx2<KT>::head(v, g * hs);
    for (int64_t ta = (item % tiles) * kAttnTile; ta < t_end; ta += 8) {
      const int64_t nq = std::min<int64_t>(8, t_end - ta);
      if (nq >= kMinTileQueries && D <= kMaxTileD) {
        attend_tile<KT>(out, q, kg, vg, row_bytes, T, S, Hq, h, D, scale, causal, window, ta, nq);
        continue;
      }
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
