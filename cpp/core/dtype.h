// Weight types and their GGUF-compatible block layouts. One table describes every type;
// a new type is a row here plus its kernels.
#pragma once
#include <cstdint>
#include <string>

#include "core/check.h"

namespace ninestep {

enum class DType : int {
  f32 = 0, f16 = 1, bf16 = 2, q8_0 = 3, q4_0 = 4, q4_1 = 5, q5_0 = 6, q5_1 = 7, q4_k = 8, q5_k = 9, q6_k = 10
};
constexpr int kNumDTypes = 11;

// Blocks of 32 elements, byte-identical to ggml's.
constexpr int64_t QK = 32;
struct BlockQ8_0 {
  uint16_t d;      // fp16 scale
  int8_t qs[QK];   // x = d * q
};
struct BlockQ4_0 {
  uint16_t d;          // fp16 scale
  uint8_t qs[QK / 2];  // element j in the low nibble of byte j, element j+16 in the high nibble; x = d * (q - 8)
};
struct BlockQ4_1 {
  uint16_t d;          // fp16 scale
  uint16_t m;          // fp16 minimum
  uint8_t qs[QK / 2];  // nibbles as Q4_0; x = d * q + m
};
// Five-bit types: the low four bits as Q4's nibbles, the fifth bit of element j in bit j of qh
// (a little-endian uint32).
struct BlockQ5_0 {
  uint16_t d;          // fp16 scale
  uint8_t qh[4];       // fifth bits
  uint8_t qs[QK / 2];  // low nibbles as Q4_0; x = d * (q - 16), q in [0, 31]
};
struct BlockQ5_1 {
  uint16_t d;          // fp16 scale
  uint16_t m;          // fp16 minimum
  uint8_t qh[4];       // fifth bits
  uint8_t qs[QK / 2];  // low nibbles as Q4_0; x = d * q + m
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block must be 34 bytes");
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block must be 18 bytes");
static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 block must be 20 bytes");
static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 block must be 22 bytes");
static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 block must be 24 bytes");

struct DTypeInfo {
  const char* name;
  int64_t block_elems;  // elements per block (1 for plain floats)
  int64_t block_bytes;  // bytes per block
  bool quantized;
  int64_t align;        // alignment the kernels' loads need (a float, or a block's fp16 scale)
};

inline const DTypeInfo& dtype_info(DType t) {
  static const DTypeInfo table[kNumDTypes] = {
      {"f32", 1, 4, false, 4},   {"f16", 1, 2, false, 2},    {"bf16", 1, 2, false, 2},
      {"q8_0", QK, 34, true, 2}, {"q4_0", QK, 18, true, 2}, {"q4_1", QK, 20, true, 2},
      {"q5_0", QK, 22, true, 2}, {"q5_1", QK, 24, true, 2},
      {"q4_k", 256, 144, true, 2}, {"q5_k", 256, 176, true, 2}, {"q6_k", 256, 210, true, 2},
  };
  return table[static_cast<int>(t)];
}

inline DType dtype_from_name(const std::string& name) {
  for (int i = 0; i < kNumDTypes; ++i)
    if (name == dtype_info(static_cast<DType>(i)).name) return static_cast<DType>(i);
  std::string known;
  for (int i = 0; i < kNumDTypes; ++i) known += std::string(i ? ", " : "") + dtype_info(static_cast<DType>(i)).name;
  fail("unknown weight kind '" + name + "' (expected one of " + known + ")");
}

// Fails unless `data` is aligned for `t` (a file may place a tensor at any byte offset).
inline void check_aligned(const void* data, DType t, const std::string& name) {
  const int64_t a = dtype_info(t).align;
  NS_CHECK(reinterpret_cast<uintptr_t>(data) % a == 0,
           name + ": " + dtype_info(t).name + " data must be " + std::to_string(a) + "-byte aligned");
}

// Bytes in one row of k elements; fails if k is not a whole number of blocks.
inline int64_t dtype_row_bytes(DType t, int64_t k) {
  const DTypeInfo& info = dtype_info(t);
  NS_CHECK(k > 0 && k % info.block_elems == 0,
           std::string("row length ") + std::to_string(k) + " is not a positive multiple of " +
               std::to_string(info.block_elems) + " for " + info.name);
  return checked_mul(k / info.block_elems, info.block_bytes, "row bytes");
}

}  // namespace ninestep
