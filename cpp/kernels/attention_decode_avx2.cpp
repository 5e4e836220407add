// Decode-shaped attention items (see attention_decode.cpp), AVX2 + FMA (AVX-512 machines too for
// head sizes not a multiple of 16; attention_decode_avx512.cpp takes the rest): up
// to kRows queries of one KV head walk a key block together, 8 keys at a time. Each K row is loaded
// once for all of them (lanes over D), the 8 dot products of a query are summed across lanes by
// one transposing tree instead of 8 horizontal sums, and each V row is loaded once for all their
// accumulators.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/threads.h"
#include "kernels/attention_decode_items.h"
#include "kernels/nn.h"
#include "kernels/attention_kv_avx2.h"
#include "kernels/simd_avx2.h"
#include "kernels/vexp_avx2.h"

namespace ninestep {

namespace {

constexpr int kRows = 4;  // queries per pass

// Lane j of the result = the sum of a[slot(j)]'s lanes, slot(j) = 2 (j % 4) + j / 4: three rounds
// of shuffles, each halving the vectors and the lanes still to add.
inline int slot(int j) { return 2 * (j & 3) + (j >> 2); }
inline __m256 sum_lanes8(const __m256* a) {
  __m256 b[4], c[2];
  for (int i = 0; i < 4; ++i)
    b[i] = _mm256_add_ps(_mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x20),
                         _mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x31));
  for (int i = 0; i < 2; ++i)
    c[i] = _mm256_add_ps(_mm256_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44),
                         _mm256_shuffle_ps(b[2 * i], b[2 * i + 1], 0xEE));
  return _mm256_add_ps(_mm256_shuffle_ps(c[0], c[1], 0x88), _mm256_shuffle_ps(c[0], c[1], 0xDD));
}

