#include "model/encoder.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "core/threads.h"
#include "kernels/attention_encoder.h"
#include "kernels/gemm_float.h"
#include "kernels/nn.h"
#include "kernels/traits.h"

namespace ninestep {

const char* const kEncPhaseNames[kNumEncPhases] = {"embed", "qkv", "attention", "out_proj", "layernorm", "ffn_up",
                                                   "ffn_down"};

namespace {

// GEMM work items: kRowBlock rows of x (in L2 while the W panels pass) x kColChunk output columns
// (a multiple of the W panels, 16 rows with AVX2 and NEON, 48 with AVX-512, so no panel is part
// padding); the item's output block is still in cache for the epilogue. Each item packs its W
// panels again, so taller items pack less per multiply-add. MiniLM, 1,000 texts, 2 threads, Zen 5,
// 5 alternating runs: 120 x 128 213 sentences/s, 240 x 144 238, 360 x 144 238, 240 x 192 242.
constexpr int64_t kRowBlock = 240;
constexpr int64_t kColChunk = 144;
// Projections followed by residual + LayerNorm (out_proj, ffn_down) take whole rows per item, so the
// item normalizes its rows while they are in cache: no LayerNorm phase, no extra barrier.
constexpr int64_t kNormRowBlock = 48;
constexpr int64_t kWideRows = 32;   // weight rows widened to f32 at a time (block types)
constexpr int64_t kRowChunk = 16;   // rows per item of the row phases (embedding, LayerNorm)
constexpr int64_t kPhasesPerLayer = 8;  // work counters per layer (BERT uses 6); past them, static splits
// Sentence-parallel runs: a batch of at least kSoloMinTokens rows per thread (and two sentences per
// thread) is cut into chunks of whole sentences, about kSoloChunks per thread; each thread claims
// chunks and runs the whole forward pass of a chunk alone, with no barrier, so a thread the OS
// deschedules delays only its own chunk. Smaller batches (a single query) split each phase across
// the threads instead.
constexpr int64_t kSoloMinTokens = 256;
constexpr int64_t kSoloChunks = 2;

std::vector<EncoderArch>& registry() {
  static std::vector<EncoderArch> list;
  return list;
}

bool widened(DType t) { return type_traits(t).act != ActFormat::f32; }

}  // namespace

EncoderArchRegistrar::EncoderArchRegistrar(const EncoderArch& a) { registry().push_back(a); }

std::vector<std::string> encoder_arch_names() {
  std::vector<std::string> out;
  for (const EncoderArch& a : registry()) {
    std::istringstream in(a.names);
    for (std::string n; in >> n;) out.push_back(n);
  }
  return out;
}

const EncoderArch* find_encoder_arch(const std::string& name) {
  for (const EncoderArch& a : registry()) {
    std::istringstream in(a.names);
    for (std::string n; in >> n;)
      if (n == name) return &a;
  }
  std::string known;
  for (const std::string& n : encoder_arch_names()) known += (known.empty() ? "" : ", ") + n;
  fail("config.architecture: '" + name + "' is not an encoder architecture (supported: " + known + ")");
}

EncoderWeights EncoderWeights::build(const ModelConfig& cfg, const std::map<std::string, TensorIn>& tensors) {
  cfg.validate();
  EncoderWeights w;
  w.cfg = cfg;
  w.arch = find_encoder_arch(cfg.architecture);
  // The two tables whose row counts are the model's, not the config's: read them off the tensors.
  for (const char* name : {"position_embd.weight", "token_types.weight"}) {
    auto it = tensors.find(name);
    NS_CHECK(it != tensors.end(), std::string("tensors: missing '") + name + "'");
    NS_CHECK(it->second.shape.size() == 2 && it->second.shape[0] >= 1,
             std::string("tensors['") + name + "']: expected a 2-d table with at least one row");
  }
  w.n_positions = tensors.at("position_embd.weight").shape[0];
  w.n_types = tensors.at("token_types.weight").shape[0];
  NS_CHECK(w.n_positions <= INT32_MAX, "tensors['position_embd.weight']: too many rows");
  TensorSet ts(tensors);
  w.arch->load(w, ts);
  for (const auto& kv : tensors)
    NS_CHECK(ts.used().count(kv.first), "tensors: unexpected '" + kv.first + "' for architecture " + cfg.architecture);
  return w;
}

Encoder::Encoder(std::shared_ptr<const EncoderWeights> w) : w_(std::move(w)) {
  NS_CHECK(w_ != nullptr, "weights: none given");
  const char* env = std::getenv("NINESTEP_PROFILE");
  profiling_ = env && *env && std::strcmp(env, "0") != 0;
  prof_.assign(kNumEncPhases, 0.0);
}

Encoder::~Encoder() {
  double total = 0;
  for (double t : prof_) total += t;
  if (!profiling_ || total <= 0) return;
  std::fprintf(stderr, "ninestep encoder profile (%.3f s in forward):\n", total);
  for (int i = 0; i < kNumEncPhases; ++i)
    std::fprintf(stderr, "  %-10s %8.3f s  %5.1f%%\n", kEncPhaseNames[i], prof_[i], 100.0 * prof_[i] / total);
}

void Encoder::reserve(int64_t T, int64_t longest, int nth) {
  const ModelConfig& c = w_->cfg;
  const int64_t d = c.d_model;
  const auto grow = [](std::vector<float>& v, int64_t n) {
    if (int64_t(v.size()) < n) v.resize(n);
  };
  const int64_t Td = checked_mul(T, d, "tokens * d_model");
  for (auto* v : {&q_, &k_, &v_, &att_, &tmp_}) grow(*v, Td);
  grow(h_, checked_mul(T, c.d_ff, "tokens * d_ff"));
  bool wide = false;
  int64_t kmax = 0;
  for (const EncoderLayer& L : w_->layers)
    for (const Proj* p : {&L.q, &L.k, &L.v, &L.o, &L.up, &L.down}) {
      wide = wide || widened(p->w.type);
      kmax = std::max(kmax, p->w.k);
    }
  if (int64_t(wbuf_.size()) < nth) wbuf_.resize(nth);
  if (int64_t(abuf_.size()) < nth) abuf_.resize(nth);
  for (auto& b : abuf_) grow(b, attention_encoder_scratch(longest, c.head_dim));
  if (wide)
    for (auto& b : wbuf_) grow(b, kWideRows * kmax);
}

void Encoder::run(float* out, const int32_t* tok, int64_t n_tok, const int64_t* lens, int64_t n_seq) {
  bool expected = false;
  NS_CHECK(busy_.compare_exchange_strong(expected, true), "encoder: a run is already going on in another thread");
  struct Release {
    std::atomic<bool>& b;
    ~Release() { b = false; }
  } release{busy_};
  const ModelConfig& c = w_->cfg;
  NS_CHECK(n_seq >= 1, "lengths: no sentences");
  NS_CHECK(n_tok >= 1, "tokens: none");
  int64_t total = 0;
  for (int64_t s = 0; s < n_seq; ++s) {
    NS_CHECK(lens[s] >= 1 && lens[s] <= w_->n_positions,
             "lengths[" + std::to_string(s) + "]: " + std::to_string(lens[s]) + " tokens, expected 1 to " +
                 std::to_string(w_->n_positions) + " (the model's learned positions)");
    total += lens[s];
  }
  NS_CHECK(total == n_tok, "tokens: the lengths add up to " + std::to_string(total) + ", got " +
                               std::to_string(n_tok) + " tokens");
  for (int64_t t = 0; t < n_tok; ++t)
    NS_CHECK(tok[t] >= 0 && tok[t] < c.vocab_size, "tokens[" + std::to_string(t) + "]: id " + std::to_string(tok[t]) +
                                                       " is outside the vocabulary of " + std::to_string(c.vocab_size));
  int64_t longest = 0;
  for (int64_t s = 0; s < n_seq; ++s) longest = std::max(longest, lens[s]);
  const int nth = num_threads();
  reserve(n_tok, longest, nth);
  tok_ = tok;
  x_ = out;
  T_ = n_tok;
  pos_.resize(n_tok);
  seqs_.resize(n_seq);
  int64_t row = 0;
  for (int64_t s = 0; s < n_seq; ++s) {
    const int64_t T = lens[s];
    seqs_[s] = EncoderSeq{row, T};
    for (int64_t t = 0; t < T; ++t) pos_[row + t] = int32_t(t);
    row += T;
  }
  const int64_t phases = 2 + kPhasesPerLayer * int64_t(w_->layers.size());
  if (n_phases_ < phases) {
    next_.reset(new std::atomic<int64_t>[phases]);
    n_phases_ = phases;
  }
  for (int64_t i = 0; i < n_phases_; ++i) next_[i] = 0;
  const EncoderArch* arch = w_->arch;
  if (nth > 1 && n_tok >= kSoloMinTokens * nth && n_seq >= 2 * nth) {
    // chunks [chunk[i], chunk[i + 1]) of sentences, each of about n_tok / (kSoloChunks * nth) rows
    const int64_t target = std::max(kSoloMinTokens, n_tok / (kSoloChunks * nth));
    std::vector<int64_t> chunk{0};
    int64_t rows = 0;
    for (int64_t s = 0; s < n_seq; ++s) {
      rows += lens[s];
      if (rows >= target && s + 1 < n_seq) {
        chunk.push_back(s + 1);
        rows = 0;
      }
    }
    chunk.push_back(n_seq);
    const int64_t n_chunks = int64_t(chunk.size()) - 1;
    std::atomic<int64_t> next{0};
#pragma omp parallel num_threads(nth)
    for (int64_t i = next.fetch_add(1); i < n_chunks; i = next.fetch_add(1)) {
      EncoderStep s(*this, chunk[i], chunk[i + 1], true);
      arch->forward(s);
    }
  } else {
#pragma omp parallel num_threads(nth)
    {
      EncoderStep s(*this, 0, n_seq, false);
      arch->forward(s);
    }
  }
}

EncoderStep::EncoderStep(Encoder& e, int64_t s0, int64_t s1, bool solo)
    : w(*e.w_),
      c(e.w_->cfg),
      e_(e),
      solo_(solo),
      ith_(solo_ ? 0 : omp_get_thread_num()),
      nth_(solo_ ? 1 : omp_get_num_threads()),
      buf_(omp_get_thread_num()),
      s0_(s0),
      s1_(s1),
      R0_(e.seqs_[s0].row0),
      T_(e.seqs_[s1 - 1].row0 + e.seqs_[s1 - 1].T - R0_) {
  const int64_t d = c.d_model;
  x_ = e_.x_ + R0_ * d;
  q_ = e_.q_.data() + R0_ * d;
  k_ = e_.k_.data() + R0_ * d;
  v_ = e_.v_.data() + R0_ * d;
  att_ = e_.att_.data() + R0_ * d;
  tmp_ = e_.tmp_.data() + R0_ * d;
  h_ = e_.h_.data() + R0_ * c.d_ff;
  if (e_.profiling_) {
    prof_.assign(kNumEncPhases, 0.0);
    last_ = omp_get_wtime();
  }
}

EncoderStep::~EncoderStep() {
  if (!e_.profiling_ || (!solo_ && ith_ != 0)) return;
#pragma omp critical(ninestep_encoder_profile)
  for (int i = 0; i < kNumEncPhases; ++i) e_.prof_[i] += prof_[i];
}

template <class F>
void EncoderStep::each(int phase, int64_t n, F f) {
  if (solo_) {
    for (int64_t i = 0; i < n; ++i) f(i);
  } else if (phase_ >= e_.n_phases_) {  // an architecture with more phases than counters: a static split
    int64_t b, e;
    split_range(n, nth_, ith_, &b, &e);
    for (int64_t i = b; i < e; ++i) f(i);
  } else {
    std::atomic<int64_t>& next = e_.next_[phase_++];
    for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < n; i = next.fetch_add(1, std::memory_order_relaxed))
      f(i);
  }
  if (!solo_) {
#pragma omp barrier
  }
  if (e_.profiling_ && (solo_ || ith_ == 0)) {  // thread 0 (or each solo thread) books the time since its previous phase
    const double now = omp_get_wtime();
    prof_[phase] += now - last_;
    last_ = now;
  }
}

