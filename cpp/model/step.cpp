#include "model/step.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/threads.h"
#include "kernels/nn.h"
#include "kernels/traits.h"

namespace ninestep {

namespace {

constexpr int64_t kRowAlign = 16;  // W-row split granularity, as ops.matmul splits
static_assert(kAttnSplitMaxT <= Engine::kOwnRows, "solo pieces hold only decode-shaped (split) attention jobs");

// Several matmuls reading the same x (Q/K/V, gate/up) share one prepared copy per weight type:
// slot i is used by weight i unless an earlier weight has the same type.
int slot_of(const WeightView* ws, int i) {
  for (int j = 0; j < i; ++j)
    if (ws[j].type == ws[i].type) return j;
  return i;
}

// x [m, k] rows [r0, r1) prepared for each of `nw` weights into the scratch slots.
void prepare(std::vector<uint8_t>* scratch, const WeightView* ws, int nw, const float* x, int64_t m, int64_t r0,
             int64_t r1) {
  for (int i = 0; i < nw; ++i)
    if (slot_of(ws, i) == i) matmul_prepare(scratch[i].data(), x, ws[i].type, m, ws[i].k, r0, r1);
}

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void norm_rows(float* y, const float* x, const Norm& n, float eps, int64_t k, int64_t r0, int64_t r1) {
  if (n.b)
    layernorm_rows(y, x, n.w, n.b, eps, k, r0, r1);
  else
    rmsnorm_rows(y, x, n.w, eps, k, r0, r1);
}

}  // namespace

Step::Step(Engine& e, float* logits)
    : w(*e.w_),
      c(e.w_->cfg),
      e_(e),
      logits_(logits),
      ith_(omp_get_thread_num()),
      nth_(omp_get_num_threads()),
      work_(e.work_, nth_, ith_, e.split_),
      m_(e.piece_.m),
      solo_(e.piece_.solo),
      tok_(e.tok_.data() + e.e0_),
      pos_(e.pos_.data() + e.e0_),
      slot_(e.slot_.data() + e.e0_),
      own_(e.own_[omp_get_thread_num()]) {
  own_.t_start = steady_seconds();
  if (e_.profiling_) last_ = omp_get_wtime();
}

Step::~Step() {
  own_.waited = work_.waited();
  own_.t_end = steady_seconds();
}

void Step::sync(int phase) {
  work_.finish();
  mark(phase);
}

// Thread 0 books the time since its previous mark to `phase`, after the barrier ending it.
void Step::mark(int phase) {
  if (e_.profiling_ && ith_ == 0) {
    const double now = omp_get_wtime();
    e_.prof_[phase] += now - last_;
    last_ = now;
  }
}

uint8_t* Step::kcache(const LayerWeights& L, int32_t slot) const {
  return e_.kcache_.get() + ((layer_of(L) * e_.n_seq_ + slot) * e_.n_ctx_) * e_.kv_row_bytes_;
}
uint8_t* Step::vcache(const LayerWeights& L, int32_t slot) const {
  return e_.vcache_.get() + ((layer_of(L) * e_.n_seq_ + slot) * e_.n_ctx_) * e_.kv_row_bytes_;
}
// Heads [h0, h1) of entry t's key and value rows k, v [Hkv * D] into the cache at its position.
void Step::store_heads(const LayerWeights& L, int64_t t, const float* k, const float* v, int64_t h0, int64_t h1) const {
  const int64_t D = c.head_dim, hb = e_.kv_head_bytes_;
  uint8_t *kc = kcache(L, slot_[t]), *vc = vcache(L, slot_[t]);
  for (int64_t g = h0; g < h1; ++g) {
    const int64_t at = (g * e_.n_ctx_ + pos_[t]) * hb;
    if (k) kv_store_row(kc + at, k + g * D, e_.kv_type_, D);
    if (v) kv_store_row(vc + at, v + g * D, e_.kv_type_, D);
  }
}
void Step::store_kv(const LayerWeights& L, int64_t t) const {
  const int64_t kvd = c.kv_dim();
  store_heads(L, t, e_.kn_.data() + t * kvd, e_.vn_.data() + t * kvd, 0, c.n_kv_heads);
}

const AttnPlan& Step::plan_for(int64_t window) const {
  for (const AttnPlan& p : e_.plans_)
    if (p.window == window) return p;
  return e_.plans_[0];  // unreachable: the engine made a plan for every layer's window
}

// The input of a matmul phase: `in` [m, k] (normalized by `norm` first, if set) prepared for weights
// ws. Solo: this thread does all rows into its own buffers (called once it holds a matmul chunk).
Step::Input Step::solo_input(const float* in, const Norm& norm, const WeightView* ws, int nw) {
  const float* src = in;
  if (norm) {
    norm_rows(own_.x.data(), in, norm, float(c.norm_eps), ws[0].k, 0, m_);
    src = own_.x.data();
  }
  prepare(own_.scratch, ws, nw, src, m_, 0, m_);
  return {src, own_.scratch};
}

// Shared: rows claimed in chunks (each after pre(r0, r1)), then every chunk done.
template <class Pre>
Step::Input Step::shared_input(const float* in, const Norm& norm, const WeightView* ws, int nw, int phase, Pre pre) {
  const int64_t k = ws[0].k;
  const float eps = float(c.norm_eps);
  float* xn = e_.xn_.data();  // [m, k]
  int64_t r0, r1;
  for (begin(m_); next(&r0, &r1);) {
    pre(r0, r1);
    if (norm) norm_rows(xn, in, norm, eps, k, r0, r1);
    prepare(e_.scratch_, ws, nw, norm ? xn : in, m_, r0, r1);
  }
  sync(phase);
  return {norm ? xn : in, e_.scratch_};
}

Step::Input Step::shared_input(const float* in, const Norm& norm, const WeightView* ws, int nw, int phase) {
  return shared_input(in, norm, ws, nw, phase, [](int64_t, int64_t) {});
}

void Step::embed() {
  const WeightView& E = w.embd;
  const int64_t d = c.d_model, row = dtype_row_bytes(E.type, d);
  const DequantRowFn lookup = type_traits(E.type).dequantize_row;  // checked by the loader
  const float scale = float(c.embd_scale);
  float* x = e_.x_.data();
  int64_t b, e;
  const float* P = static_cast<const float*>(w.pos_embd.data);  // [n_positions, d] f32, or null
  for (begin(m_); next(&b, &e);) {
    for (int64_t t = b; t < e; ++t) {
      lookup(x + t * d, static_cast<const uint8_t*>(E.data) + tok_[t] * row, d);
      if (scale != 1.0f)
        for (int64_t j = 0; j < d; ++j) x[t * d + j] *= scale;
      if (P)  // the engine checked n_ctx <= n_positions
        for (int64_t j = 0; j < d; ++j) x[t * d + j] += P[int64_t(pos_[t]) * d + j];
    }
  }
  sync(kEmbed);
}

void Step::qkv(const LayerWeights& L) { qkv_phase(L, false); }

// One token: the projections in chunks of whole heads, each chunk finishing its heads (QK-norm,
// RoPE, the cache stores) right away, so the step needs no phase (and no wait) for them. The same
// functions on the same values as rope_cache(), head by head. Otherwise the two phases.
void Step::qkv_rope_cache(const LayerWeights& L) {
  const int64_t D = c.head_dim;
  if (m_ == 1 && D % 32 == 0) {
    qkv_phase(L, true);
  } else {
    qkv_phase(L, false);
    rope_cache(L);
  }
}

// Heads of the concatenated Q | K | V outputs in rows [b, e) (whole heads) of the one token.
void Step::finish_heads(const LayerWeights& L, int64_t b, int64_t e) {
  const int64_t Hq = c.n_heads, Hkv = c.n_kv_heads, D = c.head_dim;
  const float eps = float(c.norm_eps), theta = L.cfg.rope_theta;
  const RopeStyle style = c.rope();
  int64_t h0, h1;
  auto heads = [&](int64_t off, int64_t n) {  // this chunk's heads of the part at rows [off, off + n * D)
    h0 = std::max(b - off, int64_t(0)) / D, h1 = std::min(e - off, n * D) / D;
    return h0 < h1;
  };
  float *q = e_.q_.data(), *k = e_.kn_.data(), *v = e_.vn_.data();
  if (heads(0, Hq)) {
    if (L.q_norm) rmsnorm_rows(q, q, L.q_norm.w, eps, D, h0, h1);
    rope_rows(q + h0 * D, pos_, h1 - h0, D, theta, style, 0, 1);
  }
  if (heads(Hq * D, Hkv)) {
    if (L.k_norm) rmsnorm_rows(k, k, L.k_norm.w, eps, D, h0, h1);
    rope_rows(k + h0 * D, pos_, h1 - h0, D, theta, style, 0, 1);
    store_heads(L, 0, k, nullptr, h0, h1);
  }
  if (heads((Hq + Hkv) * D, Hkv)) store_heads(L, 0, nullptr, v, h0, h1);
}

void Step::qkv_phase(const LayerWeights& L, bool fused) {
  const WeightView ws[3] = {L.q.w, L.k.w, L.v.w};
  const float* bias[3] = {L.q.b, L.k.b, L.v.b};
  float* ys[3] = {e_.q_.data(), e_.kn_.data(), e_.vn_.data()};
  const int64_t lds[3] = {c.q_dim(), c.kv_dim(), c.kv_dim()};
  Input in = solo_ ? Input{} : shared_input(e_.x_.data(), L.attn_norm, ws, 3, kQKV);
  // Chunks [b, e) of the concatenated outputs' rows; a chunk adds the biases of the columns it computed.
  int64_t b, e;
  for (begin(lds[0] + lds[1] + lds[2], fused ? c.head_dim : kRowAlign); next(&b, &e);) {
    if (!in.x) in = solo_input(e_.x_.data(), L.attn_norm, ws, 3);
    int64_t off = 0;
    for (int i = 0; i < 3; ++i) {
      const int64_t lo = std::max(b - off, int64_t(0)), hi = std::min(e - off, ws[i].n);
      if (lo < hi) {
        matmul_rows(ys[i], lds[i], in.x, in.scratch[slot_of(ws, i)].data(), ws[i], m_, lo, hi);
        if (bias[i])
          for (int64_t t = 0; t < m_; ++t)
            for (int64_t j = lo; j < hi; ++j) ys[i][t * lds[i] + j] += bias[i][j];
      }
      off += ws[i].n;
    }
    if (fused) finish_heads(L, b, e);
  }
  sync(kQKV);
}

void Step::rope_cache(const LayerWeights& L) {
  const int64_t Hq = c.n_heads, Hkv = c.n_kv_heads, D = c.head_dim, qd = c.q_dim(), kvd = c.kv_dim();
  const float eps = float(c.norm_eps), theta = L.cfg.rope_theta;
  const RopeStyle style = c.rope();
  float *q = e_.q_.data(), *k = e_.kn_.data();
  // Items [0, m) are query rows, [m, 2m) key rows, so a one-token step uses two threads.
  int64_t b, e;
  for (begin(2 * m_); next(&b, &e);) {
    const int64_t qb = std::min(b, m_), qe = std::min(e, m_), kb = std::max(b, m_) - m_, ke = std::max(e, m_) - m_;
    if (L.q_norm)
      for (int64_t t = qb; t < qe; ++t) rmsnorm_rows(q + t * qd, q + t * qd, L.q_norm.w, eps, D, 0, Hq);
    if (qb < qe) rope_rows(q, pos_, Hq, D, theta, style, qb, qe);
    if (L.k_norm)
      for (int64_t t = kb; t < ke; ++t) rmsnorm_rows(k + t * kvd, k + t * kvd, L.k_norm.w, eps, D, 0, Hkv);
    if (kb < ke) rope_rows(k, pos_, Hkv, D, theta, style, kb, ke);
    for (int64_t t = kb; t < ke; ++t) store_kv(L, t);
  }
  sync(kRopeCache);
}

void Step::cache(const LayerWeights& L) {
  int64_t b, e;
  for (begin(m_); next(&b, &e);)
    for (int64_t t = b; t < e; ++t) store_kv(L, t);
  sync(kRopeCache);
}

void Step::attend(const LayerWeights& L) {
  const AttnPlan& plan = plan_for(L.cfg.window);
  const int64_t Hq = c.n_heads, Hkv = c.n_kv_heads, D = c.head_dim, qd = c.q_dim();
  const float scale = c.score_scale();
  int64_t b, e;
  for (begin(plan.n_items); next(&b, &e);) {
    for (const AttnJob& j : plan.jobs) {
      const int64_t i0 = std::max(b, j.item0) - j.item0, i1 = std::min(e, j.item0 + j.n_items) - j.item0;
      if (i0 >= i1) continue;
      // [Hkv, n_ctx, D] of kv_type from position lo on: rows D apart, heads n_ctx * D apart
      const uint8_t* kc = kcache(L, j.slot) + j.lo * e_.kv_head_bytes_;
      const uint8_t* vc = vcache(L, j.slot) + j.lo * e_.kv_head_bytes_;
      const int64_t hs = e_.n_ctx_ * D;
      const float* q = e_.q_.data() + j.row0 * qd;                       // [T, Hq, D]
      if (j.n_split)
        attention_split_range(e_.part_.data() + j.part0, q, kc, vc, e_.kv_type_, D, hs, j.T, j.S - j.lo, Hq, Hkv, D,
                              scale, true, j.n_split, i0, i1);
      else
        attention_range(e_.att_.data() + j.row0 * qd, q, kc, vc, e_.kv_type_, D, hs, j.T, j.S - j.lo, Hq, Hkv, D, scale,
                        true, j.window, i0, i1);
    }
  }
  sync(kAttention);
  pending_ = Pending::attention;
  cur_plan_ = &plan;
}

void Step::out(const Proj& p, const Norm& post_norm) {
  const int64_t d = c.d_model, Hq = c.n_heads, Hkv = c.n_kv_heads, D = c.head_dim, qd = c.q_dim();
  const bool attn = pending_ == Pending::attention;
  const int phase = attn ? kOut : kDown;
  pending_ = Pending::none;
  // The split jobs' key-block states merge into the projection's input rows [r0, r1) of dst.
  auto merge = [&](float* dst, int64_t r0, int64_t r1) {  // dst [m, q_dim]
    for (const AttnJob& j : cur_plan_->jobs) {
      const int64_t a = std::max(r0, j.row0), z = std::min(r1, j.row0 + j.T);
      if (j.n_split && a < z)
        attention_merge_rows(dst + j.row0 * qd, e_.part_.data() + j.part0, j.T, Hq, Hkv, D, j.n_split,
                             (a - j.row0) * Hq, (z - j.row0) * Hq);
    }
  };
  // Solo pieces: every thread merges all rows into its own buffer once it holds a chunk; shared:
  // each chunk of the input phase merges the rows it then prepares.
  Input in{};
  if (!solo_) {
    if (attn)
      in = shared_input(e_.att_.data(), Norm{}, &p.w, 1, kOut,
                        [&](int64_t r0, int64_t r1) { merge(e_.att_.data(), r0, r1); });
    else
      in = shared_input(e_.gate_.data(), Norm{}, &p.w, 1, kDown);
  }
  float *x = e_.x_.data(), *tmp = e_.tmp_.data();
  int64_t b, e;
  for (begin(d, kRowAlign); next(&b, &e);) {
    if (!in.x) {
      if (attn) merge(own_.x.data(), 0, m_);
      in = solo_input(attn ? own_.x.data() : e_.gate_.data(), Norm{}, &p.w, 1);
    }
    matmul_rows(tmp, d, in.x, in.scratch[0].data(), p.w, m_, b, e);
    if (p.b)
      for (int64_t t = 0; t < m_; ++t)
        for (int64_t j = b; j < e; ++j) tmp[t * d + j] += p.b[j];
    if (!post_norm)  // the chunk adds the residual for the columns it computed
      for (int64_t t = 0; t < m_; ++t)
        for (int64_t j = b; j < e; ++j) x[t * d + j] += tmp[t * d + j];
  }
  if (!post_norm) {
    sync(phase);
    return;
  }
  // A post-norm needs whole rows of the projection: every chunk done, then rows.
  work_.finish();
  int64_t r0, r1;
  for (begin(m_); next(&r0, &r1);) {
    rmsnorm_rows(tmp, tmp, post_norm.w, float(c.norm_eps), d, r0, r1);
    for (int64_t t = r0; t < r1; ++t)
      for (int64_t j = 0; j < d; ++j) x[t * d + j] += tmp[t * d + j];
  }
  sync(phase);
}

void Step::ffn_gated(const LayerWeights& L, Act act) {
  const int64_t ff = c.d_ff;
  const WeightView ws[2] = {L.gate.w, L.up.w};
  Input in = solo_ ? Input{} : shared_input(e_.x_.data(), L.ffn_norm, ws, 2, kFfn);
  float *g = e_.gate_.data(), *u = e_.up_.data();
  int64_t b, e;
  for (begin(ff, kRowAlign); next(&b, &e);) {  // a chunk computes the gate and up rows it then multiplies
    if (!in.x) in = solo_input(e_.x_.data(), L.ffn_norm, ws, 2);
    matmul_rows(g, ff, in.x, in.scratch[0].data(), L.gate.w, m_, b, e);
    matmul_rows(u, ff, in.x, in.scratch[slot_of(ws, 1)].data(), L.up.w, m_, b, e);
    for (int64_t t = 0; t < m_; ++t) {
      float *gt = g + t * ff, *ut = u + t * ff;
      if (act == Act::silu) {
        swiglu_range(gt, gt, ut, b, e);
      } else {
        gelu_range(gt, gt, act == Act::gelu_tanh, b, e);
        for (int64_t j = b; j < e; ++j) gt[j] *= ut[j];
      }
    }
  }
  sync(kFfn);
  pending_ = Pending::ffn;
}

void Step::ffn(const LayerWeights& L, Act act) {
  const int64_t ff = c.d_ff;
  Input in = solo_ ? Input{} : shared_input(e_.x_.data(), L.ffn_norm, &L.up.w, 1, kFfn);
  float* g = e_.gate_.data();  // [m, d_ff] what out() projects next
  int64_t b, e;
  for (begin(ff, kRowAlign); next(&b, &e);) {
    if (!in.x) in = solo_input(e_.x_.data(), L.ffn_norm, &L.up.w, 1);
    matmul_rows(g, ff, in.x, in.scratch[0].data(), L.up.w, m_, b, e);
    for (int64_t t = 0; t < m_; ++t) {
      float* gt = g + t * ff;
      if (L.up.b)
        for (int64_t j = b; j < e; ++j) gt[j] += L.up.b[j];
      if (act == Act::silu)
        silu_range(gt, gt, b, e);
      else
        gelu_range(gt, gt, act == Act::gelu_tanh, b, e);
    }
  }
  sync(kFfn);
  pending_ = Pending::ffn;
}

void Step::head() {
  const Piece& pc = e_.piece_;
  const int64_t n = pc.n_out, d = c.d_model, V = c.vocab_size;
  if (n > 0) {
    const int64_t* src = e_.head_rows_.data() + pc.head0;  // entry indices of the step
    const float* x = e_.x_.data();
    const float eps = float(c.norm_eps);
    const bool solo = n <= Engine::kOwnRows;
    float* xn = solo ? own_.x.data() : e_.xn_.data();  // [n, d] the gathered, normed rows
    std::vector<uint8_t>* scratch = solo ? own_.scratch : e_.scratch_;
    auto gather = [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) norm_rows(xn + r * d, x + (src[r] - e_.e0_) * d, w.out_norm, eps, d, 0, 1);
      matmul_prepare(scratch[0].data(), xn, w.lm_head.type, n, d, r0, r1);
    };
    int64_t b, e;
    if (!solo) {
      for (begin(n); next(&b, &e);) gather(b, e);
      work_.finish();
    }
    bool ready = !solo;
    for (begin(V, kRowAlign); next(&b, &e);) {
      if (!ready) gather(0, n), ready = true;
      matmul_rows(logits_ + pc.out0 * V, V, xn, scratch[0].data(), w.lm_head, n, b, e);  // [n, vocab]
    }
  }
  sync(kHead);
}

}  // namespace ninestep
