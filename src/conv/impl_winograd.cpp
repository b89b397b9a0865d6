// "winograd_f4x3_avx2": F(4x4, 3x3) for 3x3, stride 1, dilation 1 layers with enough channels
// (forward; bwd_data as the forward of the flipped, transposed kernel, which is again 3x3 stride
// 1).
//
//   U[xi] (Og x Cg)   = G g G^T of every kernel, position xi of the 6x6 transform
//   V[xi] (Cg x S)    = B^T d B of every 6x6 input tile, S tiles (slots) per task
//   M[xi] (Og x S)    = U[xi] . V[xi]        36 GEMMs on the packed SGEMM micro-kernel
//   y tiles (4 x 4)   = A^T M A + bias
// A task is (group, image, R tile rows); its tiles sit in slots of 8 (a tile row is padded to a
// multiple of 8 slots: the transforms handle 8 tiles per ymm). The K sum of each GEMM runs in KC
// chunks in order, so bits do not depend on the thread count.
//
// Error: the transforms scale rounding errors by their norms (entries up to 8 and 5, the 1/6 and
// 1/24 of G); tests/conv/impl_test.cpp checks the outputs within 4x the direct-sum bound.
// NaN/Inf: a non-finite input or weight would leak through the transforms into the whole tile
// (Inf - Inf = NaN), so such calls run the implicit GEMM instead, whose NaN/Inf follow the direct
// convolution's.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "base/aligned.h"
#include "base/cpu.h"
#include "base/parallel.h"
#include "conv/impls.h"
#include "kernels/gemm/gemm.h"
#include "kernels/winograd/winograd.h"

