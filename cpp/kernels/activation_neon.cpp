// SiLU, GELU (tanh and erf forms) and SwiGLU, NEON.
#include <arm_neon.h>

#include <cstring>

#include "kernels/nn.h"
#include "kernels/vexp_neon.h"

namespace ninestep {

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

// 0.5 x (1 + erf(x / sqrt 2)) through erfc(|x| / sqrt 2): as gelu_erf8 in activation_avx2.cpp.
inline float32x4_t gelu_erf4(float32x4_t x) {
  const float32x4_t z = vminq_f32(vmulq_n_f32(vabsq_f32(x), 0.7071067811865476f), vdupq_n_f32(12.0f));
  const float32x4_t t = vdivq_f32(vdupq_n_f32(1.0f), vfmaq_n_f32(vdupq_n_f32(1.0f), z, 0.5f));
  float32x4_t p = vdupq_n_f32(0.17087277f);
  p = vfmaq_f32(vdupq_n_f32(-0.82215223f), p, t);
  p = vfmaq_f32(vdupq_n_f32(1.48851587f), p, t);
  p = vfmaq_f32(vdupq_n_f32(-1.13520398f), p, t);
  p = vfmaq_f32(vdupq_n_f32(0.27886807f), p, t);
  p = vfmaq_f32(vdupq_n_f32(-0.18628806f), p, t);
  p = vfmaq_f32(vdupq_n_f32(0.09678418f), p, t);
  p = vfmaq_f32(vdupq_n_f32(0.37409196f), p, t);
  p = vfmaq_f32(vdupq_n_f32(1.00002368f), p, t);
  p = vfmaq_f32(vdupq_n_f32(-1.26551223f), p, t);
  const float32x4_t e = vmulq_f32(z, z);
  const float32x4_t e_err = vnegq_f32(vfmsq_f32(e, z, z));  // z*z - e exactly
  const float32x4_t ne = vnegq_f32(e);
  const float32x4_t s = vaddq_f32(ne, p);
  const float32x4_t bp = vsubq_f32(s, ne);
  const float32x4_t c = vaddq_f32(vsubq_f32(ne, vsubq_f32(s, bp)), vsubq_f32(p, bp));
  const float32x4_t r = vmulq_f32(vmulq_f32(t, vexp_neon(s)), vaddq_f32(vdupq_n_f32(1.0f), vsubq_f32(c, e_err)));
  const float32x4_t neg = vmulq_f32(vmulq_n_f32(x, 0.5f), r);
  const float32x4_t pos = vmulq_f32(x, vfmsq_f32(vdupq_n_f32(1.0f), vdupq_n_f32(0.5f), r));  // x (1 - r/2)
  return vbslq_f32(vcgeq_f32(x, vdupq_n_f32(0.0f)), pos, neg);
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
  if (tanh_approx)
    map2(y, x, x, i0, i1, [](float32x4_t v, float32x4_t) { return gelu_tanh4(v); });
  else
    map2(y, x, x, i0, i1, [](float32x4_t v, float32x4_t) { return gelu_erf4(v); });
}

void swiglu_range_neon(float* y, const float* gate, const float* up, int64_t i0, int64_t i1) {
  map2(y, gate, up, i0, i1, [](float32x4_t g, float32x4_t u) { return vmulq_f32(silu4(g), u); });
}

}  // namespace ninestep
