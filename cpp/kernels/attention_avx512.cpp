// Grouped-query attention with an online softmax, AVX-512. Two shapes of work:
//  - a tile of >= 8 queries (prefill) puts one query per lane: scores for 8 keys at a time are a
//    small GEMM (query tile x D) x (D x 8 keys) with no horizontal sums, the running max / sum are
//    per lane, and the output accumulates transposed [D][16] on the stack;
//  - fewer queries (decode) or a head size too big for the stack tile go one query at a time with
//    lanes over D, 16 keys per block so exp runs on a full vector.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "kernels/nn.h"
#include "kernels/vexp_avx512.h"

namespace ninestep {

namespace {

constexpr int64_t kMaxTileD = 256;  // the lane-per-query tile keeps q and the output ([D][16]) on the stack
constexpr int64_t kMinTileQueries = 8;

inline __mmask16 first_n(int64_t n) { return (__mmask16)((1u << n) - 1u); }

const float kNegInf = -std::numeric_limits<float>::infinity();

// One query, lanes over D. o [D] is the output row and the accumulator; q [D]; key / value row s
// at kg / vg + s * kv_stride.
void attend_row(float* o, const float* q, const float* kg, const float* vg, int64_t kv_stride, int64_t n_keys,
                int64_t D, float scale) {
  const int64_t dv = D & ~int64_t(15);
  const __mmask16 md = first_n(D - dv);
  alignas(64) float p[16];
  float m = kNegInf, l = 0.0f;
  std::fill(o, o + D, 0.0f);
  for (int64_t s0 = 0; s0 < n_keys; s0 += 16) {
    const int64_t nb = std::min<int64_t>(16, n_keys - s0);
    for (int64_t j = 0; j < nb; ++j) {
      const float* kr = kg + (s0 + j) * kv_stride;
      __m512 a = _mm512_setzero_ps();
      for (int64_t d = 0; d < dv; d += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), _mm512_loadu_ps(kr + d), a);
      if (md) a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(md, q + dv), _mm512_maskz_loadu_ps(md, kr + dv), a);
      p[j] = _mm512_reduce_add_ps(a);
    }
    const __mmask16 mb = first_n(nb);
    const __m512 sc = _mm512_mask_mov_ps(_mm512_set1_ps(kNegInf), mb, _mm512_mul_ps(_mm512_load_ps(p), _mm512_set1_ps(scale)));
    const float m_new = std::max(m, _mm512_reduce_max_ps(sc));
    const __m512 pv = vexp(_mm512_sub_ps(sc, _mm512_set1_ps(m_new)));
    _mm512_store_ps(p, pv);
    const __m512 corr = vexp(_mm512_set1_ps(m - m_new));  // 0 on the first block
    l = l * _mm512_cvtss_f32(corr) + _mm512_reduce_add_ps(pv);
    m = m_new;
    for (int64_t d = 0; d < D; d += 16) {
      const __mmask16 mk = d < dv ? (__mmask16)0xFFFF : md;
      __m512 acc = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, o + d), corr);
      for (int64_t j = 0; j < nb; ++j)
        acc = _mm512_fmadd_ps(_mm512_set1_ps(p[j]), _mm512_maskz_loadu_ps(mk, vg + (s0 + j) * kv_stride + d), acc);
      _mm512_mask_storeu_ps(o + d, mk, acc);
    }
  }
  const __m512 inv = _mm512_set1_ps(1.0f / l);
  for (int64_t d = 0; d < D; d += 16) {
    const __mmask16 mk = d < dv ? (__mmask16)0xFFFF : md;
    _mm512_mask_storeu_ps(o + d, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, o + d), inv));
  }
}