namespace convkit::conv::impl {

namespace {

namespace kg = kernels::gemm;
namespace kw = kernels::winograd;

struct Plan {
  int64_t th, tw, tw8, R, S16, Mp, wpad;
  int64_t u_floats, per_thread;
};

Plan plan(const ConvParams& p) {
  Plan pl;
  pl.th = (p.Ho + 3) / 4, pl.tw = (p.Wo + 3) / 4, pl.tw8 = kg::round_up(pl.tw, 8);
  pl.R = std::max<int64_t>(1, 32 / pl.tw8);  // tile rows per task: about 32 slots
  pl.S16 = kg::round_up(pl.R * pl.tw8, kg::NR);
  pl.Mp = kg::round_up(p.Og(), kg::MR);
  pl.wpad = 4 * pl.tw8 + 8;
  pl.u_floats = base::align_floats(36 * p.groups * pl.Mp * p.Cg());
  pl.per_thread = base::align_floats(6 * pl.wpad + 36 * p.Cg() * pl.S16 + 36 * p.Og() * pl.S16);
  return pl;
}

std::size_t wino_floats(const ConvParams& p, int nt) {
  const Plan pl = plan(p);
  return pl.u_floats + static_cast<std::size_t>(nt) * pl.per_thread;
}

// Workspace budget: a quarter of the im2col buffer the layer would need, or 1 MiB for small layers.
double budget_floats(const ConvParams& p) {
  const double im2col =
      double(p.N) * double(p.C) * double(p.kH * p.kW) * double(p.Ho) * double(p.Wo);
  return std::max(0.25 * im2col, double(1 << 18));
}

const char* geometry_why_not(const ConvParams& p) {
  if (!base::use_avx2()) return "needs AVX2 and FMA";
  if (p.kH != 3 || p.kW != 3 || p.sH != 1 || p.sW != 1 || p.dH != 1 || p.dW != 1)
    return "needs a 3x3 kernel, stride 1, dilation 1";
  if (p.Cg() < 16 || p.Og() < 16)
    return "fewer than 16 channels per group in or out (the transforms would dominate)";
  return zero_padding_reason(p);
}

// Runs F(4x4, 3x3) on problem p; weight(g, o, c, t) is tap t = 3 kh + kw of group g's kernel.
template <typename WeightAt>
void wino_run(const ConvParams& p, const float* x, WeightAt&& weight, const float* b, float* y,
              float* ws, int nthreads) {
  const Plan pl = plan(p);
  const int64_t Cg = p.Cg(), Og = p.Og(), G = p.groups;
  float* U = ws;  // [xi][g]: Mp x Cg in MR-row panels, a[k * MR + i]
  {
    const int64_t rows = G * pl.Mp;
    const int nt = static_cast<int>(std::min<int64_t>(nthreads, rows));
    base::parallel_run(nt, [&](int tid, int n_threads) {
      const auto [r0, r1] = base::split_range(rows, tid, n_threads);
      float g9[9], u[36];
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t g = r / pl.Mp, o = r % pl.Mp;
        for (int64_t c = 0; c < Cg; ++c) {
          if (o < Og) {
            for (int t = 0; t < 9; ++t) g9[t] = weight(g, o, c, t);
            kw::f32_wino_f4x3_ftrans(g9, u);
          } else {
            std::fill(u, u + 36, 0.f);
          }
          for (int xi = 0; xi < 36; ++xi)
            U[(xi * G + g) * pl.Mp * Cg + (o / kg::MR) * kg::MR * Cg + c * kg::MR + o % kg::MR] =
                u[xi];
        }
      }
    });
  }
  const int64_t blocks = (pl.th + pl.R - 1) / pl.R, tasks = G * p.N * blocks;
  const int nt = static_cast<int>(std::min<int64_t>(nthreads, tasks));
  float* per = ws + pl.u_floats;
  base::parallel_run(nt, [&](int tid, int n_threads) {
    float* rowbuf = per + tid * pl.per_thread;  // 6 rows of wpad
    float* V = rowbuf + 6 * pl.wpad;            // [xi]: Cg x S16 in NR-column panels
    float* M = V + 36 * Cg * pl.S16;            // [xi]: Og x S16
    alignas(32) float out[4][32];
    const auto [t0, t1] = base::split_range(tasks, tid, n_threads);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t g = t / (p.N * blocks), n = (t / blocks) % p.N;
      const int64_t ty0 = (t % blocks) * pl.R, rows = std::min(pl.R, pl.th - ty0);
      const float* xg = x + (n * p.C + g * Cg) * p.H * p.W;
      // Input transform: V[xi][c][slot], slot = rr * tw8 + tx.
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t rr = 0; rr < rows; ++rr) {
          const int64_t ih0 = 4 * (ty0 + rr) - p.pad_t;
          const float* rp[6];
          for (int r = 0; r < 6; ++r) {
            float* dst = rowbuf + r * pl.wpad;
            const int64_t ih = ih0 + r;
            std::fill(dst, dst + pl.wpad, 0.f);
            if (ih >= 0 && ih < p.H) {
              // dst[j] = x[ih][j - pad_l] where that is inside the row.
              const int64_t j0 = std::max<int64_t>(0, p.pad_l);
              const int64_t j1 = std::min<int64_t>(pl.wpad, p.W + p.pad_l);
              const float* src = xg + (c * p.H + ih) * p.W - p.pad_l;
              for (int64_t j = j0; j < j1; ++j) dst[j] = src[j];
            }
            rp[r] = dst;
          }
          for (int64_t tx = 0; tx < pl.tw8; tx += 8) {
            const float* rows8[6];
            for (int r = 0; r < 6; ++r) rows8[r] = rp[r] + 4 * tx;
            const int64_t s = rr * pl.tw8 + tx;
            kw::f32_wino_f4x3_itrans8__avx2_fma(
                rows8, V + (s / kg::NR) * Cg * kg::NR + c * kg::NR + s % kg::NR, Cg * pl.S16);
          }
        }
      // 36 GEMMs: M[xi] = U[xi] . V[xi] over the slots in use.
      const int64_t used = kg::round_up(rows * pl.tw8, kg::NR);
      for (int xi = 0; xi < 36; ++xi) {
        const float* Ux = U + (xi * G + g) * pl.Mp * Cg;
        const float* Vx = V + xi * Cg * pl.S16;
        float* Mx = M + xi * Og * pl.S16;
        for (int64_t sp = 0; sp < used; sp += kg::NR)
          for (int64_t r = 0; r < Og; r += kg::MR)
            for (int64_t k0 = 0; k0 < Cg; k0 += kg::KC)
              kg::f32_gemm_6x16__avx2_fma(std::min(kg::KC, Cg - k0), Ux + r * Cg + k0 * kg::MR,
                                          Vx + sp * Cg + k0 * kg::NR, Mx + r * pl.S16 + sp, pl.S16,
                                          std::min(kg::MR, Og - r), kg::NR, k0 > 0);
      }
      // Output transform, 8 tiles at a time, clipped to the output.
      for (int64_t o = 0; o < Og; ++o) {
        const float bias = b ? b[g * Og + o] : 0.f;
        float* yo = y + (n * p.O + g * Og + o) * p.Ho * p.Wo;
        for (int64_t rr = 0; rr < rows; ++rr)
          for (int64_t tx = 0; tx < pl.tw8; tx += 8) {
            kw::f32_wino_f4x3_otrans8__avx2_fma(M + o * pl.S16 + rr * pl.tw8 + tx, Og * pl.S16,
                                                bias, &out[0][0], 32);
            const int64_t oh0 = 4 * (ty0 + rr), ow0 = 4 * tx;
            const int64_t nh = std::min<int64_t>(4, p.Ho - oh0);
            const int64_t nw = std::min<int64_t>(32, p.Wo - ow0);
            for (int64_t i = 0; i < nh; ++i)
              std::copy(out[i], out[i] + nw, yo + (oh0 + i) * p.Wo + ow0);
          }
      }
    }
  });
}

