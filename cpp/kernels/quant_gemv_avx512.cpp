// Decode GEMV (one activation row) for the 32-element quantized types with AVX-512 VNNI, over the
// GGUF rows as they are stored. Built with -mavx512vnni for this file alone and called only after a
// CPUID check (quant_packed.cpp: vnni_active()).
//
// Four weight rows at a time, one stretch of W. For the nibble types each 128-bit lane of a zmm
// holds one row's 16 bytes of nibbles: the low nibbles (elements 0..15) meet the activations' first
// half broadcast to every lane, the high nibbles (16..31) the second half, and two vpdpbusd leave
// per row four int32 lanes whose sum is the block's exact integer dot (lane i: elements 4i..4i+3
// and 16+4i..16+4i+3). Q8_0 puts two rows per zmm (32 bytes each) against the activations in both
// halves; its signed weights go through |w| and x with w's sign, since vpdpbusd wants one unsigned
// side. Per block the lanes become floats and meet d_w * d_x in one FMA (the offset types Q4_0 and
// Q5_0 fold -offset * s_x in first, as the AVX2 GEMV does); the minimum types add m * s_x per row.
//
// Integer sums are exact; the float order is per lane group, not the AVX2 GEMV's, so results
// agree with it to float rounding, not bit for bit. On Zen 5 (full-width AVX-512) the AVX2 GEMV is
// bound by its instruction count, not by DRAM: ~20 GB/s of Q4_1 weights per thread even from L2.
#include <immintrin.h>

#include <cstring>

#include "kernels/quant.h"
#include "kernels/quant_packed.h"

namespace ninestep {
namespace {

// Four rows' fp16 (d, m) pairs (kMin) or d's, converted: [d0, m0, d1, m1, ...] or [d0, d1, d2, d3, ...].
template <class Block, bool kMin>
inline __m256 row_scales(const Block* r0, const Block* r1, const Block* r2, const Block* r3) {
  if constexpr (kMin) {
    int32_t u0, u1, u2, u3;
    std::memcpy(&u0, &r0->d, 4), std::memcpy(&u1, &r1->d, 4);
    std::memcpy(&u2, &r2->d, 4), std::memcpy(&u3, &r3->d, 4);
    return _mm256_cvtph_ps(_mm_setr_epi32(u0, u1, u2, u3));
  } else {
    return _mm256_cvtph_ps(_mm_setr_epi16((short)r0->d, (short)r1->d, (short)r2->d, (short)r3->d, 0, 0, 0, 0));
  }
}

// The four rows' 16 nibble bytes, one row per 128-bit lane.
template <class Block>
inline __m512i lanes4(const Block* r0, const Block* r1, const Block* r2, const Block* r3) {
  __m512i q = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r0->qs)));
  q = _mm512_inserti32x4(q, _mm_loadu_si128(reinterpret_cast<const __m128i*>(r1->qs)), 1);
  q = _mm512_inserti32x4(q, _mm_loadu_si128(reinterpret_cast<const __m128i*>(r2->qs)), 2);
  return _mm512_inserti32x4(q, _mm_loadu_si128(reinterpret_cast<const __m128i*>(r3->qs)), 3);
}

// Fifth bits of four Q5 rows as lane masks: bit 16r + i of lo is element i of row r, of hi element 16 + i.
template <class Block>
inline void fifth4(const Block* r0, const Block* r1, const Block* r2, const Block* r3, __mmask64* lo, __mmask64* hi) {
  uint32_t u[4];
  std::memcpy(&u[0], r0->qh, 4), std::memcpy(&u[1], r1->qh, 4);
  std::memcpy(&u[2], r2->qh, 4), std::memcpy(&u[3], r3->qh, 4);
  uint64_t l = 0, h = 0;
  for (int r = 0; r < 4; ++r) l |= uint64_t(u[r] & 0xffff) << (16 * r), h |= uint64_t(u[r] >> 16) << (16 * r);
  *lo = _cvtu64_mask64(l), *hi = _cvtu64_mask64(h);
}

