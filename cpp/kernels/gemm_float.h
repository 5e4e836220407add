// Float-weight (f32, f16, bf16) matrix product on a slice of W's rows.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace ninestep {

// y[i * ldy + j] = sum_c x[i * k + c] * W[j, c], i in [0, m), j in [n0, n1).
// w: [n, k] elements of wtype (f32, f16 or bf16). Single-threaded, no allocation.
void gemm_float_rows(float* y, int64_t ldy, const float* x, const void* w, DType wtype, int64_t m, int64_t k,
                     int64_t n0, int64_t n1);

}  // namespace ninestep
