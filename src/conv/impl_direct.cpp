// "direct_avx2" / "direct_generic": direct convolution by output rows for layers whose per-group
// GEMM would be too thin to pay for packing — depthwise (C/g = 1), small groups and single-channel
// images (C/g * O/g <= 16). Threads take (plane, row block) tasks for fwd and bwd_data; bwd_weight
// reduces fixed 32-row chunks into per-chunk partials (workspace) and adds them in chunk order, so
// the bits never depend on the thread count.
#include <algorithm>

#include "base/cpu.h"
#include "base/parallel.h"
#include "conv/impls.h"
#include "kernels/direct/direct.h"

namespace convkit::conv::impl {

namespace {

namespace kd = kernels::direct;

constexpr int64_t kRowBlock = 16;  // fwd / bwd_data rows per task (does not change results)
constexpr int64_t kRowChunk = 32;  // bwd_weight rows per partial sum (fixed: part of the order)

const char* shape_why_not(const ConvParams& p) {
  if (p.Cg() * p.Og() > 16) return "C/groups * O/groups > 16 (the GEMM amortises packing better)";
  return zero_padding_reason(p);
}
const char* avx2_why_not(const ConvParams& p) {
  if (!base::use_avx2()) return "needs AVX2 and FMA";
  return shape_why_not(p);
}

int64_t chunks(const ConvParams& p) {
  return (p.N * p.Ho + kRowChunk - 1) / kRowChunk;
}
int64_t kw_floats(const ConvParams& p) {
  return p.Cg() * p.kH * p.kW;
}

std::size_t no_ws(const ConvParams&, int) {
  return 0;
}
std::size_t bwd_weight_ws(const ConvParams& p, int) {
  return static_cast<std::size_t>(p.O * chunks(p) * kw_floats(p));
}

template <const kd::RowOps* Ops>
void fwd(const ConvParams& p, const ConvArgs& a, float*, int max_nt) {
  const int64_t blocks = (p.Ho + kRowBlock - 1) / kRowBlock, tasks = p.N * p.O * blocks;
  const int nt = static_cast<int>(std::min<int64_t>(base::threads_for(p.flops(), max_nt), tasks));
  base::parallel_run(nt, [&](int tid, int n_threads) {
    const auto [t0, t1] = base::split_range(tasks, tid, n_threads);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t plane = t / blocks, r = (t % blocks) * kRowBlock;
      kd::fwd_rows(*Ops, p, a.x, a.w, a.b, a.y, plane / p.O, plane % p.O, r,
                   std::min(p.Ho, r + kRowBlock));
    }
  });
}

template <const kd::RowOps* Ops>
void bwd_data(const ConvParams& p, const ConvArgs& a, float*, int max_nt) {
  const int64_t blocks = (p.H + kRowBlock - 1) / kRowBlock, tasks = p.N * p.C * blocks;
  const int nt = static_cast<int>(std::min<int64_t>(base::threads_for(p.flops(), max_nt), tasks));
  base::parallel_run(nt, [&](int tid, int n_threads) {
    const auto [t0, t1] = base::split_range(tasks, tid, n_threads);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t plane = t / blocks, r = (t % blocks) * kRowBlock;
      kd::bwd_data_rows(*Ops, p, a.gy, a.w, a.gx, plane / p.C, plane % p.C, r,
                        std::min(p.H, r + kRowBlock));
    }
  });
}

template <const kd::RowOps* Ops>
void bwd_weight(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  const int nthreads = base::threads_for(p.flops(), max_nt);
  if (a.gb) bias_grad(p, a.gy, a.gb, nthreads);
  if (!a.gw) return;
  const int64_t nc = chunks(p), kwf = kw_floats(p), tasks = p.O * nc, rows = p.N * p.Ho;
  const int nt = static_cast<int>(std::min<int64_t>(nthreads, tasks));
  base::parallel_run(nt, [&](int tid, int n_threads) {
    const auto [t0, t1] = base::split_range(tasks, tid, n_threads);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t o = t / nc, r = (t % nc) * kRowChunk;
      kd::bwd_weight_rows(*Ops, p, a.gy, a.x, o, r, std::min(rows, r + kRowChunk), ws + t * kwf);
    }
  });
  // gw[o] = partial 0 + partial 1 + ... in chunk order.
  for (int64_t o = 0; o < p.O; ++o) {
    float* g = a.gw + o * kwf;
    std::copy(ws + o * nc * kwf, ws + (o * nc + 1) * kwf, g);
    for (int64_t k = 1; k < nc; ++k) {
      const float* part = ws + (o * nc + k) * kwf;
      for (int64_t i = 0; i < kwf; ++i) g[i] += part[i];
    }
  }
}

}  // namespace

const Impl direct_fwd_avx2{"direct_avx2", avx2_why_not, no_ws, fwd<&kd::rows_avx2>};
const Impl direct_bwd_data_avx2{"direct_avx2", avx2_why_not, no_ws, bwd_data<&kd::rows_avx2>};
const Impl direct_bwd_weight_avx2{"direct_avx2", avx2_why_not, bwd_weight_ws,
                                  bwd_weight<&kd::rows_avx2>};
const Impl direct_fwd_generic{"direct_generic", shape_why_not, no_ws, fwd<&kd::rows_generic>};
const Impl direct_bwd_data_generic{"direct_generic", shape_why_not, no_ws,
                                   bwd_data<&kd::rows_generic>};
const Impl direct_bwd_weight_generic{"direct_generic", shape_why_not, bwd_weight_ws,
                                     bwd_weight<&kd::rows_generic>};

}  // namespace convkit::conv::impl
