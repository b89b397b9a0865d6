// "winograd_f4x3_avx2" backward-weight: the adjoint of the forward's F(4x4, 3x3). The forward
// computes each 4 x 4 output tile as y = A^T [(G g G^T) .* V] A, V = B^T d B of its 6 x 6 input
// tile d, so the gradient of a kernel g over all tiles is
//
//   gw = G^T [ sum over tiles of (A e A^T) .* V ] G        e = the tile of the output gradient
//
// exactly (in real arithmetic) the direct sum of gy x x over the tile's outputs. Per group:
//   V[xi] (T x Cg)    = B^T d B of every input tile (the forward's input transform)
//   E[xi] (Og x T)    = A e A^T of every output-gradient tile (zeros past the output's edge)
//   dU[xi] (Og x Cg)  = E[xi] . V[xi]            36 GEMMs on the packed SGEMM micro-kernel, K = T
//   gw[o][c] (3 x 3)  = G^T dU[o][c] G
// 36 multiplies per tile and channel pair instead of the direct 144.
//
// The transforms run 8 tiles of one channel per call (a lane per tile); 8 input channels (6
// output channels) of them are transposed in registers into the rows of a 16-column B panel (an
// MR-row A panel), so the GEMMs run the same micro-kernel as everything else.
// Blocking: the tiles go in chunks of kt (a multiple of 16, at most 256: the GEMMs' K) whose E and
// V panels live in the workspace; dU gathers the chunks in order (the micro-kernel accumulates).
// When E, V and dU of all channels exceed the budget, the channels go in blocks (output x input),
// each transforming its own rows again. One parallel region per call: per chunk the threads share
// out the transforms (groups of input and output-gradient channels), meet at a barrier, share out
// the (xi, B panel) GEMM units, and meet again; then they share out the kernels' G^T dU G. Every
// dU element is the same sum in the same order (chunk by chunk, each the micro-kernel's k order),
// and kt and the blocks depend only on the shape, so the bits do not depend on the thread count.
//
// Error: the transforms mix a kernel's 9 taps, so the rounding error of each scales with the
// largest direct-sum magnitude S among them (a tap that reads mostly padding has a far smaller S
// of its own); tests/conv/impl_test.cpp checks gw within 4x the direct-sum bound over that S plus
// 256 u S (measured at most 50 u S over 1150 random shapes).
// NaN/Inf: the window copies report non-finite x or gy; such calls run the implicit GEMM instead,
// whose NaN/Inf follow the direct sums.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "base/aligned.h"
#include "base/parallel.h"
#include "conv/impls.h"
#include "conv/winograd_tiles.h"
#include "kernels/gemm/gemm.h"
#include "kernels/winograd/winograd.h"

