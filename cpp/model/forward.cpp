// The decoder forward pass: one OpenMP parallel region per call, barriers between phases, each
// phase splitting its rows (or attention items) across the threads. Nothing in the region throws
// or allocates: Session::forward has checked every argument and the buffers exist already.
#include <omp.h>

#include <cmath>

#include "core/threads.h"
#include "kernels/nn.h"
#include "kernels/traits.h"
#include "model/session.h"

namespace ninestep {

namespace {

constexpr int64_t kRowAlign = 16;  // W-row split granularity, as ops.matmul splits
static_assert(kAttnSplitMaxT <= Session::kOwnRows, "the decode attention merges into the solo input buffer");

// Several matmuls reading the same x (Q/K/V, gate/up) share one prepared copy per weight type:
// slot i is used by weight i unless an earlier weight has the same type.
int slot_of(const WeightView* ws, int i) {
  for (int j = 0; j < i; ++j)
    if (ws[j].type == ws[i].type) return j;
  return i;
}

struct Ctx {
  int ith, nth;
  void rows(int64_t n, int64_t* b, int64_t* e, int64_t align = 1) const { split_range(n, nth, ith, b, e, align); }
};

// x [m, k] rows [r0, r1) prepared for each of `nw` weights into the session's scratch slots.
void prepare(std::vector<uint8_t>* scratch, const WeightView* ws, int nw, const float* x, int64_t m, int64_t r0,
             int64_t r1) {
  for (int i = 0; i < nw; ++i)
    if (slot_of(ws, i) == i) matmul_prepare(scratch[i].data(), x, ws[i].type, m, ws[i].k, r0, r1);
}

// Rows [n0, n1) of the concatenation of `nw` weights' outputs: y_i [m, ld_i] = x @ W_i^T.
void matmul_concat(const Ctx& cx, float* const* ys, const int64_t* lds, const float* x,
                   const std::vector<uint8_t>* scratch, const WeightView* ws, int nw, int64_t m) {
  int64_t total = 0;
  for (int i = 0; i < nw; ++i) total += ws[i].n;
  int64_t b, e;
  cx.rows(total, &b, &e, kRowAlign);
  int64_t off = 0;
  for (int i = 0; i < nw; ++i) {
    const int64_t lo = std::max(b - off, int64_t(0)), hi = std::min(e - off, ws[i].n);
    if (lo < hi) matmul_rows(ys[i], lds[i], x, scratch[slot_of(ws, i)].data(), ws[i], m, lo, hi);
    off += ws[i].n;
  }
}

void add_bias(float* y, const float* bias, int64_t ld, int64_t m, int64_t j0, int64_t j1) {
  for (int64_t t = 0; t < m; ++t)
    for (int64_t j = j0; j < j1; ++j) y[t * ld + j] += bias[j];
}

}  // namespace

void Session::run(float* logits, const int32_t* tok, int64_t m, int64_t p0, int64_t head_rows, int nthreads) {
  const Weights& W = *w_;
  const ModelConfig& c = W.cfg;
  const int64_t d = c.d_model, qd = c.q_dim(), kvd = c.kv_dim(), ff = c.d_ff, V = c.vocab_size;
  const int64_t embd_row = dtype_row_bytes(W.embd.type, d);
  const DequantRowFn embd_lookup = type_traits(W.embd.type).dequantize_row;  // checked in Weights::build
  const float scale = 1.0f / std::sqrt(float(c.head_dim));
  const bool prof = profiling_;
  double* acc = prof_.data();

#pragma omp parallel num_threads(nthreads)
  {
    const Ctx cx{omp_get_thread_num(), omp_get_num_threads()};
    ThreadBuf& own = own_[cx.ith];
    double last = prof ? omp_get_wtime() : 0.0;
    // Thread 0 books the time since its previous mark to `phase`, after the barrier ending it.
    auto mark = [&](int phase) {
      if (prof && cx.ith == 0) {
        const double now = omp_get_wtime();
        acc[phase] += now - last;
        last = now;
      }
    };
    int64_t b, e;

    {
      const bool solo = m <= kOwnRows;  // every thread prepares its own copy of each matmul input
      float *x = x_.data(), *q = q_.data(), *att = att_.data(), *tmp = tmp_.data();
      float *g = gate_.data(), *u = up_.data(), *part = attn_part_.data();

      // The input of a matmul phase: `in` [mr, k] (normalized by `norm` first, unless null) prepared
      // for weights ws. Shared: rows split across threads, then a barrier. Solo: each thread does
      // all rows into its own buffers and goes straight on to its matmul rows.
      struct Input {
        const float* x;
        const std::vector<uint8_t>* scratch;
      };
      auto input = [&](const float* in, int64_t mr, const float* norm, const WeightView* ws, int nw,
                       int phase) -> Input {
        const int64_t k = ws[0].k;
        if (solo) {
          const float* src = in;
          if (norm) {
            rmsnorm_rows(own.x.data(), in, norm, c.norm_eps, k, 0, mr);
            src = own.x.data();
          }
          prepare(own.scratch, ws, nw, src, mr, 0, mr);
          return {src, own.scratch};
        }
        int64_t r0, r1;
        cx.rows(mr, &r0, &r1);
        float* xn = xn_.data();  // [mr, k]
        if (norm) rmsnorm_rows(xn, in, norm, c.norm_eps, k, r0, r1);
        prepare(scratch_, ws, nw, norm ? xn : in, mr, r0, r1);
#pragma omp barrier
        mark(phase);
        return {norm ? xn : in, scratch_};
      };

      cx.rows(m, &b, &e);
      for (int64_t t = b; t < e; ++t) {
        embd_lookup(x + t * d, static_cast<const uint8_t*>(W.embd.data) + tok[t] * embd_row, d);
        pos_[t] = int32_t(p0 + t);
      }
#pragma omp barrier
      mark(kEmbed);

      for (int64_t l = 0; l < c.n_layers; ++l) {
        const LayerWeights& L = W.layers[l];
        float* kc = kcache_.get() + l * n_ctx_ * kvd;  // [n_ctx, n_kv_heads, head_dim]
        float* vc = vcache_.get() + l * n_ctx_ * kvd;
        float* kc_new = kc + p0 * kvd;  // this chunk's rows, written by the K/V matmuls directly
        float* vc_new = vc + p0 * kvd;

        {
          const WeightView qkv[3] = {L.wq, L.wk, L.wv};
          const Input in = input(x, m, L.attn_norm, qkv, 3, kAttnNorm);
          float* ys[3] = {q, kc_new, vc_new};
          const int64_t lds[3] = {qd, kvd, kvd};
          matmul_concat(cx, ys, lds, in.x, in.scratch, qkv, 3, m);
          if (c.has_qkv_bias) {
            // Each thread biases the output columns it computed: same split as matmul_concat.
            cx.rows(qd + 2 * kvd, &b, &e, kRowAlign);
            const float* bias[3] = {L.bq, L.bk, L.bv};
            int64_t off = 0;
            for (int i = 0; i < 3; ++i) {
              const int64_t lo = std::max(b - off, int64_t(0)), hi = std::min(e - off, qkv[i].n);
              if (lo < hi) add_bias(ys[i], bias[i], lds[i], m, lo, hi);
              off += qkv[i].n;
            }
          }
        }
#pragma omp barrier
        mark(kQKV);

        // Items [0, m) rotate Q rows, [m, 2m) K rows (in the cache), so a one-token step uses two threads.
        cx.rows(2 * m, &b, &e);
        if (b < m) rope_rows(q, pos_.data(), c.n_heads, c.head_dim, c.rope_theta, c.rope_style, b, std::min(e, m));
        if (e > m)
          rope_rows(kc_new, pos_.data(), c.n_kv_heads, c.head_dim, c.rope_theta, c.rope_style, std::max(b, m) - m,
                    e - m);
#pragma omp barrier
        mark(kRope);

        // Decode: (KV head, key block) items, so each K/V row is read once per GQA group and a long
        // context splits evenly over the threads; every thread then merges the blocks' states of
        // all rows into its own matmul input (split implies solo), which saves a barrier.
        const bool split = m <= kAttnSplitMaxT;
        const int64_t n_split = split ? attention_splits(p0 + m, c.n_kv_heads, cx.nth) : 0;
        if (split) {
          cx.rows(attention_split_items(c.n_kv_heads, n_split), &b, &e);
          attention_split_range(part, q, kc, vc, kvd, m, p0 + m, c.n_heads, c.n_kv_heads, c.head_dim, scale, true,
                                n_split, b, e);
        } else {
          cx.rows(attention_items(m, c.n_heads), &b, &e);
          attention_range(att, q, kc, vc, kvd, m, p0 + m, c.n_heads, c.n_kv_heads, c.head_dim, scale, true, b, e);
        }
#pragma omp barrier
        mark(kAttention);

        {
          // Output projection; each thread adds the residual for the columns it computed.
          if (split)
            attention_merge_rows(own.x.data(), part, m, c.n_heads, c.n_kv_heads, c.head_dim, n_split, 0,
                                 m * c.n_heads);
          const Input in = input(split ? own.x.data() : att, m, nullptr, &L.wo, 1, kPrepO);
          cx.rows(d, &b, &e, kRowAlign);
          matmul_rows(tmp, d, in.x, in.scratch[0].data(), L.wo, m, b, e);
          for (int64_t t = 0; t < m; ++t)
            for (int64_t j = b; j < e; ++j) x[t * d + j] += tmp[t * d + j];
        }
#pragma omp barrier
        mark(kWo);

        {
          // Gate and up split the same way, so each thread's SwiGLU columns are its own.
          const WeightView gu[2] = {L.gate, L.up};
          const Input in = input(x, m, L.ffn_norm, gu, 2, kFfnNorm);
          cx.rows(ff, &b, &e, kRowAlign);
          matmul_rows(g, ff, in.x, in.scratch[0].data(), L.gate, m, b, e);
          matmul_rows(u, ff, in.x, in.scratch[slot_of(gu, 1)].data(), L.up, m, b, e);
          for (int64_t t = 0; t < m; ++t) swiglu_range(g + t * ff, g + t * ff, u + t * ff, b, e);
        }
#pragma omp barrier
        mark(kGateUp);

        {
          const Input in = input(g, m, nullptr, &L.down, 1, kPrepDown);
          cx.rows(d, &b, &e, kRowAlign);
          matmul_rows(tmp, d, in.x, in.scratch[0].data(), L.down, m, b, e);
          for (int64_t t = 0; t < m; ++t)
            for (int64_t j = b; j < e; ++j) x[t * d + j] += tmp[t * d + j];
        }
#pragma omp barrier
        mark(kDown);
      }

      // LM head: the chunk's last head_rows tokens (all of them with all_logits, else the prompt's last).
      if (head_rows > 0) {
        const int64_t r0 = m - head_rows;
        const Input in = input(x + r0 * d, head_rows, W.out_norm, &W.lm_head, 1, kHead);
        cx.rows(V, &b, &e, kRowAlign);
        matmul_rows(logits, V, in.x, in.scratch[0].data(), W.lm_head, head_rows, b, e);  // [head_rows, vocab]
      }
#pragma omp barrier
      mark(kHead);
    }
  }
}

}  // namespace ninestep
