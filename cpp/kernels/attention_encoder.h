// Bidirectional attention of one short sentence and one head, as three dense steps instead of an
// online softmax: S = (scale Q) K^T [T, T], P = softmax(S) by rows, O = P V. Short sentences
// (5-128 tokens, the encoder's common case) spend their time in the float GEMM kernel this way,
// which runs near the FMA roof, instead of in per-key-block bookkeeping. ISA-independent: it is
// written once over the dispatched gemm_float_rows and softmax_rows (scalar references under
// NINESTEP_ISA=generic). Single-threaded, allocates nothing.
#pragma once
#include <cstdint>

namespace ninestep {

// Floats of scratch one call needs for a sentence of T tokens and heads of D.
int64_t attention_encoder_scratch(int64_t T, int64_t D);

// out[t, h, :] = sum_s softmax_s(scale q[t, h, :] . k[s, h, :]) v[s, h, :] for t, s < T.
// q, k, v, out: [T, H, D] with row stride ld (elements between consecutive tokens), head h at
// column h * D; scratch: attention_encoder_scratch(T, D) floats.
void attention_encoder_head(float* out, const float* q, const float* k, const float* v, int64_t ld, int64_t T,
                            int64_t D, int64_t h, float scale, float* scratch);

}  // namespace ninestep
