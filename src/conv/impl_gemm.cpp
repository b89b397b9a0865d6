// "gemm_avx2" / "gemm_generic": convolution as implicit GEMM on the packed SGEMM core.
//
//   forward      y_ng (Og x P) = w_g (Og x K) . col_ng (K x P)     K = Cg kH kW, P = Ho Wo
//                (col packed block by block from x; 1x1 stride 1 is the GEMM on x itself)
//   bwd_data     stride 1: the forward GEMM of gy with the flipped, transposed kernel
//                  (gx = conv(gy, w'), w'[c][o][kh][kw] = w[o][c][kH-1-kh][kW-1-kw], pad
//                  d(k-1)-pad)
//                stride > 1: dcol (K x P) = w_g^T . gy_ng, block by block, scattered by col2im
//   bwd_weight   gw_g (Og x K) = gy_g (Og x N P) . col^T (N P x K), the reduction over all images
//
// Threads split outputs (forward: (group, image, column block) tasks; bwd_data stride > 1: input
// channels; bwd_weight: gw columns, or fixed chunks of the reduction whose partials are added in
// chunk order), and KC is fixed, so every output is the same sum in the same order whatever the
// thread count.
// Workspace: the packed weights plus one KC x NC B block per thread (bwd_data stride > 1 adds the
// thread's packed rows of w^T and an L2-sized dcol block; bwd_weight in chunks adds the partial
// gw) — far below the full im2col buffer.
#include <atomic>

#include "base/aligned.h"
#include "base/cpu.h"
#include "base/parallel.h"
#include "conv/impls.h"
#include "kernels/direct/direct.h"
#include "kernels/gemm/gemm.h"
#include "kernels/pack/im2col_pack.h"

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
  void (*pack_col)(const pk::Im2col& g, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst);
  void (*pack_col_t)(const pk::Im2col& g, int64_t q0, int64_t qc, int64_t k0, int64_t nc,
                     float* dst);
  void (*pack_gy)(const float* gy0, int64_t image_stride, int64_t P, int64_t i0, int64_t mc,
                  int64_t q0, int64_t qc, float* dst);
  void (*col2im)(const pk::Im2col& g, const float* dcol, int64_t ld, int64_t k0, int64_t kc,
                 int64_t j0, int64_t nc, float* gx);
};
constexpr GemmOps kAvx2{kernels::gemm::f32_gemm_6x16__avx2_fma, pk::pack_im2col__avx2,
                        pk::pack_im2col_t__avx2, pk::pack_a_gy__avx2, pk::col2im_add__avx2};
constexpr GemmOps kGeneric{kernels::gemm::f32_gemm_6x16__generic, pk::pack_im2col,
                           pk::pack_im2col_t, pk::pack_a_gy, pk::col2im_add};

// Packs a whole M x K matrix, A(i, k) = at(i, k), as the GEMM's A operand: K-blocks of KC (block
// pc at dst + pc * Mp, Mp = M rounded up to MR), each MR-row panels (panel r at + r * kc), zero
// rows past M. packed_a_at finds the (i0, k0) block's first panel.
template <typename At>
void pack_a_whole(int64_t M, int64_t K, At&& at, float* dst) {
  const int64_t Mp = round_up(M, MR);
  for (int64_t pc = 0; pc < K; pc += KC) {
    const int64_t kc = std::min(KC, K - pc);
    float* d = dst + pc * Mp;
    for (int64_t r = 0; r < Mp; r += MR)
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t i = 0; i < MR; ++i)
          d[r * kc + k * MR + i] = r + i < M ? at(r + i, pc + k) : 0.f;
  }
}
inline const float* packed_a_at(const float* a, int64_t M, int64_t K, int64_t i0, int64_t k0) {
  return a + k0 * round_up(M, MR) + i0 * std::min(KC, K - k0);
}

// ---- forward ----------------------------------------------------------------------------------

// Packed weights of every group: group g's (Og x K) matrix as KC-blocks of MR panels.
int64_t packed_w_floats(const ConvParams& p) {
  return p.groups * packed_a_floats(p.Og(), kdim(p));
}

std::size_t fwd_ws(const ConvParams& p, int nt) {
  return base::align_floats(packed_w_floats(p)) + static_cast<std::size_t>(nt) * kBBlock;
}

