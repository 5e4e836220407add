// RMSNorm and LayerNorm over the last axis: scalar references + dispatch + standalone ops.
// The scalar references accumulate in double so they can stand in for the float64 NumPy reference.
#include <omp.h>

#include <cmath>

#include "core/dispatch.h"
#include "core/threads.h"
#include "kernels/nn.h"

namespace ninestep {

void rmsnorm_rows_generic(float* y, const float* x, const float* w, float eps, int64_t n, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    double ss = 0.0;
    for (int64_t i = 0; i < n; ++i) ss += (double)xr[i] * xr[i];
    const float inv = (float)(1.0 / std::sqrt(ss / (double)n + eps));
    for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * inv * w[i];
  }
}

void layernorm_rows_generic(float* y, const float* x, const float* w, const float* b, float eps, int64_t n,
                            int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += xr[i];
    const double mean = sum / (double)n;
    double var = 0.0;  // two passes: no cancellation when |mean| >> std
    for (int64_t i = 0; i < n; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    const double inv = 1.0 / std::sqrt(var / (double)n + eps);
    for (int64_t i = 0; i < n; ++i) yr[i] = (float)((xr[i] - mean) * inv) * w[i] + (b ? b[i] : 0.0f);
  }
}

using RmsFn = void (*)(float*, const float*, const float*, float, int64_t, int64_t, int64_t);
using LayerFn = void (*)(float*, const float*, const float*, const float*, float, int64_t, int64_t, int64_t);
void rmsnorm_rows_avx2(float*, const float*, const float*, float, int64_t, int64_t, int64_t);
void rmsnorm_rows_avx512(float*, const float*, const float*, float, int64_t, int64_t, int64_t);
void rmsnorm_rows_neon(float*, const float*, const float*, float, int64_t, int64_t, int64_t);
void layernorm_rows_avx2(float*, const float*, const float*, const float*, float, int64_t, int64_t, int64_t);
void layernorm_rows_avx512(float*, const float*, const float*, const float*, float, int64_t, int64_t, int64_t);
void layernorm_rows_neon(float*, const float*, const float*, const float*, float, int64_t, int64_t, int64_t);
static const Dispatch<RmsFn> kRms{rmsnorm_rows_generic, NS_AVX2(rmsnorm_rows_avx2), NS_AVX512(rmsnorm_rows_avx512),
                                  NS_NEON(rmsnorm_rows_neon)};
static const Dispatch<LayerFn> kLayer{layernorm_rows_generic, NS_AVX2(layernorm_rows_avx2),
                                      NS_AVX512(layernorm_rows_avx512), NS_NEON(layernorm_rows_neon)};

void rmsnorm_rows(float* y, const float* x, const float* w, float eps, int64_t n, int64_t r0, int64_t r1) {
  kRms.get()(y, x, w, eps, n, r0, r1);
}
void layernorm_rows(float* y, const float* x, const float* w, const float* b, float eps, int64_t n, int64_t r0,
                    int64_t r1) {
  kLayer.get()(y, x, w, b, eps, n, r0, r1);
}

void rmsnorm(float* y, const float* x, const float* w, float eps, int64_t rows, int64_t n) {
  const RmsFn fn = kRms.get();
#pragma omp parallel num_threads(num_threads()) if(rows * n >= kMinParallelWork)
  {
    int64_t b, e;
    split_range(rows, omp_get_num_threads(), omp_get_thread_num(), &b, &e);
    fn(y, x, w, eps, n, b, e);
  }
}

void layernorm(float* y, const float* x, const float* w, const float* bias, float eps, int64_t rows, int64_t n) {
  const LayerFn fn = kLayer.get();
#pragma omp parallel num_threads(num_threads()) if(rows * n >= kMinParallelWork)
  {
    int64_t b, e;
    split_range(rows, omp_get_num_threads(), omp_get_thread_num(), &b, &e);
    fn(y, x, w, bias, eps, n, b, e);
  }
}

}  // namespace ninestep
