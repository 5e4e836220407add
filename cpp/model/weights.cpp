#include "model/weights.h"

#include <set>

#include "kernels/traits.h"

namespace ninestep {

static std::string shape_of(const std::vector<int64_t>& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + (s.size() == 1 ? ",)" : ")");
}

void ModelConfig::validate() const {
  auto pos = [](int64_t v, const char* name) {
    NS_CHECK(v > 0, std::string("config.") + name + " must be positive, got " + std::to_string(v));
  };
  pos(n_layers, "n_layers");
  pos(d_model, "d_model");
  pos(n_heads, "n_heads");
  pos(n_kv_heads, "n_kv_heads");
  pos(head_dim, "head_dim");
  pos(d_ff, "d_ff");
  pos(vocab_size, "vocab_size");
  NS_CHECK(n_heads % n_kv_heads == 0, "config.n_heads (" + std::to_string(n_heads) +
                                          ") must be a multiple of n_kv_heads (" + std::to_string(n_kv_heads) + ")");
  NS_CHECK(head_dim % 2 == 0, "config.head_dim must be even, got " + std::to_string(head_dim));
  NS_CHECK(vocab_size <= INT32_MAX, "config.vocab_size does not fit int32 token ids");
  NS_CHECK(norm_eps > 0.0f, "config.norm_eps must be positive");
  NS_CHECK(rope_theta > 0.0f, "config.rope_theta must be positive");
}

namespace {

struct Loader {
  const std::map<std::string, TensorIn>& tensors;
  std::set<std::string> used;

  const TensorIn& get(const std::string& name, const std::vector<int64_t>& shape) {
    auto it = tensors.find(name);
    NS_CHECK(it != tensors.end(), "tensors: missing '" + name + "' " + shape_of(shape));
    const TensorIn& t = it->second;
    NS_CHECK(t.data != nullptr, "tensors['" + name + "']: no data");
    check_aligned(t.data, t.type, "tensors['" + name + "']");
    NS_CHECK(t.shape == shape, "tensors['" + name + "']: expected shape " + shape_of(shape) + ", got " +
                                   shape_of(t.shape));
    const int64_t rows = shape.size() == 2 ? shape[0] : 1;
    const int64_t need = checked_mul(rows, dtype_row_bytes(t.type, shape.back()), name.c_str());
    NS_CHECK(t.nbytes == need, "tensors['" + name + "']: holds " + std::to_string(t.nbytes) + " bytes, " +
                                   dtype_info(t.type).name + " " + shape_of(shape) + " needs " +
                                   std::to_string(need));
    used.insert(name);
    return t;
  }
  WeightView matrix(const std::string& name, int64_t n, int64_t k) {
    const TensorIn& t = get(name, {n, k});
    check_matmul_kernel(t.type, "tensors['" + name + "']");
    return WeightView{t.data, t.type, n, k};
  }
  // Norm weights and biases are read as plain floats by the row kernels.
  const float* vector(const std::string& name, int64_t n) {
    const TensorIn& t = get(name, {n});
    NS_CHECK(t.type == DType::f32,
             "tensors['" + name + "']: expected f32, got " + dtype_info(t.type).name + " (convert it to float32)");
    return static_cast<const float*>(t.data);
  }
};

}  // namespace

Weights Weights::build(const ModelConfig& cfg, const std::map<std::string, TensorIn>& tensors) {
  cfg.validate();
  Loader ld{tensors, {}};
  Weights w;
  w.cfg = cfg;
  const int64_t d = cfg.d_model, qd = cfg.q_dim(), kvd = cfg.kv_dim(), ff = cfg.d_ff;
  {
    const TensorIn& t = ld.get("token_embd.weight", {cfg.vocab_size, d});
    check_dequantize_kernel(t.type, "tensors['token_embd.weight']");
    w.embd = WeightView{t.data, t.type, cfg.vocab_size, d};
  }
  for (int64_t i = 0; i < cfg.n_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LayerWeights L{};
    L.attn_norm = ld.vector(p + "attn_norm.weight", d);
    L.wq = ld.matrix(p + "attn_q.weight", qd, d);
    L.wk = ld.matrix(p + "attn_k.weight", kvd, d);
    L.wv = ld.matrix(p + "attn_v.weight", kvd, d);
    if (cfg.has_qkv_bias) {
      L.bq = ld.vector(p + "attn_q.bias", qd);
      L.bk = ld.vector(p + "attn_k.bias", kvd);
      L.bv = ld.vector(p + "attn_v.bias", kvd);
    }
    L.wo = ld.matrix(p + "attn_output.weight", d, qd);
    L.ffn_norm = ld.vector(p + "ffn_norm.weight", d);
    L.gate = ld.matrix(p + "ffn_gate.weight", ff, d);
    L.up = ld.matrix(p + "ffn_up.weight", ff, d);
    L.down = ld.matrix(p + "ffn_down.weight", d, ff);
    w.layers.push_back(L);
  }
  w.out_norm = ld.vector("output_norm.weight", d);
  if (cfg.tied_embeddings) check_matmul_kernel(w.embd.type, "tensors['token_embd.weight'] (the tied LM head)");
  w.lm_head = cfg.tied_embeddings ? w.embd : ld.matrix("output.weight", cfg.vocab_size, d);
  for (const auto& kv : tensors)
    NS_CHECK(ld.used.count(kv.first), "tensors: unexpected '" + kv.first + "'" +
                                          (kv.first == "output.weight" ? " (config.tied_embeddings is true)" : ""));
  return w;
}

}  // namespace ninestep
