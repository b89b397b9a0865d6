// The convolution drivers: validate options into ConvParams, then run one pass through the
// implementation the dispatcher picks (the reference loops last; see conv/dispatch).
#pragma once
#include <convkit/functional.h>

#include "kernels/conv_params.h"

namespace convkit::conv {

using kernels::ConvParams;

// Validates input (N, C, H, W) — callers turn (C, H, W) into N = 1 first — weight (O, C/groups,
// kH, kW) and options, resolves padding, and computes the output size. Throws convkit::Error
// naming "conv2d", the shapes or values at fault, and what would be valid.
ConvParams make_params(const Shape& input4, const Shape& weight, const Conv2dOptions& options);

// y (N, O, Ho, Wo) = conv(x, w) + b; b may be null. Overwrites y.
void forward(const ConvParams& p, const float* x, const float* w, const float* b, float* y);
// gx (N, C, H, W) = dL/dx given gy (N, O, Ho, Wo). Overwrites gx.
void backward_data(const ConvParams& p, const float* gy, const float* w, float* gx);
// gw (O, C/groups, kH, kW) = dL/dw and gb (O) = dL/db; either may be null. Overwrites them.
void backward_weight(const ConvParams& p, const float* gy, const float* x, float* gw, float* gb);

}  // namespace convkit::conv