namespace convkit::conv::impl {

namespace {

namespace kg = kernels::gemm;
namespace kw = kernels::winograd;
using kg::MR;
using kg::NR;
using wino::kTB;

struct Plan {
  wino::Tiles tl;
  int64_t kt, chunks;  // tiles per chunk (a multiple of kTB; the GEMMs' K) and chunks
  int64_t OB, CB;      // output and input channels per block (multiples of MR and NR)
  int64_t ob_blocks, cb_blocks;
  int64_t exs, vxs, dxs;   // xi strides of E (MR-row panels), V (NR-column panels) and dU
  int64_t ld, xwin, gwin;  // window row stride; a task's x and gy windows
  static constexpr int64_t kTmp = 2 * 36 * 64;  // transforms of 8 channels x 16 tiles
  double shared() const { return 36.0 * double(exs + vxs + dxs); }
  double per_thread() const {
    return double(base::align_floats(xwin) + base::align_floats(gwin) + kTmp);
  }
};

// Threads whose windows the budget check reserves room for: the plan must not depend on the
// thread count (the bits would), and the windows are small.
constexpr int kReservedThreads = 4;

Plan make_plan(const ConvParams& p, int64_t kt, int64_t ob, int64_t cb) {
  Plan pl;
  pl.tl = wino::tile_grid(p);
  const int64_t Og = p.Og(), Cg = p.Cg();
  pl.kt = kt;
  pl.chunks = (pl.tl.T + kt - 1) / kt;
  // Equal blocks of whole panels.
  pl.ob_blocks = (Og + ob - 1) / ob;
  pl.OB = kg::round_up((Og + pl.ob_blocks - 1) / pl.ob_blocks, MR);
  pl.cb_blocks = (Cg + cb - 1) / cb;
  pl.CB = kg::round_up((Cg + pl.cb_blocks - 1) / pl.cb_blocks, NR);
  // +16: the 36 xi rows a transform writes at once do not share cache sets.
  pl.exs = pl.OB * kt + 16, pl.vxs = pl.CB * kt + 16, pl.dxs = pl.OB * pl.CB + 16;
  // Windows of one task (kTB consecutive tiles touch at most `touched` tile rows): x needs 4 r + 2
  // rows for a run of r tile rows, gy 4 r.
  const int64_t touched = std::min(kTB, (kTB - 1) / pl.tl.tw_min + 2);
  pl.ld = kg::round_up(4 * pl.tl.tw_max + 4, 8);
  pl.xwin = 6 * touched * pl.ld;
  pl.gwin = 4 * touched * pl.ld;
  return pl;
}

bool fits(const ConvParams& p, const Plan& pl) {
  return pl.shared() + kReservedThreads * pl.per_thread() <= wino::budget_floats(p);
}

// Long chunks first (fewer passes over dU), then whole channel ranges (blocks transform their
// rows again); halves the larger block until it fits.
Plan plan(const ConvParams& p) {
  const int64_t T = wino::tile_grid(p).T;
  // Chunks of nearly equal length (a short last chunk would cost a whole pass over dU).
  auto balanced = [T](int64_t kmax) {
    const int64_t chunks = (T + kmax - 1) / kmax;
    return kg::round_up((T + chunks - 1) / chunks, kTB);
  };
  for (const int64_t min_block : {int64_t{48}, int64_t{16}}) {
    for (int64_t kmax = 256;; kmax /= 2) {
      const int64_t kt = balanced(kmax);
      int64_t ob = kg::round_up(p.Og(), MR), cb = kg::round_up(p.Cg(), NR);
      Plan pl = make_plan(p, kt, ob, cb);
      while (!fits(p, pl) && std::max(ob, cb) > min_block) {
        if (ob >= cb)
          ob = kg::round_up(ob / 2, MR);
        else
          cb = kg::round_up(cb / 2, NR);
        pl = make_plan(p, kt, ob, cb);
      }
      if (fits(p, pl)) return pl;
      if (kmax <= kTB) break;
    }
  }
  Plan none = make_plan(p, kTB, MR, NR);
  none.kt = 0;
  return none;
}

const char* why_not(const ConvParams& p) {
  if (const char* why = wino::geometry_why_not(p)) return why;
  if (plan(p).kt == 0)
    return "transformed tiles and kernels would exceed max(25% of the im2col buffer, 1 MiB)";
  return nullptr;
}

std::size_t wino_floats(const ConvParams& p, int nt) {
  const Plan pl = plan(p);
  return base::align_floats(36 * pl.exs) + base::align_floats(36 * pl.vxs) +
         base::align_floats(36 * pl.dxs) +
         static_cast<std::size_t>(std::max(nt, 1) * pl.per_thread());
}

std::size_t ws_floats(const ConvParams& p, int nt) {
  return std::max(wino_floats(p, nt), gemm_bwd_weight_avx2.workspace_floats(p, nt));
}

// One task's tiles: their slots, and each one's offset (and each segment's) in the gy window.
struct TaskSlots {
  wino::Slots sl;
  int64_t ns;
  int64_t gsrc[kTB], goff[kTB];
};

// gw by Winograd; false when x or gy held Inf or NaN (gw then holds garbage).
bool run_wino(const ConvParams& p, const float* x, const float* gy, float* gw, float* ws,
              int nthreads) {
  const Plan pl = plan(p);
  const wino::Tiles& tl = pl.tl;
  const int64_t Cg = p.Cg(), Og = p.Og(), d = tl.d, HW = p.H * p.W, HoWo = p.Ho * p.Wo;
  float* E = ws;                                      // [xi][MR-row panel][tile][MR]
  float* V = E + base::align_floats(36 * pl.exs);     // [xi][NR-column panel][tile][NR]
  float* dU = V + base::align_floats(36 * pl.vxs);    // [xi][o - ob][c - cb]
  float* per = dU + base::align_floats(36 * pl.dxs);  // each thread's windows and transforms
  const int64_t per_thread = static_cast<int64_t>(pl.per_thread());
  const int nt = std::max(1, nthreads);
  wino::Barrier barrier;
  std::atomic<bool> nonfinite{false};
  base::parallel_run(nt, [&](int tid, int n_threads) {
    float* xwin = per + tid * per_thread;
    float* gwin = xwin + base::align_floats(pl.xwin);
    float* tmp = gwin + base::align_floats(pl.gwin);  // [half][xi][channel][8 tiles]
    std::vector<TaskSlots> tasks(static_cast<std::size_t>((pl.kt + kTB - 1) / kTB));
    bool finite = true;
    for (int64_t g = 0; g < p.groups; ++g)
      for (int64_t cbk = 0; cbk < pl.cb_blocks; ++cbk)
        for (int64_t obk = 0; obk < pl.ob_blocks; ++obk) {
          const int64_t c0 = cbk * pl.CB, cn = std::min(pl.CB, Cg - c0);
          const int64_t o0 = obk * pl.OB, on = std::min(pl.OB, Og - o0);
          const int64_t cgroups = (cn + 7) / 8, ogroups = (on + MR - 1) / MR;
          for (int64_t ch = 0; ch < pl.chunks; ++ch) {
            const int64_t T0 = ch * pl.kt, kc = std::min(pl.kt, tl.T - T0);
            // Transforms, task by task (kTB tiles; the last task's unused slots repeat a tile, and
            // the GEMMs never read them): this thread's share of the groups of 8 input channels
            // (half a V panel) and of MR output-gradient channels (an E panel), each transformed
            // into tmp and then transposed into its panels' rows.
            // Units are split by their channels (a V group has 8, an E group MR).
            const auto [r0, r1] = base::split_range(cn + on, tid, n_threads);
            auto unit_of = [&](int64_t r) {  // the first unit starting at or after channel r
              return r <= cn ? (r + 7) / 8 : cgroups + (r - cn + MR - 1) / MR;
            };
            const int64_t u0 = unit_of(r0), u1 = unit_of(r1);
            // Each task's slots and gy window offsets, located once for all the thread's units.
            const int64_t ntasks = u0 < u1 ? (kc + kTB - 1) / kTB : 0;
            for (int64_t j = 0; j < ntasks; ++j) {
              TaskSlots& ts = tasks[static_cast<std::size_t>(j)];
              wino::Slots& sl = ts.sl;
              const int64_t t0 = T0 + j * kTB, ns = std::min(kTB, T0 + kc - t0);
              ts.ns = ns;
              wino::locate(p, tl, false, pl.ld, 0, t0, ns, sl);
              for (int k = 0, off = 0; k < sl.nseg; ++k) {
                const wino::Slots::Seg& sg = sl.seg[k];
                ts.goff[k] = off;
                off += 4 * (sg.ty1 - sg.ty0 + 1) * pl.ld;
                const int64_t s1 = k + 1 < sl.nseg ? sl.seg[k + 1].s0 : ns;
                for (int64_t s = sg.s0; s < s1; ++s)
                  ts.gsrc[s] = ts.goff[k] + (sl.src[s] - sg.woff);
              }
              for (int64_t s = ns; s < kTB; ++s)
                sl.src[s] = sl.src[ns - 1], ts.gsrc[s] = ts.gsrc[ns - 1];
            }
            // Unit by unit, its channels' windows task after task: each plane is read in order,
            // rows a task shares with the next still in cache (task by task, each unit's planes
            // were revisited once per task and the window loads stalled: 30% of the ResNet 3x3
            // weight gradient's samples).
            for (int64_t u = u0; u < u1; ++u)
              for (int64_t j = 0; j < ntasks; ++j) {
                const TaskSlots& ts = tasks[static_cast<std::size_t>(j)];
                const wino::Slots& sl = ts.sl;
                const int64_t* gsrc = ts.gsrc;
                const int64_t* goff = ts.goff;
                const int64_t halves = ts.ns <= 8 ? 1 : 2;
                {
                  const bool is_v = u < cgroups;
                  const int64_t first = is_v ? c0 + 8 * u : o0 + MR * (u - cgroups);
                  const int64_t rows = is_v ? std::min<int64_t>(8, cn - 8 * u)
                                            : std::min(MR, on - MR * (u - cgroups));
                  const float* tp[8];
                  for (int64_t r = 0; r < rows; ++r) {
                    for (int k = 0; k < sl.nseg; ++k) {
                      const wino::Slots::Seg& sg = sl.seg[k];
                      // The plane, its rows and columns: x's (for V) or gy's (for E).
                      const float* plane = is_v ? x + (sg.n * p.C + g * Cg + first + r) * HW
                                                : gy + (sg.n * p.O + g * Og + first + r) * HoWo;
                      const int64_t H = is_v ? p.H : p.Ho, W = is_v ? p.W : p.Wo;
                      const int64_t ih0 = is_v ? sg.ih0 : sg.a + 4 * d * sg.ty0;
                      const int64_t iw0 = is_v ? sg.iw0 : sg.b;
                      const int64_t wrows = is_v ? sg.rows : 4 * (sg.ty1 - sg.ty0 + 1);
                      finite &=
                          kw::f32_wino_window__avx2(plane, H, W, ih0, iw0, d, wrows, pl.ld,
                                                    is_v ? xwin + sg.woff : gwin + goff[k], pl.ld);
                      if (r + 1 < rows) {  // the next channel's rows, while this one is transformed
                        const int64_t a0 = std::max<int64_t>(0, wino::ceil_div(-ih0, d));
                        const int64_t a1 = std::min(wrows, wino::ceil_div(H - ih0, d));
                        if (a0 < a1)
                          wino::prefetch_rows<false>(plane + (is_v ? HW : HoWo), W, ih0 + d * a0, d,
                                                     a1 - a0, iw0, iw0 + d * pl.ld);
                      }
                    }
                    for (int64_t h = 0; h < halves; ++h) {
                      float* dst = tmp + h * 36 * 64 + r * 8;
                      for (int t = 0; t < 8; ++t)
                        tp[t] = is_v ? xwin + sl.src[8 * h + t] : gwin + gsrc[8 * h + t];
                      if (is_v)
                        kw::f32_wino_f4x3_itrans8__avx2_fma(tp, pl.ld, dst, 64);
                      else
                        kw::f32_wino_f4x3_gtrans8__avx2_fma(tp, pl.ld, dst, 64);
                    }
                  }
                  // Rows past the block's channels: zeros (their GEMM outputs are never used).
                  for (int64_t h = 0; h < halves; ++h)
                    for (int xi = 0; xi < 36; ++xi)
                      std::fill(tmp + (h * 36 + xi) * 64 + rows * 8, tmp + (h * 36 + xi + 1) * 64,
                                0.f);
                  for (int64_t h = 0; h < halves; ++h) {
                    const int64_t k = j * kTB + 8 * h;  // the tiles' row in the panels
                    if (is_v) {
                      float* panel = V + (8 * u / NR) * NR * pl.kt + k * NR;
                      kw::f32_wino_panel_rows__avx2(tmp + h * 36 * 64, 64, 8, panel + 8 * u % NR,
                                                    pl.vxs, NR);
                      if (u + 1 == cgroups && 8 * u % NR == 0)  // the last panel's unused half
                        for (int xi = 0; xi < 36; ++xi)
                          for (int64_t t = 0; t < 8; ++t)
                            std::fill_n(panel + xi * pl.vxs + t * NR + 8, 8, 0.f);
                    } else {
                      kw::f32_wino_panel_rows__avx2(tmp + h * 36 * 64, 64, static_cast<int>(MR),
                                                    E + (u - cgroups) * MR * pl.kt + k * MR, pl.exs,
                                                    MR);
                    }
                  }
                }
              }
            barrier.wait(n_threads);
            // dU[xi] (+)= E[xi] . V[xi]^T over this chunk's tiles: (xi, V panel) units.
            const int64_t cpanels = (cn + NR - 1) / NR;
            const auto [d0, d1] = base::split_range(36 * cpanels, tid, n_threads);
            for (int64_t du = d0; du < d1; ++du) {
              const int64_t xi = du / cpanels, cp = du % cpanels;
              const float* b = V + xi * pl.vxs + cp * NR * pl.kt;
              for (int64_t q = 0; q < ogroups; ++q)
                kg::f32_gemm_6x16__avx2_fma(kc, E + xi * pl.exs + q * MR * pl.kt, b,
                                            dU + xi * pl.dxs + q * MR * pl.CB + cp * NR, pl.CB,
                                            std::min(MR, on - q * MR), std::min(NR, cn - cp * NR),
                                            ch > 0);
            }
            barrier.wait(n_threads);
          }
          // gw of the block's kernels, 8 input channels at a time (the next block's GEMMs come
          // after a barrier).
          const auto [f0, f1] = base::split_range(on * cgroups, tid, n_threads);
          for (int64_t f = f0; f < f1; ++f) {
            const int64_t oo = f / cgroups, cc = 8 * (f % cgroups);
            kw::f32_wino_f4x3_wgrad8__avx2_fma(dU + oo * pl.CB + cc, pl.dxs,
                                               std::min<int64_t>(8, cn - cc),
                                               gw + ((g * Og + o0 + oo) * Cg + c0 + cc) * 9);
          }
        }
    if (!finite) nonfinite.store(true, std::memory_order_relaxed);
  });
  return !nonfinite.load(std::memory_order_relaxed);
}

void run(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  const int nthreads = base::threads_for(p.flops(), max_nt);
  if (a.gb) bias_grad(p, a.gy, a.gb, nthreads);
  if (!a.gw) return;
  if (!run_wino(p, a.x, a.gy, a.gw, ws, nthreads)) {
    note_fallback("winograd_f4x3_avx2", "bwd_weight", "non-finite input or output gradients",
                  "gemm_avx2 so NaN/Inf propagate as in a direct convolution");
    ConvArgs b = a;
    b.gb = nullptr;
    gemm_bwd_weight_avx2.run(p, b, ws, max_nt);
  }
}

}  // namespace

const Impl wino_bwd_weight_avx2{"winograd_f4x3_avx2", why_not, ws_floats, run};

}  // namespace convkit::conv::impl
