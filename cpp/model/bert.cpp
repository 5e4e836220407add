// BERT (BertModel; MiniLM and the sentence-transformers family): token + learned absolute position
// + token-type (type 0) embeddings and a LayerNorm, then post-LayerNorm blocks with biases:
//   x = LN(x + o(attention(q(x), k(x), v(x))))   every token sees every token of its sentence
//   x = LN(x + down(gelu_erf(up(x))))
// Out: the last hidden states; no pooler, no head. GGUF names as llama.cpp's BERT converter writes
// them (formats/hf_encoders.py maps an HF folder onto them).
#include "model/encoder.h"

#include "kernels/traits.h"

namespace ninestep {

// An f32 table [n, d] (positions, token types): rows added as they are.
static const float* f32_table(TensorSet& ts, const std::string& name, int64_t n, int64_t d) {
  const WeightView t = ts.rows(name, n, d);
  NS_CHECK(t.type == DType::f32, "tensors['" + name + "']: expected f32 (convert it to float32)");
  return static_cast<const float*>(t.data);
}

static void load_bert(EncoderWeights& w, TensorSet& ts) {
  const ModelConfig& c = w.cfg;
  const int64_t d = c.d_model, ff = c.d_ff;
  NS_CHECK(c.n_kv_heads == c.n_heads && c.q_dim() == d,
           "config: bert needs n_kv_heads == n_heads and n_heads * head_dim == d_model");
  NS_CHECK(c.ffn_act == "gelu_erf" || c.ffn_act == "gelu_tanh",
           "config.ffn_act: bert runs gelu_erf or gelu_tanh, got '" + c.ffn_act + "'");
  w.embd = ts.rows("token_embd.weight", c.vocab_size, d);
  w.pos_embd = f32_table(ts, "position_embd.weight", w.n_positions, d);
  w.type_embd = f32_table(ts, "token_types.weight", w.n_types, d);
  w.embd_norm = ts.layer("token_embd_norm", d);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    EncoderLayer L;
    L.q = ts.proj(p + "attn_q", d, d, true);
    L.k = ts.proj(p + "attn_k", d, d, true);
    L.v = ts.proj(p + "attn_v", d, d, true);
    L.o = ts.proj(p + "attn_output", d, d, true);
    L.attn_out_norm = ts.layer(p + "attn_output_norm", d);
    L.up = ts.proj(p + "ffn_up", ff, d, true);
    L.down = ts.proj(p + "ffn_down", d, ff, true);
    L.out_norm = ts.layer(p + "layer_output_norm", d);
    w.layers.push_back(L);
  }
}

static void forward_bert(EncoderStep& s) {
  const Act act = s.c.ffn_act == "gelu_tanh" ? Act::gelu_tanh : Act::gelu_erf;
  s.embed();
  for (const EncoderLayer& L : s.w.layers) {
    s.qkv(L);
    s.attend();
    s.out_residual_norm(L.o, s.att(), L.attn_out_norm);
    s.ffn_up(L, act);
    s.out_residual_norm(L.down, s.hidden(), L.out_norm);
  }
}

NS_ENCODER_ARCH(bert, "bert", load_bert, forward_bert);

}  // namespace ninestep
