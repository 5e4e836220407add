// The scalar online softmax of one query over a range of keys, shared by the reference kernels
// of the prefill (attention.cpp) and decode (attention_decode.cpp) paths, and the scalar readers of
// the KV cache element types.
// Internal linkage (an unnamed namespace): files built with different ISA flags include this, and
// each keeps its own copy instead of the linker choosing one of them for all.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "core/dtype.h"
#include "core/fp16.h"

namespace ninestep {
namespace {

// Element e of a cache row (bytes at row) of type KT.
template <DType KT>
inline float kv_at(const uint8_t* row, int64_t e);
template <>
inline float kv_at<DType::f32>(const uint8_t* row, int64_t e) {
  return reinterpret_cast<const float*>(row)[e];
}
template <>
inline float kv_at<DType::f16>(const uint8_t* row, int64_t e) {
  return fp16_to_f32(reinterpret_cast<const uint16_t*>(row)[e]);
}
template <>
inline float kv_at<DType::q8_0>(const uint8_t* row, int64_t e) {
  const BlockQ8_0& b = reinterpret_cast<const BlockQ8_0*>(row)[e / QK];
  return fp16_to_f32(b.d) * float(b.qs[e % QK]);
}

// Starts a fresh state and runs it over keys [lo, end) of the KV head whose elements start e0 into
// each row: acc [D] gets the unnormalised output, *m the running max score, *l the sum of
// exp(score - m). k, v: rows of type KT row_bytes apart (see attention_range); qt [D].
template <DType KT>
inline void attend_keys_scalar(float* acc, float* m, float* l, const float* qt, const uint8_t* k, const uint8_t* v,
                               int64_t row_bytes, int64_t e0, int64_t D, float scale, int64_t lo, int64_t end) {
  float mx = -std::numeric_limits<float>::infinity(), sum = 0.0f;
  std::fill(acc, acc + D, 0.0f);
  for (int64_t s = lo; s < end; ++s) {
    const uint8_t* ks = k + s * row_bytes;
    const uint8_t* vs = v + s * row_bytes;
    float dot = 0.0f;
    for (int64_t d = 0; d < D; ++d) dot += qt[d] * kv_at<KT>(ks, e0 + d);
    const float score = dot * scale;
    if (score > mx) {
      const float corr = std::exp(mx - score);  // 0 on the first key (mx = -inf)
      sum *= corr;
      for (int64_t d = 0; d < D; ++d) acc[d] *= corr;
      mx = score;
    }
    const float p = std::exp(score - mx);
    sum += p;
    for (int64_t d = 0; d < D; ++d) acc[d] += p * kv_at<KT>(vs, e0 + d);
  }
  *m = mx;
  *l = sum;
}

// Calls f(std::integral_constant<DType, T>{}) for the cache type t (f32, f16 or q8_0; the callers
// checked it with kv_cache_type_error).
template <class F>
inline void with_kv_type(DType t, F&& f) {
  switch (t) {
    case DType::f16:
      f(std::integral_constant<DType, DType::f16>{});
      break;
    case DType::q8_0:
      f(std::integral_constant<DType, DType::q8_0>{});
      break;
    default:
      f(std::integral_constant<DType, DType::f32>{});
      break;
  }
}

}  // namespace
}  // namespace ninestep
