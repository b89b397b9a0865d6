// "gemm_avx2" / "gemm_generic": convolution as implicit GEMM on the packed SGEMM core.
//
//   forward      y_ng (Og x P) = w_g (Og x K) . col_ng (K x P)     K = Cg kH kW, P = Ho Wo
//                (col packed block by block from x; 1x1 stride 1 is the GEMM on x itself)
//   bwd_data     stride 1: the forward GEMM of gy with the flipped, transposed kernel
//                  (gx = conv(gy, w'), w'[c][o][kh][kw] = w[o][c][kH-1-kh][kW-1-kw], pad
//                  d(k-1)-pad)
//                stride > 1, big layers: one GEMM per phase of gx (sub-pixel decomposition, see
//                  bwd_data_phases); otherwise dcol (K x P) = w_g^T . gy_ng, block by block,
//                  scattered by col2im
//   bwd_weight   gw_g (Og x K) = gy_g (Og x N P) . col^T (N P x K), the reduction over all images
//
// Threads split outputs (forward: (group, image, column block) tasks; bwd_data stride > 1: (group,
// image, phase block) tasks or input channels; bwd_weight: gw columns, or fixed chunks of the
// reduction whose partials are added in chunk order), and KC is fixed, so every output is the
// same sum in the same order whatever the thread count.
// Workspace: the packed weights plus one KC x NC B block per thread (bwd_data stride > 1 adds the
// thread's packed rows of w^T and an L2-sized dcol block; bwd_weight in chunks adds the partial
// gw) — far below the full im2col buffer.
#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <numeric>
#include <vector>

#include "base/aligned.h"
#include "base/cpu.h"
#include "base/parallel.h"
#include "conv/impls.h"
#include "kernels/direct/direct.h"
#include "kernels/gemm/gemm.h"
#include "kernels/pack/im2col_pack.h"
#include "kernels/pack/phase_planes.h"
#include "kernels/phase/interleave.h"

namespace convkit::conv::impl {

namespace {

using kernels::gemm::KC;
using kernels::gemm::MicroKernel;
using kernels::gemm::MR;
using kernels::gemm::NC;
using kernels::gemm::NR;
using kernels::gemm::packed_a_floats;
using kernels::gemm::packed_b_floats;
using kernels::gemm::round_up;
namespace pk = kernels::pack;

constexpr int64_t kBBlock = packed_b_floats(KC, NC);  // one thread's packed B block
constexpr int64_t kDcolCols = 256;                    // bwd_data stride > 1 column block

int64_t kdim(const ConvParams& p) {
  return p.Cg() * p.kH * p.kW;
}

// The kernels one ISA brings: the micro-kernel and the packs of the forward B blocks (im2col) and
// of the weight-gradient operands (col^T and gy, transposed while packed), and col2im.
struct GemmOps {
  MicroKernel uk;
  kernels::gemm::InplaceMicroKernel uki;
  kernels::gemm::RowsMicroKernel uka;
  void (*pack_col)(const pk::Im2col& g, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst);
  void (*pack_col_t)(const pk::Im2col& g, int64_t q0, int64_t qc, int64_t k0, int64_t nc,
                     float* dst);
  void (*pack_gy)(const float* gy0, int64_t image_stride, int64_t P, int64_t i0, int64_t mc,
                  int64_t q0, int64_t qc, float* dst);
  void (*col2im)(const pk::Im2col& g, const float* dcol, int64_t ld, int64_t k0, int64_t kc,
                 int64_t j0, int64_t nc, float* gx);
  void (*build_planes)(const pk::PhasePlanes& pp, int64_t c0, int64_t c1, int64_t oh0, int64_t rows,
                       float* buf);
  void (*pack_planes)(const pk::PhasePlanes& pp, const float* buf, int64_t c0, int64_t rows,
                      int64_t k0, int64_t kc, int64_t jc, int64_t nc, float* dst);
  void (*pack_runs)(int64_t kc, int64_t nc, int64_t col0, int64_t width, const float* const* run,
                    const int64_t* shift, float* dst);
  void (*pack_col_t_planes)(const pk::Im2col& g, pk::PhasePlanes& pp, int64_t q0, int64_t qc,
                            int64_t k0, int64_t nc, float* buf, float* dst);
  void (*pack_a_rows)(const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                      float* dst);
};
constexpr GemmOps kAvx2{kernels::gemm::f32_gemm_6x16__avx2_fma,
                        kernels::gemm::f32_gemm_6x16_inplace__avx2_fma,
                        kernels::gemm::f32_gemm_6x16_arows__avx2_fma,
                        pk::pack_im2col__avx2,
                        pk::pack_im2col_t__avx2,
                        pk::pack_a_gy__avx2,
                        pk::col2im_add__avx2,
                        pk::build_planes__avx2,
                        pk::pack_planes__avx2,
                        pk::pack_runs__avx2,
                        pk::pack_col_t_planes__avx2,
                        kernels::gemm::pack_a_rows__avx2};
constexpr GemmOps kGeneric{kernels::gemm::f32_gemm_6x16__generic,
                           kernels::gemm::f32_gemm_6x16_inplace__generic,
                           kernels::gemm::f32_gemm_6x16_arows__generic,
                           pk::pack_im2col,
                           pk::pack_im2col_t,
                           pk::pack_a_gy,
                           pk::col2im_add,
                           pk::build_planes,
                           pk::pack_planes,
                           pk::pack_runs,
                           pk::pack_col_t_planes,
                           kernels::gemm::pack_a_rows};

// Packs a whole M x K matrix as the GEMM's A operand: K-blocks of KC (block pc at dst + pc * Mp,
// Mp = M rounded up to MR), each MR-row panels (panel r at + r * kc), zero rows past M.
// row(i, k0, n, d) writes A(i, k0 + j) to d[j * MR], j < n: a run along one row, so the callers
// step through their weight layouts instead of dividing per element (a k / kH kW per float cost
// 30% of a backward-data pass with 2.4 M weights). Large matrices are packed by up to nthreads
// threads, panel by panel. packed_a_at finds the (i0, k0) block's first panel.
// Weight packs of this many floats or more are split between the threads.
constexpr int64_t kParallelPackFloats = int64_t{1} << 16;

template <typename Row>
void pack_a_whole(int64_t M, int64_t K, Row&& row, float* dst, int nthreads = 1) {
  const int64_t Mp = round_up(M, MR), panels = Mp / MR, kblocks = (K + KC - 1) / KC;
  const auto pack = [&](int64_t u0, int64_t u1) {  // units (K block, panel)
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t pc = u / panels * KC, r = u % panels * MR, kc = std::min(KC, K - pc);
      float* d = dst + pc * Mp + r * kc;
      for (int64_t i = 0; i < MR; ++i) {
        if (r + i < M) {
          row(r + i, pc, kc, d + i);
        } else {
          for (int64_t k = 0; k < kc; ++k) d[k * MR + i] = 0.f;
        }
      }
    }
  };
  const int64_t units = kblocks * panels;
  if (nthreads <= 1 || Mp * K < kParallelPackFloats) return pack(0, units);
  base::parallel_run(nthreads, [&](int tid, int nt) {
    const auto [u0, u1] = base::split_range(units, tid, nt);
    pack(u0, u1);
  });
}
inline const float* packed_a_at(const float* a, int64_t M, int64_t K, int64_t i0, int64_t k0) {
  return a + k0 * round_up(M, MR) + i0 * std::min(KC, K - k0);
}

// ---- forward ----------------------------------------------------------------------------------

// Packed weights of every group: group g's (Og x K) matrix as KC-blocks of MR panels.
int64_t packed_w_floats(const ConvParams& p) {
  return p.groups * packed_a_floats(p.Og(), kdim(p));
}

// c[i * ldc + j] += bias[i] for i < rows, j < cols: a forward GEMM's bias, after its sums.
void add_bias(float* c, int64_t ldc, int64_t rows, int64_t cols, const float* bias) {
  for (int64_t i = 0; i < rows; ++i) {
    float* row = c + i * ldc;
    for (int64_t j = 0; j < cols; ++j) row[j] += bias[i];
  }
}

// Forward from phase planes (kernels/pack/phase_planes.h), for the layers whose B blocks would
// otherwise be gathered run by run (kernels larger than 1x1 where Wo sW >= W: padded, strided). A
// task is a block of whole output rows of one image and group; per K block it copies the planes of
// the block's channels over its rows into a buffer of at most kPlaneFloats (beside the B block in
// L2), then packs every B block of its columns from there, each B row one run. The GEMM's C is the
// task's y rows, accumulated K block by K block: every element is the same sum in the same order as
// through gemm_columns, so the bits do not change. The last K block's micro-kernel calls add the
// bias as they store, with the rounding of a separate pass after the sums.
constexpr int64_t kPlaneFloats = 32768;

// Channels one K block touches at most.
int64_t plane_channels(const ConvParams& p) {
  const int64_t khw = p.kH * p.kW;
  return std::min(p.Cg(), (KC + khw - 2) / khw + 1);
}

// Output rows per task: as many as the buffer holds, and at least two tasks per thread where the
// images are few. 0: the planes path does not apply.
int64_t plane_rows(const ConvParams& p, int nthreads) {
  // A 1x1 kernel reads each x sample once: the planes would be a second copy for nothing.
  if (p.kH * p.kW == 1 || !pk::planes_fit(p)) return 0;
  const pk::PhasePlanes pp = pk::phase_planes(p, nullptr, 0, 0);
  const int64_t ch = plane_channels(p);
  if (pp.floats(ch, 1) > kPlaneFloats) return 0;
  const int64_t planes = p.groups * p.N;
  const int64_t want = (2 * nthreads + planes - 1) / planes;  // row blocks per image
  int64_t rows = std::max<int64_t>(1, (p.Ho + want - 1) / want);
  while (rows > 1 && pp.floats(ch, rows) > kPlaneFloats) --rows;
  return rows;
}

// Per thread: the B block and, on the planes path, a buffer for the most rows a task can have (one
// thread's; a call on fewer threads than the workspace was booked for gets taller tasks).
int64_t fwd_thread_floats(const ConvParams& p) {
  const int64_t rows = plane_rows(p, 1);
  return base::align_floats(kBBlock) +
         (rows ? base::align_floats(
                     pk::phase_planes(p, nullptr, 0, 0).floats(plane_channels(p), rows))
               : 0);
}

// Large forward weights on the planes path are read in place by the micro-kernel (uka), not
// packed: a layer with 512 x 4608 weights on 7 x 7 images packed 9.4 MB each call (13% of its
// time with the caches warm, and its workspace 2.7 times the im2col buffer).
constexpr int64_t kInPlaceWeights = int64_t{1} << 19;
bool weights_in_place(const ConvParams& p) {
  return packed_w_floats(p) >= kInPlaceWeights && plane_rows(p, 1) > 0;
}

// in_place: the forward itself (its weights may be read in place); bwd_data stride 1 packs its
// flipped kernel always.
std::size_t fwd_ws_for(const ConvParams& p, int nt, bool in_place) {
  const std::size_t w =
      in_place && weights_in_place(p) ? 0 : base::align_floats(packed_w_floats(p));
  return w + static_cast<std::size_t>(nt) * fwd_thread_floats(p);
}
std::size_t fwd_ws(const ConvParams& p, int nt) {
  return fwd_ws_for(p, nt, true);
}

// Lines of x that a B block after this one will read, prefetched (into L2) a few per micro-kernel
// call of this block, so that its pack finds them in cache. Per channel an image's positions read
// one contiguous span of x, a few KiB: too short for the hardware prefetcher to ramp up on. The
// packs stalled on x without this (the stride-2 forward's planes build: 64% of its samples on the
// load, 14% of the call).
class AheadLines {
 public:
  // Channels c0 .. c1 of image n in view v (the whole input x, group fixed by v), the span that
  // output positions j .. j + len of that image read. Two runs at most (a block spans two images
  // only where they are small; prefetching is a hint).
  void add(const pk::Im2col& v, int64_t n, int64_t j, int64_t len, int64_t c0, int64_t c1) {
    if (nruns_ == 2 || len <= 0 || c1 <= c0) return;
    const int64_t oh0 = j / v.Wo, oh1 = (j + len - 1) / v.Wo;
    const int64_t r0 = std::clamp<int64_t>(oh0 * v.sH - v.pad_t, 0, v.H);
    const int64_t r1 = std::clamp<int64_t>(oh1 * v.sH + (v.kH - 1) * v.dH - v.pad_t + 1, 0, v.H);
    if (r1 <= r0) return;
    int64_t begin = r0 * v.W, end = r1 * v.W;
    if (oh0 == oh1) {  // one output row: only the columns it reads
      const int64_t first = j % v.Wo * v.sW - v.pad_l;
      const int64_t last = (j + len - 1) % v.Wo * v.sW + (v.kW - 1) * v.dW - v.pad_l;
      begin += std::clamp<int64_t>(first, 0, v.W);
      end = (r1 - 1) * v.W + std::clamp<int64_t>(last + 1, 0, v.W);
    }
    if (end <= begin) return;
    Run& r = runs_[nruns_++];
    r.channel_stride = v.H * v.W;
    r.first = v.x + n * v.image_stride + c0 * r.channel_stride + begin;
    r.lines = (end - begin + 15) / 16 + 1;  // + 1: the span need not start on a line
    r.channels = c1 - c0;
  }
  int64_t total() const {
    int64_t t = 0;
    for (int i = 0; i < nruns_; ++i) t += runs_[i].lines * runs_[i].channels;
    return t;
  }
  void issue(int64_t count) {
    for (; count > 0 && run_ < nruns_; --count) {
      const Run& r = runs_[run_];
      __builtin_prefetch(r.first + c_ * r.channel_stride + l_ * 16, 0, 2);
      if (++l_ == r.lines) l_ = 0, ++c_;
      if (c_ == r.channels) c_ = 0, ++run_;
    }
  }

