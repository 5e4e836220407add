#include "kernels/gemm_float.h"

#include "core/dispatch.h"
#include "core/fp16.h"

namespace ninestep {

static inline float load_w(const void* w, DType t, int64_t i) {
  switch (t) {
    case DType::f16: return fp16_to_f32(static_cast<const uint16_t*>(w)[i]);
    case DType::bf16: return bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
    default: return static_cast<const float*>(w)[i];
  }
}

// Scalar reference: the SIMD variants are tested against this.
void gemm_float_rows_generic(float* y, int64_t ldy, const float* x, const void* w, DType wtype, int64_t m,
                             int64_t k, int64_t n0, int64_t n1) {
  for (int64_t j = n0; j < n1; ++j) {
    for (int64_t i = 0; i < m; ++i) {
      float acc = 0.0f;
      for (int64_t c = 0; c < k; ++c) acc += x[i * k + c] * load_w(w, wtype, j * k + c);
      y[i * ldy + j] = acc;
    }
  }
}

// SIMD variants (gemm_float_{avx2,avx512,neon}.cpp), same contract as gemm_float_rows.
void gemm_float_rows_avx2(float* y, int64_t ldy, const float* x, const void* w, DType wtype, int64_t m, int64_t k,
                          int64_t n0, int64_t n1);
void gemm_float_rows_avx512(float* y, int64_t ldy, const float* x, const void* w, DType wtype, int64_t m, int64_t k,
                            int64_t n0, int64_t n1);
void gemm_float_rows_neon(float* y, int64_t ldy, const float* x, const void* w, DType wtype, int64_t m, int64_t k,
                          int64_t n0, int64_t n1);

using GemmFloatFn = void (*)(float*, int64_t, const float*, const void*, DType, int64_t, int64_t, int64_t, int64_t);
static const Dispatch<GemmFloatFn> kGemmFloat{gemm_float_rows_generic, NS_AVX2(gemm_float_rows_avx2),
                                              NS_AVX512(gemm_float_rows_avx512), NS_NEON(gemm_float_rows_neon)};

void gemm_float_rows(float* y, int64_t ldy, const float* x, const void* w, DType wtype, int64_t m, int64_t k,
                     int64_t n0, int64_t n1) {
  kGemmFloat.get()(y, ldy, x, w, wtype, m, k, n0, n1);
}

}  // namespace ninestep
