#include "kernels/sample.h"

#include <algorithm>
#include <cmath>

#include "core/dispatch.h"
#include "kernels/sample_scalar.h"

namespace ninestep {

// ---- the scans, scalar, and their dispatch ----------------------------------------------------

static int64_t argmax_generic(const float* v, int64_t n) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = v[i] > m ? v[i] : m;
  int64_t best = 0;
  while (best < n - 1 && !(v[best] == m)) ++best;
  return best;
}

static double exp_weights_generic(float* w, const float* z, int64_t n, float lmax, float inv_t) {
  return exp_weights_from(w, z, 0, n, lmax, inv_t, 0.0);
}

static int64_t walk_generic(const float* p, int64_t n, double r) { return walk_from(p, 0, n, r); }

int64_t sample_argmax_avx2(const float* v, int64_t n);
int64_t sample_first_at_least_avx2(const float* v, int64_t i, int64_t n, float thr);
double sample_exp_weights_avx2(float* w, const float* z, int64_t n, float lmax, float inv_t);
double sample_exp_weights_avx512(float* w, const float* z, int64_t n, float lmax, float inv_t);
int64_t sample_walk_avx2(const float* p, int64_t n, double r);

static const Dispatch<int64_t (*)(const float*, int64_t)> kArgmax{argmax_generic, NS_AVX2(sample_argmax_avx2)};
static const Dispatch<int64_t (*)(const float*, int64_t, int64_t, float)> kFirstAtLeast{
    first_at_least_from, NS_AVX2(sample_first_at_least_avx2)};
static const Dispatch<double (*)(float*, const float*, int64_t, float, float)> kExpWeights{
    exp_weights_generic, NS_AVX2(sample_exp_weights_avx2), NS_AVX512(sample_exp_weights_avx512)};
static const Dispatch<int64_t (*)(const float*, int64_t, double)> kWalk{walk_generic, NS_AVX2(sample_walk_avx2)};

int64_t sample_argmax(const float* v, int64_t n) { return kArgmax.get()(v, n); }
int64_t sample_first_at_least(const float* v, int64_t i, int64_t n, float thr) {
  return kFirstAtLeast.get()(v, i, n, thr);
}
double sample_exp_weights(float* w, const float* z, int64_t n, float lmax, float inv_t) {
  return kExpWeights.get()(w, z, n, lmax, inv_t);
}
int64_t sample_walk(const float* p, int64_t n, double r) { return kWalk.get()(p, n, r); }

// ---- the sampler -------------------------------------------------------------------------------

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
// the cost is ~n comparisons rather than a sort of the vocabulary; once the heap is full, a
// vectorised scan skips to the next value above its smallest (the rest cannot enter).
static void top_m(std::vector<Cand>& heap, const float* v, int64_t n, size_t m) {
  heap.clear();
  m = std::min<size_t>(m, (size_t)n);
  int64_t i = 0;
  for (; i < n && heap.size() < m; ++i) {
    if (std::isnan(v[i])) continue;
    heap.push_back({v[i], (int32_t)i});
    std::push_heap(heap.begin(), heap.end(), better);
  }
  while (i < n && heap.size() == m && m > 0) {
    const float low = heap.front().first;
    if (low == INFINITY) break;  // nothing is larger
    i = sample_first_at_least(v, i, n, std::nextafter(low, INFINITY));  // v[i] > low
    if (i == n) break;
    std::pop_heap(heap.begin(), heap.end(), better);
    heap.back() = {v[i], (int32_t)i};
    std::push_heap(heap.begin(), heap.end(), better);
    ++i;
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

// Keep c[0, end) up to the first i in [from, end) where have + c[from].first + ... + c[i].first
// reaches target (all of [0, end) if none does); c[from, end) best first.
static void cut_at_mass(std::vector<Cand>& c, size_t from, size_t end, double have, double target) {
  for (size_t i = from; i < end; ++i) {
    have += c[i].first;
    if (have >= target) {
      c.resize(i + 1);
      return;
    }
  }
  c.resize(end);
}

// Keep the smallest best-first prefix holding top_p of `total`, the weight of the whole
// distribution the candidates come from (not only of the candidates listed).
static void cut_top_p(std::vector<Cand>& cand, float top_p, double total) {
  cut_at_mass(cand, 0, cand.size(), 0.0, top_p * total);
}

// cut_top_p for candidates in any order: the same tokens are kept (the smallest best-first
// prefix holding top_p of `total`), found by halving the candidates with nth_element, so only
// the last few dozen are sorted; the kept ones come out best first only at the cut's end.
static void cut_top_p_unsorted(std::vector<Cand>& c, float top_p, double total) {
  const double target = top_p * total;
  size_t lo = 0, hi = c.size();  // the cut lies in [lo, hi); c[0, lo) all better, holding `have`
  double have = 0.0;
  while (hi - lo > 64) {
    const size_t mid = lo + (hi - lo) / 2;
    std::nth_element(c.begin() + lo, c.begin() + mid, c.begin() + hi, better);
    double upper = 0.0;  // c[lo, mid): the better half
    for (size_t i = lo; i < mid; ++i) upper += c[i].first;
    if (have + upper >= target) {
      hi = mid;
    } else {
      have += upper;
      lo = mid;
    }
  }
  std::sort(c.begin() + lo, c.begin() + hi, better);
  cut_at_mass(c, lo, hi, have, target);  // short of the target (rounding): keeps [0, hi)
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
  // First maximum; NaN logits never win a comparison.
  const int64_t best = sample_argmax(z, n);
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
    // Every token's weight exp((z - max) / T) and their total. Tokens with weight <= (1 - top_p)
    // / n of the total hold at most 1 - top_p of the mass together, so the kept prefix never
    // reaches them: list only the rest. The prefix is cut at top_p of the whole distribution's
    // mass, not of the listed part's.
    std::vector<float>& pr = w.probs;
    pr.resize(n);
    const double total = sample_exp_weights(pr.data(), z, n, lmax, inv_t);
    const float floor_w = std::nextafter(float((1.0 - p.top_p) / (double)n * total), INFINITY);  // weight > it
    c.clear();
    for (int64_t i = sample_first_at_least(pr.data(), 0, n, floor_w); i < n;
         i = sample_first_at_least(pr.data(), i + 1, n, floor_w))
      c.push_back({pr[i], (int32_t)i});
    cut_top_p_unsorted(c, p.top_p, total);
  } else if (p.min_p > 0.0f) {
    // no ranking needed: only tokens whose weight can pass min-p get an exp
    const float floor_l = lmax + std::log(p.min_p) / inv_t;
    c.clear();
    for (int64_t i = sample_first_at_least(z, 0, n, floor_l); i < n; i = sample_first_at_least(z, i + 1, n, floor_l))
      c.push_back({std::exp((z[i] - lmax) * inv_t), (int32_t)i});
  } else {
    // plain temperature: every token's weight, drawn in one walk
    std::vector<float>& pr = w.probs;
    pr.resize(n);
    const double total = sample_exp_weights(pr.data(), z, n, lmax, inv_t);
    const int64_t i = sample_walk(pr.data(), n, rng.uniform() * total);
    return i >= 0 ? i : best;
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