 private:
  struct Run {
    const float* first;
    int64_t channel_stride, lines, channels;
  };
  Run runs_[2];
  int nruns_ = 0, run_ = 0;
  int64_t c_ = 0, l_ = 0;  // the next line: channel and line of runs_[run_]
};

// wrows: the weights read in place (row-major, group g's row i at wrows + (g Og + i) K), else the
// packed wpack.
void fwd_planes(const GemmOps& ops, const ConvParams& p, const float* x, const float* wpack,
                const float* wrows, const float* b, float* y, float* thread_ws, int64_t rows,
                int nthreads) {
  const int64_t Og = p.Og(), K = kdim(p), P = p.Ho * p.Wo, G = p.groups, khw = p.kH * p.kW;
  const int64_t Mp = round_up(Og, MR);
  pk::PhasePlanes geometry = pk::phase_planes(p, x, 0, 0);
  const int64_t per_thread = fwd_thread_floats(p);
  const int64_t row_blocks = (p.Ho + rows - 1) / rows;
  const int64_t tasks = G * p.N * row_blocks;
  const int nt = static_cast<int>(std::min<int64_t>(nthreads, tasks));
  // Tasks are taken from a counter (base::parallel_tasks), each thread claiming its next task when
  // it starts its current one's last K block, so that it knows which x lines to prefetch.
  std::atomic<int64_t> counter{0};
  base::parallel_run(nt, [&](int tid, int) {
    float* bbuf = thread_ws + tid * per_thread;
    float* zbuf = bbuf + base::align_floats(kBBlock);
    pk::PhasePlanes pp = geometry;
    // Task t's place, and the channels of its K block at pc.
    struct Task {
      int64_t g, n, oh0, r;
    };
    const auto task = [&](int64_t t) {
      const int64_t oh0 = t % row_blocks * rows;
      return Task{t / (p.N * row_blocks), t / row_blocks % p.N, oh0, std::min(rows, p.Ho - oh0)};
    };
    const auto channels = [&](int64_t pc) {
      return std::pair{pc / khw, (pc + std::min(KC, K - pc) - 1) / khw + 1};
    };
    for (int64_t t = counter.fetch_add(1, std::memory_order_relaxed), next; t < tasks; t = next) {
      next = tasks;
      const auto [g, n, oh0, r] = task(t);
      const int64_t cols = r * p.Wo;
      pp.x = x + (n * p.C + g * p.Cg()) * p.H * p.W;
      float* yt = y + (n * p.O + g * Og) * P + oh0 * p.Wo;  // C (Og x cols), ldc P
      const float* wg = wpack + g * Mp * K;
      for (int64_t pc = 0; pc < K; pc += KC) {
        const int64_t kc = std::min(KC, K - pc);
        const auto [c0, c1] = channels(pc);
        const float* bias = b && pc + kc == K ? b + g * Og : nullptr;
        ops.build_planes(pp, c0, c1, oh0, r, zbuf);
        // The next block's x lines (this task's next K block, or the next task's first), spread
        // over this block's micro-kernel calls.
        AheadLines ahead;
        if (pc + KC < K) {
          const auto [a0, a1] = channels(pc + KC);
          ahead.add(pk::im2col_view(p, x, 0, g), n, oh0 * p.Wo, cols, a0, a1);
        } else if ((next = counter.fetch_add(1, std::memory_order_relaxed)) < tasks) {
          const Task u = task(next);
          const auto [a0, a1] = channels(0);
          ahead.add(pk::im2col_view(p, x, 0, u.g), u.n, u.oh0 * p.Wo, u.r * p.Wo, a0, a1);
        }
        const int64_t calls = (cols + NR - 1) / NR * ((Og + MR - 1) / MR);
        const int64_t per_call = (ahead.total() + calls - 1) / calls;
        for (int64_t jc = 0; jc < cols; jc += NC) {
          const int64_t nc = std::min(NC, cols - jc);
          ops.pack_planes(pp, zbuf, c0, r, pc, kc, jc, nc, bbuf);
          for (int64_t ic = 0; ic < Og; ic += kernels::gemm::MC) {
            const int64_t mc = std::min(kernels::gemm::MC, Og - ic);
            const float* ablk = packed_a_at(wg, Og, K, ic, pc);
            for (int64_t jr = 0; jr < nc; jr += NR)
              for (int64_t ir = 0; ir < mc; ir += MR) {
                ahead.issue(per_call);
                float* c = yt + (ic + ir) * P + jc + jr;
                const int64_t mr = std::min(MR, mc - ir), nr = std::min(NR, nc - jr);
                if (wrows) {
                  ops.uka(kc, wrows + (g * Og + ic + ir) * K + pc, K, bbuf + jr * kc, c, P, mr, nr,
                          pc > 0, bias ? bias + ic + ir : nullptr);
                } else if (bias) {  // the last K block adds the bias as it stores (InplaceArgs)
                  kernels::gemm::InplaceArgs extra;
                  extra.bias = bias + ic + ir;
                  ops.uki(kc, ablk + ir * kc, bbuf + jr * kc, c, P, mr, nr, pc > 0, extra);
                } else {
                  ops.uk(kc, ablk + ir * kc, bbuf + jr * kc, c, P, mr, nr, pc > 0);
                }
              }
          }
        }
      }
    }
  });
}

// The forward's row-major weights (group g's A(i, k) = w[(g Og + i) K + k]) in pack_a_whole's
// format, 8 k at a time by ops.pack_a_rows, (group, K block, panel) units split between the threads
// (a generic loop read 6 rows a float at a time on one thread: 13% of a forward with 512 x 4608
// weights on 7 x 7 images, the other thread waiting).
void pack_weight_rows(const GemmOps& ops, const ConvParams& p, const float* w, float* wpack,
                      int nthreads) {
  const int64_t Og = p.Og(), K = kdim(p), G = p.groups, Mp = round_up(Og, MR);
  const int64_t panels = Mp / MR, kblocks = (K + KC - 1) / KC, units = G * kblocks * panels;
  const int pack_nt = G * Mp * K >= kParallelPackFloats ? nthreads : 1;
  base::parallel_run(pack_nt, [&](int tid, int nt) {
    const auto [u0, u1] = base::split_range(units, tid, nt);
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t g = u / (kblocks * panels), pc = u / panels % kblocks * KC;
      const int64_t r = u % panels * MR, kc = std::min(KC, K - pc);
      ops.pack_a_rows(w + g * Og * K, K, r, std::min(MR, Og - r), pc, kc,
                      wpack + g * Mp * K + pc * Mp + r * kc);
    }
  });
}

