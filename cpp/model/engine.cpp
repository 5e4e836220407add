#include "model/engine.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <omp.h>

#include "core/threads.h"
#include "kernels/nn.h"
#include "model/arch.h"
#include "model/step.h"

namespace ninestep {

const char* const kPhaseNames[kNumPhases] = {"embed", "qkv", "rope_cache", "attention", "out_proj", "ffn", "down",
                                             "lm_head"};

namespace {

size_t scratch_for(const Weights& w, int64_t m) {
  std::vector<WeightView> all{w.lm_head};
  for (const LayerWeights& L : w.layers)
    for (const Proj* p : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down})
      if (*p) all.push_back(p->w);
  size_t b = 0;
  for (const WeightView& v : all) b = std::max(b, matmul_scratch_bytes(v.type, m, v.k));
  return b;
}

}  // namespace

Engine::Engine(std::shared_ptr<const Weights> w, int64_t n_ctx, int64_t n_seq, int64_t chunk, DType kv_type)
    : w_(std::move(w)) {
  NS_CHECK(w_ != nullptr, "weights: none given");
  const ModelConfig& c = w_->cfg;
  NS_CHECK(n_ctx >= 1, "n_ctx must be >= 1, got " + std::to_string(n_ctx));
  NS_CHECK(n_ctx <= INT32_MAX, "n_ctx must fit int32 positions, got " + std::to_string(n_ctx));
  NS_CHECK(n_seq >= 1 && n_seq <= 4096, "n_seq must be in [1, 4096], got " + std::to_string(n_seq));
  NS_CHECK(chunk >= 1, "chunk must be >= 1, got " + std::to_string(chunk));
  NS_CHECK(!w_->pos_embd.data || n_ctx <= w_->pos_embd.n,
           "n_ctx " + std::to_string(n_ctx) + " exceeds the model's " + std::to_string(w_->pos_embd.n) +
               " learned positions");
  const std::string kv_error = kv_cache_type_error(kv_type, c.head_dim);
  NS_CHECK(kv_error.empty(), "kv_cache: " + kv_error);
  n_ctx_ = n_ctx;
  n_seq_ = n_seq;
  kv_type_ = kv_type;
  kv_head_bytes_ = dtype_row_bytes(kv_type, c.head_dim);
  kv_row_bytes_ = c.n_kv_heads * kv_head_bytes_;
  chunk_ = std::min(chunk, checked_mul(n_ctx, n_seq, "n_ctx * n_seq"));
  const int64_t cache = checked_mul(checked_mul(checked_mul(c.n_layers, n_seq, "kv cache"), n_ctx, "kv cache"),
                                    kv_row_bytes_, "kv cache");
  kcache_.reset(new uint8_t[cache]);
  vcache_.reset(new uint8_t[cache]);
  len_.reset(new std::atomic<int64_t>[n_seq]);
  for (int64_t s = 0; s < n_seq; ++s) len_[s] = 0;
  x_.resize(chunk_ * c.d_model);
  xn_.resize(chunk_ * c.d_model);
  q_.resize(chunk_ * c.q_dim());
  kn_.resize(chunk_ * c.kv_dim());
  vn_.resize(chunk_ * c.kv_dim());
  att_.resize(chunk_ * c.q_dim());
  tmp_.resize(chunk_ * c.d_model);
  gate_.resize(chunk_ * c.d_ff);
  up_.resize(chunk_ * c.d_ff);
  for (auto& s : scratch_) s.resize(scratch_for(*w_, chunk_));
  own_scratch_bytes_ = scratch_for(*w_, kOwnRows);
  std::vector<int64_t> windows{0};
  for (const LayerWeights& L : w_->layers)
    if (std::find(windows.begin(), windows.end(), L.cfg.window) == windows.end()) windows.push_back(L.cfg.window);
  plans_.resize(windows.size());
  for (size_t i = 0; i < windows.size(); ++i) {
    plans_[i].window = windows[i];
    plans_[i].jobs.reserve(chunk_);
  }
  const char* env = std::getenv("NINESTEP_PROFILE");
  profiling_ = env && *env && std::strcmp(env, "0") != 0;
  const char* split = std::getenv("NINESTEP_WORK_SPLIT");
  if (split && std::strcmp(split, "static") == 0) split_ = WorkSplit::stat;
  prof_.assign(kNumPhases, 0.0);
}

Engine::~Engine() {
  if (!profiling_) return;
  double total = 0;
  for (double t : prof_) total += t;
  if (total <= 0) return;
  std::fprintf(stderr, "ninestep profile (%lld layers, %.3f s in forward):\n", (long long)w_->cfg.n_layers, total);
  for (int i = 0; i < kNumPhases; ++i)
    std::fprintf(stderr, "  %-10s %9.3f ms %5.1f%%\n", kPhaseNames[i], prof_[i] * 1e3, 100.0 * prof_[i] / total);
}

