// The RoPE frequencies f[i] = theta^(-2 i / D) for the vectorised rope kernels (rope_avx2.cpp,
// rope_avx512.cpp): scalar code with internal linkage, so each ISA's file has its own copy.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace ninestep {
namespace {

constexpr int64_t kFreqBlock = 512;  // frequencies whose f = theta^(-2i/D) sit in a stack table at once

// The frequencies f[i] = theta^(-2 i / D), i < min(D / 2, kFreqBlock), of the last two (theta, D)
// this thread used: a decode step calls rope_rows per chunk of heads and token, and the 32-128
// std::pow calls cost more than the rotation (~2 us per call). Two entries, as Gemma 3's layers
// alternate a local and a global base. Same values as computing them afresh.
struct FreqTable {
  float theta = 0.0f;
  int64_t D = 0;
  alignas(32) double f[kFreqBlock];
};

inline const double* cached_freqs(float theta, int64_t D) {
  static thread_local FreqTable tab[2];
  static thread_local int older = 0;
  for (FreqTable& t : tab)
    if (t.D == D && t.theta == theta) return t.f;
  FreqTable& t = tab[older];
  older ^= 1;
  const int64_t nf = std::min(kFreqBlock, D / 2);
  for (int64_t i = 0; i < nf; ++i) t.f[i] = std::pow((double)theta, -2.0 * (double)i / (double)D);
  for (int64_t i = nf; i < ((nf + 7) & ~int64_t(7)); ++i) t.f[i] = 0.0;  // tail lanes: angle 0, masked off
  t.theta = theta, t.D = D;
  return t.f;
}

// f[i] of frequencies [ib, ib + nf) into buf (nf <= kFreqBlock), zero-padded to a multiple of 8;
// the first block comes from the thread's table.
inline const double* freq_block(double* buf, float theta, int64_t D, int64_t ib, int64_t nf) {
  if (ib == 0) return cached_freqs(theta, D);
  for (int64_t i = 0; i < nf; ++i) buf[i] = std::pow((double)theta, -2.0 * (double)(ib + i) / (double)D);
  for (int64_t i = nf; i < ((nf + 7) & ~int64_t(7)); ++i) buf[i] = 0.0;  // tail lanes: angle 0, masked off
  return buf;
}

}  // namespace
}  // namespace ninestep
