// "dwconv_avx2": depthwise convolution (C/groups == 1, any channel multiplier O/groups) over the
// plane kernels of kernels/dwconv: one pass over input and output, each output written once,
// padding handled at the borders in registers.
//   fwd:        tasks are (image, output channel) planes, cut into row chunks when there are few
//               planes; y plane (n, o) = bias[o] + x plane (n, o / M) correlated with w[o].
//   bwd_data:   tasks are (image, input channel) planes (row chunks likewise); gx plane (n, c) =
//               the sum over m < M of the gather of gy plane (n, c * M + m) with w[c * M + m], m
//               in order.
//   bwd_weight: tasks are output channels, each reducing over (n, oh, ow) inside one kernel call
//               (gb summed in the same sweep). With fewer than 16 channels each channel's rows are
//               cut into a fixed number of chunks (set by the shape alone) whose partials are
//               added in chunk order.
// Narrow planes with multiplier 1 (use_c8) run the forward, the weight gradient and the stride-1
// backward-data 8 channels at a time instead (tasks: 8 channels over a run of images, and for the
// weight gradient over all images).
// No split changes any output's order of summation, so results do not depend on the thread count.
#include <algorithm>
#include <atomic>

#include "base/aligned.h"
#include "base/cpu.h"
#include "base/parallel.h"
#include "conv/impls.h"
#include "kernels/dwconv/dwconv.h"

