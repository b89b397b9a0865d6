// The buffers of one convolution pass in the conv tests: how many floats a pass writes and the
// ConvArgs that point a pass at test vectors.
//   Fwd:       x, w, b (may be null)  ->  out = y (N, O, Ho, Wo)
//   BwdData:   gy, w                  ->  out = gx (N, C, H, W)
//   BwdWeight: gy, x                  ->  out = gw (O, C/g, kH, kW) followed by gb (O)
#pragma once
#include <cstddef>

#include "conv/dispatch.h"

namespace convkit::testing {

inline std::size_t pass_out_floats(conv::Pass pass, const kernels::ConvParams& p) {
  if (pass == conv::Pass::Fwd) return static_cast<std::size_t>(p.N * p.O * p.Ho * p.Wo);
  if (pass == conv::Pass::BwdData) return static_cast<std::size_t>(p.N * p.C * p.H * p.W);
  return static_cast<std::size_t>(p.O * p.Cg() * p.kH * p.kW + p.O);
}

// out holds pass_out_floats(pass, p) floats.
inline conv::ConvArgs pass_args(conv::Pass pass, const kernels::ConvParams& p, const float* x,
                                const float* w, const float* b, const float* gy, float* out) {
  conv::ConvArgs a;
  if (pass == conv::Pass::Fwd) {
    a.x = x, a.w = w, a.b = b, a.y = out;
  } else if (pass == conv::Pass::BwdData) {
    a.gy = gy, a.w = w, a.gx = out;
  } else {
    a.gy = gy, a.x = x, a.gw = out, a.gb = out + p.O * p.Cg() * p.kH * p.kW;
  }
  return a;
}

}  // namespace convkit::testing
