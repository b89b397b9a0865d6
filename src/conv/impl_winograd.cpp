// "winograd_f4x3_avx2": F(4x4, 3x3) for 3x3 stride-1 layers with enough channels (dilation d runs
// as d x d dense problems on every d-th row and column)
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

// Workspace budget: a quarter of the im2col buffer the layer would need, or 1 MiB for small layers.
double budget_floats(const ConvParams& p) {
  const double im2col =
      double(p.N) * double(p.C) * double(p.kH * p.kW) * double(p.Ho) * double(p.Wo);
  return std::max(0.25 * im2col, double(1 << 18));
}

// Blocking of one call. Output channels go in blocks of OB (all of Og when the transformed kernels
// fit the budget; otherwise the input tiles are transformed again for each block).
struct Plan {
  int64_t th, tw, tw8, R, S16, OB, OBp, CC, wpad;
  int64_t u_floats, per_thread;
  double total() const { return double(u_floats) + double(per_thread) * nt; }
  int nt;
};

Plan plan(const ConvParams& p, int nt) {
  Plan pl;
  pl.nt = nt;
  const int64_t Cg = p.Cg(), Og = p.Og();
  // Dilation d splits the layer into d x d dense 3x3 problems on every d-th row and column
  // (phases); tiles are sized for the largest phase.
  const int64_t d = p.dH;
  pl.th = ((p.Ho + d - 1) / d + 3) / 4, pl.tw = ((p.Wo + d - 1) / d + 3) / 4;
  pl.tw8 = kg::round_up(pl.tw, 8);
  // Tile rows per task: about 32 slots. Input channels in chunks of CC so one chunk's V (all 36
  // positions) stays within ~256 KiB of L2; M accumulates over the chunks in order.
  pl.R = std::max<int64_t>(1, 32 / pl.tw8);
  pl.S16 = kg::round_up(pl.R * pl.tw8, kg::NR);
  pl.CC = std::clamp<int64_t>((64 * 1024) / (36 * pl.S16), 8, Cg);
  pl.wpad = 4 * pl.tw8 + 8;
  auto size = [&](int64_t ob) {
    pl.OB = ob, pl.OBp = kg::round_up(ob, kg::MR);
    pl.u_floats = base::align_floats(36 * p.groups * pl.OBp * Cg);
    pl.per_thread = base::align_floats(6 * pl.wpad + 36 * pl.CC * pl.S16 + 36 * pl.OBp * pl.S16);
  };
  size(Og);
  const double budget = budget_floats(p);
  for (int64_t ob = kg::round_up(Og, kg::MR) - kg::MR; pl.total() > budget && ob >= kg::MR;
       ob -= kg::MR)
    size(ob);
  return pl;
}

std::size_t wino_floats(const ConvParams& p, int nt) {
  return static_cast<std::size_t>(plan(p, nt).total());
}

// Null when a plan with output-channel blocks of at least 16 fits the budget.
const char* budget_why_not(const ConvParams& p) {
  const Plan pl = plan(p, base::max_threads());
  if (pl.total() > budget_floats(p) || pl.OB < std::min<int64_t>(16, p.Og()))
    return "transformed kernels and tiles would exceed max(25% of the im2col buffer, 1 MiB)";
  return nullptr;
}

const char* geometry_why_not(const ConvParams& p) {
  if (!base::use_avx2()) return "needs AVX2 and FMA";
  if (p.kH != 3 || p.kW != 3 || p.sH != 1 || p.sW != 1 || p.dH != p.dW)
    return "needs a 3x3 kernel, stride 1, equal dilations";
  if (p.Cg() < 16 || p.Og() < 16)
    return "fewer than 16 channels per group in or out (the transforms would dominate)";
  return zero_padding_reason(p);
}

// Where problem p's kernels live: tap t (= 3 kh + kw) of group g, output o, input c is at
// base[g * group + o * out + c * in + t * tap] (the forward's weights, or bwd_data's flipped,
// transposed view of them).
struct WeightLayout {
  const float* base;
  int64_t group, out, in, tap;
};

