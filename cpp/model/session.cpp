#include "model/session.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/threads.h"
#include "kernels/nn.h"

namespace ninestep {

const char* const kPhaseNames[kNumPhases] = {"embed",   "attn_norm", "qkv",      "rope",      "attention", "prep_o",
                                             "wo",      "ffn_norm",  "gate_up",  "prep_down", "down",      "lm_head"};

static size_t scratch_for(const std::vector<WeightView>& ws, int64_t m) {
  size_t b = 0;
  for (const WeightView& w : ws) b = std::max(b, matmul_scratch_bytes(w.type, m, w.k));
  return b;
}

Session::Session(std::shared_ptr<const Weights> w, int64_t n_ctx, int64_t chunk) : w_(std::move(w)) {
  NS_CHECK(w_ != nullptr, "weights: none given");
  const ModelConfig& c = w_->cfg;
  NS_CHECK(n_ctx >= 1, "n_ctx must be >= 1, got " + std::to_string(n_ctx));
  NS_CHECK(n_ctx <= INT32_MAX, "n_ctx must fit int32 positions, got " + std::to_string(n_ctx));
  NS_CHECK(chunk >= 1, "chunk must be >= 1, got " + std::to_string(chunk));
  n_ctx_ = n_ctx;
  chunk_ = std::min(chunk, n_ctx);
  const int64_t cache = checked_mul(checked_mul(c.n_layers, n_ctx, "kv cache"), c.kv_dim(), "kv cache");
  kcache_.reset(new float[cache]);
  vcache_.reset(new float[cache]);
  x_.resize(chunk_ * c.d_model);
  xn_.resize(chunk_ * c.d_model);
  q_.resize(chunk_ * c.q_dim());
  att_.resize(chunk_ * c.q_dim());
  tmp_.resize(chunk_ * c.d_model);
  gate_.resize(chunk_ * c.d_ff);
  up_.resize(chunk_ * c.d_ff);
  pos_.resize(chunk_);
  // Every matmul input goes through one of three scratch slots; size each for the largest user.
  std::vector<WeightView> all{w_->lm_head};
  for (const LayerWeights& L : w_->layers)
    for (const WeightView& v : {L.wq, L.wk, L.wv, L.wo, L.gate, L.up, L.down}) all.push_back(v);
  for (auto& s : scratch_) s.resize(scratch_for(all, chunk_));
  own_scratch_bytes_ = scratch_for(all, kOwnRows);
  const char* env = std::getenv("NINESTEP_PROFILE");
  profiling_ = env && *env && std::strcmp(env, "0") != 0;
  prof_.assign(kNumPhases, 0.0);
}

Session::~Session() {
  if (!profiling_) return;
  double total = 0;
  for (double t : prof_) total += t;
  if (total <= 0) return;
  std::fprintf(stderr, "ninestep profile (%lld layers, %.3f s in forward):\n", (long long)w_->cfg.n_layers, total);
  for (int i = 0; i < kNumPhases; ++i)
    std::fprintf(stderr, "  %-10s %9.3f ms %5.1f%%\n", kPhaseNames[i], prof_[i] * 1e3, 100.0 * prof_[i] / total);
}

bool Session::forward(float* logits, const int32_t* ids, int64_t T, int64_t pos, bool all_logits,
                      const std::function<bool()>& interrupted) {
  const ModelConfig& c = w_->cfg;
  bool expected = false;
  NS_CHECK(busy_.compare_exchange_strong(expected, true), "session: forward is already running in another thread");
  struct Release {
    std::atomic<bool>& flag;
    ~Release() { flag.store(false); }
  } release{busy_};
  NS_CHECK(T >= 1, "ids: needs at least one token");
  NS_CHECK(pos >= 0, "pos must be >= 0, got " + std::to_string(pos));
  NS_CHECK(pos <= n_past_, "pos " + std::to_string(pos) + " is past the " + std::to_string(n_past()) +
                               " cached positions (pos may be at most n_past)");
  NS_CHECK(T <= n_ctx_ - pos, "pos + len(ids) = " + std::to_string(pos + T) + " exceeds n_ctx " +
                                  std::to_string(n_ctx_));
  for (int64_t t = 0; t < T; ++t)
    NS_CHECK(ids[t] >= 0 && ids[t] < c.vocab_size, "ids[" + std::to_string(t) + "] = " + std::to_string(ids[t]) +
                                                       " is outside the vocabulary [0, " +
                                                       std::to_string(c.vocab_size) + ")");
  const size_t nth = num_threads();
  if (own_.size() < nth) {  // the only allocation a step may make: after set_num_threads grew the pool
    const int64_t width = std::max({c.d_model, c.q_dim(), c.d_ff});
    own_.resize(nth);
    for (ThreadBuf& tb : own_) {
      tb.x.resize(kOwnRows * width);
      for (auto& s : tb.scratch) s.resize(own_scratch_bytes_);
    }
    attn_part_.resize(attention_part_floats(kAttnSplitMaxT, c.n_heads, c.head_dim, int64_t(nth)));
  }
  // Positions >= pos are overwritten before they are read: attention only sees 0 .. pos + t.
  n_past_ = pos;
  // One parallel region per chunk, so a caller can stop between chunks (e.g. on Ctrl-C) with the
  // cache holding exactly the chunks that finished.
  for (int64_t c0 = 0; c0 < T; c0 += chunk_) {
    if (c0 > 0 && interrupted && interrupted()) return false;
    const int64_t m = std::min(chunk_, T - c0);
    const int64_t head_rows = all_logits ? m : (c0 + m == T ? 1 : 0);
    run(logits + (all_logits ? c0 * c.vocab_size : 0), ids + c0, m, pos + c0, head_rows, int(nth));
    n_past_ = pos + c0 + m;
  }
  return true;
}

}  // namespace ninestep
