// y = x @ W^T for W of any DType. The contract the forward pass builds on:
//
//   1. scratch = matmul_scratch_bytes(W.type, m, k) bytes, allocated once by the caller;
//   2. every thread calls matmul_prepare on its share of x's rows, then a barrier;
//   3. every thread calls matmul_rows on its share of W's rows [n0, n1).
//
// matmul_rows is single-threaded on its slice, allocates nothing and may run inside an
// OpenMP parallel region. matmul() does all three with its own parallel region.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace ninestep {

struct WeightView {
  const void* data;  // [n, dtype_row_bytes(type, k)] bytes, rows contiguous
  DType type;
  int64_t n;  // rows = output features
  int64_t k;  // columns = input features
  const void* packed = nullptr;  // the same rows packed for the batched GEMM (quant_packed.h), or null
};

// Bytes of scratch the activations x [m, k] need for a matmul against weights of `wtype`.
size_t matmul_scratch_bytes(DType wtype, int64_t m, int64_t k);

// Converts rows [m0, m1) of x [m, k] into scratch (8-bit blocks for quantized weights).
void matmul_prepare(void* scratch, const float* x, DType wtype, int64_t m, int64_t k, int64_t m0, int64_t m1);

// y[i * ldy + j] = sum_c x[i, c] * W[j, c] for i in [0, m), j in [n0, n1).
void matmul_rows(float* y, int64_t ldy, const float* x, const void* scratch, const WeightView& w, int64_t m,
                 int64_t n0, int64_t n1);

// The whole product with its own OpenMP region: y [m, w.n] = x [m, w.k] @ W^T.
void matmul(float* y, const float* x, const WeightView& w, int64_t m);

}  // namespace ninestep
