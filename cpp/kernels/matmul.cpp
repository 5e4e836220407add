#include "kernels/matmul.h"

#include <omp.h>

#include <vector>

#include "core/threads.h"
#include "kernels/quant_packed.h"
#include "kernels/traits.h"

namespace ninestep {

size_t matmul_scratch_bytes(DType wtype, int64_t m, int64_t k) {
  const ActFormat f = type_traits(wtype).act;
  if (f == ActFormat::f32) return 0;
  return (size_t)checked_mul(m, act_row_bytes(f, k), "matmul scratch");
}

void matmul_prepare(void* scratch, const float* x, DType wtype, int64_t m, int64_t k, int64_t m0, int64_t m1) {
  const ActFormat f = type_traits(wtype).act;
  if (f == ActFormat::f32) return;
  const ActRowFn conv = act_traits(f).from_float.get();
  const int64_t rb = act_row_bytes(f, k);
  for (int64_t i = m0; i < m1; ++i) conv(static_cast<uint8_t*>(scratch) + i * rb, x + i * k, k);
}

void matmul_rows(float* y, int64_t ldy, const float* x, const void* scratch, const WeightView& w, int64_t m,
                 int64_t n0, int64_t n1) {
  const TypeTraits& t = type_traits(w.type);
  // Two or more rows read the packed copy when there is one; a lone decode row too where that pays
  // (packed_gemv_here), else it keeps the type's GEMV over the GGUF rows (same integer dots, another
  // float order: see quant_panel_avx2.cpp), with VNNI Q8_0's own one (quant_gemv_avx512.cpp).
  if (w.packed && (m >= 2 || packed_gemv_here(w.type)) &&
      qgemm_packed(y, ldy, static_cast<const BlockQ8Act*>(scratch), w.packed, w.type, m, w.k, n0, n1))
    return;
#ifdef NINESTEP_HAVE_AVX512VNNI
  if (m == 1 && t.act == ActFormat::q8_32 && vnni_active() &&
      qgemv_vnni(y, static_cast<const BlockQ8Act*>(scratch), w.data, w.type, w.k, n0, n1))
    return;
#endif
  t.gemm.get()(y, ldy, t.act == ActFormat::f32 ? static_cast<const void*>(x) : scratch, w.data, m, w.k, n0, n1);
}

void matmul(float* y, const float* x, const WeightView& w, int64_t m) {
  dtype_row_bytes(w.type, w.k);  // validates k against the block size
  check_matmul_kernel(w.type, "matmul");
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
