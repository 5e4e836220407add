// The encoder engine: many sentences of different lengths in one call as packed rows (one after
// another, no padding), each token attending to every token of its own sentence only (a key range
// per sentence, no KV cache, no causal mask). Out come the last hidden states; pooling is the
// caller's. An encoder architecture (cpp/model/bert.cpp) registers its loader and its forward pass,
// written in the EncoderStep toolkit below, as a decoder architecture does with model/arch.h:
//
//   NS_ENCODER_ARCH(bert, "bert", load_bert, forward_bert);
//
// Weights are views into memory the caller owns (checked by a TensorSet, as for decoders). A
// weight type whose matmul multiplies 8-bit activations (Q8_0 and the other block types) is
// widened to f32 a few rows at a time inside the GEMM instead: encoder activations are not
// quantized (8-bit activation blocks cost MiniLM ~0.002 of cosine on short texts).
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/step.h"  // Act
#include "model/weights.h"

namespace ninestep {

struct EncoderArch;

// One post-norm block (BERT): x = LN1(x + o(attention(q, k, v))); x = LN2(x + down(act(up(x)))).
struct EncoderLayer {
  Proj q, k, v;         // [d_model, d_model] each, with biases
  Proj o;               // [d_model, d_model]
  Norm attn_out_norm;   // [d_model] LayerNorm after the attention residual add
  Proj up;              // [d_ff, d_model]
  Proj down;            // [d_model, d_ff]
  Norm out_norm;        // [d_model] LayerNorm after the FFN residual add
};

struct EncoderWeights {
  ModelConfig cfg;
  const EncoderArch* arch = nullptr;
  WeightView embd{};                 // [vocab_size, d_model], any type with a dequantize row
  const float* pos_embd = nullptr;   // [n_positions, d_model] learned absolute positions, f32
  int64_t n_positions = 0;
  const float* type_embd = nullptr;  // [n_types, d_model] token-type embeddings, f32 (type 0 is added)
  int64_t n_types = 0;
  Norm embd_norm;                    // [d_model] LayerNorm of the summed embeddings
  std::vector<EncoderLayer> layers;  // [n_layers]

  // Runs the config's encoder loader over `tensors` and rejects unused ones (ArgError naming the tensor).
  static EncoderWeights build(const ModelConfig& cfg, const std::map<std::string, TensorIn>& tensors);
  virtual ~EncoderWeights() = default;
};

class EncoderStep;

// Phases timed when NINESTEP_PROFILE is set: wall time seen by thread 0, barrier waits included, in a
// phase-parallel run; the sum over threads in a sentence-parallel run (Encoder::run says which).
// kEncNorm stays 0 in BERT: its LayerNorms run inside out_proj and ffn_down.
enum EncPhase : int { kEncEmbed, kEncQKV, kEncAttention, kEncOut, kEncNorm, kEncUp, kEncDown, kNumEncPhases };
extern const char* const kEncPhaseNames[kNumEncPhases];

struct EncoderArch {
  std::string names;                                 // space-separated config.architecture names
  void (*load)(EncoderWeights& w, TensorSet& ts);
  void (*forward)(EncoderStep& s);                   // one call, inside the parallel region
};
const EncoderArch* find_encoder_arch(const std::string& name);
std::vector<std::string> encoder_arch_names();
struct EncoderArchRegistrar {
  explicit EncoderArchRegistrar(const EncoderArch& a);
};

// Sentence s of a call: rows [row0, row0 + T).
struct EncoderSeq {
  int64_t row0, T;
};

class Encoder {
 public:
  explicit Encoder(std::shared_ptr<const EncoderWeights> w);
  ~Encoder();  // prints the phase times to stderr when profiling
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;

  // out [sum(lens), d_model]: last hidden states of the sentences tok [sum(lens)] (packed, each
  // starting at position 0), lens [n_seq] each in [1, n_positions]. Checks everything first.
  void run(float* out, const int32_t* tok, int64_t n_tok, const int64_t* lens, int64_t n_seq);

  const ModelConfig& config() const { return w_->cfg; }
  const EncoderWeights& weights() const { return *w_; }
  int64_t n_positions() const { return w_->n_positions; }
  const std::vector<double>& profile() const { return prof_; }  // [kNumEncPhases] seconds over all runs