// Scores of 8 keys (rows kr[0..8)) for the 16 lanes of qT [D][16]: lane t of sc[j] = q_t . k_j.
inline void scores8(__m512* sc, const float* qT, const float* const* kr, int64_t D) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (int64_t d = 0; d < D; ++d) {
    const __m512 qv = _mm512_load_ps(qT + d * 16);
    a0 = _mm512_fmadd_ps(qv, _mm512_set1_ps(kr[0][d]), a0);
    a1 = _mm512_fmadd_ps(qv, _mm512_set1_ps(kr[1][d]), a1);
    a2 = _mm512_fmadd_ps(qv, _mm512_set1_ps(kr[2][d]), a2);
    a3 = _mm512_fmadd_ps(qv, _mm512_set1_ps(kr[3][d]), a3);
    a4 = _mm512_fmadd_ps(qv, _mm512_set1_ps(kr[4][d]), a4);
    a5 = _mm512_fmadd_ps(qv, _mm512_set1_ps(kr[5][d]), a5);
    a6 = _mm512_fmadd_ps(qv, _mm512_set1_ps(kr[6][d]), a6);
    a7 = _mm512_fmadd_ps(qv, _mm512_set1_ps(kr[7][d]), a7);
  }
  sc[0] = a0, sc[1] = a1, sc[2] = a2, sc[3] = a3, sc[4] = a4, sc[5] = a5, sc[6] = a6, sc[7] = a7;
}

// The K / V rows of a block of up to 16 keys as floats: row j at k + j * stride (and v). f32 rows
// are read in place; f16 rows (D % 16 == 0) are converted into kp / vp first.
struct BlockRows {
  const float *k, *v;
  int64_t stride;
};
template <DType KT>
inline BlockRows block_rows(const uint8_t* kg, const uint8_t* vg, int64_t row_bytes, int64_t s0, int64_t nb, int64_t D,
                            float* kp, float* vp) {
  if constexpr (KT == DType::f32) {
    return {reinterpret_cast<const float*>(kg + s0 * row_bytes), reinterpret_cast<const float*>(vg + s0 * row_bytes),
            row_bytes / 4};
  } else {
    static_assert(KT == DType::f16, "f32 or f16 rows");
    for (int64_t j = 0; j < nb; ++j) {
      const auto* kr = reinterpret_cast<const __m256i*>(kg + (s0 + j) * row_bytes);
      const auto* vr = reinterpret_cast<const __m256i*>(vg + (s0 + j) * row_bytes);
      for (int64_t d = 0; d < D; d += 16) {
        _mm512_store_ps(kp + j * D + d, _mm512_cvtph_ps(_mm256_loadu_si256(kr + d / 16)));
        _mm512_store_ps(vp + j * D + d, _mm512_cvtph_ps(_mm256_loadu_si256(vr + d / 16)));
      }
    }
    return {kp, vp, D};
  }
}

