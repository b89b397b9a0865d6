// "smallc_avx2": direct convolution for layers with few input channels per group (C/g <= 4: LeNet's
// first layer, image stems such as ResNet's 7x7 stride 2), where the GEMM's K = C/g * kH * kW is
// too short to pay for im2col and packing. Any kernel size, stride, dilation and O.
//
// fwd and bwd_data are one correlation ("Corr"): a task is a chunk of output rows of one image; per
// group it copies the rows of the source planes it reads into a per-thread zero-padded buffer,
// split into stride phases (buf[plane][row][phase][col]; stride 2 by a vector gather), so every tap
// of an output row is the unit-stride run `buf + off[t]` (kernels/smallc), and then computes every
// output row in blocks of up to 6 output channels, each loaded input vector used by all channels of
// the block. Taps run in (kh, plane, kw) order, so the kernel rows that fall on the zero rows above
// or below the source are skipped; for 3, 5 and 7 wide kernels at stride 1 or 2 the kernel walks
// the taps a kernel row at a time (constant displacements, no per-tap offsets). bwd_data (stride
// 1) is the forward correlation of gy, padded by (k - 1) * d - pad (negative: cropped), with the
// flipped kernel, O planes in and C planes out. fwd and bwd_data chunks change no sum, so their
// bits never depend on the thread count.
//
// bwd_weight reduces over N * Ho * Wo: stacked output rows n * Ho + oh are cut into chunks of a
// fixed number of rows (from the shape only), each chunk's sums go into its own partial (vector
// lanes added in a fixed order at the chunk's end), and the partials are added in chunk order.
//
// Threads take tasks (and chunks) in turn from a shared counter rather than in fixed ranges: no
// task's result depends on which thread runs it, so the bits stay the same for any thread count and
// any interleaving, and a thread the OS preempts on a shared machine holds up only its own task
// (fwd and bwd_data tasks shrink towards the end for that reason, see chunk_end).
//
// NaN/Inf: the buffer's zero padding is multiplied, not skipped, so fwd with padding and bwd_data
// fall back to the direct loops when a weight is non-finite (0 * Inf would be NaN); a bwd_weight
// chunk whose partial sums come out non-finite (a non-finite gy or x inside it) is recomputed by a
// loop that skips padded taps, as the reference does.
//
// "winograd1d_avx2" (the second half of the file) runs fwd and bwd_weight on the same tasks and
// buffers with each kernel row's taps by 1-D Winograd F(4, r): half the multiplications, where the
// sum has enough rows to pay for the transforms (the ResNet stem); and strided bwd_data, whose
// phase grids are correlations of gy rows, with the same kernels.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <utility>
#include <vector>

#include "base/aligned.h"
#include "base/cpu.h"
#include "base/parallel.h"
#include "conv/impls.h"
#include "kernels/direct/direct.h"
#include "kernels/phase/interleave.h"
#include "kernels/smallc/smallc.h"
#include "kernels/smallc/wino1d.h"

namespace convkit::conv::impl {

namespace {

namespace ks = kernels::smallc;

constexpr int64_t kMaxTaps = 1024;          // taps per output (stack arrays of offsets)
constexpr int64_t kTaskPositions = 4096;    // output positions per task (changes no sum)
constexpr int64_t kBufferFloats = 32768;    // a task's buffer (128 KiB) stays in L2
constexpr int64_t kChunkPositions = 4096;   // bwd_weight positions per partial, at most
constexpr int64_t kGwCallPositions = 1024;  // bwd_weight rows per kernel call: gy and input in L1

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// One correlation of `cin` source planes into `cout` output planes per group, as a pass sees it.
struct Corr {
  int64_t N, G, cin, cout;  // images, groups, source and output planes per group
  int64_t Hs, Ws, Ho, Wo;   // source and output plane sizes
  int64_t kH, kW, sH, sW, dH, dW;
  int64_t top, left;         // output (0, 0)'s tap (0, 0) reads source (-top, -left)
  int64_t R, Hb, Wq, plane;  // buffer of a group's planes: R output rows -> Hb rows x sW x Wq