// Runs F(4x4, 3x3) on problem p.
void wino_run(const ConvParams& p, const float* x, const WeightLayout& wl, const float* b, float* y,
              float* ws, int max_nt, int nthreads) {
  const Plan pl = plan(p, max_nt);  // the plan the workspace was booked for
  const int64_t Cg = p.Cg(), Og = p.Og(), G = p.groups;
  float* U = ws;  // [xi][g]: OBp x Cg in MR-row panels, a[k * MR + i]
  float* per = ws + pl.u_floats;
  // Tasks: (group, image, phase (a, b), block of R tile rows); phase (a, b) holds the outputs
  // (a + d i, b + d j), Ho_a x Wo_b of them, a dense 3x3 problem on input rows a - pad_t + d i'.
  const int64_t d = p.dH, phases = d * d;
  const int64_t blocks = (pl.th + pl.R - 1) / pl.R, tasks = G * p.N * phases * blocks;
  for (int64_t ob = 0; ob < Og; ob += pl.OB) {
    const int64_t OBc = std::min(pl.OB, Og - ob);  // output channels o = ob .. ob + OBc
    {
      const int64_t rows = G * pl.OBp;
      const int nt = static_cast<int>(std::min<int64_t>(nthreads, rows));
      base::parallel_run(nt, [&](int tid, int n_threads) {
        // One MR-row panel at a time: 6 kernels transformed together, each position's 6 values
        // stored contiguously.
        const auto [q0, q1] = base::split_range(rows / kg::MR, tid, n_threads);
        for (int64_t q = q0; q < q1; ++q) {
          const int64_t g = q * kg::MR / pl.OBp, o0 = q * kg::MR % pl.OBp;
          const int n = static_cast<int>(std::clamp<int64_t>(OBc - o0, 0, kg::MR));
          for (int64_t c = 0; c < Cg; ++c)
            kw::f32_wino_f4x3_ftrans6__avx2_fma(
                wl.base + g * wl.group + (ob + o0) * wl.out + c * wl.in, wl.out, wl.tap, n,
                U + g * pl.OBp * Cg + o0 * Cg + c * kg::MR, G * pl.OBp * Cg);
        }
      });
    }
    const int nt = static_cast<int>(std::min<int64_t>(nthreads, tasks));
    base::parallel_run(nt, [&](int tid, int n_threads) {
      float* rowbuf = per + tid * pl.per_thread;  // 6 rows of wpad
      float* V = rowbuf + 6 * pl.wpad;            // [xi]: cc x S16 in NR-column panels
      float* M = V + 36 * pl.CC * pl.S16;         // [xi]: OBc x S16
      alignas(32) float out[4][32];
      const auto [t0, t1] = base::split_range(tasks, tid, n_threads);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t g = t / (p.N * phases * blocks), n = (t / (phases * blocks)) % p.N;
        const int64_t ph = (t / blocks) % phases, a = ph / d, bph = ph % d;
        const int64_t Ho_a = (p.Ho - a + d - 1) / d, Wo_b = (p.Wo - bph + d - 1) / d;
        const int64_t th_a = (Ho_a + 3) / 4, tw_a = (Wo_b + 3) / 4;
        const int64_t ty0 = (t % blocks) * pl.R;
        if (ty0 >= th_a || tw_a == 0) continue;  // a smaller phase has fewer tile rows
        const int64_t rows = std::min(pl.R, th_a - ty0), tw8 = kg::round_up(tw_a, 8);
        const float* xg = x + (n * p.C + g * Cg) * p.H * p.W;
        const int64_t used = kg::round_up(rows * tw8, kg::NR);
        for (int64_t c0 = 0; c0 < Cg; c0 += pl.CC) {
          const int64_t cc = std::min(pl.CC, Cg - c0);
          // Input transform of channels c0 .. c0+cc: V[xi][c - c0][slot], slot = rr * tw8 + tx.
          for (int64_t c = c0; c < c0 + cc; ++c)
            for (int64_t rr = 0; rr < rows; ++rr) {
              const int64_t i0 = 4 * (ty0 + rr);  // first phase row of the tile row
              const float* rp[6];
              for (int r = 0; r < 6; ++r) {
                float* dst = rowbuf + r * pl.wpad;
                const int64_t ih = a - p.pad_t + d * (i0 + r);
                if (ih >= 0 && ih < p.H && d > 1) {
                  // dst[j] = x[ih][b - pad_l + d j] inside the row, 0 outside.
                  const float* src = xg + (c * p.H + ih) * p.W;
                  for (int64_t j = 0; j < pl.wpad; ++j) {
                    const int64_t iw = bph - p.pad_l + d * j;
                    dst[j] = iw >= 0 && iw < p.W ? src[iw] : 0.f;
                  }
                } else if (ih >= 0 && ih < p.H) {
                  // dst[j] = x[ih][j - pad_l] inside the row, 0 in the padding around it.
                  const int64_t j0 = std::clamp<int64_t>(p.pad_l, 0, pl.wpad);
                  const int64_t j1 = std::clamp<int64_t>(p.W + p.pad_l, j0, pl.wpad);
                  const float* src = xg + (c * p.H + ih) * p.W - p.pad_l;
                  std::fill(dst, dst + j0, 0.f);
                  std::copy(src + j0, src + j1, dst + j0);
                  std::fill(dst + j1, dst + pl.wpad, 0.f);
                } else {
                  std::fill(dst, dst + pl.wpad, 0.f);
                }
                rp[r] = dst;
              }
              for (int64_t tx = 0; tx < tw8; tx += 8) {
                const float* rows8[6];
                for (int r = 0; r < 6; ++r) rows8[r] = rp[r] + 4 * tx;
                const int64_t s = rr * tw8 + tx;
                kw::f32_wino_f4x3_itrans8__avx2_fma(
                    rows8, V + (s / kg::NR) * cc * kg::NR + (c - c0) * kg::NR + s % kg::NR,
                    cc * pl.S16);
              }
            }
          // 36 GEMMs: M[xi] (+)= U[xi](:, c0 .. c0+cc) . V[xi] over the slots in use.
          for (int xi = 0; xi < 36; ++xi) {
            const float* Ux = U + (xi * G + g) * pl.OBp * Cg;
            const float* Vx = V + xi * cc * pl.S16;
            float* Mx = M + xi * pl.OBp * pl.S16;
            for (int64_t sp = 0; sp < used; sp += kg::NR)
              for (int64_t r = 0; r < OBc; r += kg::MR)
                for (int64_t k0 = 0; k0 < cc; k0 += kg::KC)
                  kg::f32_gemm_6x16__avx2_fma(
                      std::min(kg::KC, cc - k0), Ux + r * Cg + (c0 + k0) * kg::MR,
                      Vx + sp * cc + k0 * kg::NR, Mx + r * pl.S16 + sp, pl.S16,
                      std::min(kg::MR, OBc - r), kg::NR, c0 + k0 > 0);
          }
        }
        // Output transform, 8 tiles at a time, clipped to the output.
        for (int64_t r = 0; r < OBc; ++r) {
          const int64_t o = g * Og + ob + r;
          const float bias = b ? b[o] : 0.f;
          float* yo = y + (n * p.O + o) * p.Ho * p.Wo;
          for (int64_t rr = 0; rr < rows; ++rr)
            for (int64_t tx = 0; tx < tw8; tx += 8) {
              kw::f32_wino_f4x3_otrans8__avx2_fma(M + r * pl.S16 + rr * tw8 + tx, pl.OBp * pl.S16,
                                                  bias, &out[0][0], 32);
              const int64_t i0 = 4 * (ty0 + rr), j0 = 4 * tx;  // phase coordinates
              const int64_t nh = std::min<int64_t>(4, Ho_a - i0);
              const int64_t nw = std::min<int64_t>(32, Wo_b - j0);
              for (int64_t i = 0; i < nh; ++i) {
                float* yr = yo + (a + d * (i0 + i)) * p.Wo + bph + d * j0;
                if (d == 1)
                  std::copy(out[i], out[i] + nw, yr);
                else
                  for (int64_t j = 0; j < nw; ++j) yr[d * j] = out[i][j];
              }
            }
        }
      }
    });
  }
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
  return budget_why_not(p);
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
  const WeightLayout wl{a.w, Og * Cg * 9, Cg * 9, 9, 1};
  wino_run(p, a.x, wl, a.b, a.y, ws, max_nt, base::threads_for(p.flops(), max_nt));
}

