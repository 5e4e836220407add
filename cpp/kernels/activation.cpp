// SiLU, GELU and SwiGLU: scalar references + dispatch + standalone ops.
#include <omp.h>

#include <cmath>

#include "core/dispatch.h"
#include "core/threads.h"
#include "kernels/nn.h"

namespace ninestep {

static inline float silu1(float x) { return x / (1.0f + std::exp(-x)); }

void silu_range_generic(float* y, const float* x, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) y[i] = silu1(x[i]);
}

// tanh form: 0.5 x (1 + tanh(u)) == x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3); written
// as a sigmoid so large negative x does not lose everything to 1 + tanh(u) cancelling.
void gelu_range_generic(float* y, const float* x, bool tanh_approx, int64_t i0, int64_t i1) {
  const float k = 0.7978845608028654f;  // sqrt(2/pi)
  for (int64_t i = i0; i < i1; ++i) {
    const float v = x[i];
    if (tanh_approx)
      y[i] = v / (1.0f + std::exp(-2.0f * k * (v + 0.044715f * v * v * v)));
    else
      y[i] = 0.5f * v * std::erfc(-v * 0.7071067811865476f);  // 1 + erf(z) == erfc(-z), exact in the tail
  }
}

void swiglu_range_generic(float* y, const float* gate, const float* up, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) y[i] = silu1(gate[i]) * up[i];
}

using SiluFn = void (*)(float*, const float*, int64_t, int64_t);
using GeluFn = void (*)(float*, const float*, bool, int64_t, int64_t);
using SwigluFn = void (*)(float*, const float*, const float*, int64_t, int64_t);
void silu_range_avx2(float*, const float*, int64_t, int64_t);
void silu_range_avx512(float*, const float*, int64_t, int64_t);
void gelu_range_avx2(float*, const float*, bool, int64_t, int64_t);
void gelu_range_avx512(float*, const float*, bool, int64_t, int64_t);
void swiglu_range_avx2(float*, const float*, const float*, int64_t, int64_t);
void swiglu_range_avx512(float*, const float*, const float*, int64_t, int64_t);
void silu_range_neon(float*, const float*, int64_t, int64_t);
void gelu_range_neon(float*, const float*, bool, int64_t, int64_t);
void swiglu_range_neon(float*, const float*, const float*, int64_t, int64_t);
static const Dispatch<SiluFn> kSilu{silu_range_generic, NS_AVX2(silu_range_avx2), NS_AVX512(silu_range_avx512),
                                    NS_NEON(silu_range_neon)};
static const Dispatch<GeluFn> kGelu{gelu_range_generic, NS_AVX2(gelu_range_avx2), NS_AVX512(gelu_range_avx512),
                                    NS_NEON(gelu_range_neon)};
static const Dispatch<SwigluFn> kSwiglu{swiglu_range_generic, NS_AVX2(swiglu_range_avx2),
                                        NS_AVX512(swiglu_range_avx512), NS_NEON(swiglu_range_neon)};

void silu_range(float* y, const float* x, int64_t i0, int64_t i1) { kSilu.get()(y, x, i0, i1); }
void gelu_range(float* y, const float* x, bool tanh_approx, int64_t i0, int64_t i1) {
  kGelu.get()(y, x, tanh_approx, i0, i1);
}
void swiglu_range(float* y, const float* gate, const float* up, int64_t i0, int64_t i1) {
  kSwiglu.get()(y, gate, up, i0, i1);
}

// Elementwise work splits on 16-element boundaries so every thread's SIMD loop starts aligned
// with the others' and only the last slice has a tail.
template <class Body>
static void parallel_elems(int64_t n, Body body) {
#pragma omp parallel num_threads(num_threads()) if(n >= kMinParallelWork)
  {
    int64_t b, e;
    split_range(n, omp_get_num_threads(), omp_get_thread_num(), &b, &e, 16);
    body(b, e);
  }
}

void silu(float* y, const float* x, int64_t n) {
  const SiluFn fn = kSilu.get();
  parallel_elems(n, [&](int64_t b, int64_t e) { fn(y, x, b, e); });
}
void gelu(float* y, const float* x, bool tanh_approx, int64_t n) {
  const GeluFn fn = kGelu.get();
  parallel_elems(n, [&](int64_t b, int64_t e) { fn(y, x, tanh_approx, b, e); });
}
void swiglu(float* y, const float* gate, const float* up, int64_t n) {
  const SwigluFn fn = kSwiglu.get();
  parallel_elems(n, [&](int64_t b, int64_t e) { fn(y, gate, up, b, e); });
}

}  // namespace ninestep
