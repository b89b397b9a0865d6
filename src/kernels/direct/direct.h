// Direct convolution loops in portable C++ (zero padding only), organised by output rows so the
// innermost loop is a contiguous run of outputs with no bounds checks. Used for tiny problems,
// where packing and threads cost more than the arithmetic. Pure: no allocation, no threads.
#pragma once
#include <cstdint>

#include "kernels/conv_params.h"

namespace convkit::kernels::direct {

// Outputs o in [lo, hi) whose tap at offset `off` (= k*d - pad) reads inside [0, size) with stride
// s: 0 <= o*s + off < size.
inline void valid_range(int64_t off, int64_t s, int64_t size, int64_t out, int64_t& lo,
                        int64_t& hi) {
  lo = off >= 0 ? 0 : (-off + s - 1) / s;
  hi = size - off <= 0 ? 0 : (size - off - 1) / s + 1;
  if (hi > out) hi = out;
  if (lo > hi) lo = hi;
}

// y (N, O, Ho, Wo) = b + sum over (c, kh, kw), in that order, of w * x. b may be null.
void fwd(const ConvParams& p, const float* x, const float* w, const float* b, float* y);
// gx (N, C, H, W) = sum over (o, kh, kw, oh, ow) scattered from gy; overwrites gx.
void bwd_data(const ConvParams& p, const float* gy, const float* w, float* gx);
// gw (O, C/g, kH, kW) = sum over (n, oh, ow) of gy * x; gb (O) = sum of gy. Either may be null.
void bwd_weight(const ConvParams& p, const float* gy, const float* x, float* gw, float* gb);

}  // namespace convkit::kernels::direct