namespace convkit::conv::impl {

namespace {

namespace kd = kernels::dwconv;

kd::Plane plane_of(const ConvParams& p) {
  kd::Plane g;
  g.H = p.H, g.W = p.W, g.Ho = p.Ho, g.Wo = p.Wo;
  g.kH = p.kH, g.kW = p.kW, g.sH = p.sH, g.sW = p.sW, g.dH = p.dH, g.dW = p.dW;
  g.pad_t = p.pad_t, g.pad_l = p.pad_l;
  return g;
}

const char* why_not(const ConvParams& p) {
  if (!base::use_avx2()) return "needs AVX2 and FMA";
  if (p.Cg() != 1) return "not depthwise (C/groups != 1)";
  if (const char* why = kd::unsupported(plane_of(p))) return why;
  return zero_padding_reason(p);
}

// Threads for a depthwise pass. base::threads_for sizes a thread's share by FLOPs at the GEMM's
// rate; depthwise layers do C/groups = 1 multiply-add per loaded value and run at a sixth to a
// tenth of that rate (10-30 against 90 GFLOP/s a core, convkit bench), so their FLOPs count 8
// times. MobileNetV2's 3x3 over 960 channels of 7 x 7 (3.4 MFLOP, 0.27 ms) ran on one thread.
int dw_threads(const ConvParams& p, int max_nt) {
  return base::threads_for(8 * p.flops(), max_nt);
}

// Narrow planes with multiplier 1 run 8 channels at a time (kd::f32_dwconv_c8_*): there the
// per-plane kernels spend most of a row on masked border vectors, and the transposes in and out
// cost less. Measured (fw driver, 2 threads, N 4, 3x3), per-plane vs 8 channels, medians of 5
// rounds: forward 14x14 C 384 0.162 vs 0.146 ms, 16x16 C 256 0.111 vs 0.099, 28x28 C 128 0.146 vs
// 0.155, 56x56 0.47 vs 0.59; backward-data 14x14 0.173 vs 0.126; weight gradient 28x28 0.153 vs
// 0.116, 32x32 0.183 vs 0.172, 56x56 0.44 vs 0.49.
constexpr int64_t kC8FwdMaxWo = 16, kC8WgradMaxWo = 32;
constexpr int64_t kC8MaxScratch = int64_t{1} << 16;
// Whether the 8-channel kernels can take geometry g of p (multiplier 1), and their scratch: one
// per thread, c8_floats(g) each.
bool c8_fits(const kd::Plane& g, const ConvParams& p) {
  return p.Og() == 1 && p.kH * p.kW <= kd::kMaxC8Taps && kd::c8_scratch_floats(g) <= kC8MaxScratch;
}
int64_t c8_floats(const kd::Plane& g) {
  return base::align_floats(kd::c8_scratch_floats(g));
}
std::size_t c8_ws(const kd::Plane& g, int nt) {
  return static_cast<std::size_t>(std::max(nt, 1) * c8_floats(g));
}
bool use_c8(const ConvParams& p, int64_t max_wo) {
  return p.Wo <= max_wo && c8_fits(plane_of(p), p);
}
std::size_t fwd_ws(const ConvParams& p, int nt) {
  return use_c8(p, kC8FwdMaxWo) ? c8_ws(plane_of(p), nt) : 0;
}

// The 8-channel forward kernel over (8 channels, run of images) tasks: src holds N images of C
// planes of g.H x g.W, dst of g.Ho x g.Wo (the forward: x to y; backward-data: gy to gx, rotate).
// A task takes all the images where there are 4 channel groups a thread (each call builds its
// filters' vectors and its scratch's border once: per image they were a third of a 7 x 7 plane's
// time), else runs of them.
void c8_forward(const kd::Plane& g, const ConvParams& p, const float* src, const float* w,
                const float* bias, float* dst, bool rotate, float* ws, int max_nt) {
  const int64_t kk = p.kH * p.kW, groups = (p.C + 7) / 8;
  const int64_t per = c8_floats(g), src_plane = g.H * g.W, dst_plane = g.Ho * g.Wo;
  const int nt0 = dw_threads(p, max_nt);
  const int64_t runs = std::min<int64_t>(p.N, (4 * nt0 + groups - 1) / groups);
  const int64_t run = (p.N + runs - 1) / runs, tasks = groups * runs;
  const int nt = static_cast<int>(std::min<int64_t>(nt0, tasks));
  base::parallel_tasks(nt, tasks, [&](int tid, int64_t t) {
    const int64_t c0 = t / runs * 8, nch = std::min<int64_t>(8, p.C - c0);
    const int64_t n0 = t % runs * run, n1 = std::min(p.N, n0 + run);
    if (n1 <= n0) return;
    kd::f32_dwconv_c8_fwd__avx2_fma(g, nch, n1 - n0, src + (n0 * p.C + c0) * src_plane,
                                    p.C * src_plane, w + c0 * kk, bias ? bias + c0 : nullptr,
                                    dst + (n0 * p.C + c0) * dst_plane, p.C * dst_plane,
                                    ws + tid * per, rotate);
  });
}

// Row chunks per plane so that `planes` planes make a few tasks per thread (outputs do not depend
// on it); rows per chunk a multiple of 4 (the forward kernels' row block).
int64_t rows_per_chunk(int64_t planes, int64_t rows, int nt) {
  const int64_t want = std::clamp<int64_t>((4 * nt + planes - 1) / planes, 1, (rows + 3) / 4);
  return ((rows + want - 1) / want + 3) / 4 * 4;
}

void fwd(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  const kd::Plane g = plane_of(p);
  // Padded taps would multiply the weights: the 8-channel kernels take finite ones only.
  if (use_c8(p, kC8FwdMaxWo) && (!p.has_padding() || all_finite(a.w, p.O * p.kH * p.kW))) {
    c8_forward(g, p, a.x, a.w, a.b, a.y, false, ws, max_nt);
    return;
  }
  const kd::FwdFn kernel = kd::fwd_kernel(g);
  const int nt0 = dw_threads(p, max_nt);
  const int64_t M = p.Og(), planes = p.N * p.O, rc = rows_per_chunk(planes, p.Ho, nt0);
  const int64_t chunks = (p.Ho + rc - 1) / rc, tasks = planes * chunks;
  const int nt = static_cast<int>(std::min<int64_t>(nt0, tasks));
  base::parallel_run(nt, [&](int tid, int n_threads) {
    const auto [t0, t1] = base::split_range(tasks, tid, n_threads);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t plane = t / chunks, r0 = (t % chunks) * rc;
      const int64_t n = plane / p.O, o = plane % p.O;
      const float* x = a.x + (n * p.C + o / M) * p.H * p.W;  // (H, W)
      float* y = a.y + plane * p.Ho * p.Wo;                  // (Ho, Wo)
      kernel(g, x, a.w + o * p.kH * p.kW, a.b ? a.b[o] : 0.f, false, y, r0,
             std::min(p.Ho, r0 + rc));
    }
  });
}

// Backward-data at stride 1 as the forward of the flipped geometry (gy correlated with the filter
// turned by 180 degrees, padded by (k - 1) d - pad), where that runs 8 channels at a time.
kd::Plane flipped(const ConvParams& p) {
  kd::Plane f = plane_of(p);
  f.H = p.Ho, f.W = p.Wo, f.Ho = p.H, f.Wo = p.W;
  f.pad_t = (p.kH - 1) * p.dH - p.pad_t, f.pad_l = (p.kW - 1) * p.dW - p.pad_l;
  return f;
}
bool use_c8_bwd_data(const ConvParams& p) {
  if (p.sH != 1 || p.sW != 1 || p.W > kC8FwdMaxWo) return false;
  const kd::Plane f = flipped(p);
  return f.pad_t >= 0 && f.pad_l >= 0 && c8_fits(f, p);
}
std::size_t bwd_data_ws(const ConvParams& p, int nt) {
  return use_c8_bwd_data(p) ? c8_ws(flipped(p), nt) : 0;
}

void bwd_data(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  const kd::Plane g = plane_of(p);
  // gy's zero border meets every filter tap there: finite weights only, as the forward.
  if (use_c8_bwd_data(p) && all_finite(a.w, p.O * p.kH * p.kW)) {
    c8_forward(flipped(p), p, a.gy, a.w, nullptr, a.gx, true, ws, max_nt);
    return;
  }
  const int nt0 = dw_threads(p, max_nt);
  const int64_t M = p.Og(), planes = p.N * p.C, rc = rows_per_chunk(planes, p.H, nt0);
  const int64_t chunks = (p.H + rc - 1) / rc, tasks = planes * chunks;
  const int nt = static_cast<int>(std::min<int64_t>(nt0, tasks));
  base::parallel_run(nt, [&](int tid, int n_threads) {
    const auto [t0, t1] = base::split_range(tasks, tid, n_threads);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t plane = t / chunks, r0 = (t % chunks) * rc, r1 = std::min(p.H, r0 + rc);
      const int64_t n = plane / p.C, c = plane % p.C;
      float* gx = a.gx + plane * p.H * p.W;  // (H, W)
      for (int64_t m = 0; m < M; ++m) {
        const int64_t o = c * M + m;
        kd::bwd_data(g, a.gy + (n * p.O + o) * p.Ho * p.Wo, a.w + o * p.kH * p.kW, m > 0, gx, r0,
                     r1);
      }
    }
  });
}

