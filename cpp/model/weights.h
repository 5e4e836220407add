// The model's weights as checked views into memory someone else owns (an mmapped GGUF file, NumPy
// arrays). Nothing is copied: Weights::build checks each tensor's shape against the config and
// its byte count against its type, then keeps the pointers.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kernels/matmul.h"
#include "model/config.h"

namespace ninestep {

// One tensor as handed over by the caller.
struct TensorIn {
  const void* data = nullptr;  // raw bytes, rows contiguous
  int64_t nbytes = 0;
  DType type = DType::f32;
  std::vector<int64_t> shape;  // NumPy order: [rows, columns] for matrices, [n] for vectors
};

struct LayerWeights {
  const float* attn_norm;           // [d_model]
  WeightView wq, wk, wv;            // [q_dim, d_model], [kv_dim, d_model], [kv_dim, d_model]
  const float *bq, *bk, *bv;        // [q_dim], [kv_dim], [kv_dim]; null without qkv bias
  WeightView wo;                    // [d_model, q_dim]
  const float* ffn_norm;            // [d_model]
  WeightView gate, up;              // [d_ff, d_model]
  WeightView down;                  // [d_model, d_ff]
};

struct Weights {
  ModelConfig cfg;
  WeightView embd;                  // [vocab_size, d_model], any type (rows dequantized on lookup)
  std::vector<LayerWeights> layers; // [n_layers]
  const float* out_norm;            // [d_model]
  WeightView lm_head;               // [vocab_size, d_model]; == embd when tied

  // Checks every expected tensor (GGUF names: token_embd.weight, blk.{i}.attn_q.weight, ...) and
  // rejects missing, unexpected, misshaped or wrongly sized ones with an ArgError naming it.
  static Weights build(const ModelConfig& cfg, const std::map<std::string, TensorIn>& tensors);
  virtual ~Weights() = default;
};

}  // namespace ninestep