// Forward GEMM over explicit operands. pack_w(wpack) packs every group's A operand (Og x K), group
// g at wpack + g * round_up(Og, MR) * K in pack_a_whole's format: the forward's row-major weights
// (pack_weight_rows), or bwd_data stride 1's flipped, transposed kernel (with gy as the input).
// w_rows: the forward's row-major weights, read in place where weights_in_place(p) (pack_w then
// does not run); bwd_data stride 1 passes none.
template <typename PackW>
void fwd_run(const GemmOps& ops, const ConvParams& p, const float* x, PackW&& pack_w,
             const float* b, float* y, float* ws, int nthreads, const float* w_rows = nullptr) {
  const int64_t Og = p.Og(), K = kdim(p), P = p.Ho * p.Wo, G = p.groups;
  const int64_t Mp = round_up(Og, MR);
  if (w_rows && weights_in_place(p)) {
    fwd_planes(ops, p, x, nullptr, w_rows, b, y, ws, plane_rows(p, nthreads), nthreads);
    return;
  }
  float* wpack = ws;  // (G, K-blocks of Mp x kc)
  pack_w(wpack);
  float* bbufs = ws + base::align_floats(packed_w_floats(p));
  if (const int64_t rows = plane_rows(p, nthreads)) {
    fwd_planes(ops, p, x, wpack, nullptr, b, y, bbufs, rows, nthreads);
    return;
  }
  // Tasks: (group, image, column block); at least two per thread when planes are few.
  const int64_t planes = G * p.N;
  const int64_t per_plane = std::max<int64_t>(1, (2 * nthreads + planes - 1) / planes);
  const int64_t nb = std::max(NR, round_up((P + per_plane - 1) / per_plane, NR));
  const int64_t blocks = (P + nb - 1) / nb;
  const int64_t tasks = planes * blocks;
  const int nt = static_cast<int>(std::min<int64_t>(nthreads, tasks));
  const bool inplace = pk::is_plain(pk::im2col_view(p, x, 0, 0)) &&
                       Mp * std::min(KC, K) <= kernels::gemm::kInplaceAFloats;
  base::parallel_tasks(nt, tasks, [&](int tid, int64_t t) {
    float* bbuf = bbufs + tid * kBBlock;
    const int64_t g = t / (p.N * blocks), n = (t / blocks) % p.N, jb = t % blocks;
    const pk::Im2col view = pk::im2col_view(p, x, n, g);
    float* yg = y + (n * p.O + g * Og) * P;  // (Og, P)
    const float* wg = wpack + g * Mp * K;
    const int64_t j0 = jb * nb, j1 = std::min(P, (jb + 1) * nb);
    const auto bias_epilogue = [&](int64_t jc, int64_t nc) {
      if (b) add_bias(yg + jc, P, Og, nc, b + g * Og);
    };
    if (inplace) {  // 1x1: B is x itself, read in place by the first panel's micro-kernel
      kernels::gemm::gemm_inplace_b(
          ops.uk, ops.uki, Og, K, view.x, P, j0, j1, yg, P, bbuf, b ? b + g * Og : nullptr,
          [&](int64_t k0, int64_t) { return packed_a_at(wg, Og, K, 0, k0); });
      return;
    }
    // The x lines the next B block gathers are prefetched a slice per micro-kernel call, as on
    // the planes path (a 1x1 stride-2 layer's gathers stalled on x: 26% of its forward).
    const pk::Im2col whole = pk::im2col_view(p, x, 0, g);
    const int64_t khw = p.kH * p.kW, panels = (Og + MR - 1) / MR;
    AheadLines ahead;
    int64_t per_call = 0;
    kernels::gemm::gemm_columns(
        ops.uk, Og, K, j0, j1, yg, P, bbuf,
        [&](int64_t k0, int64_t kc, int64_t jc, int64_t nc, float* dst) {
          ops.pack_col(view, k0, kc, jc, nc, dst);
          int64_t nk = k0 + KC, nj = jc;  // the next block: the next K rows, or columns
          if (nk >= K) nk = 0, nj = jc + NC;
          ahead = AheadLines{};
          if (nj < j1) {
            const int64_t nkc = std::min(KC, K - nk), nnc = std::min(NC, j1 - nj);
            ahead.add(whole, n, nj, nnc, nk / khw, (nk + nkc - 1) / khw + 1);
          }
          const int64_t calls = (nc + NR - 1) / NR * panels;
          per_call = (ahead.total() + calls - 1) / calls;
        },
        [&](int64_t i0, int64_t, int64_t k0, int64_t) { return packed_a_at(wg, Og, K, i0, k0); },
        bias_epilogue, [&] { ahead.issue(per_call); });
  });
}

template <const GemmOps* Ops>
void fwd(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  const int nt = base::threads_for(p.flops(), max_nt);
  if (p.has_padding() && !all_finite(a.w, p.O * kdim(p), nt)) {
    note_fallback("gemm", "fwd", "non-finite weights with zero padding", kDirectLoops);
    kernels::direct::fwd(p, a.x, a.w, a.b, a.y);
    return;
  }
  fwd_run(
      *Ops, p, a.x, [&](float* wpack) { pack_weight_rows(*Ops, p, a.w, wpack, nt); }, a.b, a.y, ws,
      nt, a.w);
}

// ---- backward data ----------------------------------------------------------------------------

// The forward problem whose output is gx when the stride is 1: input gy (N, O, Ho, Wo), kernel
// w' (C, Og, kH, kW) flipped, padding d(k-1) - pad on each side (may be negative: crops).
ConvParams transposed(const ConvParams& p) {
  ConvParams q = p;
  q.C = p.O, q.H = p.Ho, q.W = p.Wo, q.O = p.C, q.Ho = p.H, q.Wo = p.W;
  q.pad_t = p.dH * (p.kH - 1) - p.pad_t, q.pad_b = p.dH * (p.kH - 1) - p.pad_b;
  q.pad_l = p.dW * (p.kW - 1) - p.pad_l, q.pad_r = p.dW * (p.kW - 1) - p.pad_r;
  return q;
}

