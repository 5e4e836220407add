// The ISA-independent blocking of the K-quant GEMM, written once and instantiated by each ISA file
// (quant_k_avx2.cpp, quant_k_neon.cpp) with its own tile kernel K:
//
//   struct K {
//     using Block = ...;                    // the weight block (BlockQ4K, BlockQ5K, BlockQ6K)
//     static constexpr int kPrefillRows;    // MR of the prefill tile (activation rows per weight unpack)
//     static constexpr int kPrefillCols;    // NR of the prefill tile (weight rows per activation load)
//     static constexpr int kDecodeCols;     // weight rows in flight in the decode GEMV
//     template <int MR, int NR>             // y[i0 + i, j0 + j], i < MR, j < NR, over all nb blocks;
//     static void tile(float* y, int64_t ldy, const BlockQ8Act* act, int64_t nb, const uint8_t* w,
//                      int64_t rb, int64_t i0, int64_t j0, int64_t pf);  // pf: prefetch w + pf ahead (0: none)
//   };                                     // act: rows of 8 * nb BlockQ8Act (8 per super-block)
//
// Decode (m == 1) runs 1 x kDecodeCols tiles along the weight rows, each prefetching the rows it
// will read kAheadTiles tiles later, so the weights stream from DRAM at bandwidth. Prefill takes
// chunks of activation rows that stay in L2 and, per kPrefillCols weight rows, runs kPrefillRows x
// kPrefillCols tiles down the chunk: the weight rows stay in L1, each of their blocks is unpacked
// once per kPrefillRows activation rows and each activation block is loaded once per kPrefillCols.
#pragma once
#include <cstdint>

#include "kernels/quant.h"
#include "kernels/quant_k.h"

namespace ninestep {

// Prefetches the cache lines of [p, p + bytes) into L1 (a hint: never faults).
inline void prefetch_range(const uint8_t* p, int64_t bytes) {
  for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, 0, 3);
}

// Activation rows [i0, i1) against weight rows [j, j + NR) in MR x NR tiles; the tail in halving tiles.
// The first tile also prefetches the weight rows pf bytes on (0: none).
template <class K, int MR, int NR>
void k_column(float* y, int64_t ldy, const BlockQ8Act* act, int64_t nb, const uint8_t* w, int64_t rb, int64_t i0,
              int64_t i1, int64_t j, int64_t pf) {
  int64_t i = i0;
  for (; i + MR <= i1; i += MR, pf = 0) K::template tile<MR, NR>(y, ldy, act, nb, w, rb, i, j, pf);
  if constexpr (MR > 1) {
    if (i < i1) k_column<K, MR / 2, NR>(y, ldy, act, nb, w, rb, i, i1, j, pf);
  }
}

template <class K>
void gemm_k_rows(float* y, int64_t ldy, const void* act_v, const void* w_v, int64_t m, int64_t k, int64_t n0,
                 int64_t n1) {
  const int64_t nb = k / QK_K, rb = nb * (int64_t)sizeof(typename K::Block);
  const BlockQ8Act* act = static_cast<const BlockQ8Act*>(act_v);
  const uint8_t* w = static_cast<const uint8_t*>(w_v);
  if (m == 1) {
    prefetch_slice_start(w + n0 * rb, (n1 - n0) * rb);
    constexpr int NR = K::kDecodeCols;
    constexpr int kAheadTiles = 2;
    int64_t j = n0;
    for (; j + NR <= n1; j += NR) {
      const bool ahead = j + (kAheadTiles + 1) * NR <= n1;
      K::template tile<1, NR>(y, ldy, act, nb, w, rb, 0, j, ahead ? kAheadTiles * NR * rb : 0);
    }
    for (; j < n1; ++j) K::template tile<1, 1>(y, ldy, act, nb, w, rb, 0, j, 0);
    return;
  }
  // A chunk of activation rows (<= 96 KB of BlockQ8Act) meets every weight row of the slice.
  const int64_t act_row = nb * 8 * (int64_t)sizeof(BlockQ8Act);
  int64_t chunk = (96 * 1024) / act_row;
  chunk = chunk < K::kPrefillRows ? K::kPrefillRows : chunk - chunk % K::kPrefillRows;
  for (int64_t i0 = 0; i0 < m; i0 += chunk) {
    const int64_t i1 = i0 + chunk < m ? i0 + chunk : m;
    constexpr int NR = K::kPrefillCols;
    const int64_t ahead = gemm_ahead(NR * rb);
    int64_t j = n0;
    for (; j + NR <= n1; j += NR) {
      const bool inside = (j + NR) * rb + ahead <= n1 * rb;
      k_column<K, K::kPrefillRows, NR>(y, ldy, act, nb, w, rb, i0, i1, j, inside ? ahead : 0);
    }
    for (; j < n1; ++j) k_column<K, K::kPrefillRows, 1>(y, ldy, act, nb, w, rb, i0, i1, j, 0);
  }
}

}  // namespace ninestep
