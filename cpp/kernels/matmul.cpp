#include "kernels/matmul.h"

#include <omp.h>

#include <vector>

#include "core/threads.h"
#include "kernels/gemm_float.h"
#include "kernels/quant.h"

namespace ninestep {

size_t matmul_scratch_bytes(DType wtype, int64_t m, int64_t k) {
  if (!dtype_info(wtype).quantized) return 0;
  return (size_t)checked_mul(m, k / QK, "matmul scratch") * sizeof(BlockQ8Act);
}

void matmul_prepare(void* scratch, const float* x, DType wtype, int64_t m, int64_t k, int64_t m0, int64_t m1) {
  if (!dtype_info(wtype).quantized) return;
  BlockQ8Act* act = static_cast<BlockQ8Act*>(scratch);
  for (int64_t i = m0; i < m1; ++i) quantize_act_row(act + i * (k / QK), x + i * k, k);
}

void matmul_rows(float* y, int64_t ldy, const float* x, const void* scratch, const WeightView& w, int64_t m,
                 int64_t n0, int64_t n1) {
  if (dtype_info(w.type).quantized)
    qgemm_rows(y, ldy, static_cast<const BlockQ8Act*>(scratch), w.data, w.type, m, w.k, n0, n1);
  else
    gemm_float_rows(y, ldy, x, w.data, w.type, m, w.k, n0, n1);
}

void matmul(float* y, const float* x, const WeightView& w, int64_t m) {
  dtype_row_bytes(w.type, w.k);  // validates k against the block size
  std::vector<uint8_t> scratch(matmul_scratch_bytes(w.type, m, w.k));
  const int nth = num_threads();
#pragma omp parallel num_threads(nth)
  {
    const int ith = omp_get_thread_num(), nt = omp_get_num_threads();
    int64_t b, e;
    split_range(m, nt, ith, &b, &e);
    matmul_prepare(scratch.data(), x, w.type, m, w.k, b, e);
#pragma omp barrier
    split_range(w.n, nt, ith, &b, &e, 16);
    matmul_rows(y, w.n, x, scratch.data(), w, m, b, e);
  }
}

}  // namespace ninestep