// Per 128-bit lane of v, the sum of its four floats: [lane 0, lane 1, lane 2, lane 3].
inline __m128 lane_sums(__m512 v) {
  v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x4E));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, 0xB1));
  return _mm512_castps512_ps128(
      _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), v));
}

// Nibble types: y[0..4) = rows w, w + rb, w + 2 rb, w + 3 rb times the activation row.
template <class Block, bool kMin, int kOffset, bool kFifth>
void gemv4_nibbles(float* y, const BlockQ8Act* act, int64_t nb, const uint8_t* w, int64_t rb, const char* ahead) {
  constexpr int64_t kStep = 4 * (int64_t)sizeof(Block);
  const Block* r0 = reinterpret_cast<const Block*>(w);
  const Block* r1 = reinterpret_cast<const Block*>(w + rb);
  const Block* r2 = reinterpret_cast<const Block*>(w + 2 * rb);
  const Block* r3 = reinterpret_cast<const Block*>(w + 3 * rb);
  // lane 4r + i takes row r's d_w: index 2r in [d, m] pairs, r in plain d's
  const __m512i idx = kMin ? _mm512_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6)
                           : _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  __m512 acc = _mm512_setzero_ps();
  __m256 macc = _mm256_setzero_ps();  // lane 2r + 1: row r's minimum terms (kMin)
  const char* pf = ahead ? ahead : reinterpret_cast<const char*>(w);
  for (int64_t b = 0; b < nb; ++b) {
    for (int64_t o = 0; o < kStep; o += 64) _mm_prefetch(pf + b * kStep + o, _MM_HINT_T0);
    const BlockQ8Act& a = act[b];
    const __m512i q = lanes4(r0 + b, r1 + b, r2 + b, r3 + b);
    __m512i lo = _mm512_and_si512(q, m4), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
    if constexpr (kFifth) {
      __mmask64 flo, fhi;
      fifth4(r0 + b, r1 + b, r2 + b, r3 + b, &flo, &fhi);
      const __m512i x10 = _mm512_set1_epi8(0x10);
      lo = _mm512_mask_add_epi8(lo, flo, lo, x10), hi = _mm512_mask_add_epi8(hi, fhi, hi, x10);
    }
    const __m512i xlo = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.qs)));
    const __m512i xhi = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.qs + 16)));
    const __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xlo), hi, xhi);
    const __m512 f = _mm512_cvtepi32_ps(s);
    const __m256 dm = row_scales<Block, kMin>(r0 + b, r1 + b, r2 + b, r3 + b);
    const __m512 da = _mm512_set1_ps(a.d);
    if constexpr (kMin) macc = _mm256_fmadd_ps(dm, _mm256_set1_ps(a.s), macc);
    const __m512 dw = _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(dm));
    if constexpr (kOffset != 0) {  // the offset's sum spread over each row's 4 lanes
      acc = _mm512_fmadd_ps(_mm512_fmadd_ps(f, da, _mm512_set1_ps(a.s * (-kOffset / 4.0f))), dw, acc);
    } else {
      acc = _mm512_fmadd_ps(f, _mm512_mul_ps(dw, da), acc);
    }
  }
  __m128 r = lane_sums(acc);  // a row per 128-bit lane
  if constexpr (kMin)
    r = _mm_add_ps(r, _mm256_castps256_ps128(_mm256_permutevar8x32_ps(macc, _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7))));
  _mm_storeu_ps(y, r);
}