 private:
  friend class EncoderStep;
  void reserve(int64_t T, int64_t longest, int nth);

  std::shared_ptr<const EncoderWeights> w_;
  // Per call: the packed rows and their sentences.
  const int32_t* tok_ = nullptr;      // [T]
  std::vector<int32_t> pos_;          // [T] position of each row within its sentence
  std::vector<EncoderSeq> seqs_;      // [n_seq]
  int64_t T_ = 0;
  float* x_ = nullptr;                // [T, d_model] the residual stream: the caller's output array
  std::vector<float> q_, k_, v_;      // [T, d_model]
  std::vector<float> att_;            // [T, d_model] attention output
  std::vector<float> tmp_;            // [T, d_model] projection + residual before the LayerNorm
  std::vector<float> h_;              // [T, d_ff] FFN hidden
  std::vector<std::vector<float>> wbuf_;  // [threads][kWideRows * max k] widened weight rows (block types)
  std::vector<std::vector<float>> abuf_;  // [threads][attention_encoder_scratch(longest sentence, head_dim)]
  std::atomic<bool> busy_{false};
  // One work counter per phase of the run: threads claim items (row blocks x column chunks, attention
  // items, row chunks) as they come free, so a thread the OS deschedules does not hold a fixed share.
  std::unique_ptr<std::atomic<int64_t>[]> next_;
  int64_t n_phases_ = 0;
  bool profiling_ = false;
  std::vector<double> prof_;
};

// The toolkit an encoder's forward pass is written in. In a phase-parallel run, one per thread inside
// the run's parallel region: every method is called by all threads in the same order, splits its
// work and ends with the barrier its output needs. In a sentence-parallel run, one per chunk of
// sentences, run by one thread alone. Nothing here throws; only the profile allocates.
class EncoderStep {
 public:
  // The step over sentences [s0, s1) of the run: all of them, every thread of the region taking a
  // share of each phase (solo false), or a chunk one thread runs alone, without barriers (solo true).
  EncoderStep(Encoder& e, int64_t s0, int64_t s1, bool solo);
  ~EncoderStep();  // adds its phase times to the encoder's profile
  const EncoderWeights& w;
  const ModelConfig& c;

  void embed();                                    // x = LN(tok + pos + type 0)
  void qkv(const EncoderLayer& L);                 // q, k, v = x W^T + b
  void attend();                                   // att = softmax(q k^T / sqrt(D)) v within each sentence
  void out_residual_norm(const Proj& p, const float* in, const Norm& n);  // x = LN(x + in p^T + b)
  void ffn_up(const EncoderLayer& L, Act act);     // h = act(x up^T + b)
  const float* att() const { return att_; }
  const float* hidden() const { return h_; }

 private:
  // Items [0, n) claimed one at a time across the threads (f(i)), then a barrier; timed as `phase`.
  template <class F>
  void each(int phase, int64_t n, F f);
  // y[r0:r1, n0:n1) (ldy) = x[r0:r1] [.., k] @ p.w[n0:n1)^T + p.b, then epi(t, y row t) for its columns.
  template <class Epi>
  void gemm_block(float* y, int64_t ldy, const float* x, const Proj& p, int64_t r0, int64_t r1, int64_t n0, int64_t n1,
                  Epi epi);
  Encoder& e_;
  const bool solo_;        // one thread runs this step's sentences alone
  const int ith_, nth_;    // this thread's share of each phase: 0 of 1 when solo
  const int buf_;          // this thread's scratch (wbuf_, abuf_)
  const int64_t s0_, s1_;  // sentences [s0, s1) of the run
  const int64_t R0_, T_;   // their rows [R0, R0 + T) of the packed rows
  // The run's buffers at row R0 (x [T, d_model] ... h [T, d_ff]).
  float *x_, *q_, *k_, *v_, *att_, *tmp_, *h_;
  int64_t phase_ = 0;
  double last_ = 0.0;
  std::vector<double> prof_;  // [kNumEncPhases] when profiling
};

}  // namespace ninestep

#define NS_ENCODER_ARCH(id, names, load, forward) \
  static ::ninestep::EncoderArchRegistrar ns_encoder_arch_registrar_##id(::ninestep::EncoderArch{names, load, forward})
