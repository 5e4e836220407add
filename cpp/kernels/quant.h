// Quantized weights: GGUF-compatible quantize / dequantize, 8-bit activation blocks, and the
// product of quantized W with those activations.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "kernels/traits.h"

namespace ninestep {

// src [n, k] floats -> dst, n rows of dtype_row_bytes(type, k) bytes (rounding as ggml's reference).
void quantize_rows(void* dst, const float* src, DType type, int64_t n, int64_t k);
// src: n rows of `type` -> dst [n, k] floats. Any DType, plain floats included.
void dequantize_rows(float* dst, const void* src, DType type, int64_t n, int64_t k);

// x [k] -> k / QK activation blocks.
void quantize_act_row(BlockQ8Act* dst, const float* x, int64_t k);

// y[i * ldy + j] = sum_c x[i, c] * W[j, c], i in [0, m), j in [n0, n1); act holds m rows of k / QK
// blocks made by quantize_act_row. Single-threaded, no allocation.
void qgemm_rows(float* y, int64_t ldy, const BlockQ8Act* act, const void* w, DType wtype, int64_t m, int64_t k,
                int64_t n0, int64_t n1);

// Variants behind the dispatch in quant.cpp (same contracts as above); *_generic is the reference.
void quantize_act_row_generic(BlockQ8Act* dst, const float* x, int64_t k);
void quantize_act_row_avx2(BlockQ8Act* dst, const float* x, int64_t k);
void quantize_act_row_avx512(BlockQ8Act* dst, const float* x, int64_t k);
void quantize_act_row_neon(BlockQ8Act* dst, const float* x, int64_t k);
void qgemm_rows_generic(float* y, int64_t ldy, const BlockQ8Act* act, const void* w, DType wtype, int64_t m,
                        int64_t k, int64_t n0, int64_t n1);
void qgemm_rows_avx2(float* y, int64_t ldy, const BlockQ8Act* act, const void* w, DType wtype, int64_t m, int64_t k,
                     int64_t n0, int64_t n1);
void qgemm_rows_avx512(float* y, int64_t ldy, const BlockQ8Act* act, const void* w, DType wtype, int64_t m,
                       int64_t k, int64_t n0, int64_t n1);
void qgemm_rows_neon(float* y, int64_t ldy, const BlockQ8Act* act, const void* w, DType wtype, int64_t m, int64_t k,
                     int64_t n0, int64_t n1);

}  // namespace ninestep