bool all_finite(const float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i])) return false;
  return true;
}

void note_fallback(const char* pass) {
  if (verbose_enabled())
    std::fprintf(stderr,
                 "convkit: conv2d %s winograd_f4x3_avx2: non-finite input or weights; running "
                 "gemm_avx2 so NaN/Inf propagate as in a direct convolution\n",
                 pass);
}

// ---- forward ----------------------------------------------------------------------------------

const char* fwd_why_not(const ConvParams& p) {
  if (const char* why = geometry_why_not(p)) return why;
  if (double(wino_floats(p, base::max_threads())) > budget_floats(p))
    return "transformed kernels and tiles would exceed max(25% of the im2col buffer, 1 MiB)";
  return nullptr;
}

std::size_t fwd_ws(const ConvParams& p, int nt) {
  return std::max(wino_floats(p, nt), gemm_fwd_avx2.workspace_floats(p, nt));
}

void fwd(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  if (!all_finite(a.w, p.O * p.Cg() * 9) || !all_finite(a.x, p.N * p.C * p.H * p.W)) {
    note_fallback("fwd");
    gemm_fwd_avx2.run(p, a, ws, max_nt);
    return;
  }
  const int64_t Cg = p.Cg(), Og = p.Og();
  const float* w = a.w;
  wino_run(
      p, a.x,
      [=](int64_t g, int64_t o, int64_t c, int t) { return w[((g * Og + o) * Cg + c) * 9 + t]; },
      a.b, a.y, ws, base::threads_for(p.flops(), max_nt));
}

// ---- backward data: the forward of gy with w'[c][o] = flip(w[o][c]), padding 2 - pad ------------

ConvParams transposed3(const ConvParams& p) {
  ConvParams q = p;
  q.C = p.O, q.H = p.Ho, q.W = p.Wo, q.O = p.C, q.Ho = p.H, q.Wo = p.W;
  q.pad_t = 2 - p.pad_t, q.pad_b = 2 - p.pad_b, q.pad_l = 2 - p.pad_l, q.pad_r = 2 - p.pad_r;
  return q;
}

const char* bwd_data_why_not(const ConvParams& p) {
  if (const char* why = geometry_why_not(p)) return why;
  if (double(wino_floats(transposed3(p), base::max_threads())) > budget_floats(p))
    return "transformed kernels and tiles would exceed max(25% of the im2col buffer, 1 MiB)";
  return nullptr;
}

std::size_t bwd_data_ws(const ConvParams& p, int nt) {
  return std::max(wino_floats(transposed3(p), nt), gemm_bwd_data_avx2.workspace_floats(p, nt));
}

void bwd_data(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  if (!all_finite(a.w, p.O * p.Cg() * 9) || !all_finite(a.gy, p.N * p.O * p.Ho * p.Wo)) {
    note_fallback("bwd_data");
    gemm_bwd_data_avx2.run(p, a, ws, max_nt);
    return;
  }
  const int64_t Cg = p.Cg(), Og = p.Og();
  const float* w = a.w;
  // Problem q: input gy (channels O), output gx (channels C); q's (o, c) are p's (c, o).
  wino_run(
      transposed3(p), a.gy,
      [=](int64_t g, int64_t c, int64_t o, int t) {
        return w[((g * Og + o) * Cg + c) * 9 + (8 - t)];
      },
      nullptr, a.gx, ws, base::threads_for(p.flops(), max_nt));
}

}  // namespace

const Impl wino_fwd_avx2{"winograd_f4x3_avx2", fwd_why_not, fwd_ws, fwd};
const Impl wino_bwd_data_avx2{"winograd_f4x3_avx2", bwd_data_why_not, bwd_data_ws, bwd_data};

}  // namespace convkit::conv::impl
