#include "kernels/sample.h"

#include <algorithm>
#include <cmath>

#include "kernels/nn.h"

namespace ninestep {

static uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = splitmix64(seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return (next() >> 11) * 0x1.0p-53; }

using Cand = std::pair<float, int32_t>;  // (score, id): a logit or a probability
static bool better(const Cand& a, const Cand& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); }

// The m largest of v [n] (NaN never chosen), best first: one pass with a min-heap of size m, so
// the cost is ~n comparisons rather than a sort of the vocabulary.
static void top_m(std::vector<Cand>& heap, const float* v, int64_t n, size_t m) {
  heap.clear();
  m = std::min<size_t>(m, (size_t)n);
  for (int64_t i = 0; i < n; ++i) {
    if (heap.size() < m) {
      if (std::isnan(v[i])) continue;
      heap.push_back({v[i], (int32_t)i});
      std::push_heap(heap.begin(), heap.end(), better);
    } else if (v[i] > heap.front().first) {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = {v[i], (int32_t)i};
      std::push_heap(heap.begin(), heap.end(), better);
    }
  }
  std::sort_heap(heap.begin(), heap.end(), better);
}

// Draw one id with probability proportional to weight (cand[i].first).
static int64_t draw(const std::vector<Cand>& cand, Rng& rng) {
  double sum = 0.0;
  for (const Cand& c : cand) sum += c.first;
  double r = rng.uniform() * sum;
  for (const Cand& c : cand) {
    r -= c.first;
    if (r < 0) return c.second;
  }
  return cand.back().second;
}

// Keep the smallest best-first prefix holding top_p of `total`, the weight of the whole
// distribution the candidates come from (not only of the candidates listed).
static void cut_top_p(std::vector<Cand>& cand, float top_p, double total) {
  double cum = 0.0;
  for (size_t i = 0; i < cand.size(); ++i) {
    cum += cand[i].first;
    if (cum >= top_p * total) {
      cand.resize(i + 1);
      return;
    }
  }
}

int64_t sample_token(const float* logits, int64_t n, const int32_t* recent, int64_t n_recent,
                     const SampleParams& p, Rng& rng, SampleWork& w) {
  // Penalised logits: a copy only when a penalty changes some of them.
  const float* z = logits;
  if (p.repetition_penalty != 1.0f && n_recent > 0) {
    w.z.assign(logits, logits + n);
    w.ids.assign(recent, recent + n_recent);
    std::sort(w.ids.begin(), w.ids.end());
    w.ids.erase(std::unique(w.ids.begin(), w.ids.end()), w.ids.end());
    for (int32_t id : w.ids) w.z[id] = w.z[id] > 0 ? w.z[id] / p.repetition_penalty : w.z[id] * p.repetition_penalty;
    z = w.z.data();
  }
  // First maximum; NaN logits never win a comparison. The max pass vectorises, the find is short.
  float zmax = -INFINITY;
  for (int64_t i = 0; i < n; ++i) zmax = z[i] > zmax ? z[i] : zmax;
  int64_t best = 0;
  while (best < n - 1 && !(z[best] == zmax)) ++best;
  if (p.temperature <= 0.0f || !std::isfinite(z[best])) return best;

  const float inv_t = 1.0f / p.temperature, lmax = z[best];
  const bool use_k = p.top_k > 0 && p.top_k < n, use_p = p.top_p < 1.0f;
  std::vector<Cand>& c = w.cand;
  if (use_k) {
    // probabilities over the k best logits only, renormalised among them (HF order: top-k, then top-p)
    top_m(c, z, n, (size_t)p.top_k);
    double total = 0.0;
    for (Cand& x : c) total += (x.first = std::exp((x.first - lmax) * inv_t));
    if (use_p) cut_top_p(c, p.top_p, total);
  } else if (use_p) {
    // Full softmax (vectorised). Tokens with p <= (1 - top_p) / n hold at most 1 - top_p of the
    // mass together, so the kept prefix never reaches them: sort only the rest. The prefix is cut
    // at top_p of the whole distribution's mass, not of the listed part's.
    std::vector<float>& pr = w.probs;
    pr.resize(n);
    for (int64_t i = 0; i < n; ++i) pr[i] = std::isnan(z[i]) ? -INFINITY : z[i] * inv_t;
    softmax_rows(pr.data(), pr.data(), n, 0, 1);
    const float floor_p = (1.0f - p.top_p) / (float)n;
    c.clear();
    for (int64_t i = 0; i < n; ++i)
      if (pr[i] > floor_p) c.push_back({pr[i], (int32_t)i});
    double total = 0.0;
    for (int64_t i = 0; i < n; ++i) total += pr[i];
    std::sort(c.begin(), c.end(), better);
    cut_top_p(c, p.top_p, total);
  } else if (p.min_p > 0.0f) {
    // no ranking needed: only tokens whose weight can pass min-p get an exp
    const float floor_l = lmax + std::log(p.min_p) / inv_t;
    c.clear();
    for (int64_t i = 0; i < n; ++i)
      if (z[i] >= floor_l) c.push_back({std::exp((z[i] - lmax) * inv_t), (int32_t)i});
  } else {
    // plain temperature: the whole distribution (vectorised softmax), drawn in one walk
    std::vector<float>& pr = w.probs;
    pr.resize(n);
    for (int64_t i = 0; i < n; ++i) pr[i] = std::isnan(z[i]) ? -INFINITY : z[i] * inv_t;
    softmax_rows(pr.data(), pr.data(), n, 0, 1);
    double r = rng.uniform();
    for (int64_t i = 0; i < n; ++i)
      if ((r -= pr[i]) < 0) return i;
    return best;
  }
  if (p.min_p > 0.0f) {  // keep weight >= min_p * best weight (the ratio is unchanged by renormalising)
    float wmax = 0.0f;
    for (const Cand& x : c) wmax = std::max(wmax, x.first);
    const float floor_w = p.min_p * wmax;
    c.erase(std::remove_if(c.begin(), c.end(), [&](const Cand& x) { return x.first < floor_w; }), c.end());
  }
  return c.empty() ? best : draw(c, rng);
}

}  // namespace ninestep
