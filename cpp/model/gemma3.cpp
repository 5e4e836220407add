// Gemma 3: sliding-window attention on five of every six layers (local RoPE base), QK-norm, RMSNorm
// before and after attention and FFN, GeGLU (tanh), embeddings scaled by sqrt(d_model) (config
// embd_scale), tied LM head. The GGUF converter has folded Gemma's (1 + weight) into the norms.
#include "model/arch.h"
#include "model/step.h"

namespace ninestep {

static void load_gemma3(Weights& w, TensorSet& ts) {
  const ModelConfig& c = w.cfg;
  const int64_t d = c.d_model, qd = c.q_dim(), kvd = c.kv_dim(), ff = c.d_ff, D = c.head_dim;
  w.embd = ts.rows("token_embd.weight", c.vocab_size, d);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LayerWeights L;
    L.cfg = layer_config(c, i);
    L.attn_norm = ts.rms(p + "attn_norm.weight", d);
    L.q = ts.proj(p + "attn_q", qd, d, false);
    L.k = ts.proj(p + "attn_k", kvd, d, false);
    L.v = ts.proj(p + "attn_v", kvd, d, false);
    L.q_norm = ts.rms(p + "attn_q_norm.weight", D);
    L.k_norm = ts.rms(p + "attn_k_norm.weight", D);
    L.o = ts.proj(p + "attn_output", d, qd, false);
    L.attn_post_norm = ts.rms(p + "post_attention_norm.weight", d);
    L.ffn_norm = ts.rms(p + "ffn_norm.weight", d);
    L.gate = ts.proj(p + "ffn_gate", ff, d, false);
    L.up = ts.proj(p + "ffn_up", ff, d, false);
    L.down = ts.proj(p + "ffn_down", d, ff, false);
    L.ffn_post_norm = ts.rms(p + "post_ffw_norm.weight", d);
    w.layers.push_back(L);
  }
  w.out_norm = ts.rms("output_norm.weight", d);
  w.lm_head = ts.lm_head(c, w.embd);
}

static void forward_gemma3(Step& s) {
  s.embed();
  for (const LayerWeights& L : s.w.layers) {
    s.qkv_rope_cache(L);
    s.attend(L);
    s.out(L.o, L.attn_post_norm);
    s.ffn_gated(L, Act::gelu_tanh);
    s.out(L.down, L.ffn_post_norm);
  }
  s.head();
}

NS_ARCH(gemma3, "gemma3", load_gemma3, forward_gemma3);

}  // namespace ninestep