// Softmax states st[i] [D + 2] of NQ queries qr[i] [D] over keys [lo, hi) of one KV head (the head
// of row s at kg / vg + s * row_bytes); query i sees keys up to last[i] only. The online softmax
// steps kBlock keys at a time (kSub sub-blocks of 8 keys' scores): one running-max update, one
// rescale and one pass of the output through the registers per 32 keys instead of per 8, whose
// serial max / exp / sum chain had bound the kernel (1 thread, 9/3 heads, D 64, f16: the same
// 20 ns per key and head from L2 as from DRAM).
template <DType KT, int NQ>
void attend_keys(float* const* st, const float* const* qr, const int64_t* last, const uint8_t* kg, const uint8_t* vg,
                 int64_t row_bytes, int64_t lo, int64_t hi, int64_t D, float scale) {
  using L = KvAvx2<KT>;
  constexpr int KJ = NQ == 1 ? 8 : NQ <= 3 ? 4 : 2;  // keys per pass of the scores
  constexpr int DG = NQ <= 3 ? 4 : 2;                // 8-float columns per pass of the values
  constexpr int kSub = 4, kBlock = 8 * kSub;
  const int64_t dv = D & ~int64_t(7);
  const __m256i md = first_n(D - dv);
  const bool dtail = dv < D;
  const int64_t head_bytes = dtype_row_bytes(KT, D);
  float m[NQ], l[NQ];
  alignas(32) float p[NQ][kBlock];
  alignas(32) __m256 dots[NQ][8];
  const int64_t hi_all = start_pass<NQ>(st, m, l, last, lo, hi, D);  // past the last key any query sees
  for (int64_t s0 = lo; s0 < hi_all; s0 += kBlock) {
    const int64_t nb = std::min<int64_t>(kBlock, hi_all - s0);
    const int nsub = int((nb + 7) / 8);
    __m256 sc[NQ][kSub];
    for (int sub = 0; sub < nsub; ++sub) {
      const int64_t b0 = s0 + 8 * sub;
      prefetch_keys_ahead(kg, vg, row_bytes, head_bytes, b0, 8, hi_all);
      // KJ keys at a time, so NQ * KJ independent FMA chains hide the FMA latency
      for (int jb = 0; jb < 8; jb += KJ) {
        const uint8_t* kr[KJ];
        key_rows<KJ>(kr, kg, row_bytes, b0 + jb, hi_all);
        __m256 a[NQ][KJ];
        for (int i = 0; i < NQ; ++i)
          for (int jj = 0; jj < KJ; ++jj) a[i][jj] = _mm256_setzero_ps();
        for (int64_t d = 0; d < dv; d += 8) {
          __m256 qv[NQ];
          for (int i = 0; i < NQ; ++i) qv[i] = _mm256_loadu_ps(qr[i] + d);
          for (int jj = 0; jj < KJ; ++jj) {
            const __m256 kv = L::load8(kr[jj], d);
            for (int i = 0; i < NQ; ++i) a[i][jj] = _mm256_fmadd_ps(qv[i], kv, a[i][jj]);
          }
        }
        if (dtail) {
          __m256 qv[NQ];
          for (int i = 0; i < NQ; ++i) qv[i] = _mm256_maskload_ps(qr[i] + dv, md);
          for (int jj = 0; jj < KJ; ++jj) {
            const __m256 kv = L::load_part(kr[jj], dv, D - dv);
            for (int i = 0; i < NQ; ++i) a[i][jj] = _mm256_fmadd_ps(qv[i], kv, a[i][jj]);
          }
        }
        for (int i = 0; i < NQ; ++i)
          for (int jj = 0; jj < KJ; ++jj) dots[i][slot(jb + jj)] = a[i][jj];
      }
      for (int i = 0; i < NQ; ++i) {
        // keys of this sub-block query i sees (the block's last sub-block may be short)
        const int64_t seen = std::min<int64_t>(std::min<int64_t>(8, s0 + nb - b0), last[i] + 1 - b0);
        sc[i][sub] = seen <= 0 ? _mm256_set1_ps(kNegInf)
                               : _mm256_blendv_ps(_mm256_set1_ps(kNegInf),
                                                  _mm256_mul_ps(sum_lanes8(dots[i]), _mm256_set1_ps(scale)),
                                                  _mm256_castsi256_ps(first_n(seen)));
      }
    }
    __m256 corr[NQ];
    for (int i = 0; i < NQ; ++i) {
      __m256 mx = sc[i][0];
      for (int sub = 1; sub < nsub; ++sub) mx = _mm256_max_ps(mx, sc[i][sub]);
      const float bmax = hmax(mx);
      if (bmax == kNegInf) {  // query i sees none of this block's keys
        corr[i] = _mm256_set1_ps(1.0f);
        std::fill(p[i], p[i] + kBlock, 0.0f);
        continue;
      }
      const float m_new = std::max(m[i], bmax);
      __m256 sum = _mm256_setzero_ps();
      for (int sub = 0; sub < nsub; ++sub) {
        const __m256 pv = vexp(_mm256_sub_ps(sc[i][sub], _mm256_set1_ps(m_new)));
        _mm256_store_ps(p[i] + 8 * sub, pv);
        sum = _mm256_add_ps(sum, pv);
      }
      corr[i] = vexp(_mm256_set1_ps(m[i] - m_new));  // 0 on the first block
      l[i] = std::fma(l[i], _mm256_cvtss_f32(corr[i]), hsum(sum));
      m[i] = m_new;
    }
    // the values: NQ * DG accumulators, one FMA chain step per key
    int64_t d0 = 0;
    for (; d0 + 8 * DG <= dv; d0 += 8 * DG) {
      __m256 o[NQ][DG];
      for (int i = 0; i < NQ; ++i)
        for (int c = 0; c < DG; ++c) o[i][c] = _mm256_mul_ps(_mm256_loadu_ps(st[i] + d0 + 8 * c), corr[i]);
      for (int64_t j = 0; j < nb; ++j) {
        const uint8_t* vr = vg + (s0 + j) * row_bytes;
        __m256 pj[NQ];
        for (int i = 0; i < NQ; ++i) pj[i] = _mm256_broadcast_ss(&p[i][j]);
        for (int c = 0; c < DG; ++c) {
          const __m256 vv = L::load8(vr, d0 + 8 * c);
          for (int i = 0; i < NQ; ++i) o[i][c] = _mm256_fmadd_ps(pj[i], vv, o[i][c]);
        }
      }
      for (int i = 0; i < NQ; ++i)
        for (int c = 0; c < DG; ++c) _mm256_storeu_ps(st[i] + d0 + 8 * c, o[i][c]);
    }
    for (int64_t d = d0; d < dv; d += 8) {
      __m256 o[NQ];
      for (int i = 0; i < NQ; ++i) o[i] = _mm256_mul_ps(_mm256_loadu_ps(st[i] + d), corr[i]);
      for (int64_t j = 0; j < nb; ++j) {
        const __m256 vv = L::load8(vg + (s0 + j) * row_bytes, d);
        for (int i = 0; i < NQ; ++i) o[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(&p[i][j]), vv, o[i]);
      }
      for (int i = 0; i < NQ; ++i) _mm256_storeu_ps(st[i] + d, o[i]);
    }
    if (dtail) {
      __m256 o[NQ];
      for (int i = 0; i < NQ; ++i) o[i] = _mm256_mul_ps(_mm256_maskload_ps(st[i] + dv, md), corr[i]);
      for (int64_t j = 0; j < nb; ++j) {
        const __m256 vv = L::load_part(vg + (s0 + j) * row_bytes, dv, D - dv);
        for (int i = 0; i < NQ; ++i) o[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(&p[i][j]), vv, o[i]);
      }
      for (int i = 0; i < NQ; ++i) _mm256_maskstore_ps(st[i] + dv, md, o[i]);
    }
  }
  end_pass<NQ>(st, m, l, D);
}

template <DType KT, int NQ>
struct Keys {
  static constexpr DecodeAttendFn run = attend_keys<KT, NQ>;
};

}  // namespace

void attention_split_range_avx2(float* part, const float* q, const void* k, const void* v, DType kv_type,
                                int64_t kv_stride, int64_t head_stride, int64_t T, int64_t S, int64_t Hq, int64_t Hkv,
                                int64_t D, float scale, bool causal, int64_t n_split, int64_t i0, int64_t i1) {
  decode_split_range<kRows, Keys>(part, q, k, v, kv_type, kv_stride, head_stride, T, S, Hq, Hkv, D, scale, causal,
                                  n_split, i0, i1);
}

}  // namespace ninestep
