// Quantized weights: GGUF-compatible quantize / dequantize, 8-bit activation blocks, and the
// product of quantized W with those activations.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "kernels/traits.h"

namespace ninestep {

// One row of k elements (a whole number of blocks). quantize_row_* round as ggml's reference
// quantizers, so the bytes equal a GGUF file's.
void quantize_row_q8_0(void* dst, const float* x, int64_t k);
void quantize_row_q4_0(void* dst, const float* x, int64_t k);
void quantize_row_q4_1(void* dst, const float* x, int64_t k);
void quantize_row_q5_0(void* dst, const float* x, int64_t k);
void quantize_row_q5_1(void* dst, const float* x, int64_t k);
void dequantize_row_f32(float* y, const void* x, int64_t k);
void dequantize_row_f16(float* y, const void* x, int64_t k);
void dequantize_row_bf16(float* y, const void* x, int64_t k);
void dequantize_row_q8_0(float* y, const void* x, int64_t k);
void dequantize_row_q4_0(float* y, const void* x, int64_t k);
void dequantize_row_q4_1(float* y, const void* x, int64_t k);
void dequantize_row_q5_0(float* y, const void* x, int64_t k);
void dequantize_row_q5_1(float* y, const void* x, int64_t k);

// y[i * ldy + j] = sum_c x[i, c] * W[j, c], i in [0, m), j in [n0, n1); act holds m rows of k / QK
// blocks made by quantize_act_row_*. Single-threaded, no allocation. These take the weight type
// (q8_0, q4_0, q4_1, q5_0, q5_1) and are reached through the trait table (traits.cpp).
// Variants behind the dispatch in quant.cpp (same contracts as above); *_generic is the reference.
void quantize_act_row_generic(BlockQ8Act* dst, const float* x, int64_t k);
void quantize_act_row_avx2(BlockQ8Act* dst, const float* x, int64_t k);
void quantize_act_row_avx512(BlockQ8Act* dst, const float* x, int64_t k);
void quantize_act_row_neon(BlockQ8Act* dst, const float* x, int64_t k);
void qgemm_rows_generic(float* y, int64_t ldy, const BlockQ8Act* act, const void* w, DType wtype, int64_t m,
                        int64_t k, int64_t n0, int64_t n1);
void qgemm_rows_avx2(float* y, int64_t ldy, const BlockQ8Act* act, const void* w, DType wtype, int64_t m, int64_t k,
                     int64_t n0, int64_t n1);
void qgemm_rows_neon(float* y, int64_t ldy, const BlockQ8Act* act, const void* w, DType wtype, int64_t m, int64_t k,
                     int64_t n0, int64_t n1);

// AVX2, every quantized type (quant_panel_avx2.cpp): the same contract over any weight type with
// 32-element activation blocks (K-quants: 8 per super-block); false (nothing written) for a type
// or K it does not take and for m < 2 (decode rows go to the type's GEMV).
bool qgemm_panel_avx2(float* y, int64_t ldy, const BlockQ8Act* act, const void* w, DType wtype, int64_t m, int64_t k,
                      int64_t n0, int64_t n1);

// How far ahead of its reads a quantized GEMM prefetches weights: the decode GEMV kGemvAhead bytes
// (best of 2-16 KB measured on Zen 3, 1 thread); over several activation rows, whole groups of
// weight rows (group_bytes each) at least that far, so the next columns arrive (from DRAM for a
// batch of decodes, from L2 for the later chunks of a prompt) while this one is computed.
constexpr int64_t kGemvAhead = 4096;
inline int64_t gemm_ahead(int64_t group_bytes) {
  return group_bytes * ((kGemvAhead + group_bytes - 1) / group_bytes);
}
// A decode GEMV's slice (a work chunk: bytes from p) asks for its first kGemvAhead bytes at once:
// the in-loop prefetches run ahead of the reads, so without this the slice's start arrives by
// demand misses, a line at a time, every chunk.
inline void prefetch_slice_start(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t o = 0; o < bytes && o < kGemvAhead; o += 64) __builtin_prefetch(c + o, 0, 3);
}

}  // namespace ninestep