// Stride > 1: input channels per dcol block (whole channels, about MC rows of dcol, no more than
// a group has: w_g^T is now packed for every group's blocks, and a block sized past Cg booked
// unused rows for each of them).
int64_t dcol_channels(const ConvParams& p) {
  return std::clamp<int64_t>(kernels::gemm::MC / (p.kH * p.kW), 1, p.Cg());
}

// Stride > 1: floats of one channel block's rows of w_g^T, packed whole (Og long).
int64_t dcol_a_floats(const ConvParams& p) {
  return packed_a_floats(dcol_channels(p) * p.kH * p.kW, p.Og());
}

// Stride > 1: the channel blocks of a group (dcol_channels each, the last one short).
int64_t dcol_blocks(const ConvParams& p) {
  return (p.Cg() + dcol_channels(p) - 1) / dcol_channels(p);
}

// Per thread: a packed B block (gy, Og x kDcolCols) and a dcol block.
int64_t col2im_thread_floats(const ConvParams& p) {
  return base::align_floats(packed_b_floats(KC, kDcolCols) +
                            dcol_channels(p) * p.kH * p.kW * kDcolCols);
}

std::size_t col2im_ws(const ConvParams& p, int nt) {
  // The packed rows of w_g^T of every group's channel blocks, then the threads' blocks.
  return base::align_floats(p.groups * dcol_blocks(p) * dcol_a_floats(p)) +
         static_cast<std::size_t>(nt) * col2im_thread_floats(p);
}

void bwd_data_s1(const GemmOps& ops, const ConvParams& p, const ConvArgs& a, float* ws, int nt) {
  const int64_t Cg = p.Cg(), Og = p.Og(), khw = p.kH * p.kW;
  const float* w = a.w;
  // A(c, (o, t)) of group g = w[g Og + o][c][kH kW - 1 - t]: the kernel flipped and transposed.
  const auto pack_w = [&](float* wpack) {
    for (int64_t g = 0; g < p.groups; ++g)
      pack_a_whole(
          Cg, Og * khw,
          [&](int64_t c, int64_t k0, int64_t n, float* d) {
            int64_t t = k0 % khw;
            const float* wc = w + ((g * Og + k0 / khw) * Cg + c) * khw + khw - 1;  // its last tap
            for (int64_t k = 0; k < n; ++k) {
              d[k * MR] = wc[-t];
              if (++t == khw) t = 0, wc += Cg * khw;
            }
          },
          wpack + g * round_up(Cg, MR) * Og * khw, nt);
  };
  fwd_run(ops, transposed(p), a.gy, pack_w, nullptr, a.gx, ws, nt);
}

// Stride > 1: each thread owns a range of input channels c (rows c kH kW .. of dcol): per group it
// packs its rows of w_g^T once (each block of channels apart, so blocks start on a panel); then for
// every image, block of whole channels (about MC rows) and block of columns it computes those dcol
// rows and scatters them into its own gx planes at once, while the dcol block (<= 150 KB) and the
// channels' planes are still in L2. Every gx element gets its terms in (column block, tap) order
// whatever the blocking, so threads do not change the bits.
void bwd_data_strided(const GemmOps& ops, const ConvParams& p, const ConvArgs& a, float* ws,
                      int nthreads) {
  const int64_t Cg = p.Cg(), Og = p.Og(), K = kdim(p), P = p.Ho * p.Wo, khw = p.kH * p.kW;
  const int64_t cb = dcol_channels(p), ablock = dcol_a_floats(p), blocks = dcol_blocks(p);
  // A = w_g^T, A(r, o) = w_g[o K + r], packed per group and channel block (shared by the tasks).
  float* apack = ws;
  for (int64_t g = 0; g < p.groups; ++g)
    for (int64_t bl = 0; bl < blocks; ++bl) {
      const int64_t r0 = bl * cb * khw, mrows = (std::min(Cg, (bl + 1) * cb) - bl * cb) * khw;
      const float* wg = a.w + g * Og * K;
      pack_a_whole(
          mrows, Og,
          [&](int64_t i, int64_t o0, int64_t n, float* d) {
            for (int64_t o = 0; o < n; ++o) d[o * MR] = wg[(o0 + o) * K + r0 + i];
          },
          apack + (g * blocks + bl) * ablock, nthreads);
    }
  float* thread_ws = ws + base::align_floats(p.groups * blocks * ablock);
  // Tasks: (group, image, channel block). Each writes only its block's gx planes of its image, in
  // an order fixed by the shape, so the bits do not depend on the threads. (Splitting by channels
  // alone left the stem's 3 channels 2 : 1 between two threads.)
  const int64_t tasks = p.groups * p.N * blocks;
  const int nt = static_cast<int>(std::min<int64_t>(nthreads, tasks));
  base::parallel_tasks(nt, tasks, [&](int tid, int64_t t) {
    float* bbuf = thread_ws + tid * col2im_thread_floats(p);
    float* dcol = bbuf + packed_b_floats(KC, kDcolCols);
    const int64_t g = t / (p.N * blocks), n = t / blocks % p.N, bl = t % blocks;
    const int64_t c0 = bl * cb, c1 = std::min(Cg, c0 + cb), r0 = c0 * khw, mrows = (c1 - c0) * khw;
    float* gxg = a.gx + (n * p.C + g * Cg) * p.H * p.W;
    std::fill(gxg + c0 * p.H * p.W, gxg + c1 * p.H * p.W, 0.f);
    const pk::Im2col view = pk::im2col_view(p, gxg, 0, 0);
    const float* gyg = a.gy + (n * p.O + g * Og) * P;  // (Og, P)
    const float* ablk = apack + (g * blocks + bl) * ablock;
    for (int64_t jb = 0; jb < P; jb += kDcolCols) {
      const int64_t ncols = std::min(kDcolCols, P - jb);
      // dcol (mrows x ncols) = A(r0 .. r0+mrows, :) . gy_g(:, jb .. jb+ncols)
      kernels::gemm::gemm_columns(
          ops.uk, mrows, Og, 0, ncols, dcol, ncols, bbuf,
          [&](int64_t k0, int64_t kc, int64_t jc, int64_t nc, float* dst) {
            kernels::gemm::pack_b_rows(gyg, P, k0, kc, jb + jc, nc, dst);
          },
          [&](int64_t ib, int64_t, int64_t k0, int64_t) {
            return packed_a_at(ablk, mrows, Og, ib, k0);
          },
          [](int64_t, int64_t) {});
      ops.col2im(view, dcol, ncols, r0, mrows, jb, ncols, gxg);
    }
  });
}

// ---- backward data, stride > 1, by phases -----------------------------------------------------
//
// gx splits into sH x sW phase grids gx_ab[c][i][j] = gx[c][a + sH i][b + sW j]. Input row
// ih = a + sH i takes only the taps kh with (a + pad_t - kh dH) divisible by sH, each from gy row
// i + q, q = (a + pad_t - kh dH) / sH; so each phase is a stride-1 correlation of gy with a small
// sub-kernel, a GEMM like the forward one:
//   gx_ab (Cg x Hp Wp) = A_ab (Cg x Og th tw) . B_ab (Og th tw x Hp Wp)
//   A_ab(c, (o, t, u)) = w_g[o][c][kh_t][kw_u],   B_ab((o, t, u), (i, j)) = gy[o][i + q_t][j + q_u]
// No col2im and no memset: every gx element is written once, as one GEMM sum whose order depends
// only on the shape (its K and KC). A phase without taps (kernel smaller than the stride) gets an
// empty sum: zeros.
//
// A task is a block of phase rows i0 .. i0+rows and columns j0 .. j0+cols of every phase of one
// image and group. It copies the window of gy that its phases read (clipped to gy) into Z (Og, Hz,
// Wz), rows zero-padded, Wz = cols where the window is no wider (always, for whole rows of
// ordinary layers). The B row of tap (o, t, u) over the block is then ONE contiguous run of Z,
// row-major over (i, x < Wz): a phase GEMM runs over rows x Wz columns, its B blocks are copies of
// 16 floats, and the few columns where a run wraps into the next Z row (where the tap reads past
// gy's edge, so the term is 0) are zeroed in the packed block. The C blocks of all sH sW phases go
// to a buffer, and kernels::phase::interleave writes the block's gx rows whole, in memory order
// (streamed past the caches when gx is large: its lines are then never read).
// The phase path runs where it pays (use_phases), the col2im path above elsewhere; the tests run
// it on every strided shape through gemm_bwd_data_phases_* (impls.h).