template <class Epi>
void EncoderStep::gemm_block(float* y, int64_t ldy, const float* x, const Proj& p, int64_t r0, int64_t r1, int64_t n0,
                             int64_t n1, Epi epi) {
  const WeightView& W = p.w;
  const int64_t k = W.k, mr = r1 - r0;
  if (!widened(W.type)) {
    gemm_float_rows(y + r0 * ldy, ldy, x + r0 * k, W.data, W.type, mr, k, n0, n1);
  } else {
    float* buf = e_.wbuf_[buf_].data();  // [kWideRows, k]
    const int64_t row_bytes = dtype_row_bytes(W.type, k);
    for (int64_t j = n0; j < n1; j += kWideRows) {
      const int64_t nb = std::min(kWideRows, n1 - j);
      dequantize_rows(buf, static_cast<const uint8_t*>(W.data) + j * row_bytes, W.type, nb, k);
      gemm_float_rows(y + r0 * ldy + j, ldy, x + r0 * k, buf, DType::f32, mr, k, 0, nb);
    }
  }
  for (int64_t t = r0; t < r1; ++t) {
    float* yt = y + t * ldy;
    if (p.b)
      for (int64_t j = n0; j < n1; ++j) yt[j] += p.b[j];
    epi(t, yt, n0, n1);
  }
}