// Q8_0: rows 0, 1 in the halves of one zmm, rows 2, 3 in another; 8 lanes per row.
void gemv4_q8_0(float* y, const BlockQ8Act* act, int64_t nb, const uint8_t* w, int64_t rb, const char* ahead) {
  constexpr int64_t kStep = 4 * (int64_t)sizeof(BlockQ8_0);
  const BlockQ8_0* r0 = reinterpret_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* r1 = reinterpret_cast<const BlockQ8_0*>(w + rb);
  const BlockQ8_0* r2 = reinterpret_cast<const BlockQ8_0*>(w + 2 * rb);
  const BlockQ8_0* r3 = reinterpret_cast<const BlockQ8_0*>(w + 3 * rb);
  const __m512i idx01 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i idx23 = _mm512_add_epi32(idx01, _mm512_set1_epi32(2));
  __m512 acc01 = _mm512_setzero_ps(), acc23 = _mm512_setzero_ps();
  const char* pf = ahead ? ahead : reinterpret_cast<const char*>(w);
  auto dot = [](__m512i wq, __m512i x) {  // |w| . (x with w's sign), per 4 bytes
    const __m512i sx = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(wq), _mm512_setzero_si512(), x);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(wq), sx);
  };
  for (int64_t b = 0; b < nb; ++b) {
    for (int64_t o = 0; o < kStep; o += 64) _mm_prefetch(pf + b * kStep + o, _MM_HINT_T0);
    const BlockQ8Act& a = act[b];
    const __m512i x = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs)));
    const __m512i w01 = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r0[b].qs))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r1[b].qs)), 1);
    const __m512i w23 = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r2[b].qs))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r3[b].qs)), 1);
    const __m512 dd = _mm512_castps256_ps512(
        _mm256_mul_ps(row_scales<BlockQ8_0, false>(r0 + b, r1 + b, r2 + b, r3 + b), _mm256_set1_ps(a.d)));
    acc01 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot(w01, x)), _mm512_permutexvar_ps(idx01, dd), acc01);
    acc23 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot(w23, x)), _mm512_permutexvar_ps(idx23, dd), acc23);
  }
  // a row per 256-bit half: add the halves' two 128-bit lanes, so a row per 128-bit lane
  _mm_storeu_ps(y, lane_sums(_mm512_add_ps(_mm512_shuffle_f32x4(acc01, acc23, 0x88),
                                           _mm512_shuffle_f32x4(acc01, acc23, 0xDD))));
}

// One row (a slice's last rows): the same arithmetic through the four-row kernel, rows repeated.
using Gemv4 = void (*)(float*, const BlockQ8Act*, int64_t, const uint8_t*, int64_t, const char*);

void run(Gemv4 g, float* y, const BlockQ8Act* act, int64_t nb, const uint8_t* w, int64_t rb, int64_t n0,
         int64_t n1) {
  prefetch_slice_start(w + n0 * rb, (n1 - n0) * rb);
  int64_t j = n0;
  for (; j + 4 <= n1; j += 4) {
    const bool inside = (j + 4) * rb + kGemvAhead <= n1 * rb;
    g(y + j, act, nb, w + j * rb, rb, inside ? reinterpret_cast<const char*>(w + j * rb + kGemvAhead) : nullptr);
  }
  for (; j < n1; ++j) {
    float t[4];
    g(t, act, nb, w + j * rb, 0, nullptr);  // rb 0: the same row four times
    y[j] = t[0];
  }
}

}  // namespace

bool qgemv_vnni(float* y, const BlockQ8Act* act, const void* wv, DType t, int64_t k, int64_t n0, int64_t n1) {
  const int64_t nb = k / QK;
  const uint8_t* w = static_cast<const uint8_t*>(wv);
  switch (t) {
    case DType::q8_0: run(gemv4_q8_0, y, act, nb, w, nb * (int64_t)sizeof(BlockQ8_0), n0, n1); return true;
    case DType::q4_0:
      run(gemv4_nibbles<BlockQ4_0, false, 8, false>, y, act, nb, w, nb * (int64_t)sizeof(BlockQ4_0), n0, n1);
      return true;
    case DType::q4_1:
      run(gemv4_nibbles<BlockQ4_1, true, 0, false>, y, act, nb, w, nb * (int64_t)sizeof(BlockQ4_1), n0, n1);
      return true;
    case DType::q5_0:
      run(gemv4_nibbles<BlockQ5_0, false, 16, true>, y, act, nb, w, nb * (int64_t)sizeof(BlockQ5_0), n0, n1);
      return true;
    case DType::q5_1:
      run(gemv4_nibbles<BlockQ5_1, true, 0, true>, y, act, nb, w, nb * (int64_t)sizeof(BlockQ5_1), n0, n1);
      return true;
    default: return false;
  }
}

}  // namespace ninestep
