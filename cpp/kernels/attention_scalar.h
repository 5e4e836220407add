// The scalar online softmax of one query over a range of keys, shared by the reference kernels
// of the prefill (attention.cpp) and decode (attention_decode.cpp) paths.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace ninestep {

// Starts a fresh state and runs it over keys [lo, end) of KV head g: acc [D] gets the unnormalised
// output, *m the running max score, *l the sum of exp(score - m). k, v: [S, Hkv, D] with position
// stride kv_stride; qt [D].
inline void attend_keys_scalar(float* acc, float* m, float* l, const float* qt, const float* k, const float* v,
                               int64_t kv_stride, int64_t g, int64_t D, float scale, int64_t lo, int64_t end) {
  float mx = -std::numeric_limits<float>::infinity(), sum = 0.0f;
  std::fill(acc, acc + D, 0.0f);
  for (int64_t s = lo; s < end; ++s) {
    const float* ks = k + s * kv_stride + g * D;  // [D]
    const float* vs = v + s * kv_stride + g * D;  // [D]
    float dot = 0.0f;
    for (int64_t d = 0; d < D; ++d) dot += qt[d] * ks[d];
    const float score = dot * scale;
    if (score > mx) {
      const float corr = std::exp(mx - score);  // 0 on the first key (mx = -inf)
      sum *= corr;
      for (int64_t d = 0; d < D; ++d) acc[d] *= corr;
      mx = score;
    }
    const float p = std::exp(score - mx);
    sum += p;
    for (int64_t d = 0; d < D; ++d) acc[d] += p * vs[d];
  }
  *m = mx;
  *l = sum;
}

}  // namespace ninestep