// Queries ta .. ta + nq - 1 (nq <= 16) of head h, one per lane; kg / vg point at the KV head (rows
// row_bytes apart). Each head's arithmetic is the same, in the same order, for either cache type.
template <DType KT>
void attend_tile(float* out, const float* q, const uint8_t* kg, const uint8_t* vg, int64_t row_bytes, int64_t T,
                 int64_t S, int64_t Hq, int64_t h, int64_t D, float scale, bool causal, int64_t ta, int64_t nq) {
  constexpr bool in_place = KT == DType::f32;
  alignas(64) float qT[kMaxTileD * 16];  // [D][16], pre-scaled
  alignas(64) float oT[kMaxTileD * 16];  // [D][16], unnormalised output
  alignas(64) float pb[16 * 16];         // [key][16] probabilities of the current block
  alignas(64) float kp[in_place ? 1 : 16 * kMaxTileD];  // [16][D] the block's keys and values as floats
  alignas(64) float vp[in_place ? 1 : 16 * kMaxTileD];
  for (int64_t t = 0; t < 16; ++t)
    for (int64_t d = 0; d < D; ++d) qT[d * 16 + t] = t < nq ? q[((ta + t) * Hq + h) * D + d] * scale : 0.0f;
  std::fill(oT, oT + D * 16, 0.0f);
  // lane t sees keys s <= last[t]; padding lanes see everything (their results are dropped)
  const int64_t first_last = causal ? S - T + ta : S - 1;
  const __m512i lane_last = _mm512_mask_blend_epi32(
      first_n(nq), _mm512_set1_epi32(INT32_MAX),
      causal ? _mm512_add_epi32(_mm512_set1_epi32((int32_t)first_last),
                                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
             : _mm512_set1_epi32((int32_t)first_last));
  const int64_t n_keys = causal ? first_last + nq : S;
  __m512 m = _mm512_set1_ps(kNegInf), l = _mm512_setzero_ps();
  for (int64_t s0 = 0; s0 < n_keys; s0 += 16) {
    const int64_t nb = std::min<int64_t>(16, n_keys - s0);
    const BlockRows rows = block_rows<KT>(kg, vg, row_bytes, s0, nb, D, kp, vp);
    __m512 sc[16];
    for (int64_t g = 0; g < 16; g += 8) {
      if (g >= nb) {
        for (int64_t j = g; j < g + 8; ++j) sc[j] = _mm512_set1_ps(kNegInf);
        continue;
      }
      const float* kr[8];  // rows past the last key repeat it; their scores are masked below
      for (int64_t j = 0; j < 8; ++j) kr[j] = rows.k + std::min(g + j, nb - 1) * rows.stride;
      scores8(sc + g, qT, kr, D);
    }
    if (s0 + 16 > first_last + 1) {  // the block reaches past what every lane may see
      for (int64_t j = 0; j < 16; ++j) {
        const __mmask16 hide = j >= nb ? (__mmask16)0xFFFF
                                       : _mm512_cmpgt_epi32_mask(_mm512_set1_epi32((int32_t)(s0 + j)), lane_last);
        sc[j] = _mm512_mask_mov_ps(sc[j], hide, _mm512_set1_ps(kNegInf));
      }
    }
    __m512 bm = sc[0];
    for (int64_t j = 1; j < 16; ++j) bm = _mm512_max_ps(bm, sc[j]);
    const __m512 m_new = _mm512_max_ps(m, bm);
    const __m512 corr = vexp(_mm512_sub_ps(m, m_new));
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < nb; ++j) {
      const __m512 pj = vexp(_mm512_sub_ps(sc[j], m_new));
      _mm512_store_ps(pb + j * 16, pj);
      sum = _mm512_add_ps(sum, pj);
    }
    l = _mm512_fmadd_ps(l, corr, sum);
    if (_mm512_cmp_ps_mask(m_new, m, _CMP_NEQ_UQ))  // some lane's max moved: rescale what it has so far
      for (int64_t d = 0; d < D; ++d) _mm512_store_ps(oT + d * 16, _mm512_mul_ps(_mm512_load_ps(oT + d * 16), corr));
    m = m_new;
    int64_t d0 = 0;
    for (; d0 + 8 <= D; d0 += 8) {
      __m512 o0 = _mm512_load_ps(oT + (d0 + 0) * 16), o1 = _mm512_load_ps(oT + (d0 + 1) * 16);
      __m512 o2 = _mm512_load_ps(oT + (d0 + 2) * 16), o3 = _mm512_load_ps(oT + (d0 + 3) * 16);
      __m512 o4 = _mm512_load_ps(oT + (d0 + 4) * 16), o5 = _mm512_load_ps(oT + (d0 + 5) * 16);
      __m512 o6 = _mm512_load_ps(oT + (d0 + 6) * 16), o7 = _mm512_load_ps(oT + (d0 + 7) * 16);
      for (int64_t j = 0; j < nb; ++j) {
        const __m512 pj = _mm512_load_ps(pb + j * 16);
        const float* vr = rows.v + j * rows.stride + d0;
        o0 = _mm512_fmadd_ps(pj, _mm512_set1_ps(vr[0]), o0);
        o1 = _mm512_fmadd_ps(pj, _mm512_set1_ps(vr[1]), o1);
        o2 = _mm512_fmadd_ps(pj, _mm512_set1_ps(vr[2]), o2);
        o3 = _mm512_fmadd_ps(pj, _mm512_set1_ps(vr[3]), o3);
        o4 = _mm512_fmadd_ps(pj, _mm512_set1_ps(vr[4]), o4);
        o5 = _mm512_fmadd_ps(pj, _mm512_set1_ps(vr[5]), o5);
        o6 = _mm512_fmadd_ps(pj, _mm512_set1_ps(vr[6]), o6);
        o7 = _mm512_fmadd_ps(pj, _mm512_set1_ps(vr[7]), o7);
      }
      _mm512_store_ps(oT + (d0 + 0) * 16, o0), _mm512_store_ps(oT + (d0 + 1) * 16, o1);
      _mm512_store_ps(oT + (d0 + 2) * 16, o2), _mm512_store_ps(oT + (d0 + 3) * 16, o3);
      _mm512_store_ps(oT + (d0 + 4) * 16, o4), _mm512_store_ps(oT + (d0 + 5) * 16, o5);
      _mm512_store_ps(oT + (d0 + 6) * 16, o6), _mm512_store_ps(oT + (d0 + 7) * 16, o7);
    }
    for (; d0 < D; ++d0) {  // head sizes that are not a multiple of 8
      __m512 o = _mm512_load_ps(oT + d0 * 16);
      for (int64_t j = 0; j < nb; ++j)
        o = _mm512_fmadd_ps(_mm512_load_ps(pb + j * 16), _mm512_set1_ps(rows.v[j * rows.stride + d0]), o);
      _mm512_store_ps(oT + d0 * 16, o);
    }
  }
  alignas(64) float inv[16];
  _mm512_store_ps(inv, _mm512_div_ps(_mm512_set1_ps(1.0f), l));
  for (int64_t t = 0; t < nq; ++t)
    for (int64_t d = 0; d < D; ++d) out[((ta + t) * Hq + h) * D + d] = oT[d * 16 + t] * inv[t];
}

}  // namespace

