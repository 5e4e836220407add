// Rotary position embedding: scalar reference + dispatch + the standalone op.
//
// Angles are formed and reduced in double: at position 100000 an angle is ~1e5 radians, and a
// float angle would already be off by ~4e-3 there.
#include <omp.h>

#include <cmath>

#include "core/dispatch.h"
#include "core/threads.h"
#include "kernels/nn.h"

namespace ninestep {

// Rotates pair (a, b) of every head of token row xt [H, D] by the angle of frequency i.
static inline void rotate_pair(float* xt, int64_t H, int64_t D, int64_t a, int64_t b, float c, float s) {
  for (int64_t h = 0; h < H; ++h) {
    float* xh = xt + h * D;
    const float x0 = xh[a], x1 = xh[b];
    xh[a] = x0 * c - x1 * s;
    xh[b] = x0 * s + x1 * c;
  }
}

void rope_rows_generic(float* x, const int32_t* pos, int64_t H, int64_t D, float theta, RopeStyle style, int64_t t0,
                       int64_t t1) {
  const int64_t half = D / 2;
  for (int64_t t = t0; t < t1; ++t) {
    float* xt = x + t * H * D;
    for (int64_t i = 0; i < half; ++i) {
      const double ang = (double)pos[t] * std::pow((double)theta, -2.0 * (double)i / (double)D);
      const float c = (float)std::cos(ang), s = (float)std::sin(ang);
      if (style == RopeStyle::norm)
        rotate_pair(xt, H, D, 2 * i, 2 * i + 1, c, s);
      else
        rotate_pair(xt, H, D, i, i + half, c, s);
    }
  }
}

using RopeFn = void (*)(float*, const int32_t*, int64_t, int64_t, float, RopeStyle, int64_t, int64_t);
void rope_rows_avx2(float*, const int32_t*, int64_t, int64_t, float, RopeStyle, int64_t, int64_t);
void rope_rows_avx512(float*, const int32_t*, int64_t, int64_t, float, RopeStyle, int64_t, int64_t);
static const Dispatch<RopeFn> kRope{rope_rows_generic, NS_AVX2(rope_rows_avx2), NS_AVX512(rope_rows_avx512)};

void rope_rows(float* x, const int32_t* pos, int64_t H, int64_t D, float theta, RopeStyle style, int64_t t0,
               int64_t t1) {
  kRope.get()(x, pos, H, D, theta, style, t0, t1);
}

void rope(float* x, const int32_t* pos, int64_t T, int64_t H, int64_t D, float theta, RopeStyle style) {
  const RopeFn fn = kRope.get();
#pragma omp parallel num_threads(num_threads()) if(T * H * D >= kMinParallelWork)
  {
    int64_t b, e;
    split_range(T, omp_get_num_threads(), omp_get_thread_num(), &b, &e);
    fn(x, pos, H, D, theta, style, b, e);
  }
}

}  // namespace ninestep
