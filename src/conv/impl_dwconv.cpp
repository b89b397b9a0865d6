// "dwconv_avx2": depthwise convolution (C/groups == 1, any channel multiplier O/groups) over the
// plane kernels of kernels/dwconv: one pass over input and output, each output written once,
// padding handled at the borders in registers.
//   fwd:        tasks are (image, output channel) planes, cut into row chunks when there are few
//               planes; y plane (n, o) = bias[o] + x plane (n, o / M) correlated with w[o].
//   bwd_data:   tasks are (image, input channel) planes (row chunks likewise); gx plane (n, c) =
//   the
//               sum over m < M of the gather of gy plane (n, c * M + m) with w[c * M + m], m in
//               order.
//   bwd_weight: tasks are output channels, each reducing over (n, oh, ow) inside one kernel call
//   (gb
//               summed in the same sweep). With fewer than 16 channels each channel's rows are cut
//               into a fixed number of chunks (set by the shape alone) whose partials are added in
//               chunk order.
// No split changes any output's order of summation, so results do not depend on the thread count.
#include <algorithm>

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

std::size_t no_ws(const ConvParams&, int) {
  return 0;
}

// Row chunks per plane so that `planes` planes make a few tasks per thread (outputs do not depend
// on it); rows per chunk a multiple of 4 (the forward kernels' row block).
int64_t rows_per_chunk(int64_t planes, int64_t rows, int nt) {
  const int64_t want = std::clamp<int64_t>((4 * nt + planes - 1) / planes, 1, (rows + 3) / 4);
  return ((rows + want - 1) / want + 3) / 4 * 4;
}

void fwd(const ConvParams& p, const ConvArgs& a, float*, int max_nt) {
  const kd::Plane g = plane_of(p);
  const kd::FwdFn kernel = kd::fwd_kernel(g);
  const int nt0 = base::threads_for(p.flops(), max_nt);
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

void bwd_data(const ConvParams& p, const ConvArgs& a, float*, int max_nt) {
  const kd::Plane g = plane_of(p);
  const int nt0 = base::threads_for(p.flops(), max_nt);
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

std::size_t bwd_weight_ws(const ConvParams& p, int) {
  const int64_t nc = wgrad_chunks(p);
  return nc == 1 ? 0 : static_cast<std::size_t>(p.O * nc * (p.kH * p.kW + 1));
}

void bwd_weight(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  const int nthreads = base::threads_for(p.flops(), max_nt);
  if (!a.gw) {
    bias_grad(p, a.gy, a.gb, nthreads);
    return;
  }
  const kd::Plane g = plane_of(p);
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

const Impl dwconv_fwd_avx2{"dwconv_avx2", why_not, no_ws, fwd};
const Impl dwconv_bwd_data_avx2{"dwconv_avx2", why_not, no_ws, bwd_data};
const Impl dwconv_bwd_weight_avx2{"dwconv_avx2", why_not, bwd_weight_ws, bwd_weight};

}  // namespace convkit::conv::impl
