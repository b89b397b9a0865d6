// Internal to the Winograd drivers (impl_winograd.cpp: forward and backward-data;
// impl_winograd_bwd_weight.cpp): how the 4 x 4 output tiles of a 3x3 stride-1 problem are
// numbered, where a run of them reads its input windows, and the barrier of their parallel regions.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>

#include "base/cpu.h"
#include "conv/impls.h"
#include "kernels/conv_params.h"
#include "kernels/gemm/gemm.h"

namespace convkit::conv::impl::wino {

using kernels::ConvParams;

// Workspace budget: a quarter of the im2col buffer the layer would need, or 1 MiB for small layers.
inline double budget_floats(const ConvParams& p) {
  const double im2col =
      double(p.N) * double(p.C) * double(p.kH * p.kW) * double(p.Ho) * double(p.Wo);
  return std::max(0.25 * im2col, double(1 << 18));
}

// Why F(4x4, 3x3) does not apply to p's geometry (any pass), or null.
inline const char* geometry_why_not(const ConvParams& p) {
  if (!base::use_avx2()) return "needs AVX2 and FMA";
  if (p.kH != 3 || p.kW != 3 || p.sH != 1 || p.sW != 1 || p.dH != p.dW)
    return "needs a 3x3 kernel, stride 1, equal dilations";
  const int64_t e = 2 * p.dH;  // the dilated kernel's extent minus 1
  if (std::max({p.pad_t, p.pad_b, p.pad_l, p.pad_r}) > e)
    return "padding > 2 * dilation (wider than the kernel): windows that hold only padding "
           "would get the transforms' rounding noise instead of a direct sum's exact zeros";
  if (p.Cg() < 16 || p.Og() < 16)
    return "fewer than 16 channels per group in or out (the transforms would dominate)";
  return zero_padding_reason(p);
}

// Tiles per task: one NR-column panel of the forward's GEMMs (16 tiles, two 8-lane transforms).
constexpr int64_t kTB = kernels::gemm::NR;

// Tiles of problem p. Dilation d splits the output into d x d phases: phase (a, b) holds the
// outputs (a + d i, b + d j), Ho_a x Wo_b of them, a dense 3x3 problem on input rows a - pad_t +
// d i' and columns b - pad_l + d j'; its tiles are count(a, Ho) x count(b, Wo) 4x4 blocks.
struct Tiles {
  int64_t d, th_sum, tw_sum, tw_min, tw_max, per_image, T;
  // Outputs of phase a along an output extent L, and its tiles (of 4).
  int64_t len(int64_t a, int64_t L) const { return L > a ? (L - a + d - 1) / d : 0; }
  int64_t count(int64_t a, int64_t L) const { return (len(a, L) + 3) / 4; }
};

inline Tiles tile_grid(const ConvParams& p) {
  Tiles t{};
  t.d = p.dH;
  t.tw_min = INT64_MAX;
  for (int64_t a = 0; a < t.d; ++a) {
    t.th_sum += t.count(a, p.Ho);
    const int64_t tw = t.count(a, p.Wo);
    t.tw_sum += tw;
    if (tw > 0) t.tw_min = std::min(t.tw_min, tw), t.tw_max = std::max(t.tw_max, tw);
  }
  if (t.tw_max == 0) t.tw_min = 1;
  t.per_image = t.th_sum * t.tw_sum;
  t.T = p.N * t.per_image;
  return t;
}

// Where slot s of a task reads and writes: its tile's offset in the task's windows (or in the
// padded input, without the channel), the output offset of its first element (without the
// channel), and how many of its 4 x 4 outputs lie inside.
struct Slots {
  int64_t src[kTB], y[kTB];
  int8_t nh[kTB], nw[kTB];
  // Runs of slots in one image and phase (segments): segment k holds tile rows ty0 .. ty1 of
  // image n, phase (a, b); its window (rows x ld floats at woff) covers input rows ih0 + d r and
  // columns iw0 + d j.
  struct Seg {
    int64_t n, a, b, ty0, ty1, ih0, iw0, rows, woff;
    int64_t s0;  // its first slot
  };
  int nseg;
  Seg seg[kTB];
};

// Fills the slots of tiles [t0, t0 + ns) of problem p.
// Offsets into windows of row stride ld, or (padded) into the padded input of pf floats a plane.
inline void locate(const ConvParams& p, const Tiles& tl, bool padded, int64_t ld, int64_t pf,
                   int64_t t0, int64_t ns, Slots& sl) {
  const int64_t d = tl.d;
  sl.nseg = 0;
  Slots::Seg* cur = nullptr;
  int64_t woff = 0;
  for (int64_t s = 0; s < ns; ++s) {
    // Order in an image: phase row a, tile row ty, phase column b, tile column tx (the phases
    // b of one tile row read the same input rows, so a task reads them together).
    const int64_t t = t0 + s, n = t / tl.per_image;
    int64_t r = t % tl.per_image, a = 0, b = 0;
    for (; r >= tl.count(a, p.Ho) * tl.tw_sum; ++a) r -= tl.count(a, p.Ho) * tl.tw_sum;
    const int64_t ty = r / tl.tw_sum;
    r %= tl.tw_sum;
    for (; r >= tl.count(b, p.Wo); ++b) r -= tl.count(b, p.Wo);
    const int64_t tx = r;
    if (!cur || cur->n != n || cur->a != a || cur->b != b) {  // a new segment
      if (cur) woff += cur->rows * ld;
      cur = &sl.seg[sl.nseg++];
      *cur = {n, a, b, ty, ty, a - p.pad_t + d * 4 * ty, b - p.pad_l, 6, woff, s};
    }
    cur->ty1 = ty;
    cur->rows = 4 * (ty - cur->ty0) + 6;
    sl.src[s] = padded ? ((n * p.C * d + a) * d + b) * pf + 4 * ty * ld + 4 * tx
                       : woff + 4 * (ty - cur->ty0) * ld + 4 * tx;
    sl.y[s] = n * p.O * p.Ho * p.Wo + (a + d * 4 * ty) * p.Wo + b + d * 4 * tx;
    sl.nh[s] = static_cast<int8_t>(std::min<int64_t>(4, tl.len(a, p.Ho) - 4 * ty));
    sl.nw[s] = static_cast<int8_t>(std::min<int64_t>(4, tl.len(b, p.Wo) - 4 * tx));
  }
}

// ceil(v / d) for d >= 1, v of either sign (no division for d = 1: this runs per task and channel).
inline int64_t ceil_div(int64_t v, int64_t d) {
  if (d == 1) return v;
  return v >= 0 ? (v + d - 1) / d : -(-v / d);
}

// Prefetches rows r0, r0 + step, ... (nr of them) of a plane of width W, columns [c0, c1)
// (clipped to [0, W)), for reading or writing.
template <bool Write>
inline void prefetch_rows(const float* plane, int64_t W, int64_t r0, int64_t step, int64_t nr,
                          int64_t c0, int64_t c1) {
  c0 = std::max<int64_t>(c0, 0), c1 = std::min(c1, W);
  if (c0 >= c1) return;
  for (int64_t r = 0; r < nr; ++r) {
    const char* lo = reinterpret_cast<const char*>(plane + (r0 + r * step) * W + c0);
    const char* hi = reinterpret_cast<const char*>(plane + (r0 + r * step) * W + c1);
    for (const char* q = lo; q < hi + 63; q += 64) __builtin_prefetch(q, Write ? 1 : 0, 3);
  }
}

// The threads of one parallel region wait here for each other (generation counting; spins,
// then yields the CPU).
class Barrier {
 public:
  void wait(int n) {
    if (n <= 1) return;
    const int gen = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) + 1 == n) {
      count_.store(0, std::memory_order_relaxed);
      gen_.store(gen + 1, std::memory_order_release);
      return;
    }
    for (int spins = 0; gen_.load(std::memory_order_acquire) == gen; ++spins)
      if (spins > 2000) std::this_thread::yield();
  }

 private:
  std::atomic<int> count_{0}, gen_{0};
};

}  // namespace convkit::conv::impl::wino
