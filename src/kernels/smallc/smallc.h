// Direct convolution for layers with few input channels per group (LeNet's first layer, image
// stems): the driver (conv/impl_smallc.cpp) copies the few input planes of a task into a small
// zero-padded buffer, split into stride phases, so that every tap of every output row is a
// unit-stride run `in + off[t]` with no bounds checks; these kernels then hold a block of output
// channels x 8-wide column vectors in registers and reuse each loaded input vector for every
// output channel of the block. Pure: no allocation, no threads.
//
// Buffer contract (both kernels): for an output row, `in + off[t] + j` is the input sample tap t
// multiplies into output column j; every such address with j < round_up(wo, 8) must be readable
// (columns j >= wo are computed in the vector tail and discarded, or multiplied by zero).
#pragma once
#include <cstdint>

namespace convkit::kernels::smallc {

// Most output channels one call of the row kernel accumulates (6 channels x 2 vectors = 12 ymm).
constexpr int kMaxRowChannels = 6;

// One output row of `nc` (1..kMaxRowChannels) channels, overwritten:
//   y[o * y_cs + j] = bias[o] (0 if bias is null) + sum over t < ntaps, in order, of
//                     w[t * nc + o] * in[off[t] + j]                     for o < nc, j < wo.
// w: (ntaps, nc) packed weights.
void f32_conv2d_smallc_row__avx2_fma(int64_t wo, int64_t ntaps, const float* in, const int64_t* off,
                                     const float* w, const float* bias, int64_t nc, float* y,
                                     int64_t y_cs);

// The same with the taps in rows of kw (3, 5 or 7; see has_rowk), stride sw (1 or 2), dilation 1:
// tap (i, k) for i < nrows, k < kw reads in + roff[i] + (k % sw) * wq + k / sw (phase k % sw of
// the buffer row, wq floats a phase) with weights w[(i * kw + k) * nc + o]. The row offsets and
// the displacements in the row replace the per-tap offset table: fewer instructions a tap, which
// is what the FMA-bound loop is short of when the core is shared.
constexpr bool has_rowk(int64_t kw, int64_t sw, int64_t dw) {
  return (kw == 3 || kw == 5 || kw == 7) && (sw == 1 || sw == 2) && dw == 1;
}
void f32_conv2d_smallc_rowk__avx2_fma(int64_t kw, int64_t sw, int64_t wo, int64_t nrows,
                                      const float* in, const int64_t* roff, int64_t wq,
                                      const float* w, const float* bias, int64_t nc, float* y,
                                      int64_t y_cs);

// Backward-weight partial sums over `nrows` output rows, `nc` output channels (any count), added to
// acc (nc, ntaps, 8):
//   acc[(o * ntaps + t) * 8 + l] += sum over r < nrows, j < wo with j % 8 == l, in order, of
//                                   gy[o * gy_cs + r * wo + j] * in[r * in_rs + off[t] + j].
// gy rows are contiguous (row stride wo); columns j >= wo are masked out of gy (read as 0).
void f32_conv2d_smallc_gw__avx2_fma(int64_t wo, int64_t nrows, const float* gy, int64_t gy_cs,
                                    const float* in, int64_t in_rs, const int64_t* off,
                                    int64_t ntaps, int64_t nc, float* acc);

// d[j] = s[2 * j] for j < n (one stride-2 phase of a row; kernels/evens_avx2.h): reads s[0, 2n -
// 1).
void f32_gather_stride2__avx2(int64_t n, const float* s, float* d);

// ---- 1-D Winograd F(4, r) along output rows (kernels/smallc/wino1d.h), r = 2, 3, 4
// ---------------- The forward's taps of one kernel row and stride phase are a correlation of r
// taps along the row; these kernels run it on tiles of 4 outputs, in 8-tile vectors (lane = tile).

// Input transform of one buffer row: v[e * es + t] = sum_j BT[e][j] d[4 t + j] for e < r + 3 and
// t < tiles (a multiple of 8), the sum in j order. Reads d[0, 4 tiles + 4). Returns false when
// some v is Inf or NaN.
bool f32_wino1d_input__avx2_fma(int64_t r, int64_t tiles, const float* d, float* v, int64_t es);

// Tiles q0 .. q0 + 15 of cout output channels, tiles numbered through rows (tile q holds columns
// 4 (q % tw) .. + 3 of row q / tw; tw = ceil(wo / 4)):
//   M[e][o][q] = sum over k < K, in order, of u[(e * K + k) * cout + o] * v[koff[k] + e * es + q]
//   y[o * y_cs + (q / tw) * wo + 4 (q % tw) + i] = (sum_e AT[i][e] M[e][o][q]) + bias[o]
// for o < cout, q < q_end, 4 (q % tw) + i < wo (bias 0 when null). v entries of all 16 tiles must
// be readable (those past q_end are computed and discarded). m: scratch of (r + 3) * cout * 16
// floats, 32-byte aligned.
void f32_wino1d_tiles__avx2_fma(int64_t r, int64_t K, const float* v, const int64_t* koff,
                                int64_t es, const float* u, const float* bias, int64_t cout,
                                int64_t q0, int64_t q_end, int64_t tw, int64_t wo, float* y,
                                int64_t y_cs, float* m);

// Weight gradient (the adjoint of the forward's tiles): the output gradient of one row
// transformed, g[e * es + t] = sum_i AT[i][e] gy[4 t + i] (gy read as 0 at and past wo) for e < r
// + 3 and t < round_up(ceil(wo / 4), 8); reads gy[0, wo). Returns false when some g is Inf or NaN.
bool f32_wino1d_grad_output__avx2_fma(int64_t r, int64_t wo, const float* gy, float* g, int64_t es);
// Lines to prefetch while a kernel runs: `runs` runs of `lines` 64-byte lines, run i from
// first + i * stride floats (a hint: any addresses).
struct Ahead {
  const float* first = nullptr;
  int64_t stride = 0, runs = 0, lines = 0;
};

// s[e * s_es + o * K + k] += the lanes, added pairwise, of
//   sum over q < 8 nq, in order within each lane q % 8, of g[(e * cout + o) * gs + q] *
//   v[koff[k] + e * es + q]
// for e < r + 3, o < cout, k < K: the transformed products a weight gradient sums over tiles.
// Prefetches `ahead` (the next call's gy rows) as it goes.
void f32_wino1d_gw__avx2_fma(int64_t r, int64_t K, int64_t cout, int64_t nq, const float* g,
                             int64_t gs, const float* v, const int64_t* koff, int64_t es, float* s,
                             int64_t s_es, const Ahead& ahead);

}  // namespace convkit::kernels::smallc
