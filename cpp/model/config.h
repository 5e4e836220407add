// Hyperparameters of a Llama-family decoder (Llama, SmolLM, Qwen2): everything the forward pass
// needs to size its buffers and check the weights it is handed.
#pragma once
#include <cstdint>

#include "kernels/nn.h"

namespace ninestep {

struct ModelConfig {
  int64_t n_layers = 0;
  int64_t d_model = 0;     // residual width
  int64_t n_heads = 0;     // query heads
  int64_t n_kv_heads = 0;  // key/value heads (GQA: divides n_heads)
  int64_t head_dim = 0;    // even (RoPE rotates pairs)
  int64_t d_ff = 0;        // SwiGLU hidden width
  int64_t vocab_size = 0;
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeStyle rope_style = RopeStyle::norm;  // norm: GGUF llama (pairs 2i, 2i+1); neox: Qwen2, HF layout
  bool tied_embeddings = false;            // LM head reuses token_embd.weight
  bool has_qkv_bias = false;               // Qwen2

  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }

  void validate() const;  // throws ArgError naming the first bad field
};

}  // namespace ninestep
