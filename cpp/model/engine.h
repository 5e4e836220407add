// The engine: a KV cache of n_seq sequences and every scratch buffer, allocated once, and the step
// that runs a batch of (token, position, sequence) entries through the model's architecture.
//
// KV cache: fixed slots, head-major: [n_layers, n_seq, n_kv_heads, n_ctx, head_dim] elements of
// kv_type (f32, f16 or q8_0; a head's row at one position is dtype_row_bytes(kv_type, head_dim)
// bytes) for K and for V. Each (layer, slot, head) holds its positions contiguously, so decode
// attention streams one head's keys from memory in order: on a row-major [n_ctx, n_kv_heads, D]
// cache it touched a third of each row and ran at a quarter of the bandwidth. The memory is left
// uninitialized, so the OS commits a slot's pages only as its sequence grows.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/tuner.h"
#include "core/work.h"
#include "model/weights.h"

namespace ninestep {

// Phases timed when NINESTEP_PROFILE is set (wall time seen by thread 0, barrier waits included).
enum Phase : int { kEmbed, kQKV, kRopeCache, kAttention, kOut, kFfn, kDown, kHead, kNumPhases };
extern const char* const kPhaseNames[kNumPhases];

// One item of a step: sequence `seq` extended by `n` tokens from its current length on; logits of
// its last `n_logits` tokens (0 <= n_logits <= n) are returned.
struct StepItem {
  int32_t seq;
  int64_t n;
  int64_t n_logits;
};

// A query range of one sequence and the keys it reads: the decode (split) or prefill kernel's job.
struct AttnJob {
  int64_t row0, T;  // entries [row0, row0 + T) of the piece
  int32_t slot;
  int64_t lo, S;    // keys [lo, S) of the slot; the last query is at position S - 1
  int64_t window;   // for the prefill kernel: 0, or the layer's window when it hides keys
  int64_t n_split;  // > 0: split job (T <= kAttnSplitMaxT) with this many key blocks
  int64_t item0, n_items;
  int64_t part0;    // split jobs: offset of their states in the part buffer
};

struct AttnPlan {
  int64_t window = 0;
  std::vector<AttnJob> jobs;
  int64_t n_items = 0;
};

// The entries of one parallel region (at most `chunk` of them).
struct Piece {
  int64_t m = 0;              // entries
  int64_t out0 = 0, n_out = 0;  // logits rows [out0, out0 + n_out) of the step come from this piece
  int64_t head0 = 0;          // ... and are the entries head_rows_[head0 .. head0 + n_out)
  bool solo = false;          // m <= kOwnRows: each thread prepares every matmul input itself
};

class Engine {
 public:
  static constexpr int64_t kDefaultChunk = 512;
  // Pieces of at most this many entries (decode) skip the barrier between a row phase and the matmul
  // reading its output: every thread normalizes and prepares all rows into its own buffers.
  static constexpr int64_t kOwnRows = 4;

  Engine(std::shared_ptr<const Weights> w, int64_t n_ctx, int64_t n_seq, int64_t chunk = kDefaultChunk,
         DType kv_type = DType::f16);
  ~Engine();  // prints the phase times to stderr when profiling
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // tok [sum of items' n]: the items' tokens in item order; logits [sum of n_logits, vocab].
  // Checks everything first (ArgError naming the item). `interrupted` (optional) is called between
  // pieces, outside the parallel region; when it returns true the step stops there and returns false,
  // each sequence keeping the entries of the pieces that finished (logits unspecified).
  bool step(float* logits, const int32_t* tok, const StepItem* items, int64_t n_items,
            const std::function<bool()>& interrupted = {});

  int64_t seq_len(int64_t s) const;
  void truncate(int64_t s, int64_t n);        // keep the first min(n, seq_len) positions
  void copy(int64_t src, int64_t dst, int64_t n);  // dst holds src's first n positions

  int64_t n_ctx() const { return n_ctx_; }
  int64_t n_seq() const { return n_seq_; }
  int64_t chunk() const { return chunk_; }
  DType kv_type() const { return kv_type_; }
  int64_t kv_row_bytes() const { return kv_row_bytes_; }  // one position's K (or V), all heads, one layer
  const ModelConfig& config() const { return w_->cfg; }
  const Weights& weights() const { return *w_; }
  const std::vector<double>& profile() const { return prof_; }

 private:
  friend class Step;
  void plan_piece(int64_t e0, int64_t m, int nth);
  void run_piece(float* logits, int nth);  // on nth or fewer threads (the tuner's choice for decode pieces)
  void check_seq(int64_t s, const char* what) const;

  std::shared_ptr<const Weights> w_;
  int64_t n_ctx_, n_seq_, chunk_;
  std::unique_ptr<std::atomic<int64_t>[]> len_;  // [n_seq] cached positions per sequence
  DType kv_type_ = DType::f16;
  int64_t kv_head_bytes_ = 0;                   // one head's K (or V) at one position
  int64_t kv_row_bytes_ = 0;                    // n_kv_heads * kv_head_bytes_
  std::unique_ptr<uint8_t[]> kcache_, vcache_;  // [n_layers, n_seq, n_kv_heads, n_ctx] rows of kv_head_bytes_

  // The flat entries of the current step and the current piece's plan.
  std::vector<int32_t> tok_, pos_, slot_;  // [entries of the step]
  std::vector<int64_t> head_rows_;         // [entries] entry indices whose logits are wanted
  Piece piece_;
  int64_t e0_ = 0;                         // first entry of the current piece
  std::vector<AttnPlan> plans_;            // one per distinct layer window

  std::vector<float> x_;                // [chunk, d_model] residual stream
  std::vector<float> xn_;               // [chunk, d_model] normed rows (matmul inputs)
  std::vector<float> q_;                // [chunk, q_dim]
  std::vector<float> kn_, vn_;          // [chunk, kv_dim] this piece's keys and values before the cache
  std::vector<float> att_;              // [chunk, q_dim] attention output
  std::vector<float> tmp_;              // [chunk, d_model] projection output before the residual add
  std::vector<float> gate_, up_;        // [chunk, d_ff]
  std::vector<float> part_;             // decode attention states (nn.h), sized for the plan
  std::vector<uint8_t> scratch_[3];     // matmul_prepare output for up to 3 weight types sharing an input
  struct ThreadBuf {
    std::vector<float> x;               // [kOwnRows, max width] this thread's matmul input
    std::vector<uint8_t> scratch[3];    // its prepared copies, as scratch_
    double waited = 0.0;                // seconds it waited for others' chunks in the last region
    double t_start = 0.0, t_end = 0.0;  // when it entered and left the region's forward (steady clock s)
  };
  std::vector<ThreadBuf> own_;          // [threads] grown when the thread count grows
  size_t own_scratch_bytes_ = 0;
  // Threads: each region's phases are claimed from work_ (core/work.h); decode pieces run on the
  // thread count tuner_ picks (core/tuner.h). NINESTEP_WORK_SPLIT=static at construction gives the
  // classic static split (the reference in tests).
  WorkQueue work_;
  WorkSplit split_ = WorkSplit::dynamic;
  ThreadTuner tuner_;
  std::atomic<bool> busy_{false};
  bool profiling_ = false;
  std::vector<double> prof_;            // [kNumPhases] seconds
};

}  // namespace ninestep
