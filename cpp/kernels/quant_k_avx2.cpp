// AVX2 + FMA + F16C: Q8_K activation quantization and the Q4_K / Q5_K / Q6_K GEMM tiles.
//
// A super-block is eight groups of 32 weights; group g meets the 32-element activation block
// (BlockQ8Act) 8 * b + g. Per group: the unsigned quants (one 32-byte vector, q <= 63) times the
// signed activations with _mm256_maddubs_epi16 (pair sums <= 2 * 63 * 128, no saturation; Q6_K
// subtracts 32 * the activation pair sums, its offset, in int16), then _mm256_madd_epi16 with
// the group's scales as int16 lanes (a 16-element Q6_K sub-block is 8 lanes) into eight exact
// int32 sums; two weight rows' sums packed by one hadd, converted and FMA'd by d_a, times d once
// per super-block. The Q4_K / Q5_K minimums meet the 8 activation blocks' s once per block. Only the float accumulation order differs from the scalar
// reference. The blocking loops are quant_k_driver.h's.
#include <immintrin.h>

#include <cstring>

#include "kernels/quant_bits_avx2.h"
#include "kernels/quant_k_driver.h"
#include "kernels/simd_avx2.h"

namespace ninestep {
namespace {

inline float half(uint16_t h) { return _cvtsh_ss(h); }

// What a weight block contributes besides its quants: d, the scales for the group shuffle and
// (Q4_K / Q5_K) -dmin * mn[g] per group g as floats, to meet the activation blocks' s.
struct Prep {
  __m256i scales;  // Q4_K/Q5_K: the 8 int16 scales in each 128-bit half; Q6_K: 16 int8 scales in each half
  __m256 mins;     // Q4_K/Q5_K: lane g = -dmin * mn[g]
  float d;
};

inline Prep prep_k_min(uint16_t d, uint16_t dmin, const uint8_t* packed) {
  const __m128i sm = k_scales_mins(packed);
  Prep p;
  p.scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
  p.mins = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8))), _mm256_set1_ps(-half(dmin)));
  p.d = half(d);
  return p;
}

// Group g's scale in every int16 lane (Q4_K / Q5_K: one sub-block of 32).
inline __m256i group_scale_k(const Prep& p, int g) {
  return _mm256_shuffle_epi8(p.scales, _mm256_set1_epi16((short)(((2 * g + 1) << 8) | (2 * g))));
}

inline __m256i low_nibbles(const uint8_t* qs, int g) {  // group g's four low bits (Q4_K / Q5_K layout)
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * (g / 2)));
  return _mm256_and_si256(g % 2 ? _mm256_srli_epi16(v, 4) : v, _mm256_set1_epi8(0x0f));
}

struct Q4K {
  using Block = BlockQ4K;
  static constexpr bool kHasMin = true;
  static Prep prep(const Block& b) { return prep_k_min(b.d, b.dmin, b.scales); }
  static __m256i quants(const Block& b, const Prep&, int g) { return low_nibbles(b.qs, g); }
  static __m256i scale(const Prep& p, int g) { return group_scale_k(p, g); }
};

struct Q5K {
  using Block = BlockQ5K;
  static constexpr bool kHasMin = true;
  static Prep prep(const Block& b) { return prep_k_min(b.d, b.dmin, b.scales); }
  static __m256i quants(const Block& b, const Prep&, int g) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
    // bit g of each qh byte to bit 4 (the shifted-in bits of the neighbouring byte are masked off)
    const __m256i hb = g < 4 ? _mm256_slli_epi16(h, 4 - g) : _mm256_srli_epi16(h, g - 4);
    return _mm256_or_si256(low_nibbles(b.qs, g), _mm256_and_si256(hb, _mm256_set1_epi8(0x10)));
  }
  static __m256i scale(const Prep& p, int g) { return group_scale_k(p, g); }
};

struct Q6K {
  using Block = BlockQ6K;
  static constexpr bool kHasMin = false;  // w = d * sc * (q - 32): the offset is taken off in int16
  static Prep prep(const Block& b) {
    Prep p;
    p.scales = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
    p.mins = _mm256_setzero_ps();
    p.d = half(b.d);
    return p;
  }
  static __m256i quants(const Block& b, const Prep&, int g) {
    const int h = g / 4, t = g % 4;
    const __m256i l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * h + 32 * (t % 2)));
    const __m256i lo = _mm256_and_si256(t < 2 ? l : _mm256_srli_epi16(l, 4), _mm256_set1_epi8(0x0f));
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h));
    // bits 2t, 2t+1 of each qh byte to bits 4, 5
    const __m256i hb = t < 3 ? _mm256_slli_epi16(q, 4 - 2 * t) : _mm256_srli_epi16(q, 2);
    return _mm256_or_si256(lo, _mm256_and_si256(hb, _mm256_set1_epi8(0x30)));
  }
  // lanes 0..7: sub-block 2g's scale, lanes 8..15: sub-block 2g + 1's, sign-extended to int16
  static __m256i scale(const Prep& p, int g) {
    const __m128i idx = _mm_set_epi64x(0x0101010101010101LL * (2 * g + 1), 0x0101010101010101LL * (2 * g));
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(_mm256_castsi256_si128(p.scales), idx));
  }
};

