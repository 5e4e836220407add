// Row-wise and attention kernels used by the forward pass (and bound one by one in ninestep.ops).
// All are single-threaded on the range they are given, allocate nothing, and may run inside an
// OpenMP parallel region; the caller splits rows (or attention work items) across threads.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace ninestep {

// y [rows, n] = softmax(x [rows, n]) over the last axis for rows [r0, r1). y may alias x.
// A row of all -inf gives 1/n everywhere; a NaN anywhere makes its row NaN (see softmax.cpp).
void softmax_rows(float* y, const float* x, int64_t n, int64_t r0, int64_t r1);

// y = x / sqrt(mean(x^2) + eps) * w, rows [r0, r1) of x [rows, n]; w [n]. y may alias x.
void rmsnorm_rows(float* y, const float* x, const float* w, float eps, int64_t n, int64_t r0, int64_t r1);
// y = (x - mean) / sqrt(var + eps) * w + b; w, b [n] (b may be null). y may alias x.
void layernorm_rows(float* y, const float* x, const float* w, const float* b, float eps, int64_t n, int64_t r0,
                    int64_t r1);

enum class RopeStyle : int { norm = 0, neox = 1 };  // norm: pairs (2i, 2i+1); neox: pairs (i, i + D/2)
// In place on x [T, H, D] for tokens [t0, t1): angle = pos[t] * theta^(-2i/D), D even.
void rope_rows(float* x, const int32_t* pos, int64_t H, int64_t D, float theta, RopeStyle style, int64_t t0,
               int64_t t1);

// Causal (or not) grouped-query attention with online softmax; no [T, S] matrix is formed.
// attention_range is the prefill shape (one query head per item); see attention_split_range for decode.
// q [T, Hq, D]; k, v: S positions of Hkv heads of D elements of kv_type (f32, f16 or q8_0: see
// kv_cache_type_error). Head g of position s starts g * head_stride + s * kv_stride elements in
// (byte offsets dtype_row_bytes(kv_type, that)): a [S, Hkv, D] array has kv_stride Hkv * D and
// head_stride D; the engine's head-major cache [Hkv, S_max, D] has kv_stride D and head_stride
// S_max * D, so each head's keys are one contiguous stream. out [T, Hq, D].
// The T queries are the last T of the S positions: query t sees keys 0 .. S - T + t (causal).
// window > 0 (causal only): query t sees only the last `window` of those keys, itself included
// (a sliding window); 0 sees them all.
// Work items are (head pass, query tile of kAttnTile) pairs; this call does items [i0, i1). A head
// pass is up to kAttnPassHeads query heads of one GQA group (Hq / Hkv heads share a KV head), so
// one read of a key block serves all of them; a group of G heads runs in ceil(G / kAttnPassHeads)
// passes of near-equal size.
constexpr int64_t kAttnTile = 16;
constexpr int64_t kAttnPassHeads = 3;
struct AttnItem {
  int64_t h0, nh;  // query heads [h0, h0 + nh), all of KV head h0 / (Hq / Hkv)
  int64_t t0, t1;  // queries [t0, t1)
};
int64_t attention_items(int64_t T, int64_t Hq, int64_t Hkv);
AttnItem attention_item(int64_t item, int64_t T, int64_t Hq, int64_t Hkv);
void attention_range(float* out, const float* q, const void* k, const void* v, DType kv_type, int64_t kv_stride,
                     int64_t head_stride, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                     bool causal, int64_t window, int64_t i0, int64_t i1);

// Decode-shaped attention (T <= kAttnSplitMaxT), flash-decoding style. Item (g, j) of
// Hkv * n_split reads every K / V row of key block j of KV head g once for all Hq / Hkv * T queries
// of that head (so a GQA group shares each load) and leaves their softmax states in part; the
// blocks split a long context across threads however few KV heads there are. Then
// attention_merge_rows combines each query's n_split states into its output row.
// Arguments as attention_range; items [i0, i1) of attention_split_items(Hkv, n_split).
// part [Hkv, n_split, T, Hq / Hkv, D + 2]: per query the unnormalised output [D], the running max
// of its scores and the sum of exp(score - max); a block the query cannot see leaves (0, -inf, 0).
constexpr int64_t kAttnSplitMaxT = 4;
constexpr int64_t kAttnMinSplitKeys = 32;  // a key block shorter than this is not worth its merge
// n_split in [1, nthreads]: Hkv * n_split items share evenly among nthreads (3 KV heads on 2 threads: 2 blocks each).
int64_t attention_splits(int64_t S, int64_t Hkv, int nthreads);
inline int64_t attention_split_items(int64_t Hkv, int64_t n_split) { return Hkv * n_split; }
inline int64_t attention_part_floats(int64_t T, int64_t Hq, int64_t D, int64_t n_split) {
  return n_split * T * Hq * (D + 2);
}
void attention_split_range(float* part, const float* q, const void* k, const void* v, DType kv_type, int64_t kv_stride,
                           int64_t head_stride, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                           bool causal, int64_t n_split, int64_t i0, int64_t i1);
// out rows [r0, r1) of out [T * Hq, D] from part (above).
void attention_merge_rows(float* out, const float* part, int64_t T, int64_t Hq, int64_t Hkv, int64_t D,
                          int64_t n_split, int64_t r0, int64_t r1);

// KV cache element types: f32, f16 and q8_0 (blocks of 32 must not straddle heads: D % 32 == 0).
// Returns "" when (type, D) can hold a cache, else why not.
std::string kv_cache_type_error(DType type, int64_t D);
// "f32", "f16" or "q8_0" -> the type; anything else fails (ArgError naming `what` and the choices).
DType kv_cache_type(const std::string& name, const std::string& what);
// dst: one cache row of n elements of `type` (dtype_row_bytes(type, n) bytes) from src [n];
// f16 rounds to nearest even, q8_0 as ggml's reference quantizer.
void kv_store_row(void* dst, const float* src, DType type, int64_t n);

// Elementwise on [i0, i1) of n-element arrays; y may alias an input.
void silu_range(float* y, const float* x, int64_t i0, int64_t i1);
void gelu_range(float* y, const float* x, bool tanh_approx, int64_t i0, int64_t i1);
void swiglu_range(float* y, const float* gate, const float* up, int64_t i0, int64_t i1);  // silu(gate) * up

// Standalone ops (ninestep.ops): each opens one OpenMP parallel region and splits the work above.
// Sizes are trusted here; the bindings check them first. Below kMinParallelWork elements (of
// input, or of T * S * Hq * D for attention) they stay on one thread: starting a team costs more.
constexpr int64_t kMinParallelWork = 32768;
void softmax(float* y, const float* x, int64_t rows, int64_t n);                   // y, x [rows, n]
void rmsnorm(float* y, const float* x, const float* w, float eps, int64_t rows, int64_t n);  // w [n]
void layernorm(float* y, const float* x, const float* w, const float* b, float eps, int64_t rows, int64_t n);
void rope(float* x, const int32_t* pos, int64_t T, int64_t H, int64_t D, float theta, RopeStyle style);  // x [T, H, D]
void attention(float* out, const float* q, const void* k, const void* v, DType kv_type, int64_t kv_stride,
               int64_t head_stride, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t D, float scale, bool causal,
               int64_t window = 0);
void silu(float* y, const float* x, int64_t n);
void gelu(float* y, const float* x, bool tanh_approx, int64_t n);
void swiglu(float* y, const float* gate, const float* up, int64_t n);

}  // namespace ninestep
