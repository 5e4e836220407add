// AVX2 + FMA + F16C: the packed-weight GEMM (quant_packed_x86.h) and the layout it reads.
#include "kernels/quant_packed_x86.h"

namespace ninestep {

PackedLayout packed_layout_avx2(DType t) { return packed_x86::layout(t); }

bool qgemm_packed_avx2(float* y, int64_t ldy, const BlockQ8Act* act, const void* packed, DType t, int64_t m, int64_t k,
                       int64_t n0, int64_t n1) {
  return packed_x86::gemm(y, ldy, act, packed, t, m, k, n0, n1);
}

}  // namespace ninestep