// d[i] = s[i], i < N or n: in fixed-size pieces the compiler inlines (a call to memmove for each
// short run cost more than the copy).
template <int64_t N>
inline void copy_floats(const float* s, float* d) {
  std::memcpy(d, s, N * sizeof(float));
}
inline void copy_floats(const float* s, int64_t n, float* d) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) copy_floats<8>(s + i, d + i);
  for (; i < n; ++i) d[i] = s[i];
}

// The taps of one kernel dimension (size k, stride s, dilation d, padding pad) that phase a takes,
// in decreasing kh so that the gy offset q grows: tap t is kh0 - t kstep, reading q0 + t dq.
struct PhaseTaps {
  int64_t n = 0, kh0 = 0, kstep = 1, q0 = 0, dq = 1;
};
PhaseTaps phase_taps(int64_t a, int64_t k, int64_t s, int64_t d, int64_t pad) {
  PhaseTaps t;
  const int64_t g = std::gcd(s, d);
  t.kstep = s / g, t.dq = d / g;
  for (int64_t kh = k - 1; kh >= 0; --kh)
    if ((a + pad - kh * d) % s == 0) {
      t.n = kh / t.kstep + 1, t.kh0 = kh, t.q0 = (a + pad - kh * d) / s;
      break;
    }
  return t;
}

// Phase a's rows (columns): a, a + s, ... below n.
int64_t phase_size(int64_t n, int64_t a, int64_t s) {
  return a < n ? (n - a + s - 1) / s : 0;
}

// The blocking of the phase grids (the same for every phase): blocks of `rows` x `cols`, and the
// gy offsets q of one dimension over all phases, [qh_lo, qh_hi] and [qw_lo, qw_hi].
struct PhaseBlocks {
  int64_t rows, cols, row_blocks, col_blocks;
  int64_t qh_lo, qh_hi, qw_lo, qw_hi;
  double useful;  // of the GEMM columns, the share that are gx's (the rest: Z's pitch, panels)
  int64_t Hz() const { return rows + qh_hi - qh_lo; }  // Z's most rows and columns
  int64_t Wz() const { return cols + qw_hi - qw_lo; }
  // Floats a run may read before or after Z (they are zeroed, then the wrapped columns too), with
  // the up to 7 past its end that the packs' 8-float loads read.
  int64_t guard() const { return qw_hi - qw_lo + std::max<int64_t>(0, -qw_lo) + 8; }
  int64_t z_floats(int64_t Og) const { return Og * Hz() * Wz() + 2 * guard(); }
};
PhaseBlocks phase_blocks(const ConvParams& p, int nthreads) {
  PhaseBlocks b{};
  auto range = [](int64_t k, int64_t s, int64_t d, int64_t pad, int64_t& lo, int64_t& hi) {
    lo = INT64_MAX, hi = INT64_MIN;
    for (int64_t a = 0; a < s; ++a) {
      const PhaseTaps t = phase_taps(a, k, s, d, pad);
      if (t.n == 0) continue;
      lo = std::min(lo, t.q0), hi = std::max(hi, t.q0 + (t.n - 1) * t.dq);
    }
  };
  range(p.kH, p.sH, p.dH, p.pad_t, b.qh_lo, b.qh_hi);
  range(p.kW, p.sW, p.dW, p.pad_l, b.qw_lo, b.qw_hi);
  const int64_t Hm = phase_size(p.H, 0, p.sH), Wm = phase_size(p.W, 0, p.sW);
  const int64_t dw = b.qw_hi - b.qw_lo;
  // Z's width for whole rows (see bwd_data_phases).
  const int64_t Wz = std::max(Wm, std::min(p.Wo, Wm + b.qw_hi) - std::max<int64_t>(0, b.qw_lo));
  if (Wz > NC) {  // wide rows: blocks of one row and about NC columns
    b.cols = std::max(NR, NC - dw), b.rows = 1;
    b.useful = double(b.cols) / double(b.cols + dw);
  } else {
    // A phase's GEMM has rows x Wz columns in micro-panels of NR: take the row count (up to NC
    // columns, and two tasks per thread where the images are few) that needs the fewest panels in
    // all, plus one per task for its fixed costs.
    const int64_t planes = p.groups * p.N;
    const int64_t want = (2 * nthreads + planes - 1) / planes;  // row blocks per plane
    const int64_t most = std::max<int64_t>(1, std::min(NC / Wz, Hm / want));
    int64_t best = INT64_MAX;
    for (int64_t r = 1; r <= most; ++r) {
      const int64_t full = Hm / r, rest = Hm % r;
      const int64_t panels = full * ((r * Wz + NR - 1) / NR) + (rest * Wz + NR - 1) / NR;
      const int64_t cost = panels + full + (rest > 0);
      if (cost < best) best = cost, b.rows = r, b.useful = double(Hm * Wm) / double(panels * NR);
    }
    b.cols = Wm;
  }
  b.row_blocks = (Hm + b.rows - 1) / b.rows;
  b.col_blocks = (Wm + b.cols - 1) / b.cols;
  return b;
}

// Packed A_ab of one group, all phases in (a, b) order.
int64_t phase_a_floats(const ConvParams& p) {
  int64_t total = 0;
  for (int64_t a = 0; a < p.sH; ++a)
    for (int64_t b = 0; b < p.sW; ++b)
      total += packed_a_floats(p.Cg(), p.Og() * phase_taps(a, p.kH, p.sH, p.dH, p.pad_t).n *
                                           phase_taps(b, p.kW, p.sW, p.dW, p.pad_l).n);
  return total;
}

// gx floats (1 MiB, about an L2) from which the phase path streams gx to memory.
constexpr int64_t kStreamFloats = int64_t{1} << 18;

// The phase path pays (measured on 3x3, 2x2, 5x5 layers, stride 2 and 3) where its GEMMs are big:
// C/groups fills the micro-kernel's rows (with fewer, the RGB stem, the col2im path's dcol rows,
// C/groups kH kW, do), every phase has taps (1x1 stride 2: three quarters of gx are zeros, cheaper
// to memset) and the phase grids fill the NR-column panels (7 x 7 grids do not).
bool use_phases(const ConvParams& p) {
  for (int64_t a = 0; a < p.sH; ++a)
    if (phase_taps(a, p.kH, p.sH, p.dH, p.pad_t).n == 0) return false;
  for (int64_t b = 0; b < p.sW; ++b)
    if (phase_taps(b, p.kW, p.sW, p.dW, p.pad_l).n == 0) return false;
  return p.Cg() >= 32 && phase_blocks(p, 1).useful >= 0.9;
}

// Per thread: a B block, Z and the C blocks of the sH sW phases, sized for the largest blocks
// (one thread's: more threads only cut rows).
int64_t phase_thread_floats(const ConvParams& p, const PhaseBlocks& b) {
  const int64_t ncols = b.rows * b.Wz();
  return base::align_floats(packed_b_floats(KC, std::min(NC, ncols))) +
         base::align_floats(b.z_floats(p.Og())) + base::align_floats(p.sH * p.sW * p.Cg() * ncols);
}

std::size_t phase_ws(const ConvParams& p, int nt) {
  return base::align_floats(p.groups * phase_a_floats(p)) +
         static_cast<std::size_t>(nt) * phase_thread_floats(p, phase_blocks(p, 1));
}

