// The one parallel-for wrapper (OpenMP). A convolution call opens at most one parallel region and
// splits its work by (thread index, thread count), or hands out tasks from a counter. Work is
// always split along output elements, never along a reduction, so results are bitwise identical for
// every thread count.
#pragma once
#include <atomic>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace convkit::base {

// Threads a call may use: convkit::set_num_threads, default all processors (or OMP_NUM_THREADS).
int max_threads();

// Runs fn(ctx, tid, nthreads) for tid in [0, nthreads) in one parallel region; nthreads <= 1 runs
// inline on the calling thread (no OpenMP overhead). Exceptions must not escape fn.
void parallel_run(int nthreads, void (*fn)(void* ctx, int tid, int nthreads), void* ctx);

template <typename F>
void parallel_run(int nthreads, F&& body) {
  using Fn = std::remove_reference_t<F>;
  parallel_run(
      nthreads, [](void* c, int tid, int nt) { (*static_cast<Fn*>(c))(tid, nt); },
      const_cast<void*>(static_cast<const void*>(&body)));
}

// Threads worth waking for `flops` of work: at most max_threads, at least 1, and about 2 MFLOP
// (tens of microseconds) per thread, below which waking a team costs more than it saves.
inline int threads_for(double flops, int max_threads) {
  const double per_thread = 2e6;
  const int n = flops < per_thread ? 1 : static_cast<int>(flops / per_thread);
  return n < max_threads ? n : max_threads;
}

// Runs task(tid, t) for every t in [0, n) on up to nthreads threads, each thread taking the next
// task from a shared counter when it is done with one (tid: the thread's index, for its scratch).
// A task must write only its own outputs, so that no result depends on which thread ran it. On a
// shared machine a thread that is preempted holds up only the task it is on, where fixed ranges
// left the other threads waiting at the region's end.
// With init: each thread runs init(tid) first (its scratch), before taking any task.
template <typename Init, typename F>
void parallel_tasks(int nthreads, int64_t n, Init&& init, F&& task) {
  std::atomic<int64_t> next{0};
  parallel_run(nthreads, [&](int tid, int) {
    init(tid);
    for (int64_t t; (t = next.fetch_add(1, std::memory_order_relaxed)) < n;) task(tid, t);
  });
}
template <typename F>
void parallel_tasks(int nthreads, int64_t n, F&& task) {
  parallel_tasks(
      nthreads, n, [](int) {}, task);
}

// The tid-th of nt balanced contiguous pieces of [0, n): {begin, end}.
inline std::pair<int64_t, int64_t> split_range(int64_t n, int tid, int nt) {
  const int64_t q = n / nt, r = n % nt;
  const int64_t begin = tid * q + (tid < r ? tid : r);
  return {begin, begin + q + (tid < r ? 1 : 0)};
}

}  // namespace convkit::base
