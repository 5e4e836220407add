#include "core/tuner.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace ninestep {

namespace {

ThreadTuner::Mode mode_from_env() {
  const char* s = std::getenv("NINESTEP_THREAD_TUNING");
  // Off unless asked for: measured quietly (bench/busy_threads.py, SmolLM2, 2 rounds), the chunked
  // split alone gave 125.9 tok/s idle and 86.3 beside a busy process (0.91x the best fixed count),
  // the tuner on top 111.2 and 80.5: its probes cost more than they won.
  if (s && (std::strcmp(s, "on") == 0 || std::strcmp(s, "1") == 0)) return ThreadTuner::Mode::on;
  if (s && std::strcmp(s, "cycle") == 0) return ThreadTuner::Mode::cycle;
  return ThreadTuner::Mode::off;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

ThreadTuner::ThreadTuner() : mode_(mode_from_env()) {}

void ThreadTuner::reset(int nmax) {
  nmax_ = nmax;
  cur_ = nmax;
  cand_ = 0;
  until_probe_ = interval_ = kMinInterval;
  since_probe_ = 0;
  ref_.clear();
  ref_next_ = 0;
  probe_.clear();
}

int ThreadTuner::choose(int nmax) {
  if (nmax <= 1 || mode_ == Mode::off) return std::max(nmax, 1);
  if (mode_ == Mode::cycle) return int(1 + cycle_++ % nmax);
  if (nmax != nmax_) reset(nmax);  // first step, or set_num_threads changed the pool
  if (cand_ > 0) return cand_;
  if (until_probe_ <= 0 && int64_t(ref_.size()) >= kProbeSteps + 1) {
    const bool down = cur_ > 1 && (cur_ == nmax_ || down_next_);
    down_next_ = !down_next_;
    cand_ = down ? cur_ - 1 : cur_ + 1;
    probe_.clear();
    return cand_;
  }
  return cur_;
}

void ThreadTuner::record(int n, double seconds, double waited) {
  if (mode_ != Mode::on || nmax_ <= 1) return;
  if (cand_ > 0) {
    if (n != cand_) return;  // not the step the probe asked for (cannot happen inside the engine)
    probe_.push_back(seconds);
    if (int64_t(probe_.size()) >= kProbeSteps) decide();
    return;
  }
  if (n != cur_) return;
  if (int64_t(ref_.size()) < kRefSteps)
    ref_.push_back(seconds);
  else
    ref_[ref_next_ % kRefSteps] = seconds;
  ++ref_next_;
  --until_probe_;
  ++since_probe_;
  // A thread waited for the others a large share of the step: a sibling is likely descheduled.
  if (waited > kWaitShare * seconds && cur_ > 1 && since_probe_ >= kRefSteps) until_probe_ = 0;
}

void ThreadTuner::decide() {
  const double ref = median(ref_), probe = median(probe_);
  if (probe < kWin * ref) {
    cur_ = cand_;
    ref_ = probe_;
    ref_next_ = int64_t(ref_.size());
    interval_ = kMinInterval;
  } else {
    interval_ = std::min<int64_t>(2 * interval_, kMaxInterval);
  }
  until_probe_ = interval_;
  since_probe_ = 0;
  cand_ = 0;
  probe_.clear();
}

}  // namespace ninestep
