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

}  // namespace convkit::kernels::smallc
