#include "core/work.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "core/threads.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define NS_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define NS_PAUSE() asm volatile("yield" ::: "memory")
#else
#define NS_PAUSE() ((void)0)
#endif

namespace ninestep {

namespace {

int env_int(const char* name, int fallback, int lo, int hi) {
  const char* s = std::getenv(name);
  if (!s || !*s) return fallback;
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (*end != '\0' || v < lo || v > hi) return fallback;
  return int(v);
}

}  // namespace

// Chunks per thread and phase: 4 lets the threads that run take the work of one that does not,
// while a phase of a decode step (a few hundred rows) still costs only a few tickets.
int64_t chunk_units(int64_t n, int64_t align, int nth) {
  static const int per_thread = env_int("NINESTEP_CHUNKS", 4, 1, 1024);
  const int64_t units = (n + align - 1) / align;  // align-sized units
  const int64_t chunks = std::min<int64_t>(kMaxChunks, std::max<int64_t>(1, int64_t(nth) * per_thread));
  return std::max<int64_t>(1, (units + chunks - 1) / chunks) * align;
}

int spin_before_yield() {
  static const int spins = env_int("NINESTEP_SPIN", 4000, 0, 1 << 30);
  return spins;
}

WorkCursor::WorkCursor(WorkQueue& q, int nth, int ith, WorkSplit split)
    : q_(q), nth_(nth), ith_(ith), homes_(std::max(1, std::min(nth, WorkQueue::kHomes))), split_(split) {}

void WorkCursor::begin(int64_t n, int64_t align) {
  n_ = std::max<int64_t>(n, 0);
  align_ = std::max<int64_t>(align, 1);
  mine_ = 0;
  open_ = true;
  if (split_ == WorkSplit::stat) {  // one ticket per thread, its own split_range share
    static_taken_ = false;
    end_ = base_ + nth_;
    return;
  }
  ++phase_;
  per_ = chunk_units(n_, align_, nth_);
  end_ = base_ + (n_ + per_ - 1) / per_;
}

bool WorkCursor::next(int64_t* b, int64_t* e) {
  if (split_ == WorkSplit::stat) {
    if (static_taken_) return false;
    static_taken_ = true;
    ++mine_;
    split_range(n_, nth_, ith_, b, e, align_);
    return *b < *e;
  }
  int64_t c;
  bool got = claim(ith_ % homes_, true, &c);
  for (int d = 1; !got && d < homes_; ++d) got = claim((ith_ + d) % homes_, false, &c);
  if (!got) return false;
  *b = c * per_;
  *e = std::min(n_, *b + per_);
  ++mine_;
  return true;
}

// A home's word: the phase (its number in the region, from 1) in the high 32 bits, then the
// range's front and back as chunk numbers within the phase, 16 bits each.
bool WorkCursor::claim(int h, bool front, int64_t* c) {
  auto pack = [this](uint64_t f, uint64_t b) { return uint64_t(phase_) << 32 | f << 16 | b; };
  std::atomic<uint64_t>& word = q_.homes_[h].range;
  uint64_t w = word.load(std::memory_order_acquire);
  for (;;) {
    const int64_t ph = int64_t(w >> 32);
    if (ph > phase_) return false;  // a later phase's: every chunk of this one is taken
    if (ph < phase_) {              // left over from an earlier phase (or set by a thread still in one): this phase's
      const int64_t chunks = end_ - base_;
      const uint64_t mine = pack(uint64_t(h * chunks / homes_), uint64_t((h + 1) * chunks / homes_));
      if (word.compare_exchange_weak(w, mine, std::memory_order_acq_rel, std::memory_order_acquire)) w = mine;
      continue;
    }
    const uint64_t f = (w >> 16) & 0xffff, b = w & 0xffff;
    if (f >= b) return false;
    if (word.compare_exchange_weak(w, front ? pack(f + 1, b) : pack(f, b - 1), std::memory_order_acq_rel,
                                   std::memory_order_acquire)) {
      *c = int64_t(front ? f : b - 1);
      return true;
    }
  }
}

void WorkCursor::finish() {
  if (!open_) return;  // no phase since the last finish()
  open_ = false;
  if (split_ == WorkSplit::stat && !static_taken_) ++mine_;  // its (empty) share counts as done
  if (mine_) q_.done_.fetch_add(mine_, std::memory_order_release);
  mine_ = 0;
  base_ = end_;
  if (q_.done_.load(std::memory_order_acquire) >= end_) return;
  using clock = std::chrono::steady_clock;
  const clock::time_point t0 = clock::now();
  const int limit = spin_before_yield();
  for (int spins = 0; q_.done_.load(std::memory_order_acquire) < end_;) {
    if (spins < limit) {
      ++spins;
      NS_PAUSE();
    } else {
      sched_yield();
    }
  }
  waited_ += std::chrono::duration<double>(clock::now() - t0).count();
}

}  // namespace ninestep