// Row chunks per channel for bwd_weight: 1 from 16 channels up (threads split channels), else up
// to 16 / O chunks of at least 16 rows. A function of the shape only: it fixes the order of sums.
int64_t wgrad_chunks(const ConvParams& p) {
  if (p.O >= 16) return 1;
  return std::clamp<int64_t>(p.Ho / 16, 1, (16 + p.O - 1) / p.O);
}

std::size_t bwd_weight_ws(const ConvParams& p, int nt) {
  const int64_t nc = wgrad_chunks(p);
  const std::size_t chunks = nc == 1 ? 0 : static_cast<std::size_t>(p.O * nc * (p.kH * p.kW + 1));
  return std::max(chunks, use_c8(p, kC8WgradMaxWo) ? c8_ws(plane_of(p), nt) : 0);
}

void bwd_weight(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  const int nthreads = dw_threads(p, max_nt);
  if (!a.gw) {
    bias_grad(p, a.gy, a.gb, nthreads);
    return;
  }
  const kd::Plane g = plane_of(p);
  if (use_c8(p, kC8WgradMaxWo)) {
    const int64_t kk = p.kH * p.kW, tasks = (p.C + 7) / 8;
    const int nt = static_cast<int>(std::min<int64_t>(nthreads, tasks));
    std::atomic<bool> finite{true};
    base::parallel_tasks(nt, tasks, [&](int tid, int64_t t) {
      const int64_t c0 = t * 8, nch = std::min<int64_t>(8, p.C - c0);
      if (!kd::f32_dwconv_c8_wgrad__avx2_fma(g, nch, p.N, a.x + c0 * p.H * p.W, p.C * p.H * p.W,
                                             a.gy + c0 * p.Ho * p.Wo, p.O * p.Ho * p.Wo,
                                             a.gw + c0 * kk, a.gb ? a.gb + c0 : nullptr,
                                             ws + tid * c8_floats(g)))
        finite.store(false, std::memory_order_relaxed);
    });
    // Padded taps would have multiplied a non-finite gy: the per-plane kernels skip them.
    if (finite.load() || !p.has_padding()) return;
    note_fallback("dwconv_avx2", "bwd_weight", "non-finite output gradients with zero padding",
                  "the per-plane kernels, which skip padded taps");
  }
  const kd::WgradFn kernel = kd::wgrad_kernel(g);
  const int64_t M = p.Og(), kk = p.kH * p.kW, nc = wgrad_chunks(p);
  const int64_t rc = (p.Ho + nc - 1) / nc, tasks = p.O * nc;
  const int nt = static_cast<int>(std::min<int64_t>(nthreads, tasks));
  base::parallel_run(nt, [&](int tid, int n_threads) {
    const auto [t0, t1] = base::split_range(tasks, tid, n_threads);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t o = t / nc, r0 = (t % nc) * rc, r1 = std::min(p.Ho, r0 + rc);
      const float* x = a.x + (o / M) * p.H * p.W;  // image 0, channel o / M: (H, W)
      const float* gy = a.gy + o * p.Ho * p.Wo;    // image 0, channel o: (Ho, Wo)
      if (nc == 1) {
        kernel(g, p.N, x, p.C * p.H * p.W, gy, p.O * p.Ho * p.Wo, 0, p.Ho, a.gw + o * kk,
               a.gb ? a.gb + o : nullptr);
      } else {
        float* part = ws + t * (kk + 1);  // (kH * kW) then the bias part
        kernel(g, p.N, x, p.C * p.H * p.W, gy, p.O * p.Ho * p.Wo, r0, r1, part, part + kk);
      }
    }
  });
  if (nc == 1) return;
  // gw[o] (and gb[o]) = chunk 0 + chunk 1 + ... in chunk order.
  for (int64_t o = 0; o < p.O; ++o) {
    const float* part = ws + o * nc * (kk + 1);
    for (int64_t i = 0; i <= kk; ++i) {
      float s = part[i];
      for (int64_t k = 1; k < nc; ++k) s += part[k * (kk + 1) + i];
      if (i < kk)
        a.gw[o * kk + i] = s;
      else if (a.gb)
        a.gb[o] = s;
    }
  }
}

}  // namespace

const Impl dwconv_fwd_avx2{"dwconv_avx2", why_not, fwd_ws, fwd};
const Impl dwconv_bwd_data_avx2{"dwconv_avx2", why_not, bwd_data_ws, bwd_data};
const Impl dwconv_bwd_weight_avx2{"dwconv_avx2", why_not, bwd_weight_ws, bwd_weight};

}  // namespace convkit::conv::impl
