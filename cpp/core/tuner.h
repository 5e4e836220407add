// The thread count of decode steps, chosen from their measured times.
//
// On a quiet machine every thread the process may use helps; beside a busy process one of them
// shares a core and is descheduled for whole time slices, and each step then waits for it at the
// parallel region's start and end (and at any chunk it holds). The tuner runs steps at `cur`
// threads and now and then probes a neighbouring count for kProbeSteps steps, switching when the
// probe beats the median of the recent steps at `cur` by kWin. The two directions cost differently
// when they lose, so they are probed differently:
//   down (fewer threads): a lost probe on a quiet machine costs ~kProbeSteps steps at 1/nmax of the
//     speed, so it comes soon only after a step in which some thread spent more than kWaitShare of
//     the step waiting for the others (the sign that a sibling is being descheduled), otherwise
//     after an interval that doubles each time a probe loses (kMinInterval .. kMaxInterval steps);
//     and it wins only if every probe step beats the reference (one lucky step on a noisy machine
//     does not drop a thread);
//   up (more threads, only after a drop): a lost probe beside a busy process costs little (the
//     extra thread is slower there, not idle), so one comes every kUpInterval steps: when the load
//     goes away (or a drop was a mistake) every thread is back within kUpInterval steps.
//
// The thread count only moves work between threads: plans and results depend on `nmax` (the
// configured count), never on the tuner's choice (the engine plans every step for nmax threads).
//
// On by default; NINESTEP_THREAD_TUNING=off keeps nmax; =cycle runs steps at 1, 2, .., nmax threads
// in turn (tests).
#pragma once
#include <cstdint>
#include <vector>

namespace ninestep {

class ThreadTuner {
 public:
  enum class Mode { on, off, cycle };
  static constexpr int kProbeSteps = 2, kRefSteps = 8, kMinInterval = 128, kMaxInterval = 1024, kUpInterval = 16;
  static constexpr double kWin = 0.9, kWaitShare = 0.25;

  ThreadTuner();  // mode from NINESTEP_THREAD_TUNING
  explicit ThreadTuner(Mode mode) : mode_(mode) {}

  int choose(int nmax);  // threads for the next step, in [1, nmax]
  // The step choose() was asked for ran on n threads in `seconds`, and the thread that waited most
  // for the others waited `waited` seconds of it.
  void record(int n, double seconds, double waited);

  int current() const { return cur_; }
  Mode mode() const { return mode_; }

 private:
  void reset(int nmax);
  void decide();

  Mode mode_ = Mode::on;
  int nmax_ = 0, cur_ = 0, cand_ = 0;  // cand_ > 0: probing that count
  int64_t cycle_ = 0;
  int64_t until_down_ = kMinInterval, interval_ = kMinInterval;  // steps to the next down probe; its interval
  int64_t until_up_ = kUpInterval;                               // steps to the next up probe (cur_ < nmax_)
  int64_t since_probe_ = 0;    // steps at cur_ since the last probe ended
  std::vector<double> ref_;    // recent step times at cur_ (a ring of kRefSteps)
  int64_t ref_next_ = 0;
  std::vector<double> probe_;  // step times of the running probe
};

}  // namespace ninestep
