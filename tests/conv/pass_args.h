// The buffers of one convolution pass in the conv tests: how many floats a pass writes, the
// ConvArgs that point a pass at test vectors, and the check of a pass fed Inf and NaN.
//   Fwd:       x, w, b (may be null)  ->  out = y (N, O, Ho, Wo)
//   BwdData:   gy, w                  ->  out = gx (N, C, H, W)
//   BwdWeight: gy, x                  ->  out = gw (O, C/g, kH, kW) followed by gb (O)
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <vector>

#include "conv/dispatch.h"
#include "conv/naive_conv.h"

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

// out against the naive r of inputs holding Inf/NaN: NaN where r is NaN, the same infinity where
// r is infinite, and within 1e-4 (1 + sum|term|) elsewhere. Counts both kinds of element.
inline void expect_nonfinite_like(const Naive& r, const std::vector<float>& out, int& nonfinite,
                                  int& finite) {
  nonfinite = finite = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (std::isnan(r.val[i])) {
      ++nonfinite;
      EXPECT_TRUE(std::isnan(out[i])) << i;
    } else if (std::isinf(r.val[i])) {
      ++nonfinite;
      EXPECT_EQ(out[i], r.val[i]) << i;
    } else {
      ++finite;
      ASSERT_TRUE(std::isfinite(out[i])) << i << ": " << out[i];
      EXPECT_LE(std::fabs(out[i] - r.val[i]), 1e-4 * (1 + r.mag[i])) << i;
    }
  }
}

}  // namespace convkit::testing
