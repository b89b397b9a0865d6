// ConvParams — everything a convolution kernel needs to know, resolved to plain integers.
// Built (and validated) by conv::make_params; kernels only read it. Layouts are fixed:
//   x  (N, C, H, W)            contiguous
//   w  (O, C/groups, kH, kW)   contiguous
//   b  (O)                     may be null
//   y  (N, O, Ho, Wo)          contiguous
// Padding is four-sided and already resolved ("same"/"valid" turned into numbers). A padded
// coordinate maps to a source coordinate by `mode` (see pad_index in kernels/ref/pad_index.h).
#pragma once
#include <cstdint>

namespace convkit::kernels {

enum class PadMode : int { Zeros, Reflect, Replicate, Circular, Symmetric, Constant };

struct ConvParams {
  int64_t N = 0, C = 0, H = 0, W = 0;  // input
  int64_t O = 0, kH = 1, kW = 1;       // weight
  int64_t Ho = 0, Wo = 0;              // output
  int64_t sH = 1, sW = 1;              // stride
  int64_t dH = 1, dW = 1;              // dilation (1 = dense)
  int64_t pad_t = 0, pad_b = 0, pad_l = 0, pad_r = 0;
  int64_t groups = 1;
  PadMode mode = PadMode::Zeros;
  float pad_value = 0.f;  // PadMode::Constant only

  int64_t Cg() const { return C / groups; }  // input channels per group
  int64_t Og() const { return O / groups; }  // output channels per group
  bool has_padding() const { return pad_t || pad_b || pad_l || pad_r; }
  // 2 * N * O * Ho * Wo * (C / groups) * kH * kW, the direct-convolution count.
  double flops() const {
    return 2.0 * double(N) * double(O) * double(Ho) * double(Wo) * double(Cg()) * double(kH) *
           double(kW);
  }
};

}  // namespace convkit::kernels