// The work items of a GEMM phase: row blocks of kRowBlock x column chunks of kColChunk.
struct GemmItems {
  int64_t row_blocks, col_chunks;
  GemmItems(int64_t T, int64_t n) : row_blocks((T + kRowBlock - 1) / kRowBlock), col_chunks((n + kColChunk - 1) / kColChunk) {}
  int64_t count() const { return row_blocks * col_chunks; }
};

void EncoderStep::embed() {
  const WeightView& E = w.embd;
  const int64_t d = c.d_model, row = dtype_row_bytes(E.type, d);
  const DequantRowFn lookup = type_traits(E.type).dequantize_row;  // checked by the loader
  float* x = x_;
  const int32_t* tok = e_.tok_ + R0_;
  const int32_t* pos = e_.pos_.data() + R0_;
  each(kEncEmbed, (T_ + kRowChunk - 1) / kRowChunk, [&](int64_t i) {
    const int64_t b = i * kRowChunk, e = std::min(T_, b + kRowChunk);
    for (int64_t t = b; t < e; ++t) {
      float* xt = x + t * d;
      lookup(xt, static_cast<const uint8_t*>(E.data) + int64_t(tok[t]) * row, d);
      const float* P = w.pos_embd + int64_t(pos[t]) * d;  // run() checked pos < n_positions
      for (int64_t j = 0; j < d; ++j) xt[j] += P[j] + w.type_embd[j];
    }
    if (w.embd_norm) layernorm_rows(x, x, w.embd_norm.w, w.embd_norm.b, float(c.norm_eps), d, b, e);
  });
}

