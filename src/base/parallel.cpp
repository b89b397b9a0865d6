#include "base/parallel.h"

#include <convkit/runtime.h>
#include <omp.h>

#include <atomic>

namespace convkit {

namespace {
int default_threads() {
  static const int n = [] {
    const int m = omp_get_max_threads();  // honours OMP_NUM_THREADS
    return m > 0 ? m : 1;
  }();
  return n;
}
std::atomic<int> g_threads{0};  // 0: default
}  // namespace

void set_num_threads(int n) {
  g_threads.store(n > 0 ? n : 0);
}

int get_num_threads() {
  const int n = g_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : default_threads();
}

namespace base {

int max_threads() {
  return get_num_threads();
}

void parallel_run(int nthreads, void (*fn)(void*, int, int), void* ctx) {
  if (nthreads <= 1) {
    fn(ctx, 0, 1);
    return;
  }
#pragma omp parallel num_threads(nthreads)
  {
    // OpenMP may give fewer threads than asked (nested regions, limits): split by what we got.
    fn(ctx, omp_get_thread_num(), omp_get_num_threads());
  }
}

}  // namespace base
}  // namespace convkit