void bwd_data_phases(const GemmOps& ops, void (*interleave)(const kernels::phase::Interleave&),
                     const ConvParams& p, const ConvArgs& a, float* ws, int nthreads) {
  const int64_t Cg = p.Cg(), Og = p.Og(), khw = p.kH * p.kW, P = p.Ho * p.Wo, HW = p.H * p.W;
  // Pack A_ab for every group and phase (the flipped taps of the sub-kernel), in pack_a_whole's
  // format, walking k = (o, t, u) in order.
  // Large weights are packed by all the threads, each taking a range of o in every phase.
  float* apack = ws;
  const int64_t Mp = round_up(Cg, MR), Ka = phase_a_floats(p);
  const int pack_nt = p.groups * Ka >= kParallelPackFloats ? nthreads : 1;
  base::parallel_run(pack_nt, [&](int tid, int ntt) {
    const auto [o0, o1] = base::split_range(Og, tid, ntt);
    for (int64_t g = 0, off = 0; g < p.groups; ++g)
      for (int64_t pa = 0; pa < p.sH; ++pa) {
        const PhaseTaps th = phase_taps(pa, p.kH, p.sH, p.dH, p.pad_t);
        for (int64_t pb = 0; pb < p.sW; ++pb) {
          const PhaseTaps tw = phase_taps(pb, p.kW, p.sW, p.dW, p.pad_l);
          const int64_t K = Og * th.n * tw.n;
          int64_t k = o0 * th.n * tw.n;
          for (int64_t o = o0; o < o1; ++o)
            for (int64_t t = 0; t < th.n; ++t)
              for (int64_t u = 0; u < tw.n; ++u, ++k) {
                const int64_t pc = k / KC * KC, kc = std::min(KC, K - pc);
                const float* src = a.w + ((g * Og + o) * Cg * p.kH + th.kh0 - t * th.kstep) * p.kW +
                                   tw.kh0 - u * tw.kstep;  // w[g Og + o][c][kh][kw] at + c kH kW
                float* d = apack + off + pc * Mp + (k - pc) * MR;  // + (c / MR) kc MR + c % MR
                for (int64_t c = 0; c < Mp; ++c)
                  d[c / MR * kc * MR + c % MR] = c < Cg ? src[c * khw] : 0.f;
              }
          off += packed_a_floats(Cg, K);
        }
      }
  });
  const PhaseBlocks blk = phase_blocks(p, nthreads);
  // A gx larger than the caches goes straight to memory (written once here, never read).
  const bool stream = p.N * p.C * HW >= kStreamFloats;
  const int64_t ncols_max = blk.rows * blk.Wz();
  const int64_t per_thread = phase_thread_floats(p, phase_blocks(p, 1));
  float* thread_ws = ws + base::align_floats(p.groups * phase_a_floats(p));
  const int64_t blocks = blk.row_blocks * blk.col_blocks;
  const int64_t tasks = p.groups * p.N * blocks;
  const int nt = static_cast<int>(std::min<int64_t>(nthreads, tasks));
  std::vector<int64_t> exts(static_cast<std::size_t>(nt * (p.sH + p.sW)));
  base::parallel_tasks(nt, tasks, [&](int tid, int64_t task) {
    float* bbuf = thread_ws + tid * per_thread;
    float* z = bbuf + base::align_floats(packed_b_floats(KC, std::min(NC, ncols_max)));
    float* cbuf = z + base::align_floats(blk.z_floats(Og));  // (sH sW, Cg, <= ncols_max)
    int64_t* ext = exts.data() + tid * (p.sH + p.sW);  // a block's rows of each phase row, columns
    {
      const int64_t g = task / (p.N * blocks), n = task / blocks % p.N, bl = task % blocks;
      const int64_t i0 = bl / blk.col_blocks * blk.rows, j0 = bl % blk.col_blocks * blk.cols;
      const int64_t rows = std::min(phase_size(p.H, 0, p.sH), i0 + blk.rows) - i0;
      const int64_t cols = std::min(phase_size(p.W, 0, p.sW), j0 + blk.cols) - j0;
      // Z (Og, Hz, Wz) = gy[o][i0 + qh_lo + r][zlo + x], zero outside gy: the columns the block
      // reads, [j0 + qw_lo, j0 + cols + qw_hi), clipped to gy, in at least cols columns.
      const int64_t Hz = rows + blk.qh_hi - blk.qh_lo, y0 = i0 + blk.qh_lo;
      const int64_t zlo = std::max<int64_t>(0, j0 + blk.qw_lo);
      const int64_t Wz = std::max(cols, std::min(p.Wo, j0 + cols + blk.qw_hi) - zlo);
      const int64_t nv = std::clamp<int64_t>(p.Wo - zlo, 0, Wz);  // columns inside gy
      const int64_t G = blk.guard();
      float* z0 = z + G;
      std::fill(z, z0, 0.f);
      std::fill(z0 + Og * Hz * Wz, z0 + Og * Hz * Wz + G, 0.f);
      const float* gyg = a.gy + (n * p.O + g * Og) * P;  // (Og, Ho, Wo)
      for (int64_t o = 0; o < Og; ++o)
        for (int64_t r = 0; r < Hz; ++r) {
          float* zr = z0 + (o * Hz + r) * Wz;
          const int64_t y = y0 + r;
          if (y < 0 || y >= p.Ho) {
            std::fill(zr, zr + Wz, 0.f);
            continue;
          }
          copy_floats(gyg + (o * p.Ho + y) * p.Wo + zlo, nv, zr);
          std::fill(zr + nv, zr + Wz, 0.f);
        }
      float* gxg = a.gx + (n * p.C + g * Cg) * HW;  // (Cg, H, W)
      const float* ag = apack + g * Ka;
      for (int64_t pa = 0; pa < p.sH; ++pa) {
        const PhaseTaps th = phase_taps(pa, p.kH, p.sH, p.dH, p.pad_t);
        const int64_t ra = std::min(phase_size(p.H, pa, p.sH), i0 + rows) - i0;  // phase rows
        const int64_t ncols = std::max<int64_t>(0, ra) * Wz;
        auto width = [&](int64_t pb) {  // phase pb's columns in this block
          return std::max<int64_t>(0, std::min(phase_size(p.W, pb, p.sW), j0 + cols) - j0);
        };
        for (int64_t pb = 0; pb < p.sW; ++pb) {
          const PhaseTaps tw = phase_taps(pb, p.kW, p.sW, p.dW, p.pad_l);
          const int64_t taps = th.n * tw.n, K = Og * taps;
          const float* aph = ag;
          ag += packed_a_floats(Cg, K);
          if (ra <= 0 || width(pb) == 0) continue;
          // B row (o, t, u) at column r Wz + x is gy[o][i0 + r + q_t][j0 + x + q_u], the run of Z
          // from Z[o][q_t - qh_lo][e], e = j0 + q_u - zlo; where x + e falls outside [0, Wz) the
          // run has wrapped (gy's edge, or a dropped column): 0.
          kernels::gemm::gemm_columns(
              ops.uk, Cg, K, 0, ncols, cbuf + (pa * p.sW + pb) * Cg * ncols_max, ncols, bbuf,
              [&](int64_t k0, int64_t kc, int64_t jc, int64_t nc, float* dst) {
                const float* run[KC];
                int64_t shift[KC];
                int64_t o = k0 / taps, t = k0 % taps / tw.n, u = k0 % tw.n;
                for (int64_t kk = 0; kk < kc; ++kk) {
                  shift[kk] = j0 + tw.q0 + u * tw.dq - zlo;
                  run[kk] = z0 + (o * Hz + th.q0 + t * th.dq - blk.qh_lo) * Wz + shift[kk] + jc;
                  if (++u == tw.n) {
                    u = 0;
                    if (++t == th.n) t = 0, ++o;
                  }
                }
                ops.pack_runs(kc, nc, jc, Wz, run, shift, dst);
              },
              [&](int64_t ib, int64_t, int64_t k0, int64_t) {
                return packed_a_at(aph, Cg, K, ib, k0);
              },
              [](int64_t, int64_t) {});
        }
      }
      // gx[c][pa + sH (i0 + r)][sW (j0 + x) + b] = C_ab(c, r Wz + x), x < width(b): the block's
      // gx rows, whole and in memory order.
      for (int64_t pa = 0; pa < p.sH; ++pa)
        ext[pa] = std::max<int64_t>(0, std::min(phase_size(p.H, pa, p.sH), i0 + rows) - i0);
      for (int64_t pb = 0; pb < p.sW; ++pb)
        ext[p.sH + pb] = std::max<int64_t>(0, std::min(phase_size(p.W, pb, p.sW), j0 + cols) - j0);
      kernels::phase::Interleave il;
      il.src = cbuf, il.ps = Cg * ncols_max, il.ld = Wz, il.sH = p.sH, il.sW = p.sW;
      il.rows = ext, il.width = ext + p.sH, il.C = Cg;
      il.gx = gxg + p.sH * i0 * p.W + p.sW * j0, il.plane = HW, il.W = p.W, il.stream = stream;
      interleave(il);
    }
  });
}

std::size_t bwd_data_ws(const ConvParams& p, int nt) {
  if (p.sH == 1 && p.sW == 1) return fwd_ws_for(transposed(p), nt, false);
  return use_phases(p) ? phase_ws(p, nt) : col2im_ws(p, nt);
}

// Padded taps must be skipped, never multiplied: non-finite weights take the direct loops. A
// phase's sub-kernel meets gy's zero border even without padding (rows past Ho, and above row 0
// for its taps with q < 0), so the phase path checks always.
bool bwd_data_nonfinite(const ConvParams& p, const ConvArgs& a, bool phases, int nt) {
  if ((!p.has_padding() && !phases) || all_finite(a.w, p.O * kdim(p), nt)) return false;
  note_fallback("gemm", "bwd_data",
                phases ? "non-finite weights (stride > 1)" : "non-finite weights with zero padding",
                kDirectLoops);
  kernels::direct::bwd_data(p, a.gy, a.w, a.gx);
  return true;
}

template <const GemmOps* Ops>
void bwd_data(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  const int nt = base::threads_for(p.flops(), max_nt);
  const bool strided = p.sH > 1 || p.sW > 1, phases = strided && use_phases(p);
  if (bwd_data_nonfinite(p, a, phases, nt)) return;
  if (!strided)
    bwd_data_s1(*Ops, p, a, ws, nt);
  else if (phases)
    bwd_data_phases(*Ops,
                    Ops == &kAvx2 ? kernels::phase::interleave__avx2 : kernels::phase::interleave,
                    p, a, ws, nt);
  else
    bwd_data_strided(*Ops, p, a, ws, nt);
}

