// Next-token sampling over one row of logits: repetition penalty, temperature, top-k, top-p,
// min-p, then a draw from a seeded generator. Never sorts the whole vocabulary.
#pragma once
#include <cstdint>
#include <vector>

namespace ninestep {

struct SampleParams {
  float temperature = 0.0f;        // 0: greedy
  int64_t top_k = 0;               // 0: off
  float top_p = 1.0f;              // 1: off
  float min_p = 0.0f;              // 0: off
  float repetition_penalty = 1.0f; // 1: off (HF rule: logit > 0 divided, else multiplied)
};

// xoshiro256** seeded through splitmix64: the same seed gives the same stream on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform();  // [0, 1)
 private:
  uint64_t s_[4];
};

struct SampleWork {
  std::vector<float> z;                        // [n] penalised logits
  std::vector<float> probs;                    // [n] weights exp((z - max) / T) (no top-k)
  std::vector<std::pair<float, int32_t>> cand; // (weight, id) candidates
  std::vector<int32_t> ids;                    // deduplicated penalty ids
};

// The scans sample_token makes over a row (sample.cpp: the scalar versions and the dispatch;
// sample_avx2.cpp, sample_avx512.cpp). NaN is never chosen, never >= anything.
// The first index of the largest value of v [n] (n >= 1); n - 1 if every value is NaN.
int64_t sample_argmax(const float* v, int64_t n);
// The first j in [i, n) with v[j] >= thr, else n.
int64_t sample_first_at_least(const float* v, int64_t i, int64_t n, float thr);
// w[i] = exp((z[i] - lmax) * inv_t), 0 for NaN and -inf; returns their sum (lmax: the finite max).
double sample_exp_weights(float* w, const float* z, int64_t n, float lmax, float inv_t);
// The first i where r - (p[0] + ... + p[i]) < 0, else -1.
int64_t sample_walk(const float* p, int64_t n, double r);

// logits [n]; recent [n_recent] ids the penalty applies to (each counted once). All ids must be
// in [0, n) (checked by the caller). Order as HF: penalty, temperature, top-k, top-p, min-p.
int64_t sample_token(const float* logits, int64_t n, const int32_t* recent, int64_t n_recent,
                     const SampleParams& p, Rng& rng, SampleWork& work);

}  // namespace ninestep
