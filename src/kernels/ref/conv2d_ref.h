// Reference convolution: plain loops, every option (stride, dilation, four-sided padding in every
// mode, groups). The twin every fast implementation is tested against, and the last entry of
// every dispatch list. Accumulates in double. Layouts as in kernels/conv_params.h.
#pragma once
#include "kernels/conv_params.h"

namespace convkit::kernels::ref {

// y (N, O, Ho, Wo) = cross-correlation of x with w, plus b (null: no bias). Overwrites y.
void conv2d_fwd(const ConvParams& p, const float* x, const float* w, const float* b, float* y);
// gx (N, C, H, W) = dL/dx for gy = dL/dy (N, O, Ho, Wo); gradients through padding fold back onto
// the source sample the mode read (reflect/replicate/circular/symmetric); constant padding gets none.
void conv2d_bwd_data(const ConvParams& p, const float* gy, const float* w, float* gx);
// gw (O, C/groups, kH, kW) and gb (O); either may be null. Overwrites them.
void conv2d_bwd_weight(const ConvParams& p, const float* gy, const float* x, float* gw, float* gb);

}  // namespace convkit::kernels::ref