// ---- backward data: the forward of gy with w'[c][o] = flip(w[o][c]), padding 2 d - pad
// -----------

ConvParams transposed3(const ConvParams& p) {
  ConvParams q = p;
  q.C = p.O, q.H = p.Ho, q.W = p.Wo, q.O = p.C, q.Ho = p.H, q.Wo = p.W;
  const int64_t e = 2 * p.dH;  // the dilated kernel's extent minus 1
  q.pad_t = e - p.pad_t, q.pad_b = e - p.pad_b, q.pad_l = e - p.pad_l, q.pad_r = e - p.pad_r;
  return q;
}

const char* bwd_data_why_not(const ConvParams& p) {
  if (const char* why = geometry_why_not(p)) return why;
  return budget_why_not(transposed3(p));
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
  // Problem q: input gy (channels O), output gx (channels C); q's (o, c) are p's (c, o), and
  // q's tap t is p's tap 8 - t (the kernel flipped).
  const WeightLayout wl{a.w + 8, Og * Cg * 9, 9, Cg * 9, -1};
  wino_run(transposed3(p), a.gy, wl, nullptr, a.gx, ws, max_nt,
           base::threads_for(p.flops(), max_nt));
}

}  // namespace

const Impl wino_fwd_avx2{"winograd_f4x3_avx2", fwd_why_not, fwd_ws, fwd};
const Impl wino_bwd_data_avx2{"winograd_f4x3_avx2", bwd_data_why_not, bwd_data_ws, bwd_data};

}  // namespace convkit::conv::impl
