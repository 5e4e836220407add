// The block toolkit an architecture's forward pass is written in. One Step per thread, made inside
// the engine's parallel region for one piece of the batch; every method is called by all threads in
// the same order. Each of its phases cuts its rows (or output columns, or attention items) into
// chunks the threads claim (core/work.h) and ends when every chunk is done, so a thread the OS
// descheduled holds up nobody unless it holds a chunk. Every output element is computed by one
// chunk, the same way whichever thread takes it, so results do not depend on timing. A thread reads
// the buffers of a phase only after it claimed one of its chunks (until then the others may be
// phases ahead). Nothing here throws or allocates: the engine checked and sized everything before
// the region.
//
//   s.embed();
//   for each layer L:
//     s.qkv(L);          // attn_norm, Q/K/V projections (+ bias)
//     s.rope_cache(L);   // QK-norm if the layer has it, RoPE at L.cfg.rope_theta, K/V into the cache
//                        // (s.qkv_rope_cache(L): both, in one phase for a one-token piece)
//     s.attend(L);       // each entry over its own sequence's key range (L.cfg.window)
//     s.out(L.o, L.attn_post_norm);    // output projection + residual (post-norm if set)
//     s.ffn_gated(L, Act::silu);       // ffn_norm, gate and up, act(gate) * up
//     s.out(L.down, L.ffn_post_norm);  // down projection + residual
//   s.head();          // output_norm + LM head for the entries whose logits were asked for
//
// Learned positions (GPT-2): embed() adds w.pos_embd's row of each entry's position; cache(L)
// stores K/V without RoPE; ffn(L, act) is the plain MLP act(up(x) + b) that out(L.down, ..) projects.
#pragma once
#include <cstdint>
#include <vector>

#include "core/work.h"
#include "model/engine.h"

namespace ninestep {

enum class Act { silu, gelu_tanh, gelu_erf };

class Step {
 public:
  Step(Engine& e, float* logits);
  ~Step();  // hands the engine this thread's wait time (the thread tuner reads it)

  const Weights& w;
  const ModelConfig& c;

  void embed();
  void qkv(const LayerWeights& L);
  void qkv_rope_cache(const LayerWeights& L);  // qkv(L) then rope_cache(L) (one phase for one token)
  void rope_cache(const LayerWeights& L);
  void cache(const LayerWeights& L);             // K/V into the cache as they are (learned positions: no RoPE)
  void attend(const LayerWeights& L);
  void out(const Proj& p, const Norm& post_norm);
  void ffn_gated(const LayerWeights& L, Act act);
  void ffn(const LayerWeights& L, Act act);      // ffn_norm, act(up + bias) (GPT-2, BERT); then out(L.down, ..)
  void head();

 private:
  struct Input {
    const float* x;                       // [rows, k] the (normalized) input the matmul reads
    const std::vector<uint8_t>* scratch;  // its prepared copies, one slot per weight type
  };
  // Shared pieces: one phase normalizes and prepares the rows (after pre(r0, r1) on them), all of
  // them before any matmul chunk. Solo pieces: call solo_input() once the thread holds its first
  // matmul chunk, into its own buffers.
  template <class Pre>
  Input shared_input(const float* in, const Norm& norm, const WeightView* ws, int nw, int phase, Pre pre);
  Input shared_input(const float* in, const Norm& norm, const WeightView* ws, int nw, int phase);
  Input solo_input(const float* in, const Norm& norm, const WeightView* ws, int nw);
  void qkv_phase(const LayerWeights& L, bool fused);
  void finish_heads(const LayerWeights& L, int64_t b, int64_t e);
  void begin(int64_t n, int64_t align = 1) { work_.begin(n, align); }
  bool next(int64_t* b, int64_t* e) { return work_.next(b, e); }
  void sync(int phase);  // every chunk of the phase done; profile it as `phase`
  void mark(int phase);
  int layer_of(const LayerWeights& L) const { return int(&L - w.layers.data()); }
  uint8_t* kcache(const LayerWeights& L, int32_t slot) const;  // the slot's [n_kv_heads, n_ctx] head rows
  uint8_t* vcache(const LayerWeights& L, int32_t slot) const;
  void store_kv(const LayerWeights& L, int64_t t) const;        // entry t's kn_ / vn_ rows into the cache
  void store_heads(const LayerWeights& L, int64_t t, const float* k, const float* v, int64_t h0, int64_t h1) const;
  const AttnPlan& plan_for(int64_t window) const;

  Engine& e_;
  float* logits_;
  const int ith_, nth_;
  WorkCursor work_;
  const int64_t m_;          // entries in the piece
  const bool solo_;
  const int32_t* tok_;       // [m] the piece's tokens, positions and sequences
  const int32_t* pos_;
  const int32_t* slot_;
  Engine::ThreadBuf& own_;
  enum class Pending { none, attention, ffn } pending_ = Pending::none;  // what out() projects
  const AttnPlan* cur_plan_ = nullptr;  // the plan attend() ran, whose states out() merges
  double last_ = 0.0;
};

}  // namespace ninestep
