#include "kernels/attention_encoder.h"

#include "kernels/gemm_float.h"
#include "kernels/nn.h"

namespace ninestep {

int64_t attention_encoder_scratch(int64_t T, int64_t D) { return T * T + 3 * T * D; }

void attention_encoder_head(float* out, const float* q, const float* k, const float* v, int64_t ld, int64_t T,
                            int64_t D, int64_t h, float scale, float* scratch) {
  float* S = scratch;            // [T, T] scores, then probabilities
  float* qh = S + T * T;         // [T, D] this head's queries, scaled, contiguous
  float* kh = qh + T * D;        // [T, D] its keys
  float* vt = kh + T * D;        // [D, T] its values, transposed: the "weights" of O = P V
  const int64_t c0 = h * D;
  for (int64_t t = 0; t < T; ++t) {
    const float* qr = q + t * ld + c0;
    const float* kr = k + t * ld + c0;
    const float* vr = v + t * ld + c0;
    for (int64_t d = 0; d < D; ++d) {
      qh[t * D + d] = qr[d] * scale;
      kh[t * D + d] = kr[d];
      vt[d * T + t] = vr[d];
    }
  }
  gemm_float_rows(S, T, qh, kh, DType::f32, T, D, 0, T);
  softmax_rows(S, S, T, 0, T);
  gemm_float_rows(out + c0, ld, S, vt, DType::f32, T, T, 0, D);
}

}  // namespace ninestep
