// AVX-512 VNNI + VL: the packed-weight GEMM (quant_packed_x86.h) with each quad's integer dot one
// _mm256_dpbusd_epi32 and taller tiles in the 32 YMM registers; the same packed layout and the
// same bits as the AVX2 build of it. CMakeLists.txt adds -mavx512vnni to this file alone; it runs
// only after quant_packed.cpp's CPUID check.
#include "kernels/quant_packed_x86.h"

static_assert(NS_TILE_VNNI, "quant_packed_avx512.cpp is compiled with AVX-512 VNNI + VL");

namespace ninestep {

bool qgemm_packed_vnni(float* y, int64_t ldy, const BlockQ8Act* act, const void* packed, DType t, int64_t m, int64_t k,
                       int64_t n0, int64_t n1) {
  return packed_x86::gemm(y, ldy, act, packed, t, m, k, n0, n1);
}

}  // namespace ninestep
