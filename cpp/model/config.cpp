#include "model/config.h"

#include <cmath>

#include "core/check.h"

namespace ninestep {

float ModelConfig::score_scale() const {
  return attn_scale > 0 ? float(attn_scale) : 1.0f / std::sqrt(float(head_dim));
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
  NS_CHECK(context_length >= 0, "config.context_length must be >= 0");
  auto positive = [](double v, const char* name) {
    NS_CHECK(std::isfinite(v) && v > 0, std::string("config.") + name + " must be a positive finite number");
  };
  positive(norm_eps, "norm_eps");
  positive(rope_theta, "rope_theta");
  positive(embd_scale, "embd_scale");
  NS_CHECK(std::isfinite(rope_theta_local) && rope_theta_local >= 0, "config.rope_theta_local must be >= 0");
  NS_CHECK(std::isfinite(attn_scale) && attn_scale >= 0, "config.attn_scale must be >= 0");
  NS_CHECK(rope_style == "norm" || rope_style == "neox",
           "config.rope_style: expected 'norm' or 'neox', got '" + rope_style + "'");
  NS_CHECK(ffn_act == "silu" || ffn_act == "gelu_tanh",
           "config.ffn_act: expected 'silu' or 'gelu_tanh', got '" + ffn_act + "'");
  NS_CHECK(sliding_window >= 0, "config.sliding_window must be >= 0");
  NS_CHECK(sliding_window_pattern >= 0, "config.sliding_window_pattern must be >= 0");
}

LayerConfig layer_config(const ModelConfig& c, int64_t l) {
  const bool global = c.sliding_window == 0 || (c.sliding_window_pattern > 0 && (l + 1) % c.sliding_window_pattern == 0);
  LayerConfig lc;
  lc.window = global ? 0 : c.sliding_window;
  lc.rope_theta = float(!global && c.rope_theta_local > 0 ? c.rope_theta_local : c.rope_theta);
  return lc;
}

}  // namespace ninestep
