// "winograd_f4x3_avx2": F(4x4, 3x3) for 3x3 stride-1 layers with enough channels and padding no
// wider than the kernel (dilation d runs as d x d dense problems, the phases, on every d-th row and
// column); forward, and bwd_data as the forward of the flipped, transposed kernel (again 3x3
// stride 1). bwd_weight, the adjoint of these transforms, is in impl_winograd_bwd_weight.cpp; the
// tile numbering and windows both use are in winograd_tiles.h.
//
//   U[xi] (Og x Cg)   = G g G^T of every kernel, position xi of the 6x6 transform
//   V[xi] (Cg x S)    = B^T d B of every 6x6 input tile, S = 16 tiles (slots) per task
//   M[xi] (Og x S)    = U[xi] . V[xi]        36 GEMMs on the packed SGEMM micro-kernel
//   y tiles (4 x 4)   = A^T M A + bias
// Tiles are numbered through images, phases and tile rows (image, phase row, tile row, phase
// column, tile column), so a task is 16 consecutive tiles wherever they lie; only the last task of
// a group has unused slots (8 of them, when it has at most 8 tiles, use 8-column micro-kernels).
// The input transform reads 8 tiles at a time through pointers: into zero-padded windows of the
// input built per task and channel (one per run of tiles in one image and phase), or, for dilated
// layers when it fits the budget, into a zero-padded copy of every phase plane made once per call.
//
// Output channels go in blocks of OB (all of Og when the transformed kernels fit the workspace
// budget; otherwise the input tiles are transformed again for each block). Work units are (group,
// task, MR-row panel of the block); a thread takes a contiguous run of units and transforms a
// task's tiles once for its run of panels. One parallel region per call: per block, the threads
// transform the block's kernels (and, once, copy the padded input) together, meet at a barrier,
// then run their units (and meet again before the next block overwrites U). The K sum of each
// GEMM runs in chunks of CC input channels in order, CC fixed by the shape, and every micro-kernel
// sums a column in the same order, so bits do not depend on the thread count.
//
// Error: the transforms scale rounding errors by their norms (entries up to 8 and 5, the 1/6 and
// 1/24 of G), and mix the 16 outputs of a tile: the stated bound is 4x the direct-sum bound over
// the largest sum of |terms| in the output's tile (scripts/conformance.py checks that; a corner of
// a valid layer's gx, which reads one row and column of gy, came out at 1.37x the bound over its
// own S). tests/conv/impl_test.cpp's random data meet 4x the bound over each output's own S. An
// output that reads only padding has a direct sum of exactly 0 but would get its tile's rounding
// noise, so padding wider than the kernel's extent is left to other implementations.
// NaN/Inf: a non-finite input or weight would leak through the transforms into the whole tile
// (Inf - Inf = NaN). The window and filter kernels report non-finite values as they copy them;
// such calls then run the implicit GEMM, whose NaN/Inf follow the direct convolution's, over the
// whole output.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "base/aligned.h"
#include "base/cpu.h"
#include "base/parallel.h"
#include "conv/impls.h"
#include "conv/winograd_tiles.h"
#include "kernels/gemm/gemm.h"
#include "kernels/winograd/winograd.h"

