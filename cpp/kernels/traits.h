// The per-type trait table (as ggml's type_traits_cpu): one row per weight type naming how it is
// stored, dequantized and multiplied. Ops and the forward pass look a type up here; a type without
// a kernel for something fails loudly with its name, never falls into another type's code.
//
// A matmul with quantized weights multiplies against the activations converted to the row's
// activation format (ggml's vec_dot_type): plain f32 for float weights, 8-bit blocks of 32
// (BlockQ8Act) for the 32-element types, 8-bit blocks of 256 with 16-element sub-block sums
// (BlockQ8K) for the K-quants.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dispatch.h"
#include "core/dtype.h"

namespace ninestep {

enum class ActFormat : int { f32 = 0, q8_32 = 1, q8_k = 2 };

constexpr int64_t QK_K = 256;  // elements per K-quant super-block

// Activations for the 32-element types: x ~= d * qs[i].
struct BlockQ8Act {
  float d;         // scale
  float s;         // d * sum(qs), for formats with a minimum (Q4_1, Q5_1, Q4_K, Q5_K)
  int8_t qs[QK];
};
// Activations for the K-quants (ggml's block_q8_K): x ~= d * qs[i].
struct BlockQ8K {
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];  // sum of each 16 consecutive qs
};

// float row x [k] -> activation blocks of one format (k a multiple of the format's block).
using ActRowFn = void (*)(void* dst, const float* x, int64_t k);
// y[i * ldy + j] = sum_c x[i, c] * W[j, c] for i in [0, m), j in [n0, n1). `act` holds m rows of
// activations in the type's format (for f32: x itself, [m, k]); w holds rows of dtype_row_bytes.
// Single-threaded on its slice, allocates nothing.
using GemmRowsFn = void (*)(float* y, int64_t ldy, const void* act, const void* w, int64_t m, int64_t k, int64_t n0,
                            int64_t n1);
using DequantRowFn = void (*)(float* dst, const void* src, int64_t k);  // one row of k elements
using QuantRowFn = void (*)(void* dst, const float* src, int64_t k);    // ggml's reference rounding

struct ActTraits {
  const char* name;
  int64_t block_elems;  // 1 for f32
  int64_t block_bytes;
  Dispatch<ActRowFn> from_float;  // null generic for f32 (no conversion)
};

struct TypeTraits {
  DType type;
  ActFormat act;
  DequantRowFn dequantize_row;  // every type
  QuantRowFn quantize_row;      // null: ninestep.quantize cannot make this type
  Dispatch<GemmRowsFn> gemm;    // per-ISA; generic is the scalar reference
};

const TypeTraits& type_traits(DType t);
const ActTraits& act_traits(ActFormat f);

// Bytes of one activation row of k elements in format f (fails unless k is a whole number of blocks).
int64_t act_row_bytes(ActFormat f, int64_t k);

// Fail (ArgError naming `what` and the type) unless the type has the kernels for a matmul (its
// GEMM and its activation conversion) / for dequantizing. Called before any parallel region.
void check_matmul_kernel(DType t, const std::string& what);
void check_dequantize_kernel(DType t, const std::string& what);

// n rows of k floats <-> n rows of `type` (dtype_row_bytes(type, k) bytes each), single-threaded.
void quantize_rows(void* dst, const float* src, DType type, int64_t n, int64_t k);    // fails without quantize_row
void dequantize_rows(float* dst, const void* src, DType type, int64_t n, int64_t k);  // any type with a row

}  // namespace ninestep
