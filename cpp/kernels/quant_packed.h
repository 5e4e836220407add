// Quantized weights repacked once at load into the layout the AVX2 batched GEMM reads, so a batch
// of decodes (or a prompt chunk) no longer unpacks and transposes each group of 8 weight rows
// every time it meets it (quant_panel_avx2.cpp's fill; 8 x 1536 x 576 Q4_1, 1 thread: the packed
// product 1.3-1.7x the panel's).
//
// The weight rows go in column groups of 8 (the last padded with zero rows); a column group holds
// its k / 32 groups in order, each group its 8 rows x 32 elements in the same bytes as the GGUF
// blocks (so the copy is the same size):
//   Q8_0  q[t], t = 0..7, 32 bytes each: byte 4c + e = element 4t + e of row c (signed); then d[8] fp16
//   Q4_0  n[t], t = 0..3: byte 4c + e = element 4t + e of row c in the low nibble, element
//         4(t + 4) + e in the high nibble; then d[8] fp16
//   Q4_1  n[t] as Q4_0; then d[8], m[8] fp16
//   Q5_0  n[t] as Q4_0; h, 32 bytes: bit t of byte 4c + e = the fifth bit of element 4t + e of row c;
//         then d[8] fp16
//   Q5_1  n[t], h as Q5_0; then d[8], m[8] fp16
// The K-quants go by super-block (8 groups): the groups' quads, then a trailer of the 8 rows'
// scales, so again the bytes of the GGUF blocks (Q4_K, Q5_K: +2.8%):
//   Q4_K  per group n[t]; then sc[8 groups][8 rows], mn[8][8] (the 6-bit values as bytes),
//         d[8], dmin[8] fp16
//   Q5_K  per group n[t], h as Q5_0; then the trailer as Q4_K
//   Q6_K  per group n[t], h4, h5 (bits 4 and 5 as Q5_0's h); then int8 scales[16 halves][8 rows],
//         d[8] fp16
// A packed product rounds exactly as the panel over the GGUF rows, so results do not change.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "kernels/traits.h"

namespace ninestep {

constexpr int64_t kPackRows = 8;     // weight rows per column group
constexpr int64_t kPackMaxK = 8192;  // longest row packed (the kernel's per-thread panel)

// Whether matmuls on this machine use a packed copy of `t` (a packed GEMM exists for the active ISA).
bool packs_on_this_machine(DType t);
// Whether loading packs a matrix of `t` with rows of k elements (the type packs, k <= kPackMaxK).
bool packs_matrix(DType t, int64_t k);
// Bytes of W [n, k] of `t` packed (n rounded up to a multiple of kPackRows).
int64_t packed_bytes(DType t, int64_t n, int64_t k);
// GGUF rows src [n, dtype_row_bytes(t, k)] -> dst [packed_bytes(t, n, k)]; multithreaded.
void pack_weights(void* dst, const void* src, DType t, int64_t n, int64_t k);

// Whether a lone activation row (a decode GEMV) reads the packed copy of `t` here rather than the
// GGUF rows: with AVX2 or AVX-512 VNNI, for every packed type but Q8_0. There the packed tile at
// one row (one broadcast activation quad meets 8 rows' quads per maddubs / vpdpbusd, where the
// GGUF GEMVs unpack and widen per row or row pair) streams a matrix larger than the caches faster,
// 1 thread: AVX2 (Zen 3) 1.1-1.2x (Q4_1), 1.4-1.6x (Q4_0, Q5_0, Q6_K), 1.8-2.1x (Q4_K, Q5_K);
// VNNI (Zen 5) 1.15x (Q4_1), 1.3-1.5x (Q4_0), 1.6-2.1x (Q5_0), 2.3-2.4x (Q4_K, Q6_K), 1.4x (Q5_K).
// Q8_0 keeps its own GEMV: AVX2 streams DRAM faster with it (packed 0.8-1.07x), and with VNNI
// SmolLM2 (its head Q8_0) decoded 0.90x with the packed one. A row read packed has the same bits
// alone as in a batch.
bool packed_gemv_here(DType t);

// y[i * ldy + j] = sum_c x[i, c] * W[j, c], i in [0, m), j in [n0, n1) from the packed W at the
// active ISA; false (nothing written) unless n0 is a multiple of kPackRows and t packs here.
bool qgemm_packed(float* y, int64_t ldy, const BlockQ8Act* act, const void* packed, DType t, int64_t m, int64_t k,
                  int64_t n0, int64_t n1);

// The byte layout of a packed type, as its kernels (quant_packed_x86.h) read it.
struct PackedLayout {
  int64_t group_bytes = 0;  // per group of 8 rows x 32 (K-quants: a super-block's over its 8 groups); 0: none
  int64_t super_bytes = 0;  // K-quants: per super-block (8 groups' quads, then the trailer); else 0
  int quad_bytes = 0;       // a group's quads: n[4] and the bit planes (Q8_0: 8 quads)
};
PackedLayout packed_layout_avx2(DType t);
bool qgemm_packed_avx2(float* y, int64_t ldy, const BlockQ8Act* act, const void* packed, DType t, int64_t m, int64_t k,
                       int64_t n0, int64_t n1);
// Whether the VNNI kernels run here: the AVX-512 ISA is active and the CPU has VNNI.
bool vnni_active();
// The same product and bits with AVX-512 VNNI (quant_packed_avx512.cpp); call only where vnni_active().
bool qgemm_packed_vnni(float* y, int64_t ldy, const BlockQ8Act* act, const void* packed, DType t, int64_t m, int64_t k,
                       int64_t n0, int64_t n1);
// One column group (nc <= 8 GGUF rows) packed by quant_panel_avx2.cpp's unpack: the quads, and the
// 32-element types' scales (see pack_weights); false for a type or K it does not take.
bool pack_panel_avx2(uint8_t* dst, const uint8_t* w, DType t, int64_t rb, int nc, int64_t ng, const PackedLayout& lay);

// The decode GEMV (one activation row) over GGUF rows with AVX-512 VNNI (quant_gemv_avx512.cpp) for
// Q8_0, Q4_0, Q4_1, Q5_0, Q5_1; false (nothing written) for other types. Call only where vnni_active().
bool qgemv_vnni(float* y, const BlockQ8Act* act, const void* w, DType t, int64_t k, int64_t n0, int64_t n1);

}  // namespace ninestep
