// KV cache element types: which (type, head size) pairs can hold a cache, and writing one row.
// A row is written once per token and layer; the generic writer is the reference, and f16 rows
// have an F16C variant (attention_kv_avx2.cpp): the scalar rounding was about half of prefill's
// rope_cache phase. The attention kernels read the rows with SIMD (attention*_avx2.cpp).
#include <cstring>
#include <string>

#include "core/dispatch.h"
#include "core/fp16.h"
#include "kernels/nn.h"
#include "kernels/traits.h"

namespace ninestep {

std::string kv_cache_type_error(DType type, int64_t D) {
  if (type != DType::f32 && type != DType::f16 && type != DType::q8_0)
    return std::string("a KV cache holds f32, f16 or q8_0, not ") + dtype_info(type).name;
  if (type == DType::q8_0 && D % QK != 0)
    return "a q8_0 KV cache needs a head size that is a multiple of 32, got " + std::to_string(D);
  return "";
}

DType kv_cache_type(const std::string& name, const std::string& what) {
  if (name == "f32") return DType::f32;
  if (name == "f16") return DType::f16;
  if (name == "q8_0") return DType::q8_0;
  NS_CHECK(false, what + ": expected one of 'f16', 'q8_0', 'f32', got '" + name + "'");
  return DType::f32;
}

void kv_store_row_generic(void* dst, const float* src, DType type, int64_t n) {
  switch (type) {
    case DType::f16: {
      uint16_t* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = f32_to_fp16(src[i]);
      break;
    }
    case DType::q8_0:
      type_traits(DType::q8_0).quantize_row(dst, src, n);
      break;
    default:
      std::memcpy(dst, src, n * sizeof(float));
  }
}

using StoreFn = void (*)(void*, const float*, DType, int64_t);
void kv_store_row_avx2(void*, const float*, DType, int64_t);
static const Dispatch<StoreFn> kStore{kv_store_row_generic, NS_AVX2(kv_store_row_avx2)};  // AVX-512: the AVX2 one

void kv_store_row(void* dst, const float* src, DType type, int64_t n) { kStore.get()(dst, src, type, n); }

}  // namespace ninestep
