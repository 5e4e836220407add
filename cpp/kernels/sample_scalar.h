// The sampler's scans (sample.h) one value at a time from index i on: sample.cpp's generic
// versions, and the tails the SIMD versions (sample_avx2.cpp, sample_avx512.cpp) leave.
// Internal linkage (an unnamed namespace): each file, whatever its ISA flags, keeps its own copy.
#pragma once
#include <cmath>
#include <cstdint>

namespace ninestep {
namespace {

// The first j in [i, n) with v[j] >= thr, else n.
inline int64_t first_at_least_from(const float* v, int64_t i, int64_t n, float thr) {
  for (; i < n; ++i)
    if (v[i] >= thr) return i;
  return n;
}

// w[j] = exp((z[j] - lmax) * inv_t) for j in [i, n), 0 for NaN and -inf; returns total + their
// sum, added one by one.
inline double exp_weights_from(float* w, const float* z, int64_t i, int64_t n, float lmax, float inv_t,
                               double total) {
  for (; i < n; ++i) total += (w[i] = z[i] > -INFINITY ? std::exp((z[i] - lmax) * inv_t) : 0.0f);
  return total;
}

// The first j in [i, n) where r - (p[i] + ... + p[j]) < 0, else -1.
inline int64_t walk_from(const float* p, int64_t i, int64_t n, double r) {
  for (; i < n; ++i)
    if ((r -= p[i]) < 0) return i;
  return -1;
}

}  // namespace
}  // namespace ninestep
