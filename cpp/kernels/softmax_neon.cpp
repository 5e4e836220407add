// softmax over the last axis, NEON. Same special rows as the scalar reference (softmax.cpp).
#include <arm_neon.h>

#include <cstring>
#include <limits>

#include "kernels/nn.h"
#include "kernels/vexp_neon.h"

namespace ninestep {

void softmax_row_no_max(float* y, const float* x, int64_t n);  // softmax.cpp: the all -inf row

void softmax_rows_neon(float* y, const float* x, int64_t n, int64_t r0, int64_t r1) {
  constexpr float kNinf = -std::numeric_limits<float>::infinity();
  const int64_t nv = n & ~int64_t(3), nt = n - nv;
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    // The tail padded with -inf: no effect on the max, and exp gives 0 there.
    float tail[4] = {kNinf, kNinf, kNinf, kNinf};
    std::memcpy(tail, xr + nv, nt * sizeof(float));
    // maxnm skips NaN as std::fmax in the reference does; a NaN row still ends up all NaN below.
    float32x4_t m0 = vld1q_f32(tail), m1 = vdupq_n_f32(kNinf);
    int64_t i = 0;
    for (; i + 8 <= nv; i += 8) {
      m0 = vmaxnmq_f32(m0, vld1q_f32(xr + i));
      m1 = vmaxnmq_f32(m1, vld1q_f32(xr + i + 4));
    }
    if (i < nv) m0 = vmaxnmq_f32(m0, vld1q_f32(xr + i));
    const float mx = vmaxnmvq_f32(vmaxnmq_f32(m0, m1));
    if (mx == kNinf) {
      softmax_row_no_max(yr, xr, n);
      continue;
    }
    // exp and sum; partial sums go to double every 1024 elements so long rows stay accurate
    const float32x4_t vm = vdupq_n_f32(mx);
    double sum = 0.0;
    for (int64_t b = 0; b < nv; b += 1024) {
      const int64_t e = b + 1024 < nv ? b + 1024 : nv;
      float32x4_t s = vdupq_n_f32(0.0f);
      for (int64_t j = b; j < e; j += 4) {
        const float32x4_t v = vexp_neon(vsubq_f32(vld1q_f32(xr + j), vm));
        vst1q_f32(yr + j, v);
        s = vaddq_f32(s, v);
      }
      sum += vaddvq_f32(s);
    }
    if (nt) {
      const float32x4_t v = vexp_neon(vsubq_f32(vld1q_f32(tail), vm));
      vst1q_f32(tail, v);
      std::memcpy(yr + nv, tail, nt * sizeof(float));
      sum += vaddvq_f32(v);
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t j = 0; j < nv; j += 4) vst1q_f32(yr + j, vmulq_n_f32(vld1q_f32(yr + j), inv));
    for (int64_t j = nv; j < n; ++j) yr[j] *= inv;
  }
}

}  // namespace ninestep