void attention_range_avx2(float*, const float*, const void*, const void*, DType, int64_t, int64_t, int64_t, int64_t,
                          int64_t, int64_t, int64_t, float, bool, int64_t, int64_t, int64_t);

// attention_range's contract for f32 caches, and for f16 ones where D % 16 == 0 in the query tiles;
// the rest (other cache types, a sliding window that hides keys, f16 items of fewer than 8
// queries or other head sizes) runs the AVX2 kernel.
void attention_range_avx512(float* out, const float* q, const void* k, const void* v, DType kv_type, int64_t kv_stride,
                            int64_t head_stride, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                            bool causal, int64_t window, int64_t i0, int64_t i1) {
  const bool f16 = kv_type == DType::f16 && D % 16 == 0;
  // The 16-lane tile has no window mask yet (it could not be checked on an AVX-512 machine when
  // windows were added).
  if ((kv_type != DType::f32 && !f16) || (causal && window > 0 && window < S)) {
    attention_range_avx2(out, q, k, v, kv_type, kv_stride, head_stride, T, S, Hq, Hkv, D, scale, causal, window, i0,
                         i1);
    return;
  }
  const int64_t es = dtype_info(kv_type).block_bytes, rb = kv_stride * es;  // element and row bytes
  for (int64_t item = i0; item < i1; ++item) {
    const AttnItem it = attention_item(item, T, Hq, Hkv);
    const int64_t ta = it.t0, nq = it.t1 - it.t0, g = it.h0 / (Hq / Hkv);
    const bool tile = nq >= kMinTileQueries && D <= kMaxTileD;
    if (f16 && !tile) {
      attention_range_avx2(out, q, k, v, kv_type, kv_stride, head_stride, T, S, Hq, Hkv, D, scale, causal, window,
                           item, item + 1);
      continue;
    }
    const uint8_t* kg = static_cast<const uint8_t*>(k) + g * head_stride * es;
    const uint8_t* vg = static_cast<const uint8_t*>(v) + g * head_stride * es;
    for (int64_t h = it.h0; h < it.h0 + it.nh; ++h) {
      if (tile) {
        (f16 ? attend_tile<DType::f16> : attend_tile<DType::f32>)(out, q, kg, vg, rb, T, S, Hq, h, D, scale, causal,
                                                                  ta, nq);
        continue;
      }
      const float* kf = reinterpret_cast<const float*>(kg);
      const float* vf = reinterpret_cast<const float*>(vg);
      for (int64_t t = ta; t < ta + nq; ++t)
        attend_row(out + (t * Hq + h) * D, q + (t * Hq + h) * D, kf, vf, kv_stride, causal ? S - T + t + 1 : S, D,
                   scale);
    }
  }
}

}  // namespace ninestep
