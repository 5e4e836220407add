// A decoding session: the KV cache and every scratch buffer, allocated once at construction, and
// the forward pass over them (forward.cpp). One session serves one sequence; it is not meant to
// be used from two threads at once (a second concurrent call is refused).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "model/weights.h"

namespace ninestep {

// Phases timed when NINESTEP_PROFILE is set (wall time seen by thread 0, barrier waits included).
enum Phase : int { kEmbed, kAttnNorm, kQKV, kRope, kAttention, kPrepO, kWo, kFfnNorm, kGateUp, kPrepDown, kDown,
                   kHead, kNumPhases };
extern const char* const kPhaseNames[kNumPhases];

class Session {
 public:
  static constexpr int64_t kDefaultChunk = 512;
  // Chunks of at most this many tokens (decode) skip the barrier between a row phase and the matmul
  // reading its output: every thread normalizes and prepares all rows into its own buffers.
  static constexpr int64_t kOwnRows = 4;

  // n_ctx: the most positions the cache holds; chunk: the most tokens one batched pass takes.
  Session(std::shared_ptr<const Weights> w, int64_t n_ctx, int64_t chunk = kDefaultChunk);
  ~Session();  // prints the phase times to stderr when profiling
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Runs ids [T] at positions pos .. pos + T - 1 (pos <= n_past; pos < n_past drops the cached
  // positions from pos on) and writes logits [T, vocab] (all_logits) or [1, vocab] of the last token.
  // Checks every argument before computing; throws ArgError.
  // `interrupted` (optional) is called between chunks, outside the parallel region; when it returns
  // true the call stops there and returns false, with n_past = pos + the tokens of every finished
  // chunk (their keys and values are cached; logits are unspecified). Returns true when complete.
  bool forward(float* logits, const int32_t* ids, int64_t T, int64_t pos, bool all_logits,
               const std::function<bool()>& interrupted = {});

  int64_t n_past() const { return n_past_.load(); }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t chunk() const { return chunk_; }
  void reset() { n_past_ = 0; }
  const ModelConfig& config() const { return w_->cfg; }
  // Seconds per phase summed over every forward call so far (zeros unless profiling is on).
  const std::vector<double>& profile() const { return prof_; }
  bool profiling() const { return profiling_; }

 private:
  // One chunk: ids [m] (m <= chunk_) at positions p0 ..; logits [head_rows, vocab] of its last
  // head_rows tokens (0: none).
  void run(float* logits, const int32_t* ids, int64_t m, int64_t p0, int64_t head_rows, int nthreads);

  std::shared_ptr<const Weights> w_;
  int64_t n_ctx_, chunk_;
  std::atomic<int64_t> n_past_{0};  // atomic: another thread may watch a long prefill's progress
  // [n_layers, n_ctx, n_kv_heads, head_dim] each, left uninitialized: a position is written before
  // attention reads it, and pages of a long context are only committed once the sequence gets there.
  std::unique_ptr<float[]> kcache_, vcache_;
  std::vector<float> x_;                // [chunk, d_model] residual stream
  std::vector<float> xn_;               // [chunk, d_model] normed residual
  std::vector<float> q_;                // [chunk, n_heads, head_dim]
  std::vector<float> att_;              // [chunk, n_heads, head_dim] attention output
  std::vector<float> tmp_;              // [chunk, d_model] projection output before the residual add
  std::vector<float> gate_, up_;        // [chunk, d_ff]
  std::vector<int32_t> pos_;            // [chunk] positions of the chunk's tokens
  // [n_kv_heads, <= threads, <= kAttnSplitMaxT, group, head_dim + 2] decode attention states (nn.h)
  std::vector<float> attn_part_;
  std::vector<uint8_t> scratch_[3];     // matmul_prepare output for up to 3 weight types sharing an input
  struct ThreadBuf {
    std::vector<float> x;               // [kOwnRows, max(d_model, q_dim, d_ff)] this thread's matmul input
    std::vector<uint8_t> scratch[3];    // its prepared copies, as scratch_
  };
  std::vector<ThreadBuf> own_;          // [threads] grown by forward() when the thread count grows
  size_t own_scratch_bytes_ = 0;        // scratch bytes for kOwnRows rows, over all weights
  std::atomic<bool> busy_{false};
  bool profiling_ = false;
  std::vector<double> prof_;            // [kNumPhases] seconds
};

}  // namespace ninestep