  int64_t taps() const { return cin * kH * kW; }
  int64_t row_stride() const { return sH * sW * Wq; }  // buffer floats between output rows
  std::size_t buffer_floats() const {
    return base::align_floats(static_cast<std::size_t>(cin * plane + 8));
  }
};

// fwd (and bwd_weight's view of x): x (N, C, H, W) -> y (N, O, Ho, Wo).
// bwd_data (stride 1): gy (N, O, Ho, Wo) -> gx (N, C, H, W) with the flipped kernel.
// min_wq: the least buffer row phase width (the Winograd rows read whole 8-tile vectors).
Corr make_corr(const ConvParams& p, Pass pass, int64_t min_wq = 0) {
  Corr k{};
  k.N = p.N, k.G = p.groups, k.kH = p.kH, k.kW = p.kW, k.dH = p.dH, k.dW = p.dW;
  if (pass == Pass::BwdData) {
    k.cin = p.Og(), k.cout = p.Cg(), k.Hs = p.Ho, k.Ws = p.Wo, k.Ho = p.H, k.Wo = p.W;
    k.sH = k.sW = 1;
    k.top = (p.kH - 1) * p.dH - p.pad_t, k.left = (p.kW - 1) * p.dW - p.pad_l;
  } else {
    k.cin = p.Cg(), k.cout = p.Og(), k.Hs = p.H, k.Ws = p.W, k.Ho = p.Ho, k.Wo = p.Wo;
    k.sH = p.sH, k.sW = p.sW, k.top = p.pad_t, k.left = p.pad_l;
  }
  k.Wq = std::max(ceil_div(k.Wo, 8) * 8 + (k.kW - 1) * k.dW / k.sW, min_wq);
  // About kTaskPositions outputs, as many as the buffer holds in kBufferFloats (at least one).
  const int64_t rows_fit =
      (kBufferFloats / (k.cin * k.sW * k.Wq) - (k.kH - 1) * k.dH - 1) / k.sH + 1;
  k.R = std::clamp<int64_t>(std::min(ceil_div(kTaskPositions, k.Wo), rows_fit), 1, k.Ho);
  k.Hb = (k.R - 1) * k.sH + (k.kH - 1) * k.dH + 1;
  k.plane = k.Hb * k.sW * k.Wq;
  return k;
}

// Buffer offset of tap (plane c, kh, kw) for output row 0.
int64_t tap_offset(const Corr& k, int64_t c, int64_t kh, int64_t kw) {
  return c * k.plane + (kh * k.dH * k.sW + (kw * k.dW) % k.sW) * k.Wq + (kw * k.dW) / k.sW;
}

// Tap offsets in (plane, kh, kw) order: bwd_weight's accumulators, laid out as the weights.
void tap_offsets(const Corr& k, int64_t* off) {
  int64_t t = 0;
  for (int64_t c = 0; c < k.cin; ++c)
    for (int64_t kh = 0; kh < k.kH; ++kh)
      for (int64_t kw = 0; kw < k.kW; ++kw) off[t++] = tap_offset(k, c, kh, kw);
}

// The correlation's taps run in (kh, plane, kw) order instead, so that the taps of the kernel rows
// an output row reads from padding (near the top and bottom) are a prefix and a suffix, skipped.
int64_t corr_tap(const Corr& k, int64_t c, int64_t kh, int64_t kw) {
  return (kh * k.cin + c) * k.kW + kw;
}

// Kernel rows [kh0, kh1) of output row r whose source rows lie inside the source.
std::pair<int64_t, int64_t> live_kernel_rows(const Corr& k, int64_t r) {
  const int64_t first = r * k.sH - k.top;  // source row of kh = 0
  const int64_t kh0 = first >= 0 ? 0 : ceil_div(-first, k.dH);
  const int64_t kh1 = first >= k.Hs ? 0 : (k.Hs - 1 - first) / k.dH + 1;
  return {std::min(kh0, k.kH), std::clamp(kh1, std::min(kh0, k.kH), k.kH)};
}

// Columns [lo, hi) of buffer phase ph whose source column j * sW + ph - left lies in [0, Ws); the
// same for every row and task, so the columns outside stay as clear_buffer left them (zero).
std::pair<int64_t, int64_t> data_columns(const Corr& k, int64_t ph) {
  const int64_t first = k.left - ph;  // source column of j = 0 is -first
  const int64_t lo = std::clamp<int64_t>(ceil_div(std::max<int64_t>(first, 0), k.sW), 0, k.Wq);
  const int64_t hi = std::clamp<int64_t>(ceil_div(k.Ws + first, k.sW), lo, k.Wq);
  return {lo, hi};
}

// Once per thread and call, before the first fill.
void clear_buffer(const Corr& k, float* buf) {
  std::fill(buf, buf + k.cin * k.plane, 0.f);
}

// buf[c][i][ph][j] = src[c][row0 + i - top][j * sW + ph - left] (0 outside the source), for the
// cin planes of one group of one image (src: (cin, Hs, Ws)) and the buffer rows that `rows`
// (<= R) output rows read. Writes only the data columns.
void fill(const Corr& k, const float* src, int64_t row0, int64_t rows, float* buf) {
  constexpr int64_t kAhead = 6;  // source rows prefetched ahead: the fill waits on x otherwise
  const int64_t hb = (rows - 1) * k.sH + (k.kH - 1) * k.dH + 1;
  for (int64_t c = 0; c < k.cin; ++c) {
    const float* s = src + c * k.Hs * k.Ws;
    for (int64_t i = 0; i < hb; ++i) {
      const int64_t sr = row0 + i - k.top;
      if (const int64_t pr = sr + kAhead; i + kAhead < hb && pr >= 0 && pr < k.Hs)
        for (int64_t j = 0; j < k.Ws; j += 16) __builtin_prefetch(s + pr * k.Ws + j);
      for (int64_t ph = 0; ph < k.sW; ++ph) {
        const auto [lo, hi] = data_columns(k, ph);
        float* d = buf + c * k.plane + (i * k.sW + ph) * k.Wq;
        if (sr < 0 || sr >= k.Hs) {
          std::fill(d + lo, d + hi, 0.f);
          continue;
        }
        // A plain loop: rows are short, a library copy costs more in calls than in moves.
        const float* row = s + sr * k.Ws + lo * k.sW + ph - k.left;  // source of column lo
        if (k.sW == 1)
          for (int64_t j = 0; j < hi - lo; ++j) d[lo + j] = row[j];
        else if (k.sW == 2)  // the stem's case: a vector gather (scalar, it cost ~5% of the call)
          ks::f32_gather_stride2__avx2(hi - lo, row, d + lo);
        else
          for (int64_t j = 0; j < hi - lo; ++j) d[lo + j] = row[j * k.sW];
      }
    }
  }
}

// Output-channel blocks of at most kMaxRowChannels, balanced: block i = [first, first + size).
struct Blocks {
  int64_t n, q, r;
  explicit Blocks(int64_t cout)
      : n(ceil_div(cout, ks::kMaxRowChannels)), q(cout / n), r(cout % n) {}
  int64_t first(int64_t i) const { return i * q + std::min(i, r); }
  int64_t size(int64_t i) const { return q + (i < r ? 1 : 0); }
};

// Output rows are handed out in chunks of the stacked rows n * Ho + r, never across an image: R
// rows while plenty remain, then shrinking with what remains (guided scheduling), so that the
// threads finish together. Where chunk boundaries fall changes no sum (they follow from the shape
// and the thread count, not from which thread takes which chunk).
int64_t chunk_end(const Corr& k, int64_t s, int nt) {
  const int64_t rem = k.N * k.Ho - s, image_end = (s / k.Ho + 1) * k.Ho;
  const int64_t size =
      std::clamp<int64_t>(ceil_div(rem, 2 * nt), std::max<int64_t>(1, k.R / 4), k.R);
  return std::min(image_end, s + size);
}

// Runs chunk(tid, n, r0, r1) for output rows [r0, r1) of image n, every chunk once, on the
// threads the work is worth; each thread calls init(tid) before its first chunk.
template <typename Init, typename Chunk>
void for_each_chunk(const Corr& k, double flops, int max_nt, Init&& init, Chunk&& chunk) {
  const int64_t rows = k.N * k.Ho;
  const int nt =
      static_cast<int>(std::min<int64_t>(base::threads_for(flops, max_nt), ceil_div(rows, k.R)));
  std::atomic<int64_t> next{0};  // chunks are taken in turn (see the top of the file)
  base::parallel_run(nt, [&](int tid, int) {
    init(tid);
    for (;;) {
      int64_t s = next.load(std::memory_order_relaxed), e;
      do {
        if (s >= rows) return;
        e = chunk_end(k, s, nt);
      } while (!next.compare_exchange_weak(s, e, std::memory_order_relaxed));
      const int64_t n = s / k.Ho;
      chunk(tid, n, s - n * k.Ho, e - n * k.Ho);
    }
  });
}

// Runs the correlation: wp holds each group's blocks as (taps, block size) panels at
// g * cout * taps + first * taps.
void correlate(const Corr& k, const float* src, const float* wp, const float* bias, float* out,
               float* bufs, int max_nt, double flops) {
  // Offsets of the taps in corr_tap order or, where the kernel's unrolled rows of kW taps serve
  // the shape (the stem's 7x7 stride 2 among them), of each (kh, plane) row of taps.
  const bool by_rows = ks::has_rowk(k.kW, k.sW, k.dW);
  int64_t off[kMaxTaps];
  for (int64_t c = 0; c < k.cin; ++c)
    for (int64_t kh = 0; kh < k.kH; ++kh) {
      if (by_rows) off[kh * k.cin + c] = tap_offset(k, c, kh, 0);
      for (int64_t kw = 0; kw < k.kW && !by_rows; ++kw)
        off[corr_tap(k, c, kh, kw)] = tap_offset(k, c, kh, kw);
    }
  const int64_t taps = k.taps(), row_taps = k.cin * k.kW;
  const Blocks ob(k.cout);
  const auto init = [&](int tid) { clear_buffer(k, bufs + tid * k.buffer_floats()); };
  for_each_chunk(k, flops, max_nt, init, [&](int tid, int64_t n, int64_t r0, int64_t r1) {
    float* buf = bufs + tid * k.buffer_floats();
    for (int64_t g = 0; g < k.G; ++g) {
      fill(k, src + (n * k.G + g) * k.cin * k.Hs * k.Ws, r0 * k.sH, r1 - r0, buf);
      for (int64_t r = r0; r < r1; ++r) {
        const float* in = buf + (r - r0) * k.row_stride();
        const auto [kh0, kh1] = live_kernel_rows(k, r);
        const int64_t t0 = kh0 * row_taps;
        for (int64_t b = 0; b < ob.n; ++b) {
          const int64_t o0 = g * k.cout + ob.first(b), nb = ob.size(b);
          const float* w = wp + o0 * taps + t0 * nb;
          const float* b0 = bias ? bias + o0 : nullptr;
          float* y = out + ((n * k.G * k.cout + o0) * k.Ho + r) * k.Wo;
          if (by_rows)
            ks::f32_conv2d_smallc_rowk__avx2_fma(k.kW, k.sW, k.Wo, (kh1 - kh0) * k.cin, in,
                                                 off + kh0 * k.cin, k.Wq, w, b0, nb, y,
                                                 k.Ho * k.Wo);
          else
            ks::f32_conv2d_smallc_row__avx2_fma(k.Wo, (kh1 - kh0) * row_taps, in, off + t0, w, b0,
                                                nb, y, k.Ho * k.Wo);
        }
      }
    }
  });
}

// ---- applicability and workspace ----------------------------------------------------------------

int64_t weights(const ConvParams& p) {
  return p.O * p.Cg() * p.kH * p.kW;
}

// Output rows per bwd_weight partial: about 2^20 multiply-adds (kChunkPositions positions at most,
// 1024 at least), from the shape only: it fixes the order of the sum.
int64_t gw_chunk_rows(const ConvParams& p) {
  const int64_t positions =
      std::clamp<int64_t>((int64_t{1} << 20) / weights(p), 1024, kChunkPositions);
  return ceil_div(positions, p.Wo);
}
int64_t gw_chunks(const ConvParams& p) {
  return ceil_div(p.N * p.Ho, gw_chunk_rows(p));
}

std::size_t fwd_ws(const ConvParams& p, int nt) {
  return base::align_floats(weights(p)) + nt * make_corr(p, Pass::Fwd).buffer_floats();
}
std::size_t bwd_data_ws(const ConvParams& p, int nt) {
  return base::align_floats(weights(p)) + nt * make_corr(p, Pass::BwdData).buffer_floats();
}
std::size_t bwd_weight_ws(const ConvParams& p, int nt) {
  return base::align_floats(gw_chunks(p) * weights(p)) +
         base::align_floats(2 * gw_chunks(p) * p.O) +  // the chunks' shares of gb (doubles)
         nt * (make_corr(p, Pass::Fwd).buffer_floats() + base::align_floats(8 * weights(p)));
}

// Scratch stays well below the layer's im2col buffer (a quarter of it, or 1 MiB for small layers).
// The dispatch checks it at one thread: a choice that depended on the thread count would change
// the bits with it. (The per-thread parts are small: padded rows of a few channels.)
bool within_budget(const ConvParams& p, std::size_t floats) {
  const double im2col = double(p.N) * double(p.C) * double(p.kH * p.kW) * double(p.Ho * p.Wo);
  return double(floats) <= std::max(0.25 * im2col, double(1 << 18));
}

// Few input channels per group: each loaded input vector feeds every output channel of a block
// of 6, so the kernels run near the FMA bound whatever the kernel size or O, and no im2col or
// packing is paid for. With more input channels the GEMM (or Winograd) has enough K to amortise
// its packing (measured wins: LeNet's C = 1, the ResNet stem's C = 3, 7x7 stride 2).
const char* common_why_not(const ConvParams& p) {
  if (!base::use_avx2()) return "needs AVX2 and FMA";
  if (p.groups > 1 && p.Cg() == 1) return "depthwise (the depthwise kernels serve it)";
  if (p.Cg() > 4) return "C/groups > 4 (the GEMM's K is long enough to pay for packing)";
  if (p.Cg() * p.kH * p.kW > kMaxTaps) return "C/groups * kH * kW > 1024";
  return zero_padding_reason(p);
}
const char* fwd_why_not(const ConvParams& p) {
  if (const char* why = common_why_not(p)) return why;
  if (!within_budget(p, fwd_ws(p, 1))) return "workspace over budget";
  return nullptr;
}
const char* bwd_data_why_not(const ConvParams& p) {
  if (const char* why = common_why_not(p)) return why;
  if (p.sH != 1 || p.sW != 1) return "stride > 1";
  if (p.Og() * p.kH * p.kW > kMaxTaps) return "O/groups * kH * kW > 1024";
  if (!within_budget(p, bwd_data_ws(p, 1))) return "workspace over budget";
  return nullptr;
}
const char* bwd_weight_why_not(const ConvParams& p) {
  if (const char* why = common_why_not(p)) return why;
  if (!within_budget(p, bwd_weight_ws(p, 1))) return "workspace over budget";
  return nullptr;
}

// ---- passes -------------------------------------------------------------------------------------

void fwd(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  if (p.has_padding() && !all_finite(a.w, weights(p))) {
    note_fallback("smallc_avx2", "fwd", "non-finite weights with zero padding", kDirectLoops);
    kernels::direct::fwd(p, a.x, a.w, a.b, a.y);
    return;
  }
  const Corr k = make_corr(p, Pass::Fwd);
  const int64_t taps = k.taps();
  const Blocks ob(k.cout);
  // wp: per group and block, w[o][c][kh][kw] at (corr_tap(c, kh, kw), o) of a (taps, block size)
  // panel.
  float* wp = ws;
  for (int64_t g = 0; g < k.G; ++g)
    for (int64_t b = 0; b < ob.n; ++b) {
      const int64_t o0 = g * k.cout + ob.first(b), nb = ob.size(b);
      for (int64_t c = 0, i = 0; c < k.cin; ++c)
        for (int64_t kh = 0; kh < k.kH; ++kh)
          for (int64_t kw = 0; kw < k.kW; ++kw, ++i)
            for (int64_t o = 0; o < nb; ++o)
              wp[o0 * taps + corr_tap(k, c, kh, kw) * nb + o] = a.w[(o0 + o) * taps + i];
    }
  correlate(k, a.x, wp, a.b, a.y, ws + base::align_floats(weights(p)), max_nt, p.flops());
}

void bwd_data(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  if (!all_finite(a.w, weights(p))) {
    note_fallback("smallc_avx2", "bwd_data", "non-finite weights", kDirectLoops);
    kernels::direct::bwd_data(p, a.gy, a.w, a.gx);
    return;
  }
  const Corr k = make_corr(p, Pass::BwdData);
  const int64_t taps = k.taps(), kk = p.kH * p.kW;
  const Blocks cb(k.cout);
  // wp: per group and block of input channels c, w[o][c][kH-1-kh][kW-1-kw] at
  // (corr_tap(o, kh, kw), c) of a (taps, block size) panel.
  float* wp = ws;
  for (int64_t g = 0; g < k.G; ++g)
    for (int64_t b = 0; b < cb.n; ++b) {
      const int64_t c0 = cb.first(b), nb = cb.size(b), base = (g * k.cout + c0) * taps;
      for (int64_t o = 0; o < k.cin; ++o)
        for (int64_t i = 0; i < kk; ++i)
          for (int64_t c = 0; c < nb; ++c)
            wp[base + corr_tap(k, o, i / p.kW, i % p.kW) * nb + c] =
                a.w[((g * k.cin + o) * k.cout + c0 + c) * kk + (kk - 1 - i)];
    }
  correlate(k, a.gy, wp, nullptr, a.gx, ws + base::align_floats(weights(p)), max_nt, p.flops());
}

// ---- forward by 1-D Winograd along rows ("winograd1d_avx2") ------------------------------------
//
// The forward's taps of one (plane, kernel row, stride phase) are a correlation of r = ceil(kW /
// sW) taps along a buffer row phase. F(4, r) (kernels/smallc/wino1d.h) runs each on tiles of 4
// outputs: every buffer row phase is transformed once (V, A = r + 3 values a tile, shared by every
// output channel), every kernel row phase once per call (U, in double), and an output tile is
//   y = AT [ sum over (plane, kernel row, phase) of U . V ] + bias
// — one inverse transform per tile and channel, the sum over rows (K = cin kH sW of them) staying
// in the transformed domain. The stem's 7x7 stride 2 (phases of 4 and 3 taps, the 3 padded to 4)
// takes 7 K / 4 multiplications an output instead of 7 K / 2. V is laid out per (plane, row parity,
// phase, e) with the tiles of all the task's rows of that parity in one run, so a block of 16
// consecutive tiles may cross output rows and only a task's last block has unused lanes.
// Tasks, buffers and the order of every sum are smallc's and fixed by the shape: the bits do not
// depend on the thread count. Rows of the buffer that lie in the padding are zero, so the kernel
// rows reading them add exact zeros (no rows are skipped).
// Error: the transforms mix the 4 outputs of a tile, so an output's rounding error scales with the
// largest sum of |terms| in its tile (the tests allow 4x the direct-sum bound over that). An output
// whose window reads only zeros (padding, or zeros in x) is not exactly its bias but carries its
// tile's noise, about u times its neighbours: padding wider than kW / 2 goes to smallc for that.
// NaN/Inf: the transforms would spread a non-finite input over its tile (Inf - Inf = NaN); such a
// value shows as a non-finite V, and the call is then run again by smallc's direct forward, whose
// NaN/Inf follow the direct convolution's. Non-finite weights go to it from the start.

// G[e][j] of F(4, r).
double wino_g(int64_t r, int64_t e, int64_t j) {
  return r == 2   ? ks::wino1d::Mat<2>::G[e][j]
         : r == 3 ? ks::wino1d::Mat<3>::G[e][j]
                  : ks::wino1d::Mat<4>::G[e][j];
}
// Element e of a kernel row's transform, (G taps)[e] in double: U of the forward and bwd_data.
double wino_u(int64_t r, int64_t e, const double* taps) {
  double t = 0;
  for (int64_t j = 0; j < r; ++j) t += wino_g(r, e, j) * taps[j];
  return t;
}

struct Rows1d {
  Corr k;
  int64_t r, A;    // taps per row phase, transform size (r + 3)
  int64_t tw, tp;  // tiles per output row, and per transformed buffer row (tw rounded up to 8)
  int64_t K;       // rows of the sum: cin * kH * sW
  int64_t lq;      // floats of one (plane, parity, phase, e) run of tiles
  std::size_t v_floats() const {
    return base::align_floats(static_cast<std::size_t>(k.cin * k.sH * k.sW * A * lq));
  }
  std::size_t m_floats() const {
    return base::align_floats(static_cast<std::size_t>(A * k.cout * 16));
  }
  std::size_t thread_floats() const { return k.buffer_floats() + v_floats() + m_floats(); }
  std::size_t u_floats() const {
    return base::align_floats(static_cast<std::size_t>(k.G * k.cout * A * K));
  }
  // V offset of (plane c, kernel row kh, phase ph) for the task's first output row.
  int64_t v_offset(int64_t c, int64_t kh, int64_t ph) const {
    return ((c * k.sH + kh % k.sH) * k.sW + ph) * A * lq + kh / k.sH * tw;
  }
  // v_offset of every row k = (c kH + kh) sW + ph of the sum.
  std::vector<int64_t> row_offsets() const {
    std::vector<int64_t> off;
    for (int64_t c = 0; c < k.cin; ++c)
      for (int64_t kh = 0; kh < k.kH; ++kh)
        for (int64_t ph = 0; ph < k.sW; ++ph) off.push_back(v_offset(c, kh, ph));
    return off;
  }
  // V of the first hb rows of the buffer, in row order (a row's tiles past tw are overwritten by
  // the next row's); false when some value is Inf or NaN.
  bool transform_rows(const float* buf, int64_t hb, float* v) const {
    bool finite = true;
    for (int64_t c = 0; c < k.cin; ++c)
      for (int64_t i = 0; i < hb; ++i)
        for (int64_t ph = 0; ph < k.sW; ++ph)
          finite &= ks::f32_wino1d_input__avx2_fma(
              r, tp, buf + c * k.plane + (i * k.sW + ph) * k.Wq, v + v_offset(c, i, ph), lq);
    return finite;
  }
};

Rows1d make_rows1d(const ConvParams& p) {
  Rows1d w{};
  w.r = ceil_div(p.kW, p.sW), w.A = w.r + 3;
  w.tw = ceil_div(p.Wo, 4), w.tp = ceil_div(w.tw, 8) * 8;
  // The input transform of tile t reads d[4 t, 4 t + 8) of its row phase: up to 4 tp + 4.
  w.k = make_corr(p, Pass::Fwd, 4 * w.tp + 8);
  w.K = w.k.cin * w.k.kH * w.k.sW;
  // Rows of one parity: ceil(Hb / sH). The last written row's tail reaches tp tiles past its start,
  // a block reads 15 tiles past the task's last tile.
  w.lq = base::align_floats(ceil_div(w.k.Hb, w.k.sH) * w.tw + w.tp + 16);
  return w;
}

std::size_t wino_fwd_ws(const ConvParams& p, int nt) {
  const Rows1d w = make_rows1d(p);
  // The direct forward reruns non-finite calls in the same workspace.
  return std::max(w.u_floats() + nt * w.thread_floats(), fwd_ws(p, nt));
}

// What every pass of the rows needs: smallc's layers, enough output channels, narrow padding.
const char* wino_common_why_not(const ConvParams& p) {
  if (const char* why = common_why_not(p)) return why;
  if (p.Og() < 8)
    return "fewer than 8 output channels per group (the input transforms would dominate)";
  if (std::max(p.pad_l, p.pad_r) > p.kW / 2)
    return "padding wider than kW / 2: outputs that read mostly padding would get their tiles' "
           "rounding noise, large against their own few terms";
  return nullptr;
}

// The geometry the forward and weight gradient need.
const char* wino_rows_why_not(const ConvParams& p) {
  if (const char* why = wino_common_why_not(p)) return why;
  if (p.dW != 1 || p.sW > 2) return "needs dilation 1 and stride 1 or 2 along W";
  if (p.kW < 2 * p.sW || ceil_div(p.kW, p.sW) > 4)
    return "needs 2 to 4 taps in every stride phase along W (F(4, 2..4); fewer save nothing)";
  return nullptr;
}

// Where the rows pay, both passes: products per output K (r + 3) / 4 (K = C/groups kH sW rows of
// the sum) against C/groups kH kW taps for the direct kernels, plus transforms that cost about 30
// taps' worth per output whatever K (the inverse or the gy transform, stores). Measured (fw
// driver, 2 threads, 224 x 224 images, O 64): forward faster at K = 28 (C 2, 7x7 stride 2: 2.14
// vs 2.43 ms) and 42 (the stem), level at 30 (C 3, 5x5 stride 2), slower at 20, 14 and 12 (C 4,
// 3x3: 4.86 vs 4.34 ms); the weight gradient slower on small images at K = 9 and 3 (up to 2x).
constexpr int64_t kMinRows = 24;
const char* wino_pays_why_not(const ConvParams& p) {
  if (p.Cg() * p.kH * p.sW < kMinRows)
    return "fewer than 24 rows in the sum (C/groups kH sW): the transforms would cost about what "
           "they save";
  return nullptr;
}

const char* wino_fwd_any_why_not(const ConvParams& p) {
  if (const char* why = wino_rows_why_not(p)) return why;
  if (!within_budget(p, wino_fwd_ws(p, 1))) return "workspace over budget";
  return nullptr;
}

void wino_fwd(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  if (!all_finite(a.w, weights(p))) {
    note_fallback("winograd1d_avx2", "fwd", "non-finite weights", "smallc_avx2's direct forward");
    fwd(p, a, ws, max_nt);
    return;
  }
  const Rows1d w = make_rows1d(p);
  const Corr& k = w.k;
  // U: per group, (A, K, cout) at g cout A K; row k = (c kH + kh) sW + ph holds the taps
  // kw = ph + sW j, j < r (zero past kW).
  float* u = ws;
  const std::vector<int64_t> koff = w.row_offsets();
  for (int64_t g = 0; g < k.G; ++g)
    for (int64_t o = 0; o < k.cout; ++o)
      for (int64_t c = 0, i = 0; c < k.cin; ++c)
        for (int64_t kh = 0; kh < k.kH; ++kh)
          for (int64_t ph = 0; ph < k.sW; ++ph, ++i) {
            double taps[4] = {0, 0, 0, 0};
            for (int64_t j = 0; j < w.r && ph + k.sW * j < k.kW; ++j)
              taps[j] = a.w[(((g * k.cout + o) * k.cin + c) * k.kH + kh) * k.kW + ph + k.sW * j];
            for (int64_t e = 0; e < w.A; ++e)
              u[((g * w.A + e) * w.K + i) * k.cout + o] = static_cast<float>(wino_u(w.r, e, taps));
          }
  float* per_thread = ws + w.u_floats();
  std::atomic<bool> nonfinite{false};
  const auto init = [&](int tid) { clear_buffer(k, per_thread + tid * w.thread_floats()); };
  for_each_chunk(k, p.flops(), max_nt, init, [&](int tid, int64_t n, int64_t r0, int64_t r1) {
    if (nonfinite.load(std::memory_order_relaxed)) return;  // the call runs again anyway
    float* buf = per_thread + tid * w.thread_floats();
    float* v = buf + k.buffer_floats();
    float* m = v + w.v_floats();
    const int64_t rows = r1 - r0, hb = (rows - 1) * k.sH + k.kH, q_end = rows * w.tw;
    for (int64_t g = 0; g < k.G; ++g) {
      fill(k, a.x + (n * k.G + g) * k.cin * k.Hs * k.Ws, r0 * k.sH, rows, buf);
      if (!w.transform_rows(buf, hb, v)) {
        nonfinite.store(true);
        return;
      }
      for (int64_t q0 = 0; q0 < q_end; q0 += 16)
        ks::f32_wino1d_tiles__avx2_fma(w.r, w.K, v, koff.data(), w.lq, u + g * k.cout * w.A * w.K,
                                       a.b ? a.b + g * k.cout : nullptr, k.cout, q0, q_end, w.tw,
                                       k.Wo, a.y + ((n * k.G + g) * k.cout * k.Ho + r0) * k.Wo,
                                       k.Ho * k.Wo, m);
    }
  });
  if (nonfinite) {
    note_fallback("winograd1d_avx2", "fwd", "non-finite input (or transformed input)",
                  "smallc_avx2's direct forward");
    fwd(p, a, ws, max_nt);
  }
}

// part (O, Cg, kH, kW) = the stacked rows [r0, r1)'s share of dL/dw, by a loop that skips padded
// taps (the reference's NaN/Inf behaviour).
void gw_chunk_direct(const ConvParams& p, const float* gy, const float* x, int64_t r0, int64_t r1,
                     float* part) {
  const int64_t Cg = p.Cg(), Og = p.Og(), kk = p.kH * p.kW;
  std::fill(part, part + weights(p), 0.f);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / p.Ho, oh = r % p.Ho;
    for (int64_t o = 0; o < p.O; ++o) {
      const float* g = gy + ((n * p.O + o) * p.Ho + oh) * p.Wo;
      for (int64_t c = 0; c < Cg; ++c) {
        const float* xc = x + (n * p.C + (o / Og) * Cg + c) * p.H * p.W;
        for (int64_t kh = 0; kh < p.kH; ++kh) {
          const int64_t ih = oh * p.sH + kh * p.dH - p.pad_t;
          if (ih < 0 || ih >= p.H) continue;
          for (int64_t kw = 0; kw < p.kW; ++kw) {
            float& acc = part[(o * Cg + c) * kk + kh * p.kW + kw];
            for (int64_t ow = 0; ow < p.Wo; ++ow) {
              const int64_t iw = ow * p.sW + kw * p.dW - p.pad_l;
              if (iw >= 0 && iw < p.W) acc = std::fma(g[ow], xc[ih * p.W + iw], acc);
            }
          }
        }
      }
    }
  }
}

void bwd_weight(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  const int nthreads = base::threads_for(p.flops(), max_nt);
  if (!a.gw) {
    if (a.gb) bias_grad(p, a.gy, a.gb, nthreads);
    return;
  }
  const Corr k = make_corr(p, Pass::Fwd);
  const int64_t taps = k.taps(), nw = weights(p), rows = p.N * p.Ho;
  const int64_t chunk_rows = gw_chunk_rows(p), chunks = gw_chunks(p);
  const int64_t call_rows = std::max<int64_t>(1, kGwCallPositions / p.Wo);
  int64_t off[kMaxTaps];
  tap_offsets(k, off);
  float* parts = ws;  // (chunks, O, Cg, kH, kW)
  // (chunks, O): each chunk's share of gb, summed from its gy rows right after the kernel has read
  // them (gy is large here: a pass of its own over it cost 7-12% of the stem's weight gradient).
  double* bias_parts = reinterpret_cast<double*>(ws + base::align_floats(chunks * nw));
  float* per_thread = ws + base::align_floats(chunks * nw) + base::align_floats(2 * chunks * p.O);
  const std::size_t thread_floats = k.buffer_floats() + base::align_floats(8 * nw);
  const int nt = static_cast<int>(std::min<int64_t>(nthreads, chunks));
  std::atomic<bool> any_slow{false};
  // Chunks are taken in turn (see the top of the file).
  const auto init = [&](int tid) { clear_buffer(k, per_thread + tid * thread_floats); };
  base::parallel_tasks(nt, chunks, init, [&](int tid, int64_t ch) {
    float* buf = per_thread + tid * thread_floats;
    float* acc = buf + k.buffer_floats();  // (O, taps, 8) lane sums of the chunk
    const int64_t r0 = ch * chunk_rows, r1 = std::min(rows, r0 + chunk_rows);
    std::fill(acc, acc + 8 * nw, 0.f);
    double* bsum = bias_parts + ch * p.O;
    std::fill(bsum, bsum + p.O, 0.0);
    // Segments of one image each (rows [a0, b0) of image n), in blocks of at most R rows.
    for (int64_t r = r0; r < r1;) {
      const int64_t n = r / p.Ho, a0 = r - n * p.Ho, b0 = std::min(p.Ho, r1 - n * p.Ho);
      for (int64_t g = 0; g < p.groups; ++g)
        for (int64_t h0 = a0; h0 < b0; h0 += k.R) {
          const int64_t h1 = std::min(b0, h0 + k.R);
          fill(k, a.x + (n * p.groups + g) * k.cin * p.H * p.W, h0 * p.sH, h1 - h0, buf);
          for (int64_t oh = h0; oh < h1; oh += call_rows)
            ks::f32_conv2d_smallc_gw__avx2_fma(p.Wo, std::min(call_rows, h1 - oh),
                                               a.gy + ((n * p.O + g * k.cout) * p.Ho + oh) * p.Wo,
                                               p.Ho * p.Wo, buf + (oh - h0) * k.row_stride(),
                                               k.row_stride(), off, taps, k.cout,
                                               acc + g * k.cout * taps * 8);
        }
      if (a.gb)  // rows a0 .. b0 of image n, every channel: just read by the kernel
        add_lane_sums(a.gy + n * p.O * p.Ho * p.Wo + a0 * p.Wo, p.Ho * p.Wo, p.O, (b0 - a0) * p.Wo,
                      bsum);
      r += b0 - a0;
    }
    float* part = parts + ch * nw;
    bool finite = true;
    for (int64_t i = 0; i < nw; ++i) {
      const float* l = acc + 8 * i;
      part[i] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
      finite = finite && std::isfinite(part[i]);
    }
    if (!finite) {
      gw_chunk_direct(p, a.gy, a.x, r0, r1, part);
      any_slow.store(true);
    }
  });
  if (any_slow)
    note_fallback("smallc_avx2", "bwd_weight", "a chunk with non-finite sums", kDirectLoops);
  if (a.gb)  // gb = the chunks' shares, in chunk order
    for (int64_t o = 0; o < p.O; ++o) {
      double sum = 0.0;
      for (int64_t ch = 0; ch < chunks; ++ch) sum += bias_parts[ch * p.O + o];
      a.gb[o] = static_cast<float>(sum);
    }
  // gw = partial 0 + partial 1 + ... in chunk order.
  std::copy(parts, parts + nw, a.gw);
  for (int64_t ch = 1; ch < chunks; ++ch) {
    const float* part = parts + ch * nw;
    for (int64_t i = 0; i < nw; ++i) a.gw[i] += part[i];
  }
}

// ---- weight gradient by 1-D Winograd along rows ("winograd1d_avx2") -----------------------------
//
// The adjoint of the forward above: with V the transformed input rows and (A gy) the transformed
// output-gradient rows (A = AT's transpose), per element e of the transform
//   S[e][o][k] = sum over the tiles of all rows and images of (A gy)[o][e] * V[k][e]
// (k = (c kH + kh) sW + ph, a row of the forward's sum), and gw[o][c][kh][ph + sW j] =
// sum_e G[e][j] S[e][o][k] in double: 7 K / 4 products a tile position for the stem where the
// direct sums take 7 K / 2. The reduction is cut into chunks of whole rows of one image, fixed by
// the shape; a chunk runs its rows a few at a time (sub-chunks whose transformed rows stay in L1
// and L2), adding each sub-chunk's lane sums into its partial S; the partials are added in chunk
// order, so the bits do not depend on the thread count. gb: each chunk's share, summed from its
// gy rows as smallc does. NaN/Inf (or an overflow in a transform) make some partial non-finite;
// the call then runs smallc's direct weight gradient, whose NaN/Inf follow the direct sums.
constexpr int64_t kGwSubTiles = 256;       // tiles a sub-chunk: its transformed rows stay in L1
constexpr int64_t kGwChunkOutputs = 4096;  // output positions a chunk (a partial), about

struct GwPlan {
  Rows1d w;
  int64_t sub, rows, per_image, chunks;  // rows a sub-chunk and a chunk; chunks an image, in all
  int64_t gs;                            // floats of one (e, o) run of transformed gy tiles
  int64_t s_floats() const { return w.A * w.k.G * w.k.cout * w.K; }  // one partial S
  std::size_t thread_floats() const {
    return w.thread_floats() + base::align_floats(static_cast<std::size_t>(w.A * w.k.cout * gs));
  }
};

GwPlan make_gw_plan(const ConvParams& p) {
  GwPlan g{};
  g.w = make_rows1d(p);
  g.sub = std::clamp<int64_t>(ceil_div(kGwSubTiles, g.w.tw), 1, g.w.k.R);
  g.rows = g.sub * std::max<int64_t>(1, kGwChunkOutputs / (g.sub * p.Wo));
  g.per_image = ceil_div(p.Ho, g.rows);
  g.chunks = p.N * g.per_image;
  // A sub-chunk's last row writes tp tiles from its start; the kernel reads whole vectors.
  g.gs = base::align_floats(g.sub * g.w.tw + g.w.tp + 8);
  return g;
}

std::size_t wino_gw_ws(const ConvParams& p, int nt) {
  const GwPlan g = make_gw_plan(p);
  return std::max(base::align_floats(static_cast<std::size_t>(g.chunks * g.s_floats())) +
                      base::align_floats(static_cast<std::size_t>(2 * g.chunks * p.O)) +
                      base::align_floats(static_cast<std::size_t>(2 * g.s_floats())) +
                      nt * g.thread_floats(),
                  bwd_weight_ws(p, nt));
}

const char* wino_gw_any_why_not(const ConvParams& p) {
  if (const char* why = wino_rows_why_not(p)) return why;
  if (!within_budget(p, wino_gw_ws(p, 1))) return "workspace over budget";
  return nullptr;
}

const char* wino_fwd_why_not(const ConvParams& p) {
  if (const char* why = wino_fwd_any_why_not(p)) return why;
  return wino_pays_why_not(p);
}
const char* wino_gw_why_not(const ConvParams& p) {
  if (const char* why = wino_gw_any_why_not(p)) return why;
  return wino_pays_why_not(p);
}

void wino_gw(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  if (!a.gw) {  // the bias gradient alone
    bwd_weight(p, a, ws, max_nt);
    return;
  }
  const GwPlan gp = make_gw_plan(p);
  const Rows1d& w = gp.w;
  const Corr& k = w.k;
  const int64_t sf = gp.s_floats();
  const std::vector<int64_t> koff = w.row_offsets();
  float* parts = ws;  // (chunks, G, A, cout, K)
  double* bias_parts =
      reinterpret_cast<double*>(ws + base::align_floats(static_cast<std::size_t>(gp.chunks * sf)));
  double* sum = reinterpret_cast<double*>(
      ws + base::align_floats(static_cast<std::size_t>(gp.chunks * sf)) +
      base::align_floats(static_cast<std::size_t>(2 * gp.chunks * p.O)));  // (G, A, cout, K)
  float* per_thread =
      reinterpret_cast<float*>(sum) + base::align_floats(static_cast<std::size_t>(2 * sf));
  const int nt =
      static_cast<int>(std::min<int64_t>(base::threads_for(p.flops(), max_nt), gp.chunks));
  std::atomic<bool> finite{true};
  // Chunks are taken in turn (see the top of the file).
  const auto init = [&](int tid) {
    float* buf = per_thread + tid * gp.thread_floats();
    clear_buffer(k, buf);
    std::fill(buf + k.buffer_floats(), buf + k.buffer_floats() + w.v_floats(), 0.f);
  };
  base::parallel_tasks(nt, gp.chunks, init, [&](int tid, int64_t ch) {
    float* buf = per_thread + tid * gp.thread_floats();
    float* v = buf + k.buffer_floats();
    float* gt = v + w.v_floats();  // (A, 6, gs): transformed gy of a block of channels
    const int64_t n = ch / gp.per_image, r0 = ch % gp.per_image * gp.rows;
    const int64_t r1 = std::min(p.Ho, r0 + gp.rows);
    float* s = parts + ch * sf;
    std::fill(s, s + sf, 0.f);
    double* bsum = bias_parts + ch * p.O;
    std::fill(bsum, bsum + p.O, 0.0);
    bool ok = true;
    for (int64_t g = 0; g < k.G; ++g)
      for (int64_t h0 = r0; h0 < r1; h0 += gp.sub) {
        const int64_t rows = std::min(gp.sub, r1 - h0), hb = (rows - 1) * k.sH + k.kH;
        fill(k, a.x + (n * k.G + g) * k.cin * k.Hs * k.Ws, h0 * k.sH, rows, buf);
        ok &= w.transform_rows(buf, hb, v);
        // Per block of output channels: their gy rows transformed (in L1), then their products
        // with every row of V. Rows in order: a row's tiles past tw (zeros: gy reads as 0 past
        // Wo) are overwritten by the next row's; past the last row's, zeros up to whole
        // vectors.
        const int64_t q = rows * w.tw, qv = ceil_div(q, 8) * 8, written = q - w.tw + w.tp;
        for (int64_t o0 = 0; o0 < k.cout; o0 += ks::kMaxRowChannels) {
          const int64_t nb = std::min<int64_t>(ks::kMaxRowChannels, k.cout - o0);
          for (int64_t o = 0; o < nb; ++o) {
            const float* gy = a.gy + ((n * p.O + g * k.cout + o0 + o) * p.Ho + h0) * p.Wo;
            for (int64_t rl = 0; rl < rows; ++rl)
              ok &= ks::f32_wino1d_grad_output__avx2_fma(w.r, p.Wo, gy + rl * p.Wo,
                                                         gt + o * gp.gs + rl * w.tw, nb * gp.gs);
            for (int64_t e = 0; written < qv && e < w.A; ++e)
              std::fill(gt + (e * nb + o) * gp.gs + written, gt + (e * nb + o) * gp.gs + qv, 0.f);
          }
          // The next block's gy rows (in this sub-chunk), fetched while this block's products
          // run: gy is read once, from memory (its transforms stalled on it: a fifth of the
          // time without this).
          ks::Ahead ahead;
          if (o0 + nb < k.cout) {
            ahead.first = a.gy + ((n * p.O + g * k.cout + o0 + nb) * p.Ho + h0) * p.Wo;
            ahead.stride = p.Ho * p.Wo;
            ahead.runs = std::min<int64_t>(ks::kMaxRowChannels, k.cout - o0 - nb);
            ahead.lines = ceil_div(rows * p.Wo, 16) + 1;
          }
          ks::f32_wino1d_gw__avx2_fma(w.r, w.K, nb, qv / 8, gt, gp.gs, v, koff.data(), w.lq,
                                      s + (g * w.A * k.cout + o0) * w.K, k.cout * w.K, ahead);
        }
      }
    if (a.gb)  // rows r0 .. r1 of image n, every channel
      add_lane_sums(a.gy + (n * p.O * p.Ho + r0) * p.Wo, p.Ho * p.Wo, p.O, (r1 - r0) * p.Wo, bsum);
    if (!ok || !all_finite(s, sf)) finite.store(false, std::memory_order_relaxed);
  });
  if (!finite) {
    note_fallback("winograd1d_avx2", "bwd_weight", "non-finite values in x or gy (or a transform)",
                  "smallc_avx2's direct weight gradient");
    bwd_weight(p, a, ws, max_nt);
    return;
  }
  // S = the partials in chunk order (double); gw = G^T S per kernel row phase, rounded once.
  std::fill(sum, sum + sf, 0.0);
  for (int64_t ch = 0; ch < gp.chunks; ++ch)
    for (int64_t i = 0; i < sf; ++i) sum[i] += parts[ch * sf + i];
  for (int64_t g = 0; g < k.G; ++g)
    for (int64_t o = 0; o < k.cout; ++o)
      for (int64_t c = 0, i = 0; c < k.cin; ++c)
        for (int64_t kh = 0; kh < k.kH; ++kh)
          for (int64_t ph = 0; ph < k.sW; ++ph, ++i)
            for (int64_t j = 0; j < w.r && ph + k.sW * j < k.kW; ++j) {
              double t = 0;
              for (int64_t e = 0; e < w.A; ++e)
                t += wino_g(w.r, e, j) * sum[((g * w.A + e) * k.cout + o) * w.K + i];
              a.gw[(((g * k.cout + o) * k.cin + c) * k.kH + kh) * k.kW + ph + k.sW * j] =
                  static_cast<float>(t);
            }
  if (a.gb)
    for (int64_t o = 0; o < p.O; ++o) {
      double t = 0.0;
      for (int64_t ch = 0; ch < gp.chunks; ++ch) t += bias_parts[ch * p.O + o];
      a.gb[o] = static_cast<float>(t);
    }
}

// ---- backward-data by 1-D Winograd rows ("winograd1d_avx2") -------------------------------------
//
// gx splits into sH x sW phase grids, gx_ab[c][m][m'] = gx[c][sH m + a][sW m' + b]. Row m of phase
// a takes the kernel rows kh with (a + pad_t - kh) divisible by sH, each from gy row m + d, d =
// (a + pad_t - kh) / sH; column m' of phase b takes gy columns m' + d' for the kw with d' =
// (b + pad_l - kw) / sW. Over all b those d' are lo_w .. lo_w + r - 1, so every phase b of a row is
// an r-tap correlation of the same gy row (taps a phase lacks are zero): one F(4, r) transform of
// each gy row serves all sW phases b and all C/groups channels, as the sW C/g output channels of
// the forward's tiles kernel, with K = O/groups x (phase a's kernel rows) rows in the sum.
// A task is a block of phase rows of one image and group. It transforms the gy rows they read into
// V[gy row][e][o][tile] (the O/g rows of one gy row and element side by side, so a block of tiles
// reads a few sequential runs of V rather than one line in each of O/g planes), runs each phase
// a's rows of tiles into a buffer and interleaves that into gx (kernels/phase/interleave). Every gx
// element is one task's sum, in an order fixed by the shape: the bits do not depend on the threads.
// Error: as the forward's, over the tile's largest S (a tile: 4 m', sW 4 columns of gx). NaN/Inf
// (in the weights, or a non-finite transformed gy) run the direct loops instead.
struct BdPlan {
  int64_t Cg, Og, sH, sW;
  int64_t lo_w, r, A, tw, ts, Wm;     // gy columns m' + lo_w + j, j < r; tiles a row, their stride
  int64_t lo_h, span_h;               // gy rows m + lo_h .. m + lo_h + span_h - 1 over all phases a
  int64_t na[2], dh[2][8], kh[2][8];  // phase a's kernel rows: kh and gy row offset d
  int64_t rows;                       // phase rows a task
  int64_t cout() const { return sW * Cg; }
  int64_t es() const { return Og * ts; }  // V's element stride
  std::size_t u_floats() const {          // per group; phase a at A Og na[0] cout for a = 1
    return base::align_floats(static_cast<std::size_t>(A * Og * (na[0] + na[1]) * cout()));
  }
  std::size_t v_floats() const {
    return base::align_floats(static_cast<std::size_t>(span_h * A * es() + 16));
  }
  std::size_t thread_floats() const {
    return v_floats() + base::align_floats(static_cast<std::size_t>(A * cout() * 16)) +
           base::align_floats(static_cast<std::size_t>(2 * cout() * rows * Wm)) +
           base::align_floats(static_cast<std::size_t>(4 * ts + 8));
  }
};

constexpr int64_t kBdRows = 28;  // phase rows a task (gy rows at a task's edges: transformed twice)

// Null when the geometry fits (dilation 1, strides 1..2, r 2..4, every phase with taps).
const char* make_bd_plan(const ConvParams& p, BdPlan& b) {
  if (p.dH != 1 || p.dW != 1 || p.sH > 2 || p.sW > 2) return "needs dilation 1 and strides 1 or 2";
  b.Cg = p.Cg(), b.Og = p.Og(), b.sH = p.sH, b.sW = p.sW;
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  for (int64_t ph = 0; ph < p.sW; ++ph) {
    bool any = false;
    for (int64_t kw = 0; kw < p.kW; ++kw)
      if ((ph + p.pad_l - kw) % p.sW == 0) {
        const int64_t d = (ph + p.pad_l - kw) / p.sW;
        lo = std::min(lo, d), hi = std::max(hi, d), any = true;
      }
    if (!any) return "a column phase without taps (kW < sW)";
  }
  b.lo_w = lo, b.r = hi - lo + 1, b.A = b.r + 3;
  if (b.r < 2 || b.r > 4) return "needs 2 to 4 gy columns a phase column reads (F(4, 2..4))";
  lo = INT64_MAX, hi = INT64_MIN;
  b.na[0] = b.na[1] = 0;
  for (int64_t a = 0; a < p.sH; ++a) {
    for (int64_t kh = 0; kh < p.kH; ++kh)
      if ((a + p.pad_t - kh) % p.sH == 0) {
        if (b.na[a] == 8) return "more than 8 kernel rows a phase";
        const int64_t d = (a + p.pad_t - kh) / p.sH;
        b.kh[a][b.na[a]] = kh, b.dh[a][b.na[a]++] = d;
        lo = std::min(lo, d), hi = std::max(hi, d);
      }
    if (b.na[a] == 0) return "a row phase without taps (kH < sH)";
  }
  b.lo_h = lo, b.span_h = hi - lo + 1;
  b.Wm = (p.W + p.sW - 1) / p.sW;
  b.tw = ceil_div(b.Wm, 4), b.ts = ceil_div(b.tw, 16) * 16;  // whole blocks of 16 tiles a row
  b.rows = std::min(kBdRows, (p.H + p.sH - 1) / p.sH);
  return nullptr;
}

std::size_t wino_bd_ws(const ConvParams& p, int nt) {
  BdPlan b{};
  if (make_bd_plan(p, b)) return 0;
  return p.groups * b.u_floats() + nt * b.thread_floats();
}

const char* wino_bd_any_why_not(const ConvParams& p) {
  if (const char* why = wino_common_why_not(p)) return why;
  // Columns past the last output's window have no terms: exactly 0 in the direct sums, but the
  // transforms would give them their tiles' rounding noise (found by scripts/conformance.py).
  if ((p.Wo - 1) * p.sW - p.pad_l + p.kW < p.W)
    return "gx columns that no output reads (past the last window): they must stay exactly 0";
  BdPlan b{};
  if (const char* why = make_bd_plan(p, b)) return why;
  if (!within_budget(p, wino_bd_ws(p, 1))) return "workspace over budget";
  return nullptr;
}
// Where it pays: a gx output takes about kW / sW taps a kernel row directly and (r + 3) / 4
// products here (r covers every phase's taps, so a phase may carry zero taps), and the transforms
// of each gy row are shared by only sW C/groups outputs. Measured (fw driver, 2 threads, O/g
// 16-64): 7x7 stride 2 (saving 2x) faster, 1.32x for the stem and 1.28x with O = 16 on 64 x 64; 5x5
// stride 2 (1.67x) level; 4x4 stride 2 (1.33x, C 2) slower, 1.06 vs 0.81 ms.
const char* wino_bd_why_not(const ConvParams& p) {
  if (const char* why = wino_bd_any_why_not(p)) return why;
  BdPlan b{};
  make_bd_plan(p, b);
  if (double(p.kW) / double(p.sW) < 1.8 * double(b.A) / 4.0)
    return "saves fewer than 1.8x the multiplications along W (kW / sW against (r + 3) / 4)";
  if (b.cout() < 4)
    return "fewer than 4 phase channels (sW C/groups) to share a transformed gy row";
  if (p.Og() * (p.kH / p.sH) < kMinRows)
    return "fewer than 24 rows in the sum (O/groups x kernel rows a phase)";
  return nullptr;
}

void wino_bd(const ConvParams& p, const ConvArgs& a, float* ws, int max_nt) {
  if (!all_finite(a.w, weights(p))) {
    note_fallback("winograd1d_avx2", "bwd_data", "non-finite weights", kDirectLoops);
    kernels::direct::bwd_data(p, a.gy, a.w, a.gx);
    return;
  }
  BdPlan b{};
  make_bd_plan(p, b);
  const int64_t Og = b.Og, Cg = b.Cg, cout = b.cout(), A = b.A, kk = p.kH * p.kW, es = b.es();
  // U: per group, phase a: (A, Og na[a], cout); channel ch = ph Cg + c, row k = o na[a] + i holds
  // the taps w[o][c][kh_i][kw], kw = ph + pad_l - sW (lo_w + j) (zero outside the kernel).
  float* u = ws;
  int64_t u_phase[2] = {0, A * Og * b.na[0] * cout};
  for (int64_t g = 0; g < p.groups; ++g)
    for (int64_t pa = 0; pa < b.sH; ++pa)
      for (int64_t o = 0; o < Og; ++o)
        for (int64_t i = 0; i < b.na[pa]; ++i)
          for (int64_t ph = 0; ph < b.sW; ++ph)
            for (int64_t c = 0; c < Cg; ++c) {
              double taps[4] = {0, 0, 0, 0};
              for (int64_t j = 0; j < b.r; ++j) {
                const int64_t kw = ph + p.pad_l - b.sW * (b.lo_w + j);
                if (kw >= 0 && kw < p.kW)
                  taps[j] = a.w[((g * Og + o) * Cg + c) * kk + b.kh[pa][i] * p.kW + kw];
              }
              const int64_t k = o * b.na[pa] + i, K = Og * b.na[pa];
              for (int64_t e = 0; e < A; ++e)
                u[g * b.u_floats() + u_phase[pa] + (e * K + k) * cout + ph * Cg + c] =
                    static_cast<float>(wino_u(b.r, e, taps));
            }
  const int64_t Hm = (p.H + p.sH - 1) / p.sH, blocks = ceil_div(Hm, b.rows);
  const int64_t tasks = p.groups * p.N * blocks;
  const bool stream = p.N * p.C * p.H * p.W >= (int64_t{1} << 18);
  float* per_thread = ws + p.groups * b.u_floats();
  const int nt = static_cast<int>(std::min<int64_t>(base::threads_for(p.flops(), max_nt), tasks));
  std::atomic<bool> finite{true};
  base::parallel_tasks(nt, tasks, [&](int tid, int64_t t) {
    if (!finite.load(std::memory_order_relaxed)) return;  // the call runs again anyway
    float* v = per_thread + tid * b.thread_floats();
    float* m = v + b.v_floats();
    float* out = m + base::align_floats(static_cast<std::size_t>(A * cout * 16));
    float* row = out + base::align_floats(static_cast<std::size_t>(2 * cout * b.rows * b.Wm));
    const int64_t g = t / (p.N * blocks), n = t / blocks % p.N, m0 = t % blocks * b.rows;
    // V holds span_h gy rows, gy row y in slot (y - m0 - lo_h) % span_h, transformed just before
    // the first phase row that reads it: each gy row once a task, and V stays in L2.
    const int64_t x0 = std::max<int64_t>(0, -b.lo_w), xn = 4 * b.ts + 8;
    const int64_t x1 = std::clamp<int64_t>(p.Wo - b.lo_w, x0, xn);
    const float* gyg = a.gy + (n * p.groups + g) * Og * p.Ho * p.Wo;
    auto slot = [&](int64_t y) { return (y - m0 - b.lo_h) % b.span_h; };
    auto transform = [&](int64_t y) {  // gy row y (zero outside gy) into its slot
      bool ok = true;
      for (int64_t o = 0; o < Og; ++o) {
        float* vo = v + slot(y) * A * es + o * b.ts;
        if (y < 0 || y >= p.Ho) {
          for (int64_t e = 0; e < A; ++e) std::fill(vo + e * es, vo + e * es + b.ts, 0.f);
          continue;
        }
        if (o + 4 < Og)  // gy rows of one y are a plane apart: too far for the hardware prefetcher
          for (int64_t l = 0; l < p.Wo; l += 16)
            __builtin_prefetch(gyg + ((o + 4) * p.Ho + y) * p.Wo + l);
        // row[x] = gy[y][x + lo_w], zero outside the row.
        const float* gyr = gyg + (o * p.Ho + y) * p.Wo + b.lo_w;
        std::fill(row, row + x0, 0.f);
        std::copy(gyr + x0, gyr + x1, row + x0);
        std::fill(row + x1, row + xn, 0.f);
        ok &= ks::f32_wino1d_input__avx2_fma(b.r, b.ts, row, vo, es);
      }
      return ok;
    };
    bool ok = true;
    for (int64_t y = m0 + b.lo_h; y < m0 + b.lo_h + b.span_h - 1; ++y) ok &= transform(y);
    int64_t rows_a[2] = {0, 0};
    for (int64_t pa = 0; pa < b.sH; ++pa)
      rows_a[pa] = std::clamp<int64_t>((p.H - pa + b.sH - 1) / b.sH - m0, 0, b.rows);
    std::vector<int64_t> ko(static_cast<std::size_t>(Og * std::max(b.na[0], b.na[1])));
    for (int64_t rr = 0; rr < rows_a[0] && ok; ++rr) {
      ok &= transform(m0 + rr + b.lo_h + b.span_h - 1);
      for (int64_t pa = 0; pa < b.sH; ++pa) {
        if (rr >= rows_a[pa]) continue;
        for (int64_t o = 0, k = 0; o < Og; ++o)
          for (int64_t i = 0; i < b.na[pa]; ++i, ++k)
            ko[k] = slot(m0 + rr + b.dh[pa][i]) * A * es + o * b.ts;
        float* outa = out + pa * cout * b.rows * b.Wm;
        for (int64_t q0 = 0; q0 < b.tw; q0 += 16)
          ks::f32_wino1d_tiles__avx2_fma(b.r, Og * b.na[pa], v, ko.data(), es,
                                         u + g * b.u_floats() + u_phase[pa], nullptr, cout, q0,
                                         b.tw, b.tw, b.Wm, outa + rr * b.Wm, rows_a[pa] * b.Wm, m);
      }
    }
    if (!ok) {
      finite.store(false, std::memory_order_relaxed);
      return;
    }
    float* gxg = a.gx + (n * p.groups + g) * Cg * p.H * p.W;
    for (int64_t pa = 0; pa < b.sH; ++pa) {
      if (rows_a[pa] == 0) continue;
      int64_t width[2] = {b.Wm, p.W / b.sW};  // phase b's columns (phase 1: floor(W / 2))
      kernels::phase::Interleave il;
      il.src = out + pa * cout * b.rows * b.Wm, il.ps = Cg * rows_a[pa] * b.Wm, il.ld = b.Wm;
      il.sH = 1, il.sW = b.sW, il.rows = &rows_a[pa], il.width = width, il.C = Cg;
      il.gx = gxg + (b.sH * m0 + pa) * p.W, il.plane = p.H * p.W, il.W = b.sH * p.W;
      il.stream = stream;
      kernels::phase::interleave__avx2(il);
    }
  });
  if (!finite) {
    note_fallback("winograd1d_avx2", "bwd_data", "non-finite values in gy (or a transform)",
                  kDirectLoops);
    kernels::direct::bwd_data(p, a.gy, a.w, a.gx);
  }
}

}  // namespace

