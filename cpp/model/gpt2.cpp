// GPT-2: learned absolute positions (position_embd, added by embed()), pre-LayerNorm blocks with
// biases, one fused QKV projection with bias (attn_qkv [3 d_model, d_model]: rows q, then k, then v),
// causal multi-head attention without RoPE, plain GELU (tanh) MLP, final LayerNorm, tied LM head
// (output.weight when the file has one).
#include "model/arch.h"
#include "model/step.h"

#include "kernels/traits.h"

namespace ninestep {

// Rows [r0, r0 + n) of a fused [3 d, d] projection as a Proj of its own: a view, nothing copied.
static Proj rows_of(const WeightView& w, const float* b, int64_t r0, int64_t n) {
  Proj p;
  p.w = w;
  p.w.data = static_cast<const uint8_t*>(w.data) + r0 * dtype_row_bytes(w.type, w.k);
  p.w.n = n;
  p.b = b + r0;
  return p;
}

static void load_gpt2(Weights& w, TensorSet& ts) {
  const ModelConfig& c = w.cfg;
  const int64_t d = c.d_model, ff = c.d_ff;
  NS_CHECK(c.n_kv_heads == c.n_heads && c.q_dim() == d,
           "config: gpt2 needs n_kv_heads == n_heads and n_heads * head_dim == d_model");
  w.embd = ts.rows("token_embd.weight", c.vocab_size, d);
  NS_CHECK(c.context_length > 0, "config.context_length: gpt2 needs its number of learned positions");
  w.pos_embd = ts.matrix("position_embd.weight", c.context_length, d);
  NS_CHECK(w.pos_embd.type == DType::f32, "tensors['position_embd.weight']: expected f32 (convert it to float32)");
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LayerWeights L;
    L.cfg = layer_config(c, i);
    L.attn_norm = ts.layer(p + "attn_norm", d);
    const WeightView qkv = ts.matrix(p + "attn_qkv.weight", 3 * d, d);
    const float* qkv_b = ts.vector(p + "attn_qkv.bias", 3 * d);
    L.q = rows_of(qkv, qkv_b, 0, d);
    L.k = rows_of(qkv, qkv_b, d, d);
    L.v = rows_of(qkv, qkv_b, 2 * d, d);
    L.o = ts.proj(p + "attn_output", d, d, true);
    L.ffn_norm = ts.layer(p + "ffn_norm", d);
    L.up = ts.proj(p + "ffn_up", ff, d, true);
    L.down = ts.proj(p + "ffn_down", d, ff, true);
    w.layers.push_back(L);
  }
  w.out_norm = ts.layer("output_norm", d);
  w.lm_head = ts.lm_head(c, w.embd);
}

static void forward_gpt2(Step& s) {
  const Act act = s.c.ffn_act == "gelu_erf" ? Act::gelu_erf : Act::gelu_tanh;
  s.embed();
  for (const LayerWeights& L : s.w.layers) {
    s.qkv(L);
    s.cache(L);
    s.attend(L);
    s.out(L.o, Norm{});
    s.ffn(L, act);
    s.out(L.down, Norm{});
  }
  s.head();
}

NS_ARCH(gpt2, "gpt2", load_gpt2, forward_gpt2);

}  // namespace ninestep
