// Work claimed in chunks inside one parallel region, phase after phase, with no thread barrier.
//
// Every thread of the region walks the same sequence of phases and gives each the same size. Phase
// p's units are cut into chunks, and the chunks into one contiguous home range per thread (up to
// kHomes ranges; more threads share them). A thread takes the chunks of its home range front to
// back, so it streams one stretch of memory (a GEMV's weight rows) the way the hardware prefetcher
// follows best; when its range is empty it steals chunks from the back of the others' ranges.
// Then it waits until every chunk of the phase is *done*, not until every thread has *arrived*.
// A thread the OS has descheduled while it holds no chunk stalls nobody: the others take the rest
// of its range, and when it runs again it finds its phase's chunks gone and falls through to the
// phase the others are in.
//
// A home range is one atomic word: the phase's number in the region and a (front, back) pair of
// chunk numbers, so phases need no reset: the first thread to look at a range left over from an
// earlier phase (all of whose chunks are done before anyone begins the next) sets it to this
// phase's. The done counter counts on from phase to phase (phase p owns [base_p, base_p + n_p)).
// The region's owner resets the queue between regions.
//
// Determinism: which thread computes a chunk depends on timing, so callers make every output element
// the work of exactly one chunk, computed the same way whichever thread takes it.
//
// Static mode hands thread ith of nth the chunks split_range gives it (the classic static split):
// the reference the dynamic split is tested against.
#pragma once
#include <atomic>
#include <cstdint>

namespace ninestep {

enum class WorkSplit { dynamic, stat };

class WorkQueue {
 public:
  static constexpr int kHomes = 64;

  void reset() {  // only when no thread is inside a phase
    for (Home& h : homes_) h.range.store(0, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
  }

 private:
  friend class WorkCursor;
  struct alignas(64) Home {
    std::atomic<uint64_t> range{0};  // the phase number and the range of chunks left (see claim)
  };
  Home homes_[kHomes];
  alignas(64) std::atomic<int64_t> done_{0};  // chunks finished
  char pad_[64 - sizeof(std::atomic<int64_t>)];
};

// One thread's view of the phases: begin(), then next() until it returns false, then finish().
class WorkCursor {
 public:
  WorkCursor(WorkQueue& q, int nth, int ith, WorkSplit split);

  // The next phase: units [0, n), chunk boundaries at multiples of `align`.
  void begin(int64_t n, int64_t align = 1);
  // A chunk [*b, *e) of the phase for this thread, or false when it has no more.
  bool next(int64_t* b, int64_t* e);
  // Marks this thread's chunks done and returns when every chunk of the phase is.
  void finish();

  int nth() const { return nth_; }
  double waited() const { return waited_; }  // seconds finish() spent waiting for other threads' chunks

 private:
  // Takes chunk *c of home h for this phase: its front (the owner) or its back (a thief).
  bool claim(int h, bool front, int64_t* c);

  WorkQueue& q_;
  const int nth_, ith_, homes_;
  const WorkSplit split_;
  int64_t n_ = 0, align_ = 1, per_ = 1;  // units; chunk boundary multiple; units per chunk
  int64_t phase_ = 0;                    // phases begun in the region (dynamic split)
  int64_t base_ = 0, end_ = 0;           // the phase's chunks [base_, end_) in the done count
  int64_t mine_ = 0;                      // chunks this thread finished in the phase
  bool static_taken_ = false;
  bool open_ = false;  // between begin() and finish()
  double waited_ = 0.0;
};

// Units per chunk for n units on nth threads: ~kChunksPerThread chunks per thread, whole multiples
// of align, and at most kMaxChunks chunks (a home range numbers them in 16 bits). Exposed for the
// tests.
constexpr int64_t kMaxChunks = 65535;
int64_t chunk_units(int64_t n, int64_t align, int nth);

// How a waiting thread spins before it yields its core (NINESTEP_SPIN overrides; read once).
int spin_before_yield();

}  // namespace ninestep