namespace convkit::conv::impl {

namespace {

namespace kg = kernels::gemm;
namespace kw = kernels::winograd;

// Slots per task (wino::kTB): one NR-column panel. Larger tasks reuse each U panel on more
// columns, but their V and M (36 x (Cg + OB) x TB floats) no longer stay in L2 (measured slower on
// Zen 3).
using wino::Barrier;
using wino::budget_floats;
using wino::geometry_why_not;
using wino::kTB;
using wino::Slots;
using wino::Tiles;

// Blocking of one call.
struct Plan {
  Tiles tl;
  int64_t TB, tasks;           // slots per task (a multiple of NR), tasks per group
  int64_t CC;                  // input channels per K chunk (fixed by the shape: the bits)
  int64_t OB, OBp, Q, blocks;  // output channels per block, padded to MR; panels; blocks
  int64_t ld, win_floats;      // window row stride and floats (per thread)
  // Padded input (when it fits the budget): every phase plane of every image and channel
  // copied once per call, zero-padded, Hpp x ld floats each; tasks then read tiles in place.
  bool padded;
  int64_t Hpp, pf, p_floats;
  int64_t u_xs, u_floats, per_thread;  // U's xi stride, U and per-thread floats
  int nt;
  double total() const { return double(u_floats) + double(p_floats) + double(per_thread) * nt; }
  int64_t v_floats() const { return 36 * (CC * TB + 16); }  // V of one chunk, padded xi stride
  int64_t m_floats() const { return 36 * OBp * TB; }
};

Plan plan(const ConvParams& p, int nt) {
  Plan pl;
  pl.nt = nt;
  const int64_t Cg = p.Cg(), Og = p.Og();
  pl.tl = wino::tile_grid(p);
  const Tiles& tl = pl.tl;
  pl.TB = kTB;
  pl.tasks = (tl.T + pl.TB - 1) / pl.TB;
  // V of one chunk (36 x CC x TB) within about 256 KiB of L2.
  const int64_t vmax = 64 * 1024;
  const int64_t chunks = std::max((36 * Cg * pl.TB + vmax - 1) / vmax, (Cg + kg::KC - 1) / kg::KC);
  pl.CC = (Cg + chunks - 1) / chunks;
  // Windows: TB consecutive tiles touch at most `touched` tile rows; a run of r of them in one
  // image and phase needs 4 r + 2 input rows.
  const int64_t touched = std::min(pl.TB, (pl.TB - 1) / tl.tw_min + 2);
  pl.ld = kg::round_up(4 * tl.tw_max + 4, 8);
  pl.win_floats = 6 * touched * pl.ld;
  pl.padded = false, pl.p_floats = 0;
  pl.Hpp = 4 * tl.count(0, p.Ho) + 2, pl.pf = pl.Hpp * pl.ld;
  auto size = [&](int64_t ob) {
    pl.OB = ob, pl.OBp = kg::round_up(ob, kg::MR), pl.Q = pl.OBp / kg::MR;
    // +16: the 36 xi rows the filter transform writes at once do not share cache sets.
    pl.u_xs = base::align_floats(p.groups * pl.OBp * Cg) + 16;
    pl.u_floats = 36 * pl.u_xs;
    pl.per_thread = base::align_floats(pl.v_floats()) + base::align_floats(pl.m_floats()) +
                    base::align_floats(pl.win_floats) + base::align_floats(8 * 16 * tl.d);
  };
  size(Og);
  const double budget = budget_floats(p);
  for (int64_t ob = kg::round_up(Og, kg::MR) - kg::MR; pl.total() > budget && ob >= kg::MR;
       ob -= kg::MR)
    size(ob);
  // Equal blocks of whole panels.
  int64_t blocks = (Og + pl.OB - 1) / pl.OB;
  const int64_t ob = std::min(Og, kg::round_up((Og + blocks - 1) / blocks, kg::MR));
  size(ob);
  pl.blocks = (Og + ob - 1) / ob;
  // Dilated layers: the padded input instead of per-task windows when it fits beside the same
  // blocks (gathering every d-th column once per call, not once per task and row it serves; for
  // d = 1 the windows' copies are cheap and stay in L1, and measured faster).
  if (tl.d == 1) return pl;
  Plan pp = pl;
  pp.padded = true, pp.win_floats = 0;
  pp.p_floats = base::align_floats(p.N * p.C * tl.d * tl.d * pl.pf);
  pp.per_thread = pl.per_thread - base::align_floats(pl.win_floats);
  if (pp.total() <= budget) return pp;
  return pl;
}

// True when the plan fits the budget with output-channel blocks of at least 16.
bool fits(const ConvParams& p, const Plan& pl) {
  return pl.total() <= budget_floats(p) && pl.OB >= std::min<int64_t>(16, p.Og());
}

// The threads a call may use: the most, up to max_nt, whose per-thread buffers still fit (the
// dispatch checks one thread, so its choice, and the bits, never depend on the thread count;
// more threads than fit just wait).
int fit_threads(const ConvParams& p, int max_nt) {
  int nt = std::max(max_nt, 1);
  while (nt > 1 && !fits(p, plan(p, nt))) --nt;
  return nt;
}

std::size_t wino_floats(const ConvParams& p, int nt) {
  return static_cast<std::size_t>(plan(p, fit_threads(p, nt)).total());
}

const char* budget_why_not(const ConvParams& p) {
  if (!fits(p, plan(p, 1)))
    return "transformed kernels and tiles would exceed max(25% of the im2col buffer, 1 MiB)";
  return nullptr;
}

// Where problem p's kernels live: tap t (= 3 kh + kw) of group g, output o, input c is at
// base[g * group + o * out + c * in + t * tap] (the forward's weights, or bwd_data's flipped,
// transposed view of them).
struct WeightLayout {
  const float* base;
  int64_t group, out, in, tap;
};

// Runs F(4x4, 3x3) on problem p; false when an input or weight was not finite (y then holds
// garbage and the caller runs another implementation).
bool wino_run(const ConvParams& p, const float* x, const WeightLayout& wl, const float* bias,
              float* y, float* ws, int max_nt, int nthreads) {
  max_nt = fit_threads(p, max_nt);
  nthreads = std::min(nthreads, max_nt);
  const Plan pl = plan(p, max_nt);  // the plan the workspace was booked for
  const int64_t Cg = p.Cg(), Og = p.Og(), G = p.groups, d = pl.tl.d, TB = pl.TB;
  const int64_t HW = p.H * p.W, HoWo = p.Ho * p.Wo;
  float* U = ws;                // [xi][g][q]: MR-row panel q of the block, a[c * MR + i]
  float* P = ws + pl.u_floats;  // the padded input, if pl.padded
  float* per = P + pl.p_floats;
  const int64_t units_max = G * pl.tasks * pl.Q;
  const int nt = static_cast<int>(std::clamp<int64_t>(units_max, 1, nthreads));
  Barrier barrier;
  std::atomic<bool> nonfinite{false};
  std::vector<std::atomic<int64_t>> next_claim(static_cast<std::size_t>(pl.blocks));
  base::parallel_run(nt, [&](int tid, int n_threads) {
    float* V = per + tid * pl.per_thread;                // [xi]: cc x used in NR-column panels
    float* M = V + base::align_floats(pl.v_floats());    // [o][xi][slot]
    float* win = M + base::align_floats(pl.m_floats());  // the task's input windows
    Slots sl;
    float* stage = win + base::align_floats(pl.win_floats);  // 8 tiles of 4 x 4 at stride d
    float* out_at[kTB];
    int64_t out_step[kTB], out_ld[kTB];
    bool finite = true;
    for (int64_t blk = 0; blk < pl.blocks; ++blk) {
      const int64_t ob = blk * pl.OB, OBc = std::min(pl.OB, Og - ob);
      const int64_t Qc = (OBc + kg::MR - 1) / kg::MR;  // panels in use
      // Kernels of this block: U[xi][g] rows 0 .. OBc, one MR-row panel per call.
      {
        const auto [q0, q1] = base::split_range(G * Qc, tid, n_threads);
        for (int64_t gq = q0; gq < q1; ++gq) {
          const int64_t g = gq / Qc, q = gq % Qc;
          const int n = static_cast<int>(std::min<int64_t>(kg::MR, OBc - q * kg::MR));
          finite &= kw::f32_wino_f4x3_ftrans_panel__avx2_fma(
              wl.base + g * wl.group + (ob + q * kg::MR) * wl.out, wl.out, wl.in, wl.tap, n, Cg,
              U + (g * pl.Q + q) * kg::MR * Cg, pl.u_xs);
        }
      }
      if (blk == 0 && pl.padded) {
        // The padded input: phase plane (a, b) of image n, channel c at P + ((n C + c) d + a) d
        // + b planes.
        const auto [i0, i1] = base::split_range(p.N * p.C * d * d, tid, n_threads);
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t a = i / d % d, b = i % d;
          finite &= kw::f32_wino_window__avx2(x + i / (d * d) * HW, p.H, p.W, a - p.pad_t,
                                              b - p.pad_l, d, pl.Hpp, pl.ld, P + i * pl.pf, pl.ld);
        }
      }
      barrier.wait(n_threads);
      // Where tasks are plentiful (8 or more per thread) they go out whole from a counter, so a
      // thread that runs slower (the machine is shared) takes fewer. Otherwise each thread takes
      // an equal run of units (a task's panels are then split between at most two threads, and
      // each transforms the task's tiles once).
      const int64_t units = G * pl.tasks * Qc;
      const bool claimed = G * pl.tasks >= 8 * n_threads;
      const auto [u0, u1] = claimed ? std::pair<int64_t, int64_t>{0, units}
                                    : base::split_range(units, tid, n_threads);
      std::atomic<int64_t>& counter = next_claim[static_cast<std::size_t>(blk)];
      for (int64_t u = u0; u < u1;) {
        if (claimed) {
          u = counter.fetch_add(1, std::memory_order_relaxed) * Qc;
          if (u >= units) break;
        }
        const int64_t g = u / (pl.tasks * Qc), task = (u / Qc) % pl.tasks, qa = u % Qc;
        const int64_t qb = claimed ? Qc : std::min(Qc, qa + (u1 - u));
        if (!claimed) u += qb - qa;
        const int64_t t0 = task * TB, ns = std::min(TB, pl.tl.T - t0);
        const int64_t used = ns <= 8 ? 8 : kTB;  // slots ns .. used hold garbage
        wino::locate(p, pl.tl, pl.padded, pl.ld, pl.pf, t0, ns, sl);
        for (int64_t s = ns; s < used; ++s) sl.src[s] = sl.src[ns - 1];  // unused slots
        for (int64_t c0 = 0; c0 < Cg; c0 += pl.CC) {
          const int64_t cc = std::min(pl.CC, Cg - c0);
          const int64_t vxs = cc * kTB + 16;  // V's xi stride (+16: no cache-set aliasing)
          // Input transform of channels c0 .. c0+cc: V[xi][slot panel][c - c0][slot % NR].
          for (int64_t c = c0; c < c0 + cc; ++c) {
            const float* base = win;  // where the slots' offsets point for channel c
            if (pl.padded) {
              base = P + (g * Cg + c) * d * d * pl.pf;
              if (c + 1 < Cg)  // the next channel's rows, while this one is transformed
                for (int k = 0; k < sl.nseg; ++k) {
                  const Slots::Seg& sg = sl.seg[k];
                  wino::prefetch_rows<false>(
                      base + (((sg.n * p.C + 1) * d + sg.a) * d + sg.b) * pl.pf, pl.ld, 4 * sg.ty0,
                      1, sg.rows, 0, pl.ld);
                }
            } else {
              for (int k = 0; k < sl.nseg; ++k) {
                const Slots::Seg& sg = sl.seg[k];
                const float* xc = x + (sg.n * p.C + g * Cg + c) * HW;
                finite &= kw::f32_wino_window__avx2(xc, p.H, p.W, sg.ih0, sg.iw0, d, sg.rows, pl.ld,
                                                    win + sg.woff, pl.ld);
                if (c + 1 < Cg) {  // the next channel's rows, while this one is transformed
                  const int64_t r0 = std::max<int64_t>(0, wino::ceil_div(-sg.ih0, d));
                  const int64_t r1 = std::min(sg.rows, wino::ceil_div(p.H - sg.ih0, d));
                  if (r0 < r1)
                    wino::prefetch_rows<false>(xc + HW, p.W, sg.ih0 + d * r0, d, r1 - r0, sg.iw0,
                                               sg.iw0 + d * pl.ld);
                }
              }
            }
            for (int64_t s = 0; s < used; s += 8) {
              const float* tp[8];
              for (int t = 0; t < 8; ++t) tp[t] = base + sl.src[s + t];
              kw::f32_wino_f4x3_itrans8__avx2_fma(tp, pl.ld, V + (c - c0) * kg::NR + s, vxs);
            }
          }
          // 36 GEMMs: M[xi] (+)= U[xi](panels qa .. qb, c0 .. c0+cc) . V[xi] (cc <= KC).
          const int64_t ldm = 36 * kTB;
          for (int xi = 0; xi < 36; ++xi) {
            const float* Ua = U + xi * pl.u_xs + (g * pl.Q + qa) * kg::MR * Cg + c0 * kg::MR;
            float* Mx = M + xi * kTB;
            if (used == kTB) {
              for (int64_t q = qa; q < qb; ++q, Ua += kg::MR * Cg, Mx += kg::MR * ldm)
                kg::f32_gemm_6x16__avx2_fma(cc, Ua, V + xi * vxs, Mx, ldm,
                                            std::min(kg::MR, OBc - q * kg::MR), kg::NR, c0 > 0);
            } else {  // 8 columns: two panels at a time
              int64_t q = qa;
              for (; q + 1 < qb; q += 2, Ua += 2 * kg::MR * Cg, Mx += 2 * kg::MR * ldm)
                kw::f32_wino_gemm_12x8__avx2_fma(cc, Ua, Ua + kg::MR * Cg, V + xi * vxs, Mx, ldm,
                                                 std::min(2 * kg::MR, OBc - q * kg::MR), c0 > 0);
              if (q < qb)
                kw::f32_wino_gemm_6x8__avx2_fma(cc, Ua, V + xi * vxs, Mx, ldm,
                                                std::min(kg::MR, OBc - q * kg::MR), c0 > 0);
            }
          }
        }
        // Output transform, 8 tiles at a time: whole tiles (dense outputs) straight to y at
        // out_at + o * out_step, row stride out_ld; the others through `stage`, then clipped.
        for (int64_t s = 0; s < used; ++s) {
          const bool whole = s < ns && sl.nh[s] == 4 && sl.nw[s] == 4;
          out_at[s] = whole ? y + sl.y[s] : stage + (s % 8) * 16 * d;
          out_step[s] = whole ? HoWo : 0;
          out_ld[s] = whole ? d * p.Wo : 4 * d;
        }
        const int64_t r1 = std::min(OBc, qb * kg::MR);
        for (int64_t r = qa * kg::MR; r < r1; ++r) {
          const int64_t o = g * Og + ob + r;
          const float bo = bias ? bias[o] : 0.f;
          float* yo = y + o * HoWo;
          const float* Mo = M + (r - qa * kg::MR) * 36 * kTB;
          if (r + 1 < r1)  // the next channel's output rows, while this one is written
            for (int k = 0; k < sl.nseg; ++k) {
              const Slots::Seg& sg = sl.seg[k];
              const int64_t nr =
                  std::min(4 * (sg.ty1 - sg.ty0 + 1), pl.tl.len(sg.a, p.Ho) - 4 * sg.ty0);
              wino::prefetch_rows<true>(yo + HoWo + sg.n * p.O * HoWo, p.Wo, sg.a + d * 4 * sg.ty0,
                                        d, nr, 0, p.Wo);
            }
          for (int64_t s = 0; s < ns; s += 8) {
            float* dst[8];
            for (int t = 0; t < 8; ++t) dst[t] = out_at[s + t] + o * out_step[s + t];
            kw::f32_wino_f4x3_otrans8__avx2_fma(Mo + s, kTB, bo, dst, out_ld + s, d);
            for (int t = 0; t < 8 && s + t < ns; ++t) {
              if (out_step[s + t] != 0) continue;  // written in place
              float* yt = yo + sl.y[s + t];
              const float* st = dst[t];
              for (int i = 0; i < sl.nh[s + t]; ++i)
                for (int j = 0; j < sl.nw[s + t]; ++j) yt[d * (i * p.Wo + j)] = st[d * (4 * i + j)];
            }
          }
        }
      }
      if (blk + 1 < pl.blocks) barrier.wait(n_threads);  // before U is overwritten
    }
    if (!finite) nonfinite.store(true, std::memory_order_relaxed);
  });
  return !nonfinite.load(std::memory_order_relaxed);
}

void note_fallback(const char* pass) {
  impl::note_fallback("winograd_f4x3_avx2", pass, "non-finite input or weights",
                      "gemm_avx2 so NaN/Inf propagate as in a direct convolution");
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
  const int64_t Cg = p.Cg(), Og = p.Og();
  const WeightLayout wl{a.w, Og * Cg * 9, Cg * 9, 9, 1};
  if (!wino_run(p, a.x, wl, a.b, a.y, ws, max_nt, base::threads_for(p.flops(), max_nt))) {
    note_fallback("fwd");
    gemm_fwd_avx2.run(p, a, ws, max_nt);
  }
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
  const int64_t Cg = p.Cg(), Og = p.Og();
  // Problem q: input gy (channels O), output gx (channels C); q's (o, c) are p's (c, o), and
  // q's tap t is p's tap 8 - t (the kernel flipped).
  const WeightLayout wl{a.w + 8, Og * Cg * 9, 9, Cg * 9, -1};
  if (!wino_run(transposed3(p), a.gy, wl, nullptr, a.gx, ws, max_nt,
                base::threads_for(p.flops(), max_nt))) {
    note_fallback("bwd_data");
    gemm_bwd_data_avx2.run(p, a, ws, max_nt);
  }
}

}  // namespace

const Impl wino_fwd_avx2{"winograd_f4x3_avx2", fwd_why_not, fwd_ws, fwd};
const Impl wino_bwd_data_avx2{"winograd_f4x3_avx2", bwd_data_why_not, bwd_data_ws, bwd_data};

}  // namespace convkit::conv::impl
