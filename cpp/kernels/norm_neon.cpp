// RMSNorm and LayerNorm over the last axis, NEON. Sums run in float over 4 vector accumulators
// (n / 16 terms per lane: ~36 for d_model 576, far from losing digits).
#include <arm_neon.h>

#include <cmath>

#include "kernels/nn.h"

namespace ninestep {

namespace {

// sum over i of f(x[i]); f acts on a vector (for the tail, on x[i] in every lane).
template <class F>
inline float reduce_row(const float* x, int64_t n, F f) {
  float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = vaddq_f32(a0, f(vld1q_f32(x + i)));
    a1 = vaddq_f32(a1, f(vld1q_f32(x + i + 4)));
    a2 = vaddq_f32(a2, f(vld1q_f32(x + i + 8)));
    a3 = vaddq_f32(a3, f(vld1q_f32(x + i + 12)));
  }
  for (; i + 4 <= n; i += 4) a0 = vaddq_f32(a0, f(vld1q_f32(x + i)));
  float tail = 0.0f;
  for (; i < n; ++i) tail += vgetq_lane_f32(f(vdupq_n_f32(x[i])), 0);
  return vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3))) + tail;
}

}  // namespace

void rmsnorm_rows_neon(float* y, const float* x, const float* w, float eps, int64_t n, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    const float ss = reduce_row(xr, n, [](float32x4_t v) { return vmulq_f32(v, v); });
    const float inv = 1.0f / std::sqrt(ss / (float)n + eps);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(yr + i, vmulq_f32(vmulq_n_f32(vld1q_f32(xr + i), inv), vld1q_f32(w + i)));
    for (; i < n; ++i) yr[i] = xr[i] * inv * w[i];
  }
}

void layernorm_rows_neon(float* y, const float* x, const float* w, const float* b, float eps, int64_t n, int64_t r0,
                         int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    const float mean = reduce_row(xr, n, [](float32x4_t v) { return v; }) / (float)n;
    const float32x4_t vm = vdupq_n_f32(mean);
    // two passes: no cancellation when |mean| >> std
    const float var = reduce_row(xr, n, [&](float32x4_t v) {
      const float32x4_t c = vsubq_f32(v, vm);
      return vmulq_f32(c, c);
    }) / (float)n;
    const float inv = 1.0f / std::sqrt(var + eps);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
      const float32x4_t c = vmulq_n_f32(vsubq_f32(vld1q_f32(xr + i), vm), inv);
      const float32x4_t bb = b ? vld1q_f32(b + i) : vdupq_n_f32(0.0f);
      vst1q_f32(yr + i, vfmaq_f32(bb, c, vld1q_f32(w + i)));
    }
    for (; i < n; ++i) yr[i] = (xr[i] - mean) * inv * w[i] + (b ? b[i] : 0.0f);
  }
}

}  // namespace ninestep