// The s of the 8 activation blocks a[0..7] as one vector (BlockQ8Act is 40 bytes: s at float 1 + 10 g).
inline __m256 block_sums(const BlockQ8Act* a) {
  static_assert(sizeof(BlockQ8Act) == 40, "BlockQ8Act must be 40 bytes");
  return _mm256_i32gather_ps(&a->s, _mm256_setr_epi32(0, 10, 20, 30, 40, 50, 60, 70), 4);
}

template <class T>
struct KernelAvx2 {
  using Block = typename T::Block;
  // Weight rows go in pairs (j0, j1): _mm256_hadd_epi32 packs the two rows' group sums into one
  // vector (lanes 0, 1, 4, 5: j0; 2, 3, 6, 7: j1), so one convert and one FMA by the group's
  // activation scale d_a serve both rows; the pair's weight d's multiply once per super-block.
  // Prefill 4 x 2: per activation row a block accumulator and a total (8 YMM), 2 unpacked groups +
  // scales, the activations and d_a in 14 YMM. Decode 1 x 4: two pairs.
  static constexpr int kPrefillRows = 4;
  static constexpr int kPrefillCols = 2;
  static constexpr int kDecodeCols = 4;

  template <int MR, int NR>
  static void tile(float* y, int64_t ldy, const BlockQ8Act* act, int64_t nb, const uint8_t* w, int64_t rb,
                   int64_t i0, int64_t j0, int64_t pf) {
    constexpr int NP = (NR + 1) / 2;  // pairs; an odd NR's last pair repeats its row
    const Block* wr[NR];  // row j0 + j of W
    for (int j = 0; j < NR; ++j) wr[j] = reinterpret_cast<const Block*>(w + (j0 + j) * rb);
    const BlockQ8Act* ar[MR];  // row i0 + i of the activations: 8 blocks per super-block
    for (int i = 0; i < MR; ++i) ar[i] = act + (i0 + i) * nb * 8;
    __m256 acc[MR][NP];
    for (int i = 0; i < MR; ++i)
      for (int p = 0; p < NP; ++p) acc[i][p] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      Prep pr[NR];
      for (int j = 0; j < NR; ++j) {
        if (pf) prefetch_range(reinterpret_cast<const uint8_t*>(&wr[j][b]) + pf, (int64_t)sizeof(Block));
        pr[j] = T::prep(wr[j][b]);
      }
      __m256 dw[NP];  // the pair's d in its lanes
      for (int p = 0; p < NP; ++p) {
        const float d0 = pr[2 * p].d, d1 = pr[2 * p + 1 < NR ? 2 * p + 1 : 2 * p].d;
        dw[p] = _mm256_setr_ps(d0, d0, d1, d1, d0, d0, d1, d1);
      }
      __m256 blk[MR][NP];  // this super-block's sum_g d_a * (integer group sums), before d
      for (int i = 0; i < MR; ++i)
        for (int p = 0; p < NP; ++p) blk[i][p] = _mm256_setzero_ps();
#pragma GCC unroll 8
      for (int g = 0; g < 8; ++g) {
        __m256i q[NR], s[NR];  // each weight row's group g, unpacked once for the MR activation rows
        for (int j = 0; j < NR; ++j) q[j] = T::quants(wr[j][b], pr[j], g), s[j] = T::scale(pr[j], g);
        for (int i = 0; i < MR; ++i) {
          const BlockQ8Act& a = ar[i][8 * b + g];
          const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs));
          const __m256 da = _mm256_broadcast_ss(&a.d);
          __m256i off;  // Q6_K: 32 * the pair sums of x, the offset of the unsigned quants
          if constexpr (!T::kHasMin) off = _mm256_maddubs_epi16(_mm256_set1_epi8(32), x);
          __m256i v[NR];
          for (int j = 0; j < NR; ++j) {
            __m256i prod = _mm256_maddubs_epi16(q[j], x);
            if constexpr (!T::kHasMin) prod = _mm256_sub_epi16(prod, off);
            v[j] = _mm256_madd_epi16(prod, s[j]);
          }
          for (int p = 0; p < NP; ++p) {
            const __m256i h = _mm256_hadd_epi32(v[2 * p], v[2 * p + 1 < NR ? 2 * p + 1 : 2 * p]);
            blk[i][p] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h), da, blk[i][p]);
          }
        }
      }
      for (int i = 0; i < MR; ++i) {
        __m256 s;
        if constexpr (T::kHasMin) s = block_sums(ar[i] + 8 * b);
        for (int p = 0; p < NP; ++p) {
          acc[i][p] = _mm256_fmadd_ps(blk[i][p], dw[p], acc[i][p]);
          if constexpr (T::kHasMin) {  // -dmin * mn[g] * s_a[g], packed as the pair's lanes
            const __m256 m0 = _mm256_mul_ps(pr[2 * p].mins, s);
            const __m256 m1 = _mm256_mul_ps(pr[2 * p + 1 < NR ? 2 * p + 1 : 2 * p].mins, s);
            acc[i][p] = _mm256_add_ps(acc[i][p], _mm256_hadd_ps(m0, m1));
          }
        }
      }
    }
    for (int i = 0; i < MR; ++i)
      for (int p = 0; p < NP; ++p) {
        const __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc[i][p]), _mm256_extractf128_ps(acc[i][p], 1));
        // h = [j0, j0, j1, j1]
        y[(i0 + i) * ldy + j0 + 2 * p] = _mm_cvtss_f32(h) + _mm_cvtss_f32(_mm_shuffle_ps(h, h, 1));
        if (2 * p + 1 < NR)
          y[(i0 + i) * ldy + j0 + 2 * p + 1] =
              _mm_cvtss_f32(_mm_shuffle_ps(h, h, 2)) + _mm_cvtss_f32(_mm_shuffle_ps(h, h, 3));
      }
  }
};

