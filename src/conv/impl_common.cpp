// Helpers shared by the fast implementations.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "base/parallel.h"
#include "conv/impls.h"

namespace convkit::conv::impl {

const char* zero_padding_reason(const ConvParams& p) {
  if (!p.has_padding()) return nullptr;
  if (p.mode == kernels::PadMode::Zeros) return nullptr;
  if (p.mode == kernels::PadMode::Constant && p.pad_value == 0.f) return nullptr;
  return "padding mode other than zeros (fast paths read zeros outside the input)";
}

void note_fallback(const char* impl, const char* pass, const char* what, const char* instead) {
  if (verbose_enabled())
    std::fprintf(stderr, "convkit: conv2d %s %s: %s; running %s\n", pass, impl, what, instead);
}

bool all_finite(const float* v, int64_t n) {
  // Inf and NaN are the floats whose exponent bits are all ones. Integer tests vectorise (a
  // float compare loop with an early exit does not: it cost 15% of a stem backward-weight pass);
  // blocks keep an early exit for inputs that do hold one.
  constexpr int64_t kBlock = 4096;
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t i1 = std::min(n, i0 + kBlock);
    uint32_t bad = 0;
    for (int64_t i = i0; i < i1; ++i) {
      uint32_t bits;
      std::memcpy(&bits, v + i, sizeof bits);
      bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    if (bad) return false;
  }
  return true;
}

bool all_finite(const float* v, int64_t n, int nthreads) {
  // Large arrays (a big layer's weights: 2.4 M floats) are split between the threads, which would
  // otherwise wait for one of them to read them all.
  constexpr int64_t kParallelFloats = int64_t{1} << 18;
  if (nthreads <= 1 || n < kParallelFloats) return all_finite(v, n);
  std::atomic<bool> finite{true};
  base::parallel_run(nthreads, [&](int tid, int nt) {
    const auto [i0, i1] = base::split_range(n, tid, nt);
    if (!all_finite(v + i0, i1 - i0)) finite.store(false, std::memory_order_relaxed);
  });
  return finite.load(std::memory_order_relaxed);
}

namespace {
// The 8 lanes of a lane sum added pairwise, in double.
double add_lanes(const float* l) {
  return (double(l[0]) + l[1]) + (double(l[2]) + l[3]) +
         ((double(l[4]) + l[5]) + (double(l[6]) + l[7]));
}
}  // namespace

double lane_sum(const float* s, int64_t n) {
  float lane[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lane[j] += s[i + j];
  for (; i < n; ++i) lane[i % 8] += s[i];
  return add_lanes(lane);
}

void add_lane_sums(const float* s, int64_t ld, int64_t rows, int64_t n, double* sums) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    float lane[4][8] = {};
    const float* row[4] = {s + r * ld, s + (r + 1) * ld, s + (r + 2) * ld, s + (r + 3) * ld};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
      for (int k = 0; k < 4; ++k)
        for (int j = 0; j < 8; ++j) lane[k][j] += row[k][i + j];
    for (int k = 0; k < 4; ++k) {
      for (int64_t t = i; t < n; ++t) lane[k][t % 8] += row[k][t];
      sums[r + k] += add_lanes(lane[k]);
    }
  }
  for (; r < rows; ++r) sums[r] += lane_sum(s + r * ld, n);
}

void bias_grad(const ConvParams& p, const float* gy, float* gb, int nthreads) {
  // One channel per task: each image's plane is summed in 8 interleaved float lanes (vectorisable,
  // fixed order), the planes in double. The order depends only on the shape, never on threads.
  const int64_t hw = p.Ho * p.Wo;
  const int nt = static_cast<int>(std::min<int64_t>(nthreads, p.O));
  base::parallel_run(nt, [&](int tid, int n_threads) {
    const auto [o0, o1] = base::split_range(p.O, tid, n_threads);
    for (int64_t o = o0; o < o1; ++o) {
      double acc = 0.0;
      for (int64_t n = 0; n < p.N; ++n) acc += lane_sum(gy + (n * p.O + o) * hw, hw);
      gb[o] = static_cast<float>(acc);
    }
  });
}

}  // namespace convkit::conv::impl