const Impl smallc_fwd_avx2{"smallc_avx2", fwd_why_not, fwd_ws, fwd};
const Impl wino1d_fwd_any_avx2{"winograd1d_avx2", wino_fwd_any_why_not, wino_fwd_ws, wino_fwd};
const Impl wino1d_fwd_avx2{"winograd1d_avx2", wino_fwd_why_not, wino_fwd_ws, wino_fwd};
const Impl smallc_bwd_data_avx2{"smallc_avx2", bwd_data_why_not, bwd_data_ws, bwd_data};
const Impl smallc_bwd_weight_avx2{"smallc_avx2", bwd_weight_why_not, bwd_weight_ws, bwd_weight};
const Impl wino1d_bwd_data_any_avx2{"winograd1d_avx2", wino_bd_any_why_not, wino_bd_ws, wino_bd};
const Impl wino1d_bwd_data_avx2{"winograd1d_avx2", wino_bd_why_not, wino_bd_ws, wino_bd};
const Impl wino1d_bwd_weight_any_avx2{"winograd1d_avx2", wino_gw_any_why_not, wino_gw_ws, wino_gw};
const Impl wino1d_bwd_weight_avx2{"winograd1d_avx2", wino_gw_why_not, wino_gw_ws, wino_gw};

}  // namespace convkit::conv::impl
