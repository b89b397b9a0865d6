// Depthwise convolution kernels (AVX2+FMA): one source plane, one (kH, kW) filter, one destination
// plane per call. Pure: raw pointers and sizes, no allocation, no threads; callers split planes and
// rows. Zero padding is handled at the borders in registers (masked loads and stores): no padded
// copies, and every destination element is computed whole and stored once (the last vector of a
// forward row may be moved back to end at the row's end: a few outputs are stored twice, with the
// same bits, instead of a masked store).
//
// A padded tap is skipped, never multiplied: on border vectors the weight (or gy) is masked to zero
// in the lanes whose tap reads outside the plane, so Inf/NaN weights meet no padded zero (results
// match a direct convolution's, see tests/conv/impl_test.cpp NonFiniteInputs...).
//
// Kernels with fixed sizes are named XNNPACK-style, e.g. f32_dwconv2d_3x3s1__avx2_fma (3x3, stride
// 1 both ways, no dilation); "kxk" kernels take any size, dilation and row stride, with the column
// stride 1 or 2 (s1 / s2 in the name). Call any of them only when base::use_avx2().
#pragma once
#include <cstdint>

namespace convkit::kernels::dwconv {

// Geometry of one plane pair, a correlation from src (H, W) to dst (Ho, Wo):
//   dst[oh][ow] = sum over (kh, kw) of w[kh][kw] * src[oh*sH - pad_t + kh*dH][ow*sW - pad_l +
//   kw*dW]
// over the taps that read inside src. Pads may be negative (the flipped geometry of bwd_data).
struct Plane {
  int64_t H = 0, W = 0;    // source plane
  int64_t Ho = 0, Wo = 0;  // destination plane
  int64_t kH = 1, kW = 1, sH = 1, sW = 1, dH = 1, dW = 1;
  int64_t pad_t = 0, pad_l = 0;
};

// Forward, rows [oh0, oh1) of dst (Ho, Wo) = start + correlation of src (H, W) with w (kH, kW),
// where start = dst's own values if accumulate, else bias. Each output's taps are summed in the
// order (kh, kw), whatever the row range.
using FwdFn = void (*)(const Plane& g, const float* src, const float* w, float bias,
                       bool accumulate, float* dst, int64_t oh0, int64_t oh1);
void f32_dwconv2d_3x3s1__avx2_fma(const Plane& g, const float* src, const float* w, float bias,
                                  bool accumulate, float* dst, int64_t oh0, int64_t oh1);
void f32_dwconv2d_3x3s2__avx2_fma(const Plane& g, const float* src, const float* w, float bias,
                                  bool accumulate, float* dst, int64_t oh0, int64_t oh1);
void f32_dwconv2d_5x5s1__avx2_fma(const Plane& g, const float* src, const float* w, float bias,
                                  bool accumulate, float* dst, int64_t oh0, int64_t oh1);
void f32_dwconv2d_5x5s2__avx2_fma(const Plane& g, const float* src, const float* w, float bias,
                                  bool accumulate, float* dst, int64_t oh0, int64_t oh1);
void f32_dwconv2d_7x7s1__avx2_fma(const Plane& g, const float* src, const float* w, float bias,
                                  bool accumulate, float* dst, int64_t oh0, int64_t oh1);
void f32_dwconv2d_7x7s2__avx2_fma(const Plane& g, const float* src, const float* w, float bias,
                                  bool accumulate, float* dst, int64_t oh0, int64_t oh1);
void f32_dwconv2d_kxks1__avx2_fma(const Plane& g, const float* src, const float* w, float bias,
                                  bool accumulate, float* dst, int64_t oh0, int64_t oh1);
void f32_dwconv2d_kxks2__avx2_fma(const Plane& g, const float* src, const float* w, float bias,
                                  bool accumulate, float* dst, int64_t oh0, int64_t oh1);

// Backward-data in gather form, rows [ih0, ih1) of gx (H, W) = start + sum over the taps with
// oh*sH - pad_t + kh*dH == ih and ow*sW - pad_l + kw*dW == iw of w[kh][kw] * gy[oh][ow]
// (start = gx's own values if accumulate, else 0). Column stride 1 or 2: the sW column phases are
// accumulated apart and interleaved in registers before the single store.
using BwdDataFn = void (*)(const Plane& g, const float* gy, const float* w, bool accumulate,
                           float* gx, int64_t ih0, int64_t ih1);
// Stride 2 both ways, no dilation, fixed sizes: the same with the filter in registers.
void f32_dwconv2d_bwd_data_3x3s2__avx2_fma(const Plane& g, const float* gy, const float* w,
                                           bool accumulate, float* gx, int64_t ih0, int64_t ih1);
void f32_dwconv2d_bwd_data_5x5s2__avx2_fma(const Plane& g, const float* gy, const float* w,
                                           bool accumulate, float* gx, int64_t ih0, int64_t ih1);
void f32_dwconv2d_bwd_data_7x7s2__avx2_fma(const Plane& g, const float* gy, const float* w,
                                           bool accumulate, float* gx, int64_t ih0, int64_t ih1);
void f32_dwconv2d_bwd_data_kxks1__avx2_fma(const Plane& g, const float* gy, const float* w,
                                           bool accumulate, float* gx, int64_t ih0, int64_t ih1);
void f32_dwconv2d_bwd_data_kxks2__avx2_fma(const Plane& g, const float* gy, const float* w,
                                           bool accumulate, float* gx, int64_t ih0, int64_t ih1);

// Backward-weight: gw (kH, kW) = sum over n < N, oh in [oh0, oh1), ow of gy_n[oh][ow] * x_n[...]
// over the taps that read inside x_n, and, if gb is not null, *gb = the sum of those gy_n values;
// x_n = x + n * x_step (H, W), gy_n = gy + n * gy_step (Ho, Wo). Overwrites gw and *gb. Sums in 8
// float lanes in the order (n, oh, ow), then adds the lanes pairwise: fixed for a given call.
using WgradFn = void (*)(const Plane& g, int64_t N, const float* x, int64_t x_step, const float* gy,
                         int64_t gy_step, int64_t oh0, int64_t oh1, float* gw, float* gb);
void f32_dwconv2d_wgrad_3x3s1__avx2_fma(const Plane& g, int64_t N, const float* x, int64_t x_step,
                                        const float* gy, int64_t gy_step, int64_t oh0, int64_t oh1,
                                        float* gw, float* gb);
void f32_dwconv2d_wgrad_3x3s2__avx2_fma(const Plane& g, int64_t N, const float* x, int64_t x_step,
                                        const float* gy, int64_t gy_step, int64_t oh0, int64_t oh1,
                                        float* gw, float* gb);
void f32_dwconv2d_wgrad_5x5s1__avx2_fma(const Plane& g, int64_t N, const float* x, int64_t x_step,
                                        const float* gy, int64_t gy_step, int64_t oh0, int64_t oh1,
                                        float* gw, float* gb);
void f32_dwconv2d_wgrad_5x5s2__avx2_fma(const Plane& g, int64_t N, const float* x, int64_t x_step,
                                        const float* gy, int64_t gy_step, int64_t oh0, int64_t oh1,
                                        float* gw, float* gb);
void f32_dwconv2d_wgrad_7x7s1__avx2_fma(const Plane& g, int64_t N, const float* x, int64_t x_step,
                                        const float* gy, int64_t gy_step, int64_t oh0, int64_t oh1,
                                        float* gw, float* gb);
void f32_dwconv2d_wgrad_7x7s2__avx2_fma(const Plane& g, int64_t N, const float* x, int64_t x_step,
                                        const float* gy, int64_t gy_step, int64_t oh0, int64_t oh1,
                                        float* gw, float* gb);
void f32_dwconv2d_wgrad_kxks1__avx2_fma(const Plane& g, int64_t N, const float* x, int64_t x_step,
                                        const float* gy, int64_t gy_step, int64_t oh0, int64_t oh1,
                                        float* gw, float* gb);
void f32_dwconv2d_wgrad_kxks2__avx2_fma(const Plane& g, int64_t N, const float* x, int64_t x_step,
                                        const float* gy, int64_t gy_step, int64_t oh0, int64_t oh1,
                                        float* gw, float* gb);

// The kernels' limits: column stride 1 or 2, kernel sides up to kMaxK (the kxk kernels keep
// per-row tap lists on the stack). Null when g is within them, else the reason.
constexpr int64_t kMaxK = 64;
inline const char* unsupported(const Plane& g) {
  if (g.sW < 1 || g.sW > 2) return "column stride above 2";
  if (g.kH > kMaxK || g.kW > kMaxK) return "kernel side above 64";
  return nullptr;
}

// Channel-vectorised kernels for small planes (channel multiplier 1): up to 8 channels (nch) in
// the lanes of a vector, their planes transposed into a zero-padded pixel-major scratch
// (c8_scratch_floats(g) floats), so every tap is one full-vector FMA with no edge masks. A plane
// of 14 x 14 has no interior vector: the per-plane kernels ran two masked border vectors per row.
// x and y (gy) hold nch consecutive planes of one image. Unlike the per-plane kernels they do
// multiply padded zeros: callers take them only with finite weights (forward), and the weight
// gradient reports non-finite gy (false: gw then holds garbage) for the caller to rerun. Kernel
// sides up to kMaxC8Taps taps in all. Per output (or gw element) the sum runs bias first, then
// taps in (kh, kw) order (gw: images, rows, columns in order).
constexpr int64_t kMaxC8Taps = 25;
int64_t c8_scratch_floats(const Plane& g);
// rotate: each filter turned by 180 degrees (backward-data at stride 1, on the flipped geometry).
// N images: x + n * x_ns and y + n * y_ns (the filters' vectors and the scratch's zero border are
// set up once for all of them).
void f32_dwconv_c8_fwd__avx2_fma(const Plane& g, int64_t nch, int64_t N, const float* x,
                                 int64_t x_ns, const float* w, const float* bias, float* y,
                                 int64_t y_ns, float* scratch, bool rotate = false);
bool f32_dwconv_c8_wgrad__avx2_fma(const Plane& g, int64_t nch, int64_t N, const float* x,
                                   int64_t x_ns, const float* gy, int64_t gy_ns, float* gw,
                                   float* gb, float* scratch);

// The kernel for g (fixed sizes where one matches, else kxk). g must be supported.
FwdFn fwd_kernel(const Plane& g);
WgradFn wgrad_kernel(const Plane& g);

// Backward-data of one (gy plane, filter) pair into rows [ih0, ih1) of gx, as BwdDataFn. Stride 1
// with a fixed-size kernel runs that forward kernel on the flipped geometry with the filter
// rotated by 180 degrees (gx = correlation of gy, padded by k - 1 - pad); stride 2 with a fixed
// size the ..._NxNs2 gather kernels; otherwise the kxk gather kernels.
void bwd_data(const Plane& g, const float* gy, const float* w, bool accumulate, float* gx,
              int64_t ih0, int64_t ih1);

}  // namespace convkit::kernels::dwconv
