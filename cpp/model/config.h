// The one config schema: every hyperparameter the engine reads is declared once below. The binding
// exports the list (`_core.config_schema()`), Python's ModelConfig is made from it, and the readers
// (formats/gguf, formats/safetensors) fill it. A new field is a line here plus the reader that sets it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/nn.h"

namespace ninestep {

// X(type, name, default, doc). Types: int64_t, double, bool, std::string.
#define NS_CONFIG_FIELDS(X)                                                                                      \
  X(std::string, architecture, "llama", "which cpp/model/<arch>.cpp runs the model")                          \
  X(int64_t, n_layers, 0, "transformer blocks")                                                               \
  X(int64_t, d_model, 0, "residual width")                                                                    \
  X(int64_t, n_heads, 0, "query heads")                                                                       \
  X(int64_t, n_kv_heads, 0, "key/value heads (grouped-query attention: divides n_heads)")                     \
  X(int64_t, head_dim, 0, "width of one head (even: RoPE rotates pairs)")                                     \
  X(int64_t, d_ff, 0, "feed-forward hidden width")                                                            \
  X(int64_t, vocab_size, 0, "tokens in the vocabulary")                                                       \
  X(int64_t, context_length, 0, "positions the model was trained on (0: unknown)")                            \
  X(double, norm_eps, 1e-5, "epsilon of the RMSNorm / LayerNorm")                                             \
  X(double, rope_theta, 10000.0, "RoPE base of the global-attention layers")                                  \
  X(double, rope_theta_local, 0.0, "RoPE base of the sliding-window layers (0: rope_theta)")                  \
  X(std::string, rope_style, "norm", "norm: rotate pairs (2i, 2i+1) (GGUF llama); neox: pairs (i, i + D/2)")  \
  X(int64_t, sliding_window, 0, "keys a sliding-window layer sees, its own position included (0: none)")      \
  X(int64_t, sliding_window_pattern, 0, "layer l is global when (l + 1) % pattern == 0 (0: every layer windowed)") \
  X(double, attn_scale, 0.0, "attention score scale (0: 1 / sqrt(head_dim))")                                 \
  X(double, embd_scale, 1.0, "token embeddings are multiplied by this (Gemma: sqrt(d_model))")                \
  X(bool, tied_embeddings, false, "the LM head reuses token_embd.weight")                                     \
  X(bool, has_qkv_bias, false, "the Q/K/V projections have biases (Qwen2)")                                   \
  X(std::string, ffn_act, "silu", "gated FFN activation: silu (SwiGLU) or gelu_tanh (GeGLU)")

struct ModelConfig {
#define NS_DECLARE_FIELD(type, name, def, doc) type name = def;
  NS_CONFIG_FIELDS(NS_DECLARE_FIELD)
#undef NS_DECLARE_FIELD

  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }
  RopeStyle rope() const { return rope_style == "neox" ? RopeStyle::neox : RopeStyle::norm; }
  float score_scale() const;

  void validate() const;  // throws ArgError naming the first bad field
};

// Settings that differ between layers, derived from the config by the architecture.
struct LayerConfig {
  int64_t window = 0;        // keys a query sees, itself included (0: all before it)
  float rope_theta = 1e4f;   // this layer's RoPE base
};

// Layer l of c: windowed (with the local RoPE base) unless the pattern makes it global.
LayerConfig layer_config(const ModelConfig& c, int64_t l);

}  // namespace ninestep