void Engine::check_seq(int64_t s, const char* what) const {
  NS_CHECK(s >= 0 && s < n_seq_, std::string(what) + ": sequence " + std::to_string(s) + " is outside [0, " +
                                     std::to_string(n_seq_) + ")");
}

int64_t Engine::seq_len(int64_t s) const {
  check_seq(s, "seq");
  return len_[s].load();
}

void Engine::truncate(int64_t s, int64_t n) {
  check_seq(s, "seq");
  NS_CHECK(n >= 0, "n must be >= 0, got " + std::to_string(n));
  NS_CHECK(!busy_.load(), "engine: a step is running");
  len_[s] = std::min(len_[s].load(), n);
}

void Engine::copy(int64_t src, int64_t dst, int64_t n) {
  check_seq(src, "src");
  check_seq(dst, "dst");
  NS_CHECK(n >= 0 && n <= len_[src], "n: " + std::to_string(n) + " is outside [0, " +
                                         std::to_string(len_[src].load()) + "], the positions sequence " +
                                         std::to_string(src) + " holds");
  NS_CHECK(!busy_.load(), "engine: a step is running");
  if (src != dst) {
    const int64_t rb = kv_row_bytes_, hb = kv_head_bytes_;
    for (int64_t l = 0; l < w_->cfg.n_layers; ++l)
      for (int64_t g = 0; g < w_->cfg.n_kv_heads; ++g) {  // head g's first n positions
        const int64_t a = ((l * n_seq_ + src) * n_ctx_) * rb + g * n_ctx_ * hb;
        const int64_t b = ((l * n_seq_ + dst) * n_ctx_) * rb + g * n_ctx_ * hb;
        std::memcpy(kcache_.get() + b, kcache_.get() + a, n * hb);
        std::memcpy(vcache_.get() + b, vcache_.get() + a, n * hb);
      }
  }
  len_[dst] = n;
}

bool Engine::step(float* logits, const int32_t* tok, const StepItem* items, int64_t n_items,
                  const std::function<bool()>& interrupted) {
  const ModelConfig& c = w_->cfg;
  bool expected = false;
  NS_CHECK(busy_.compare_exchange_strong(expected, true), "engine: a step is already running in another thread");
  struct Release {
    std::atomic<bool>& flag;
    ~Release() { flag.store(false); }
  } release{busy_};
  NS_CHECK(n_items >= 1, "items: needs at least one");
  std::vector<char> seen(n_seq_, 0);
  int64_t total = 0;
  for (int64_t i = 0; i < n_items; ++i) {
    const StepItem& it = items[i];
    const std::string where = "items[" + std::to_string(i) + "]";
    NS_CHECK(it.seq >= 0 && it.seq < n_seq_, where + ": sequence " + std::to_string(it.seq) + " is outside [0, " +
                                                 std::to_string(n_seq_) + ")");
    NS_CHECK(!seen[it.seq], where + ": sequence " + std::to_string(it.seq) + " appears twice in one step");
    seen[it.seq] = 1;
    NS_CHECK(it.n >= 1, where + ": needs at least one token");
    NS_CHECK(it.n_logits >= 0 && it.n_logits <= it.n, where + ": n_logits must be in [0, " + std::to_string(it.n) +
                                                          "], got " + std::to_string(it.n_logits));
    NS_CHECK(it.n <= n_ctx_ - len_[it.seq], where + ": sequence " + std::to_string(it.seq) + " holds " +
                                                std::to_string(len_[it.seq].load()) + " positions; " +
                                                std::to_string(it.n) + " more exceed n_ctx " + std::to_string(n_ctx_));
    total += it.n;
  }
  for (int64_t t = 0; t < total; ++t)
    NS_CHECK(tok[t] >= 0 && tok[t] < c.vocab_size, "tokens[" + std::to_string(t) + "] = " + std::to_string(tok[t]) +
                                                       " is outside the vocabulary [0, " +
                                                       std::to_string(c.vocab_size) + ")");
  // Flat entries in item order; positions continue each sequence.
  tok_.assign(tok, tok + total);
  pos_.resize(total);
  slot_.resize(total);
  head_rows_.clear();
  for (int64_t i = 0, e = 0; i < n_items; ++i) {
    const StepItem& it = items[i];
    for (int64_t t = 0; t < it.n; ++t, ++e) {
      pos_[e] = int32_t(len_[it.seq] + t);
      slot_[e] = it.seq;
      if (t >= it.n - it.n_logits) head_rows_.push_back(e);
    }
  }
  const int nth = num_threads();
  if (own_.size() < size_t(nth)) {  // after set_num_threads grew the pool
    const int64_t width = std::max({c.d_model, c.q_dim(), c.d_ff});
    own_.resize(nth);
    for (ThreadBuf& tb : own_) {
      tb.x.resize(kOwnRows * width);
      for (auto& s : tb.scratch) s.resize(own_scratch_bytes_);
    }
  }
  // One parallel region per piece of at most chunk entries, so a caller can stop between pieces
  // (Ctrl-C) with every sequence holding exactly the entries that finished.
  int64_t out0 = 0;
  for (int64_t e0 = 0; e0 < total; e0 += chunk_) {
    if (e0 > 0 && interrupted && interrupted()) return false;
    const int64_t m = std::min(chunk_, total - e0);
    plan_piece(e0, m, nth);
    piece_.out0 = out0;
    run_piece(logits, nth);
    out0 += piece_.n_out;
    for (int64_t e = e0; e < e0 + m; ++e) len_[slot_[e]] = pos_[e] + 1;
  }
  return true;
}