// The phase path whatever the shape (stride > 1).
template <const GemmOps* Ops>
void bwd_data_by_phases(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  const int nt = base::threads_for(p.flops(), max_nt);
  if (bwd_data_nonfinite(p, a, true, nt)) return;
  bwd_data_phases(*Ops,
                  Ops == &kAvx2 ? kernels::phase::interleave__avx2 : kernels::phase::interleave, p,
                  a, ws, nt);
}

// ---- backward weight --------------------------------------------------------------------------

// The reduction over q = (image, output pixel) is cut into this many fixed chunks when gw is small
// next to it: each chunk's partial gw goes to the workspace and the partials are added in chunk
// order, so gy and col are packed once in all, not once per block of gw columns. Up to 8 chunks,
// as many as keep the partials (chunks Og K floats) within a sixth of the im2col buffer (Q K), and
// at least 2. The count depends only on the shape (never on threads), so the bits do not either.
// Otherwise (1): threads split gw's columns and every one packs all of gy.
int64_t q_chunks(const ConvParams& p) {
  const int64_t Q = p.N * p.Ho * p.Wo;
  const int64_t chunks = std::min<int64_t>({8, (Q + KC - 1) / KC, Q / (6 * p.Og())});
  return chunks >= 2 ? chunks : 1;
}

// Where the weight gradient's col^T blocks come from phase planes (pk::pack_col_t_planes): the
// layers whose forward does (kernels larger than 1x1 with Wo sW >= W), while the buffer is small.
// The gather copies each x sample once per tap, in short strided runs whose loads stalled (the
// stride-2 3x3 layer: the pack 20% of the pass at one thread).
int64_t col_t_planes_floats(const ConvParams& p) {
  if (p.kH * p.kW == 1 || !pk::planes_fit(p)) return 0;
  const int64_t floats = pk::planes_t_floats(pk::phase_planes(p, nullptr, 0, 0), p.Cg());
  return floats <= kPlaneFloats ? floats : 0;
}

// Where the chunks run in q-block order (Og <= MC), each also sums its gy blocks for the bias
// gradient as they are packed (in cache then), instead of a pass of its own over gy.
bool fused_bias(const ConvParams& p) {
  return q_chunks(p) > 1 && p.Og() <= kernels::gemm::MC;
}

std::size_t bwd_weight_ws(const ConvParams& p, int nt) {
  const int64_t chunks = q_chunks(p);
  const std::size_t partials = chunks > 1 ? base::align_floats(chunks * p.O * kdim(p)) : 0;
  const std::size_t bias_partials = fused_bias(p) ? base::align_floats(2 * chunks * p.O) : 0;
  return partials + bias_partials +
         static_cast<std::size_t>(nt) *
             (base::align_floats(kBBlock + packed_a_floats(kernels::gemm::MC, KC)) +
              base::align_floats(col_t_planes_floats(p)));
}