// Forward GEMM over explicit operands; weight(g, i, k) gives group g's A(i, k) (bwd_data stride 1
// reuses it with gy and the flipped, transposed kernel, read in place).
template <typename WeightAt>
void fwd_run(const GemmOps& ops, const ConvParams& p, const float* x, WeightAt&& weight,
             const float* b, float* y, float* ws, int nthreads) {
  const int64_t Og = p.Og(), K = kdim(p), P = p.Ho * p.Wo, G = p.groups;
  const int64_t Mp = round_up(Og, MR);
  float* wpack = ws;  // (G, K-blocks of Mp x kc)
  for (int64_t g = 0; g < G; ++g)
    pack_a_whole(
        Og, K, [&](int64_t i, int64_t k) { return weight(g, i, k); }, wpack + g * Mp * K);
  float* bbufs = ws + base::align_floats(packed_w_floats(p));
  // Tasks: (group, image, column block); at least two per thread when planes are few.
  const int64_t planes = G * p.N;
  const int64_t per_plane = std::max<int64_t>(1, (2 * nthreads + planes - 1) / planes);
  const int64_t nb = std::max(NR, round_up((P + per_plane - 1) / per_plane, NR));
  const int64_t blocks = (P + nb - 1) / nb;
  const int64_t tasks = planes * blocks;
  const int nt = static_cast<int>(std::min<int64_t>(nthreads, tasks));
  base::parallel_run(nt, [&](int tid, int n_threads) {
    float* bbuf = bbufs + tid * kBBlock;
    const auto [t0, t1] = base::split_range(tasks, tid, n_threads);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t g = t / (p.N * blocks), n = (t / blocks) % p.N, jb = t % blocks;
      const pk::Im2col view = pk::im2col_view(p, x, n, g);
      float* yg = y + (n * p.O + g * Og) * P;  // (Og, P)
      const float* wg = wpack + g * Mp * K;
      kernels::gemm::gemm_columns(
          ops.uk, Og, K, jb * nb, std::min(P, (jb + 1) * nb), yg, P, bbuf,
          [&](int64_t k0, int64_t kc, int64_t jc, int64_t nc, float* dst) {
            ops.pack_col(view, k0, kc, jc, nc, dst);
          },
          [&](int64_t i0, int64_t, int64_t k0, int64_t) { return packed_a_at(wg, Og, K, i0, k0); },
          [&](int64_t jc, int64_t nc) {
            if (!b) return;
            for (int64_t o = 0; o < Og; ++o) {
              float* row = yg + o * P + jc;
              const float bo = b[g * Og + o];
              for (int64_t j = 0; j < nc; ++j) row[j] += bo;
            }
          });
    }
  });
}

