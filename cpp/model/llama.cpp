// Llama-family decoders: Llama 2/3, SmolLM2, TinyLlama, Mistral (sliding window from the config),
// Qwen2 (Q/K/V biases). Pre-RMSNorm blocks, RoPE, grouped-query attention, SwiGLU FFN.
#include "model/arch.h"
#include "model/step.h"

namespace ninestep {

static void load_llama(Weights& w, TensorSet& ts) {
  const ModelConfig& c = w.cfg;
  const int64_t d = c.d_model, qd = c.q_dim(), kvd = c.kv_dim(), ff = c.d_ff;
  w.embd = ts.rows("token_embd.weight", c.vocab_size, d);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LayerWeights L;
    L.cfg = layer_config(c, i);
    L.attn_norm = ts.rms(p + "attn_norm.weight", d);
    L.q = ts.proj(p + "attn_q", qd, d, c.has_qkv_bias);
    L.k = ts.proj(p + "attn_k", kvd, d, c.has_qkv_bias);
    L.v = ts.proj(p + "attn_v", kvd, d, c.has_qkv_bias);
    L.o = ts.proj(p + "attn_output", d, qd, false);
    L.ffn_norm = ts.rms(p + "ffn_norm.weight", d);
    L.gate = ts.proj(p + "ffn_gate", ff, d, false);
    L.up = ts.proj(p + "ffn_up", ff, d, false);
    L.down = ts.proj(p + "ffn_down", d, ff, false);
    w.layers.push_back(L);
  }
  w.out_norm = ts.rms("output_norm.weight", d);
  w.lm_head = ts.lm_head(c, w.embd);
}

static void forward_llama(Step& s) {
  s.embed();
  for (const LayerWeights& L : s.w.layers) {
    s.qkv_rope_cache(L);
    s.attend(L);
    s.out(L.o, Norm{});
    s.ffn_gated(L, Act::silu);
    s.out(L.down, Norm{});
  }
  s.head();
}

NS_ARCH(llama, "llama qwen2 mistral", load_llama, forward_llama);

}  // namespace ninestep