template <const GemmOps* Ops>
void bwd_weight(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  const int nthreads = base::threads_for(p.flops(), max_nt);
  const bool fuse_gb = a.gb && a.gw && fused_bias(p);
  if (a.gb && !fuse_gb) bias_grad(p, a.gy, a.gb, nthreads);
  if (!a.gw) return;
  const int64_t Og = p.Og(), Cg = p.Cg(), K = kdim(p), P = p.Ho * p.Wo, Q = p.N * P, G = p.groups;
  const int64_t chunks = q_chunks(p);
  // With padding, non-finite gy must run the direct loops (see note_fallback). In chunks, each
  // task checks the slice of gy it is about to pack (in parallel, and the slice is then warm);
  // otherwise gy is checked whole first.
  auto fallback = [&] {
    note_fallback("gemm", "bwd_weight", "non-finite output gradients with zero padding",
                  kDirectLoops);
    kernels::direct::bwd_weight(p, a.gy, a.x, a.gw, nullptr);
    if (fuse_gb) bias_grad(p, a.gy, a.gb, nthreads);
  };
  if (p.has_padding() && chunks == 1 && !all_finite(a.gy, p.N * p.O * P, nthreads))
    return fallback();
  float* partials = ws;  // (chunks, G, Og, K) when chunks > 1
  // (chunks, G, Og) doubles: each chunk's share of gb, where fused.
  double* bias_parts =
      reinterpret_cast<double*>(ws + (chunks > 1 ? base::align_floats(chunks * p.O * K) : 0));
  float* thread_ws = ws + (chunks > 1 ? base::align_floats(chunks * p.O * K) : 0) +
                     (fused_bias(p) ? base::align_floats(2 * chunks * p.O) : 0);
  const int64_t planes_floats = col_t_planes_floats(p);
  const int64_t ab_floats = base::align_floats(kBBlock + packed_a_floats(kernels::gemm::MC, KC));
  const int64_t per_thread = ab_floats + base::align_floats(planes_floats);
  const pk::PhasePlanes geometry =
      planes_floats ? pk::phase_planes(p, nullptr, 0, 0) : pk::PhasePlanes{};
  // col^T block (qc x nc at q, k0) of group g's view into dst, from planes in the thread's buffer
  // where they apply.
  auto pack_col_t = [&](const pk::Im2col& view, pk::PhasePlanes& pp, float* bbuf, int64_t q,
                        int64_t qc, int64_t k0, int64_t nc, float* dst) {
    if (planes_floats)
      Ops->pack_col_t_planes(view, pp, q, qc, k0, nc, bbuf + ab_floats, dst);
    else
      Ops->pack_col_t(view, q, qc, k0, nc, dst);
  };
  // gw_g(:, k0 .. k1) (or chunk c's partial of it) over q in [q0, q1): C = gy_g . col^T.
  auto gemm = [&](float* bbuf, int64_t g, int64_t q0, int64_t q1, int64_t k0, int64_t k1,
                  float* c) {
    const pk::Im2col view = pk::im2col_view(p, a.x, 0, g);
    pk::PhasePlanes pp = geometry;
    const float* gy0 = a.gy + g * Og * P;
    float* abuf = bbuf + kBBlock;
    kernels::gemm::gemm_columns(
        Ops->uk, Og, q1 - q0, k0, k1, c, K, bbuf,
        [&](int64_t qq, int64_t qc, int64_t kk0, int64_t nc, float* dst) {
          pack_col_t(view, pp, bbuf, q0 + qq, qc, kk0, nc, dst);
        },
        [&](int64_t i0, int64_t mc, int64_t qq, int64_t qc) {
          Ops->pack_gy(gy0, p.O * P, P, i0, mc, q0 + qq, qc, abuf);
          return static_cast<const float*>(abuf);
        },
        [](int64_t, int64_t) {});
  };
  // The same C for a chunk when Og <= MC, in (q block, gw column block) order: gy's block is packed
  // once per q block (not once per column block), and the x the next B block reads is prefetched
  // into L2 a slice per micro-kernel call (AheadLines), so x streams in while the FMAs run instead
  // of in bursts the packs wait on. Every element gets the same sums in the same order (q blocks
  // ascending) as through gemm_columns.
  // With bsum (Og doubles, overwritten), also the chunk's share of gb: per channel, each q block's
  // runs (lane_sum each) added in order.
  auto gemm_q_outer = [&](float* bbuf, int64_t g, int64_t q0, int64_t q1, float* c, double* bsum) {
    const pk::Im2col view = pk::im2col_view(p, a.x, 0, g);
    pk::PhasePlanes pp = geometry;
    const float* gy0 = a.gy + g * Og * P;
    float* abuf = bbuf + kBBlock;
    const int64_t panels = (Og + MR - 1) / MR;
    if (bsum) std::fill(bsum, bsum + Og, 0.0);
    for (int64_t pc = q0; pc < q1; pc += KC) {
      const int64_t qc = std::min(KC, q1 - pc);
      Ops->pack_gy(gy0, p.O * P, P, 0, Og, pc, qc, abuf);
      for (int64_t q = pc; bsum && q < pc + qc;) {  // the block's runs of gy, just read
        const int64_t n = q / P, j = q % P, len = std::min(P - j, pc + qc - q);
        add_lane_sums(gy0 + n * p.O * P + j, P, Og, len, bsum);
        q += len;
      }
      for (int64_t jc = 0; jc < K; jc += NC) {
        const int64_t nc = std::min(NC, K - jc);
        pack_col_t(view, pp, bbuf, pc, qc, jc, nc, bbuf);
        // The next B block: columns jc + NC of this q block, or the first of the next.
        int64_t nq = pc, nj = jc + NC;
        if (nj >= K) nq = pc + KC, nj = 0;
        AheadLines ahead;
        if (nq < q1) {
          const int64_t nqc = std::min(KC, q1 - nq), nnc = std::min(NC, K - nj), khw = p.kH * p.kW;
          for (int64_t q = nq; q < nq + nqc;) {  // the block's runs of positions in one image
            const int64_t n = q / P, j = q % P, len = std::min(P - j, nq + nqc - q);
            ahead.add(view, n, j, len, nj / khw, (nj + nnc - 1) / khw + 1);
            q += len;
          }
        }
        const int64_t calls = (nc + NR - 1) / NR * panels;
        const int64_t per_call = (ahead.total() + calls - 1) / calls;
        for (int64_t jr = 0; jr < nc; jr += NR)
          for (int64_t ir = 0; ir < Og; ir += MR) {
            ahead.issue(per_call);
            Ops->uk(qc, abuf + ir * qc, bbuf + jr * qc, c + ir * K + jc + jr, K,
                    std::min(MR, Og - ir), std::min(NR, nc - jr), pc > q0);
          }
      }
    }
  };
  // 1x1 stride 1, unpadded, in chunks, Og <= NC: the transposed product gw_g^T (Cg x Og) = x_g
  // (Cg x Q) . gy_g^T (Q x Og), A = x's rows read in place by the micro-kernel (uka), B = gy's
  // rows transposed into panels: only gy (Og rows, not x's Cg) is packed. Each q block stays in
  // one image (x's rows run on there). The chunk's partial goes to the workspace transposed.
  const bool swapped = chunks > 1 && Og <= NC && pk::is_plain(pk::im2col_view(p, a.x, 0, 0));
  auto gemm_swapped = [&](float* bbuf, int64_t g, int64_t q0, int64_t q1, float* ct, double* bsum) {
    ConvParams gp = p;  // gy has x's geometry with O channels: the same plain 1x1 view of it
    gp.C = p.O;
    const pk::Im2col gview = pk::im2col_view(gp, a.gy, 0, g);
    const int64_t panels = (Cg + MR - 1) / MR;
    if (bsum) std::fill(bsum, bsum + Og, 0.0);
    for (int64_t pc = q0; pc < q1;) {
      const int64_t n = pc / P, j = pc % P, qc = std::min({KC, q1 - pc, P - j});
      Ops->pack_col_t(gview, pc, qc, 0, Og, bbuf);
      if (bsum) add_lane_sums(a.gy + (n * p.O + g * Og) * P + j, P, Og, qc, bsum);
      const float* xr = a.x + (n * p.C + g * Cg) * P + j;  // x_g's rows at q = pc
      for (int64_t r = 0; r < panels; ++r) {
        const int64_t mr = std::min(MR, Cg - r * MR);
        if (r + 1 < panels)  // the next panel's rows, while this one's calls run
          for (int64_t i = 0; i < std::min(MR, Cg - (r + 1) * MR); ++i)
            for (int64_t f = 0; f < qc; f += 16)
              __builtin_prefetch(xr + ((r + 1) * MR + i) * P + f, 0, 3);
        for (int64_t jr = 0; jr < Og; jr += NR)
          Ops->uka(qc, xr + r * MR * P, P, bbuf + jr * qc, ct + r * MR * Og + jr, Og, mr,
                   std::min(NR, Og - jr), pc > q0, nullptr);
      }
      pc += qc;
    }
  };
  if (chunks > 1) {
    const int64_t tasks = G * chunks;
    const int nt = static_cast<int>(std::min<int64_t>(nthreads, tasks));
    std::atomic<bool> non_finite{false};
    base::parallel_tasks(nt, tasks, [&](int tid, int64_t t) {
      const int64_t g = t / chunks, c = t % chunks;
      const auto [q0, q1] = base::split_range(Q, static_cast<int>(c), static_cast<int>(chunks));
      if (p.has_padding()) {
        bool finite = true;  // gy[n][g Og .. g Og + Og][j] for q = n P + j in [q0, q1)
        for (int64_t q = q0; q < q1 && finite;) {
          const int64_t n = q / P, j = q % P, len = std::min(P - j, q1 - q);
          for (int64_t o = 0; o < Og && finite; ++o)
            finite = all_finite(a.gy + (n * p.O + g * Og + o) * P + j, len);
          q += len;
        }
        if (!finite) {
          non_finite.store(true, std::memory_order_relaxed);
          return;
        }
      }
      float* bbuf = thread_ws + tid * per_thread;
      float* part = partials + (c * G + g) * Og * K;
      if (swapped)
        gemm_swapped(bbuf, g, q0, q1, part, fuse_gb ? bias_parts + (c * G + g) * Og : nullptr);
      else if (Og <= kernels::gemm::MC)
        gemm_q_outer(bbuf, g, q0, q1, part, fuse_gb ? bias_parts + (c * G + g) * Og : nullptr);
      else
        gemm(bbuf, g, q0, q1, 0, K, part);
    });
    if (non_finite.load()) return fallback();
    // gw = partial 0 + partial 1 + ... in chunk order (O K floats per chunk: cheap, serial);
    // swapped partials are each group's gw_g^T (K x Og).
    const int64_t n = p.O * K;
    if (swapped) {
      for (int64_t g = 0; g < G; ++g)
        for (int64_t o = 0; o < Og; ++o)
          for (int64_t k = 0; k < K; ++k) {
            const float* part = partials + g * Og * K + k * Og + o;
            float s = part[0];
            for (int64_t c = 1; c < chunks; ++c) s += part[c * n];
            a.gw[(g * Og + o) * K + k] = s;
          }
    } else {
      std::copy(partials, partials + n, a.gw);
      for (int64_t c = 1; c < chunks; ++c) {
        const float* part = partials + c * n;
        for (int64_t i = 0; i < n; ++i) a.gw[i] += part[i];
      }
    }
    if (fuse_gb)  // gb = the chunks' shares, in chunk order
      for (int64_t o = 0; o < p.O; ++o) {
        double acc = 0.0;
        for (int64_t c = 0; c < chunks; ++c) acc += bias_parts[c * p.O + o];
        a.gb[o] = static_cast<float>(acc);
      }
    return;
  }
  // Tasks: (group, NR-aligned block of gw columns). Every task packs its group's gy in full (the A
  // operand, Og x N P), so a group gets only as many blocks as it takes to keep the threads busy.
  const int64_t per_group = std::max<int64_t>(1, (nthreads + G - 1) / G);
  const int64_t nb = std::max(NR, round_up((K + per_group - 1) / per_group, NR));
  const int64_t blocks = (K + nb - 1) / nb;
  const int64_t tasks = G * blocks;
  const int nt = static_cast<int>(std::min<int64_t>(nthreads, tasks));
  base::parallel_tasks(nt, tasks, [&](int tid, int64_t t) {
    const int64_t g = t / blocks, kb = t % blocks;
    gemm(thread_ws + tid * per_thread, g, 0, Q, kb * nb, std::min(K, (kb + 1) * nb),
         a.gw + g * Og * K);
  });
}

const char* avx2_why_not(const ConvParams& p) {
  if (!base::use_avx2()) return "needs AVX2 and FMA";
  return zero_padding_reason(p);
}

const char* phases_why_not(const ConvParams& p) {
  if (p.sH == 1 && p.sW == 1) return "stride 1 (phases are for strided layers)";
  return zero_padding_reason(p);
}
const char* phases_avx2_why_not(const ConvParams& p) {
  if (!base::use_avx2()) return "needs AVX2 and FMA";
  return phases_why_not(p);
}

}  // namespace

const Impl gemm_fwd_avx2{"gemm_avx2", avx2_why_not, fwd_ws, fwd<&kAvx2>};
const Impl gemm_bwd_data_avx2{"gemm_avx2", avx2_why_not, bwd_data_ws, bwd_data<&kAvx2>};
const Impl gemm_bwd_weight_avx2{"gemm_avx2", avx2_why_not, bwd_weight_ws, bwd_weight<&kAvx2>};
const Impl gemm_fwd_generic{"gemm_generic", zero_padding_reason, fwd_ws, fwd<&kGeneric>};
const Impl gemm_bwd_data_generic{"gemm_generic", zero_padding_reason, bwd_data_ws,
                                 bwd_data<&kGeneric>};
const Impl gemm_bwd_weight_generic{"gemm_generic", zero_padding_reason, bwd_weight_ws,
                                   bwd_weight<&kGeneric>};
const Impl gemm_bwd_data_phases_avx2{"gemm_phases_avx2", phases_avx2_why_not, phase_ws,
                                     bwd_data_by_phases<&kAvx2>};
const Impl gemm_bwd_data_phases_generic{"gemm_phases_generic", phases_why_not, phase_ws,
                                        bwd_data_by_phases<&kGeneric>};

}  // namespace convkit::conv::impl