// Four int32 vectors -> their four horizontal sums [sum a, sum b, sum c, sum d].
inline __m128i hsum4_epi32(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
  return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

}  // namespace

void quantize_q8k_row_avx2(void* dst, const float* x, int64_t k) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < k / QK_K; ++b, x += QK_K) {
    BlockQ8K& out = static_cast<BlockQ8K*>(dst)[b];
    __m256 mx = _mm256_setzero_ps();
    for (int t = 0; t < QK_K / 8; ++t) mx = _mm256_max_ps(mx, _mm256_and_ps(_mm256_loadu_ps(x + 8 * t), abs_mask));
    const float amax = hmax(mx);
    if (!(amax > 0.0f)) {  // all zero (or NaN): as the reference's zero block
      std::memset(&out, 0, sizeof(out));
      continue;
    }
    // The reference scales by the first element of largest magnitude, sign included.
    const __m256 am = _mm256_set1_ps(amax);
    int first = 0;
    for (int t = 0; t < QK_K / 8; ++t) {
      const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + 8 * t), abs_mask), am,
                                                       _CMP_EQ_OQ));
      if (hit) { first = 8 * t + __builtin_ctz(hit); break; }
    }
    const float iscale = -127.f / x[first];
    const __m256 is = _mm256_set1_ps(iscale);
    const __m256i cap = _mm256_set1_epi32(127);
    __m256i q[4];  // 32 elements at a time; cvtps rounds to nearest even, as the reference
    for (int c = 0; c < QK_K / 32; ++c) {
      for (int t = 0; t < 4; ++t)
        q[t] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * c + 8 * t), is)), cap);
      const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.qs + 32 * c),
                          _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    }
    // bsums from the stored bytes: 16 sums of 16, four at a time
    for (int c = 0; c < 4; ++c) {
      __m256i s[4];
      for (int t = 0; t < 4; ++t)
        s[t] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(out.qs + 64 * c + 16 * t)));
      const __m256i one = _mm256_set1_epi16(1);
      const __m128i sums = hsum4_epi32(_mm256_madd_epi16(s[0], one), _mm256_madd_epi16(s[1], one),
                                       _mm256_madd_epi16(s[2], one), _mm256_madd_epi16(s[3], one));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(out.bsums + 4 * c), _mm_packs_epi32(sums, sums));
    }
    out.d = 1 / iscale;
  }
}

void gemm_q4_k_avx2(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                    int64_t n1) {
  gemm_k_rows<KernelAvx2<Q4K>>(y, ldy, act, w, m, k, n0, n1);
}
void gemm_q5_k_avx2(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                    int64_t n1) {
  gemm_k_rows<KernelAvx2<Q5K>>(y, ldy, act, w, m, k, n0, n1);
}
void gemm_q6_k_avx2(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                    int64_t n1) {
  gemm_k_rows<KernelAvx2<Q6K>>(y, ldy, act, w, m, k, n0, n1);
}

}  // namespace ninestep
