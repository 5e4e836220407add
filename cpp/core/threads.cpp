#include "core/threads.h"

#include <omp.h>
#include <sched.h>

#include <atomic>
#include <cstdlib>

#include "core/check.h"

namespace ninestep {

static std::atomic<int> g_threads{0};

int default_num_threads() {
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  return std::max(1, omp_get_num_procs());
}

int num_threads() {
  int n = g_threads.load();
  if (n == 0) {
    n = default_num_threads();
    g_threads.store(n);
  }
  return n;
}

void set_num_threads(int n) {
  NS_CHECK(n >= 1 && n <= 1024, "n_threads must be between 1 and 1024, got " + std::to_string(n));
  g_threads.store(n);
}

}  // namespace ninestep