template <const GemmOps* Ops>
void fwd(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  const int nt = base::threads_for(p.flops(), max_nt);
  if (p.has_padding() && !all_finite(a.w, p.O * kdim(p))) {
    note_fallback("gemm", "fwd", "non-finite weights with zero padding", kDirectLoops);
    kernels::direct::fwd(p, a.x, a.w, a.b, a.y);
    return;
  }
  const int64_t K = kdim(p), Og = p.Og();
  const float* w = a.w;
  fwd_run(
      *Ops, p, a.x, [=](int64_t g, int64_t i, int64_t k) { return w[(g * Og + i) * K + k]; }, a.b,
      a.y, ws, nt);
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

// Stride > 1: input channels per dcol block (whole channels, about MC rows of dcol).
int64_t dcol_channels(const ConvParams& p) {
  return std::max<int64_t>(1, kernels::gemm::MC / (p.kH * p.kW));
}

// Stride > 1: floats of one channel block's rows of w_g^T, packed whole (Og long).
int64_t dcol_a_floats(const ConvParams& p) {
  return packed_a_floats(dcol_channels(p) * p.kH * p.kW, p.Og());
}

std::size_t bwd_data_ws(const ConvParams& p, int nt) {
  if (p.sH == 1 && p.sW == 1) return fwd_ws(transposed(p), nt);
  // Per thread: a packed B block (gy, Og x kDcolCols), the packed rows of w_g^T of each of its
  // channel blocks and a dcol block.
  const int64_t blocks = ((p.Cg() + nt - 1) / nt + dcol_channels(p) - 1) / dcol_channels(p);
  return static_cast<std::size_t>(nt) *
         base::align_floats(packed_b_floats(KC, kDcolCols) + blocks * dcol_a_floats(p) +
                            dcol_channels(p) * p.kH * p.kW * kDcolCols);
}

void bwd_data_s1(const GemmOps& ops, const ConvParams& p, const ConvArgs& a, float* ws, int nt) {
  const int64_t Cg = p.Cg(), Og = p.Og(), khw = p.kH * p.kW;
  const float* w = a.w;
  // A(c, (o, t)) of group g = w[g Og + o][c][kH kW - 1 - t]: the kernel flipped and transposed.
  fwd_run(
      ops, transposed(p), a.gy,
      [=](int64_t g, int64_t c, int64_t k) {
        const int64_t o = k / khw, t = k % khw;
        return w[((g * Og + o) * Cg + c) * khw + khw - 1 - t];
      },
      nullptr, a.gx, ws, nt);
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
  const int nt = static_cast<int>(std::min<int64_t>(nthreads, Cg));
  const int64_t cb = dcol_channels(p), ablock = dcol_a_floats(p);
  const int64_t blocks = ((Cg + nthreads - 1) / nthreads + cb - 1) / cb;  // per thread, at most
  const int64_t per_thread = bwd_data_ws(p, nthreads) / nthreads;
  base::parallel_run(nt, [&](int tid, int n_threads) {
    float* bbuf = ws + tid * per_thread;
    float* apack = bbuf + packed_b_floats(KC, kDcolCols);  // (blocks, ablock)
    float* dcol = apack + blocks * ablock;
    const auto [c0, c1] = base::split_range(Cg, tid, n_threads);
    if (c0 == c1) return;
    for (int64_t g = 0; g < p.groups; ++g) {
      const float* wg = a.w + g * Og * K;  // A = w_g^T: A(r, o) = wg[o K + r]
      for (int64_t cc = c0; cc < c1; cc += cb) {
        const int64_t r0 = cc * khw, mrows = (std::min(c1, cc + cb) - cc) * khw;
        pack_a_whole(
            mrows, Og, [&](int64_t i, int64_t o) { return wg[o * K + r0 + i]; },
            apack + (cc - c0) / cb * ablock);
      }
      for (int64_t n = 0; n < p.N; ++n) {
        float* gxg = a.gx + (n * p.C + g * Cg) * p.H * p.W;
        std::fill(gxg + c0 * p.H * p.W, gxg + c1 * p.H * p.W, 0.f);
        const pk::Im2col view = pk::im2col_view(p, gxg, 0, 0);
        const float* gyg = a.gy + (n * p.O + g * Og) * P;  // (Og, P)
        for (int64_t cc = c0; cc < c1; cc += cb) {
          const int64_t r0 = cc * khw, mrows = (std::min(c1, cc + cb) - cc) * khw;
          const float* ablk = apack + (cc - c0) / cb * ablock;
          for (int64_t jb = 0; jb < P; jb += kDcolCols) {
            const int64_t ncols = std::min(kDcolCols, P - jb);
            // dcol (mrows x ncols) = A(i0 .. i0+mrows, :) . gy_g(:, jb .. jb+ncols)
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
        }
      }
    }
  });
}

template <const GemmOps* Ops>
void bwd_data(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  const int nt = base::threads_for(p.flops(), max_nt);
  if (p.has_padding() && !all_finite(a.w, p.O * kdim(p))) {
    note_fallback("gemm", "bwd_data", "non-finite weights with zero padding", kDirectLoops);
    kernels::direct::bwd_data(p, a.gy, a.w, a.gx);
    return;
  }
  if (p.sH == 1 && p.sW == 1)
    bwd_data_s1(*Ops, p, a, ws, nt);
  else
    bwd_data_strided(*Ops, p, a, ws, nt);
}

// ---- backward weight --------------------------------------------------------------------------

// The reduction over q = (image, output pixel) is cut into this many fixed chunks when gw is small
// next to it (Og <= Q / 64): each chunk's partial gw goes to the workspace and the partials are
// added in chunk order, so gy and col are packed once in all, not once per block of gw columns.
// The count depends only on the shape (never on threads), so the bits do not either. Otherwise
// (1): threads split gw's columns and every one packs all of gy.
int64_t q_chunks(const ConvParams& p) {
  const int64_t Q = p.N * p.Ho * p.Wo;
  if (p.Og() * 64 > Q) return 1;
  return std::min<int64_t>(8, (Q + KC - 1) / KC);
}

std::size_t bwd_weight_ws(const ConvParams& p, int nt) {
  const int64_t chunks = q_chunks(p);
  const std::size_t partials = chunks > 1 ? base::align_floats(chunks * p.O * kdim(p)) : 0;
  return partials + static_cast<std::size_t>(nt) *
                        base::align_floats(kBBlock + packed_a_floats(kernels::gemm::MC, KC));
}

template <const GemmOps* Ops>
void bwd_weight(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  const int nthreads = base::threads_for(p.flops(), max_nt);
  if (a.gb) bias_grad(p, a.gy, a.gb, nthreads);
  if (!a.gw) return;
  const int64_t Og = p.Og(), K = kdim(p), P = p.Ho * p.Wo, Q = p.N * P, G = p.groups;
  const int64_t chunks = q_chunks(p);
  // With padding, non-finite gy must run the direct loops (see note_fallback). In chunks, each
  // task checks the slice of gy it is about to pack (in parallel, and the slice is then warm);
  // otherwise gy is checked whole first.
  auto fallback = [&] {
    note_fallback("gemm", "bwd_weight", "non-finite output gradients with zero padding",
                  kDirectLoops);
    kernels::direct::bwd_weight(p, a.gy, a.x, a.gw, nullptr);
  };
  if (p.has_padding() && chunks == 1 && !all_finite(a.gy, p.N * p.O * P)) return fallback();
  float* partials = ws;  // (chunks, G, Og, K) when chunks > 1
  float* thread_ws = ws + (chunks > 1 ? base::align_floats(chunks * p.O * K) : 0);
  const int64_t per_thread = base::align_floats(kBBlock + packed_a_floats(kernels::gemm::MC, KC));
  // gw_g(:, k0 .. k1) (or chunk c's partial of it) over q in [q0, q1): C = gy_g . col^T.
  auto gemm = [&](float* bbuf, int64_t g, int64_t q0, int64_t q1, int64_t k0, int64_t k1,
                  float* c) {
    const pk::Im2col view = pk::im2col_view(p, a.x, 0, g);
    const float* gy0 = a.gy + g * Og * P;
    float* abuf = bbuf + kBBlock;
    kernels::gemm::gemm_columns(
        Ops->uk, Og, q1 - q0, k0, k1, c, K, bbuf,
        [&](int64_t qq, int64_t qc, int64_t kk0, int64_t nc, float* dst) {
          Ops->pack_col_t(view, q0 + qq, qc, kk0, nc, dst);
        },
        [&](int64_t i0, int64_t mc, int64_t qq, int64_t qc) {
          Ops->pack_gy(gy0, p.O * P, P, i0, mc, q0 + qq, qc, abuf);
          return static_cast<const float*>(abuf);
        },
        [](int64_t, int64_t) {});
  };
  if (chunks > 1) {
    const int64_t tasks = G * chunks;
    const int nt = static_cast<int>(std::min<int64_t>(nthreads, tasks));
    std::atomic<bool> non_finite{false};
    base::parallel_run(nt, [&](int tid, int n_threads) {
      const auto [t0, t1] = base::split_range(tasks, tid, n_threads);
      for (int64_t t = t0; t < t1; ++t) {
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
            continue;
          }
        }
        gemm(thread_ws + tid * per_thread, g, q0, q1, 0, K, partials + (c * G + g) * Og * K);
      }
    });
    if (non_finite.load()) return fallback();
    // gw = partial 0 + partial 1 + ... in chunk order (O K floats per chunk: cheap, serial).
    const int64_t n = p.O * K;
    std::copy(partials, partials + n, a.gw);
    for (int64_t c = 1; c < chunks; ++c) {
      const float* part = partials + c * n;
      for (int64_t i = 0; i < n; ++i) a.gw[i] += part[i];
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
  base::parallel_run(nt, [&](int tid, int n_threads) {
    const auto [t0, t1] = base::split_range(tasks, tid, n_threads);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t g = t / blocks, kb = t % blocks;
      gemm(thread_ws + tid * per_thread, g, 0, Q, kb * nb, std::min(K, (kb + 1) * nb),
           a.gw + g * Og * K);
    }
  });
}

const char* avx2_why_not(const ConvParams& p) {
  if (!base::use_avx2()) return "needs AVX2 and FMA";
  return zero_padding_reason(p);
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

}  // namespace convkit::conv::impl
