// The model's weights as checked views into memory someone else owns (an mmapped GGUF file, NumPy
// arrays). Nothing is copied: the architecture's loader (cpp/model/<arch>.cpp) asks a TensorSet for
// each tensor it uses by GGUF name; the set checks shape, byte count, alignment and that the type
// has the kernels the use needs, and Weights::build rejects any tensor left unused.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <set>
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

struct Norm {
  const float* w = nullptr;  // [n]; null: no norm at this place
  const float* b = nullptr;  // [n] LayerNorm bias; null with w set: RMSNorm
  explicit operator bool() const { return w != nullptr; }
};

struct Proj {
  WeightView w{};            // [out, in]
  const float* b = nullptr;  // [out] bias or null
  explicit operator bool() const { return w.data != nullptr; }
};

struct LayerWeights {
  LayerConfig cfg;                  // window, RoPE base
  Norm attn_norm;                   // [d_model] before attention
  Proj q, k, v;                     // [q_dim, d_model], [kv_dim, d_model], [kv_dim, d_model]
  Norm q_norm, k_norm;              // [head_dim] per-head RMSNorm of queries / keys before RoPE (Gemma 3)
  Proj o;                           // [d_model, q_dim]
  Norm attn_post_norm;              // [d_model] on the attention output before the residual add (Gemma)
  Norm ffn_norm;                    // [d_model] before the FFN
  Proj gate, up;                    // [d_ff, d_model]
  Proj down;                        // [d_model, d_ff]
  Norm ffn_post_norm;               // [d_model] on the FFN output before the residual add (Gemma)
};

struct Arch;

struct Weights {
  ModelConfig cfg;
  const Arch* arch = nullptr;
  WeightView embd{};                // [vocab_size, d_model], any type with a dequantize row (lookup)
  WeightView pos_embd{};            // [n_positions, d_model] learned positions added by embed() (GPT-2); none: RoPE
  std::vector<LayerWeights> layers; // [n_layers]
  Norm out_norm;                    // [d_model]
  WeightView lm_head{};             // [vocab_size, d_model]; == embd when tied
  std::vector<std::shared_ptr<void>> packed;  // the copies the views' `packed` point into
  int64_t packed_bytes = 0;                   // their size

  // Runs the config's architecture loader over `tensors` and rejects unused ones; ArgError names
  // the tensor (missing, unexpected, misshaped, wrongly sized, a type without the needed kernels).
  static Weights build(const ModelConfig& cfg, const std::map<std::string, TensorIn>& tensors);
  virtual ~Weights() = default;
};

// What an architecture's loader reads tensors through.
class TensorSet {
 public:
  explicit TensorSet(const std::map<std::string, TensorIn>& t) : tensors_(t) {}
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  WeightView matrix(const std::string& name, int64_t n, int64_t k);  // must have a matmul kernel
  WeightView rows(const std::string& name, int64_t n, int64_t k);    // must have a dequantize row
  const float* vector(const std::string& name, int64_t n);           // f32 [n]
  Proj proj(const std::string& name, int64_t n, int64_t k, bool bias);  // name.weight (+ name.bias)
  Norm rms(const std::string& name, int64_t n) { return Norm{vector(name, n), nullptr}; }
  // LayerNorm: prefix.weight and prefix.bias, f32 [n].
  Norm layer(const std::string& prefix, int64_t n) { return Norm{vector(prefix + ".weight", n), vector(prefix + ".bias", n)}; }
  // output.weight, or token_embd.weight (`embd`) when the config ties them; either needs a matmul kernel.
  WeightView lm_head(const ModelConfig& c, const WeightView& embd);
  const std::set<std::string>& used() const { return used_; }

 private:
  const TensorIn& get(const std::string& name, const std::vector<int64_t>& shape);
  const std::map<std::string, TensorIn>& tensors_;
  std::set<std::string> used_;
};

}  // namespace ninestep