void Engine::plan_piece(int64_t e0, int64_t m, int nth) {
  const ModelConfig& c = w_->cfg;
  e0_ = e0;
  piece_.m = m;
  piece_.solo = m <= kOwnRows;
  piece_.head0 = std::lower_bound(head_rows_.begin(), head_rows_.end(), e0) - head_rows_.begin();
  piece_.n_out = std::lower_bound(head_rows_.begin(), head_rows_.end(), e0 + m) - head_rows_.begin() - piece_.head0;
  // Runs: consecutive entries of one sequence (the entries of an item inside this piece).
  struct Run {
    int64_t row0, T;
    int32_t slot;
    int64_t pos0;
  };
  std::vector<Run> runs;
  for (int64_t r = 0; r < m;) {
    int64_t T = 1;
    while (r + T < m && slot_[e0 + r + T] == slot_[e0 + r]) ++T;
    runs.push_back({r, T, slot_[e0 + r], pos_[e0 + r]});
    r += T;
  }
  int64_t part_floats = 0;
  const int64_t Hq = c.n_heads, Hkv = c.n_kv_heads, D = c.head_dim;
  for (AttnPlan& plan : plans_) {
    const int64_t W = plan.window;
    plan.jobs.clear();
    auto add = [&](int64_t row0, int64_t T, int32_t slot, int64_t lo, int64_t S, int64_t window) {
      AttnJob j{row0, T, slot, lo, S, window, 0, 0, 0, 0};
      j.n_split = T <= kAttnSplitMaxT ? 1 : 0;
      plan.jobs.push_back(j);
    };
    for (const Run& r : runs) {
      const int64_t S = r.pos0 + r.T;  // keys the run's last query sees, itself included
      if (W == 0 || S <= W) {
        add(r.row0, r.T, r.slot, 0, S, 0);
      } else if (r.T <= kAttnSplitMaxT) {  // decode past the window: one job per query, its own key range
        for (int64_t t = 0; t < r.T; ++t) add(r.row0 + t, 1, r.slot, std::max<int64_t>(0, r.pos0 + t + 1 - W), r.pos0 + t + 1, 0);
      } else {
        add(r.row0, r.T, r.slot, std::max<int64_t>(0, r.pos0 + 1 - W), S, W);
      }
    }
    // Few split jobs: split their keys into blocks too, so every thread has work (flash decoding).
    int64_t split_items = 0;
    for (const AttnJob& j : plan.jobs) split_items += j.n_split ? Hkv : 0;
    int64_t item = 0, part = 0;
    for (AttnJob& j : plan.jobs) {
      j.item0 = item;
      if (j.n_split) {
        if (split_items < 2 * nth) j.n_split = attention_splits(j.S - j.lo, Hkv, nth);
        j.n_items = attention_split_items(Hkv, j.n_split);
        j.part0 = part;
        part += attention_part_floats(j.T, Hq, D, j.n_split);
      } else {
        j.n_items = attention_items(j.T, Hq, Hkv);
      }
      item += j.n_items;
    }
    plan.n_items = item;
    part_floats = std::max(part_floats, part);
  }
  if (int64_t(part_.size()) < part_floats) part_.resize(part_floats);
}

// The piece was planned for nth threads; it runs on as many as the tuner says (decode pieces) and
// gives the same result on any count, as every output element is one chunk's work.
void Engine::run_piece(float* logits, int nth) {
  const bool tuned = piece_.solo;
  const int run = tuned ? tuner_.choose(nth) : nth;
  auto now = [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  };
  int ran = run;
  for (int i = 0; i < run; ++i) own_[i].waited = 0.0, own_[i].t_start = own_[i].t_end = -1.0;
  work_.reset();
  const double t0 = now();
#pragma omp parallel num_threads(run)
  {
    if (omp_get_thread_num() == 0) ran = omp_get_num_threads();
    Step s(*this, logits);
    w_->arch->forward(s);
  }
  if (!tuned) return;
  const double t1 = now();
  // How long the thread that waited most waited: for chunks of others, for the region to start it
  // (a descheduled thread starts late) and for the region to end after it finished.
  double waited = 0.0;
  for (int i = 0; i < ran; ++i) {
    const ThreadBuf& tb = own_[i];
    if (tb.t_start < 0) continue;
    waited = std::max(waited, tb.waited + (tb.t_start - t0) + (t1 - tb.t_end));
  }
  tuner_.record(ran, t1 - t0, waited);
}

}  // namespace ninestep
