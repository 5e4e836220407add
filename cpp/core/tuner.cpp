#include "core/tuner.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace ninestep {

namespace {

ThreadTuner::Mode mode_from_env() {
  const char* s = std::getenv("NINESTEP_THREAD_TUNING");
  if (s && (std::strcmp(s, "off") == 0 || std::strcmp(s, "0") == 0)) return ThreadTuner::Mode::off;
  if (s && std::strcmp(s, "cycle") == 0) return ThreadTuner::Mode::cycle;
  return ThreadTuner::Mode::on;
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
  until_down_ = interval_ = kMinInterval;
  until_up_ = kUpInterval;
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
  if (int64_t(ref_.size()) < kProbeSteps + 1) return cur_;
  if (cur_ < nmax_ && until_up_ <= 0)
    cand_ = cur_ + 1;
  else if (cur_ > 1 && until_down_ <= 0)
    cand_ = cur_ - 1;
  else
    return cur_;
  probe_.clear();
  return cand_;
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
  --until_down_;
  --until_up_;
  ++since_probe_;
  // A thread waited for the others a large share of the step: a sibling is likely descheduled.
  if (waited > kWaitShare * seconds && cur_ > 1 && since_probe_ >= kRefSteps) until_down_ = 0;
}

void ThreadTuner::decide() {
  const double ref = median(ref_);
  const bool down = cand_ < cur_;
  const bool win = down ? *std::max_element(probe_.begin(), probe_.end()) < kWin * ref : median(probe_) < kWin * ref;
  if (win) {
    cur_ = cand_;
    ref_ = probe_;
    ref_next_ = int64_t(ref_.size());
    interval_ = kMinInterval;
    until_down_ = interval_;
  } else if (down) {
    interval_ = std::min<int64_t>(2 * interval_, kMaxInterval);
    until_down_ = interval_;
  }
  until_up_ = kUpInterval;
  since_probe_ = 0;
  cand_ = 0;
  probe_.clear();
}

}  // namespace ninestep
