// The trait table: one row per weight type (kernels/traits.h). Adding a type is a row here plus
// its kernels; a type whose row lacks a kernel fails by name where that kernel is asked for.
#include "kernels/traits.h"

#include <string>

#include "kernels/gemm_float.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "kernels/quant_k.h"

namespace ninestep {

namespace {

// The 32-element quantized types share one GEMM entry per ISA that takes the weight type.
using QGemmTypedFn = void (*)(float*, int64_t, const BlockQ8Act*, const void*, DType, int64_t, int64_t, int64_t,
                              int64_t);
template <DType T, QGemmTypedFn F>
void q32_gemm(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0, int64_t n1) {
  F(y, ldy, static_cast<const BlockQ8Act*>(act), w, T, m, k, n0, n1);
}
// AVX2 runs every quantized type's GEMM on the column-interleaved panel (quant_panel_avx2.cpp) and
// the type's own kernel F where the panel does not take the shape (one row: F's decode GEMV).
template <DType T, GemmRowsFn F>
void panel_gemm_avx2(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                     int64_t n1) {
  if (!qgemm_panel_avx2(y, ldy, static_cast<const BlockQ8Act*>(act), w, T, m, k, n0, n1)) F(y, ldy, act, w, m, k, n0, n1);
}
#define NS_PANEL_AVX2(T, F) NS_AVX2((panel_gemm_avx2<T, F>))

// No AVX-512 variant: Dispatch falls back to the AVX2 one on AVX-512 machines; with VNNI,
// matmul_rows takes the packed GEMM (two or more rows) and the VNNI decode GEMV (one row) first.
#define NS_Q32_GEMM(T)                                                                          \
  Dispatch<GemmRowsFn> {                                                                        \
    q32_gemm<T, qgemm_rows_generic>, NS_PANEL_AVX2(T, (q32_gemm<T, qgemm_rows_avx2>)), nullptr, \
        NS_NEON((q32_gemm<T, qgemm_rows_neon>))                                                 \
  }

// Float weights multiply the f32 activations directly; gemm_float_rows dispatches per ISA itself.
template <DType T>
void float_gemm(float* y, int64_t ldy, const void* x, const void* w, int64_t m, int64_t k, int64_t n0, int64_t n1) {
  gemm_float_rows(y, ldy, static_cast<const float*>(x), w, T, m, k, n0, n1);
}

template <class Fn, Fn F, class Block>
void act_rows(void* dst, const float* x, int64_t k) {
  F(static_cast<Block*>(dst), x, k);
}
#define NS_ACT32(fn) (act_rows<void (*)(BlockQ8Act*, const float*, int64_t), fn, BlockQ8Act>)

// The K-quants' GEMMs and Q8_K conversion are GemmRowsFn / ActRowFn already; no AVX-512 variant
// (the AVX2 one serves AVX-512 machines).
#define NS_KGEMM(t)                                                                                     \
  Dispatch<GemmRowsFn> {                                                                                \
    gemm_##t##_generic, NS_PANEL_AVX2(DType::t, gemm_##t##_avx2), nullptr, NS_NEON(gemm_##t##_neon)     \
  }

const ActTraits kActs[] = {
    {"f32", 1, 4, {nullptr}},
    {"q8_32", QK, (int64_t)sizeof(BlockQ8Act),
     {NS_ACT32(quantize_act_row_generic), NS_AVX2(NS_ACT32(quantize_act_row_avx2)),
      NS_AVX512(NS_ACT32(quantize_act_row_avx512)), NS_NEON(NS_ACT32(quantize_act_row_neon))}},
    {"q8_k", QK_K, (int64_t)sizeof(BlockQ8K),
     {quantize_q8k_row_generic, NS_AVX2(quantize_q8k_row_avx2), nullptr, NS_NEON(quantize_q8k_row_neon)}},
};

const TypeTraits kTypes[kNumDTypes] = {
    {DType::f32, ActFormat::f32, dequantize_row_f32, nullptr, {float_gemm<DType::f32>}},
    {DType::f16, ActFormat::f32, dequantize_row_f16, nullptr, {float_gemm<DType::f16>}},
    {DType::bf16, ActFormat::f32, dequantize_row_bf16, nullptr, {float_gemm<DType::bf16>}},
    {DType::q8_0, ActFormat::q8_32, dequantize_row_q8_0, quantize_row_q8_0, NS_Q32_GEMM(DType::q8_0)},
    {DType::q4_0, ActFormat::q8_32, dequantize_row_q4_0, quantize_row_q4_0, NS_Q32_GEMM(DType::q4_0)},
    {DType::q4_1, ActFormat::q8_32, dequantize_row_q4_1, quantize_row_q4_1, NS_Q32_GEMM(DType::q4_1)},
    {DType::q5_0, ActFormat::q8_32, dequantize_row_q5_0, quantize_row_q5_0, NS_Q32_GEMM(DType::q5_0)},
    {DType::q5_1, ActFormat::q8_32, dequantize_row_q5_1, quantize_row_q5_1, NS_Q32_GEMM(DType::q5_1)},
    {DType::q4_k, ActFormat::q8_32, dequantize_row_q4_k, quantize_row_q4_k, NS_KGEMM(q4_k)},
    {DType::q5_k, ActFormat::q8_32, dequantize_row_q5_k, quantize_row_q5_k, NS_KGEMM(q5_k)},
    {DType::q6_k, ActFormat::q8_32, dequantize_row_q6_k, quantize_row_q6_k, NS_KGEMM(q6_k)},
};

}  // namespace

const TypeTraits& type_traits(DType t) {
  const int i = static_cast<int>(t);
  NS_CHECK(i >= 0 && i < kNumDTypes && kTypes[i].type == t, "weight type " + std::to_string(i) + " has no trait row");
  return kTypes[i];
}

const ActTraits& act_traits(ActFormat f) { return kActs[static_cast<int>(f)]; }

int64_t act_row_bytes(ActFormat f, int64_t k) {
  const ActTraits& a = act_traits(f);
  NS_CHECK(k > 0 && k % a.block_elems == 0, "row length " + std::to_string(k) + " is not a positive multiple of " +
                                                std::to_string(a.block_elems) + " for " + a.name + " activations");
  return checked_mul(k / a.block_elems, a.block_bytes, "activation row bytes");
}

void check_matmul_kernel(DType t, const std::string& what) {
  const TypeTraits& tt = type_traits(t);
  const ActTraits& a = act_traits(tt.act);
  NS_CHECK(tt.gemm.generic != nullptr && (tt.act == ActFormat::f32 || a.from_float.generic != nullptr),
           what + ": no matmul kernel for weight type " + dtype_info(t).name);
}

void check_dequantize_kernel(DType t, const std::string& what) {
  NS_CHECK(type_traits(t).dequantize_row != nullptr, what + ": no dequantize kernel for " + dtype_info(t).name);
}

void quantize_rows(void* dst, const float* src, DType type, int64_t n, int64_t k) {
  const QuantRowFn q = type_traits(type).quantize_row;
  NS_CHECK(q != nullptr, std::string("quantize: cannot quantize to ") + dtype_info(type).name);
  const int64_t rb = dtype_row_bytes(type, k);
  for (int64_t i = 0; i < n; ++i) q(static_cast<uint8_t*>(dst) + i * rb, src + i * k, k);
}

void dequantize_rows(float* dst, const void* src, DType type, int64_t n, int64_t k) {
  check_dequantize_kernel(type, "dequantize");
  const DequantRowFn f = type_traits(type).dequantize_row;
  const int64_t rb = dtype_row_bytes(type, k);
  for (int64_t i = 0; i < n; ++i) f(dst + i * k, static_cast<const uint8_t*>(src) + i * rb, k);
}

}  // namespace ninestep
