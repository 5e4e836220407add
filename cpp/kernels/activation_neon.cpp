// SiLU, GELU (tanh form) and SwiGLU, NEON. The erf form of GELU stays on the scalar reference
// (as on x86, see activation_avx512.cpp).
#include <arm_neon.h>

#include <cstring>

#include "kernels/nn.h"
#include "kernels/vexp_neon.h"

namespace ninestep {

void gelu_range_generic(float* y, const float* x, bool tanh_approx, int64_t i0, int64_t i1);  // activation.cpp

namespace {

// x / (1 + exp(-a)); exp = inf gives the right limit, -0.
inline float32x4_t times_sigmoid(float32x4_t x, float32x4_t a) {
  return vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), vexp_neon(vnegq_f32(a))));
}

inline float32x4_t silu4(float32x4_t x) { return times_sigmoid(x, x); }

// 0.5 x (1 + tanh(u)) == x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)
inline float32x4_t gelu_tanh4(float32x4_t x) {
  const float32x4_t x3 = vmulq_f32(vmulq_f32(x, x), x);
  const float32x4_t u2 = vmulq_n_f32(vfmaq_n_f32(x, x3, 0.044715f), 2.0f * 0.7978845608028654f);
  return times_sigmoid(x, u2);
}

// y[i] = f(a[i], b[i]) on [i0, i1); the tail goes through the same vector code via a buffer.
template <class F>
inline void map2(float* y, const float* a, const float* b, int64_t i0, int64_t i1, F f) {
  int64_t i = i0;
  for (; i + 4 <= i1; i += 4) vst1q_f32(y + i, f(vld1q_f32(a + i), vld1q_f32(b + i)));
  if (i < i1) {
    float ta[4] = {0, 0, 0, 0}, tb[4] = {0, 0, 0, 0};
    const size_t bytes = (i1 - i) * sizeof(float);
    std::memcpy(ta, a + i, bytes);
    std::memcpy(tb, b + i, bytes);
    vst1q_f32(ta, f(vld1q_f32(ta), vld1q_f32(tb)));
    std::memcpy(y + i, ta, bytes);
  }
}

}  // namespace

void silu_range_neon(float* y, const float* x, int64_t i0, int64_t i1) {
  map2(y, x, x, i0, i1, [](float32x4_t v, float32x4_t) { return silu4(v); });
}

void gelu_range_neon(float* y, const float* x, bool tanh_approx, int64_t i0, int64_t i1) {
  if (!tanh_approx) return gelu_range_generic(y, x, false, i0, i1);
  map2(y, x, x, i0, i1, [](float32x4_t v, float32x4_t) { return gelu_tanh4(v); });
}

void swiglu_range_neon(float* y, const float* gate, const float* up, int64_t i0, int64_t i1) {
  map2(y, gate, up, i0, i1, [](float32x4_t g, float32x4_t u) { return vmulq_f32(silu4(g), u); });
}

}  // namespace ninestep