void EncoderStep::qkv(const EncoderLayer& L) {
  const int64_t d = c.d_model;
  const Proj* ps[3] = {&L.q, &L.k, &L.v};
  float* ys[3] = {q_, k_, v_};
  const GemmItems g(T_, d);
  each(kEncQKV, 3 * g.count(), [&](int64_t i) {
    const int64_t which = i / g.count(), j = i % g.count(), rb = j / g.col_chunks, cc = j % g.col_chunks;
    gemm_block(ys[which], d, x_, *ps[which], rb * kRowBlock, std::min(T_, (rb + 1) * kRowBlock), cc * kColChunk,
               std::min(d, (cc + 1) * kColChunk), [](int64_t, float*, int64_t, int64_t) {});
  });
}

void EncoderStep::attend() {
  const int64_t H = c.n_heads, D = c.head_dim, d = c.d_model;
  const float scale = c.score_scale();
  float* scratch = e_.abuf_[buf_].data();  // [attention_encoder_scratch(longest, D)]
  each(kEncAttention, (s1_ - s0_) * H, [&](int64_t i) {  // items: (sentence, head)
    const EncoderSeq& s = e_.seqs_[s0_ + i / H];
    const int64_t off = (s.row0 - R0_) * d;
    attention_encoder_head(att_ + off, q_ + off, k_ + off, v_ + off, d, s.T,
                           D, i % H, scale, scratch);
  });
}

void EncoderStep::out_residual_norm(const Proj& p, const float* in, const Norm& n) {
  const int64_t d = c.d_model;
  float *x = x_, *tmp = tmp_;
  const int64_t rows = solo_ ? kRowBlock : kNormRowBlock;  // a solo thread needs no fine split
  // Items: whole rows. Each item's rows of x are read (residual) and rewritten (LayerNorm) by that
  // item only; the GEMM reads `in`, not x.
  each(p.w.k == c.d_model ? kEncOut : kEncDown, (T_ + rows - 1) / rows, [&](int64_t i) {
    const int64_t r0 = i * rows, r1 = std::min(T_, r0 + rows);
    gemm_block(tmp, d, in, p, r0, r1, 0, d, [&](int64_t t, float* yt, int64_t b, int64_t e) {
      const float* xt = x + t * d;
      for (int64_t j = b; j < e; ++j) yt[j] += xt[j];
    });
    layernorm_rows(x, tmp, n.w, n.b, float(c.norm_eps), d, r0, r1);
  });
}

void EncoderStep::ffn_up(const EncoderLayer& L, Act act) {
  const int64_t ff = c.d_ff;
  const bool tanh_form = act == Act::gelu_tanh;
  const GemmItems g(T_, ff);
  each(kEncUp, g.count(), [&](int64_t i) {
    const int64_t rb = i / g.col_chunks, cc = i % g.col_chunks;
    gemm_block(h_, ff, x_, L.up, rb * kRowBlock, std::min(T_, (rb + 1) * kRowBlock), cc * kColChunk,
               std::min(ff, (cc + 1) * kColChunk), [&](int64_t, float* yt, int64_t b, int64_t e) {
                 if (act == Act::silu)
                   silu_range(yt, yt, b, e);
                 else
                   gelu_range(yt, yt, tanh_form, b, e);
               });
  });
}

}  // namespace ninestep
