// softmax over the last axis: scalar reference + dispatch + the standalone op.
//
// Stable at any magnitude: the row max is subtracted first. Special rows, the same at every ISA:
// a row whose entries are all -inf (nothing "allowed") is uniform, 1/n, the limit of
// softmax(c, ..., c); a NaN anywhere in a row makes the whole row NaN; +inf entries give NaN
// (inf - inf), as NumPy's exp(x - max) / sum does.
#include <omp.h>

#include <cmath>
#include <limits>

#include "core/dispatch.h"
#include "core/threads.h"
#include "kernels/nn.h"

namespace ninestep {

// The all -inf row (its max is -inf, possibly beside NaNs): uniform unless a NaN is present.
void softmax_row_no_max(float* y, const float* x, int64_t n) {
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) nan |= std::isnan(x[i]);
  const float v = nan ? std::numeric_limits<float>::quiet_NaN() : 1.0f / (float)n;
  for (int64_t i = 0; i < n; ++i) y[i] = v;
}

void softmax_rows_generic(float* y, const float* x, int64_t n, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n; ++i) mx = std::fmax(mx, xr[i]);
    if (mx == -std::numeric_limits<float>::infinity()) {
      softmax_row_no_max(yr, xr, n);
      continue;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      yr[i] = std::exp(xr[i] - mx);
      sum += yr[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) yr[i] *= inv;
  }
}

using SoftmaxFn = void (*)(float*, const float*, int64_t, int64_t, int64_t);
void softmax_rows_avx2(float*, const float*, int64_t, int64_t, int64_t);
void softmax_rows_avx512(float*, const float*, int64_t, int64_t, int64_t);
void softmax_rows_neon(float*, const float*, int64_t, int64_t, int64_t);
static const Dispatch<SoftmaxFn> kSoftmax{softmax_rows_generic, NS_AVX2(softmax_rows_avx2), NS_AVX512(softmax_rows_avx512),
                                          NS_NEON(softmax_rows_neon)};

void softmax_rows(float* y, const float* x, int64_t n, int64_t r0, int64_t r1) { kSoftmax.get()(y, x, n, r0, r1); }

void softmax(float* y, const float* x, int64_t rows, int64_t n) {
  const SoftmaxFn fn = kSoftmax.get();
#pragma omp parallel num_threads(num_threads()) if(rows * n >= kMinParallelWork)
  {
    int64_t b, e;
    split_range(rows, omp_get_num_threads(), omp_get_thread_num(), &b, &e);
    fn(y, x, n, b, e);
  }
}

}  // namespace ninestep
