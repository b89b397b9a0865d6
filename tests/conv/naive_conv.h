// Naive convolution in double for the fast-path tests, independent of src/kernels/ref: every
// output also gets S = sum of |term| (the magnitude its rounding error is relative to) and K = the
// number of terms. Zero padding only (the fast paths handle only that).
//
// Tolerance policy (all fast paths but Winograd): a float sum of K products computed in any order,
// with or without FMA, is within gamma_K * S of the exact sum, gamma_K = K * u / (1 - K * u),
// u = 2^-24 (Higham, Accuracy and Stability, 3.1). We allow |got - exact| <= 2 * (K + 2) * u * S
// + 1e-30: a rigorous bound, so random inputs never make it flaky, and tight enough that a wrong
// tap or a missing term (error ~ |term|, far above K * u * S) fails.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/conv_params.h"

namespace convkit::testing {

using kernels::ConvParams;

struct Naive {
  std::vector<double> val, mag;  // exact value and S per element
  int64_t terms = 0;             // K: the most terms any element sums
};

inline ConvParams make(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t kH,
                       int64_t kW, int64_t s = 1, int64_t pad = 0, int64_t d = 1, int64_t g = 1) {
  ConvParams p;
  p.N = N, p.C = C, p.H = H, p.W = W, p.O = O, p.kH = kH, p.kW = kW;
  p.sH = p.sW = s;
  p.dH = p.dW = d;
  p.pad_t = p.pad_b = p.pad_l = p.pad_r = pad;
  p.groups = g;
  p.Ho = (H + 2 * pad - d * (kH - 1) - 1) / s + 1;
  p.Wo = (W + 2 * pad - d * (kW - 1) - 1) / s + 1;
  return p;
}

// Recomputes Ho, Wo after editing p's fields.
inline void finish(ConvParams& p) {
  p.Ho = (p.H + p.pad_t + p.pad_b - p.dH * (p.kH - 1) - 1) / p.sH + 1;
  p.Wo = (p.W + p.pad_l + p.pad_r - p.dW * (p.kW - 1) - 1) / p.sW + 1;
}

inline std::vector<float> random_vec(std::mt19937& rng, int64_t n, float lo = -1.f,
                                     float hi = 1.f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& e : v) e = u(rng);
  return v;
}

// Calls f(n, o, c (group-local), kh, kw, oh, ow, ih, iw) for every tap that reads inside the input.
template <typename F>
void for_each_tap(const ConvParams& p, F&& f) {
  const int64_t Cg = p.Cg(), Og = p.Og();
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t o = 0; o < p.O; ++o)
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t kh = 0; kh < p.kH; ++kh)
          for (int64_t kw = 0; kw < p.kW; ++kw)
            for (int64_t oh = 0; oh < p.Ho; ++oh) {
              const int64_t ih = oh * p.sH - p.pad_t + kh * p.dH;
              if (ih < 0 || ih >= p.H) continue;
              for (int64_t ow = 0; ow < p.Wo; ++ow) {
                const int64_t iw = ow * p.sW - p.pad_l + kw * p.dW;
                if (iw < 0 || iw >= p.W) continue;
                f(n, o, c, kh, kw, oh, ow, ih, iw, (o / Og) * Cg + c);
              }
            }
}

inline Naive naive_fwd(const ConvParams& p, const float* x, const float* w, const float* b) {
  Naive r;
  r.val.assign(p.N * p.O * p.Ho * p.Wo, 0.0);
  r.mag.assign(r.val.size(), 0.0);
  r.terms = p.Cg() * p.kH * p.kW + 1;
  if (b)
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t o = 0; o < p.O; ++o)
        for (int64_t i = 0; i < p.Ho * p.Wo; ++i) {
          r.val[(n * p.O + o) * p.Ho * p.Wo + i] = b[o];
          r.mag[(n * p.O + o) * p.Ho * p.Wo + i] = std::fabs(b[o]);
        }
  for_each_tap(p, [&](int64_t n, int64_t o, int64_t c, int64_t kh, int64_t kw, int64_t oh,
                      int64_t ow, int64_t ih, int64_t iw, int64_t ci) {
    const double t = double(x[((n * p.C + ci) * p.H + ih) * p.W + iw]) *
                     w[((o * p.Cg() + c) * p.kH + kh) * p.kW + kw];
    const size_t yi = ((n * p.O + o) * p.Ho + oh) * p.Wo + ow;
    r.val[yi] += t;
    r.mag[yi] += std::fabs(t);
  });
  return r;
}

inline Naive naive_bwd_data(const ConvParams& p, const float* gy, const float* w) {
  Naive r;
  r.val.assign(p.N * p.C * p.H * p.W, 0.0);
  r.mag.assign(r.val.size(), 0.0);
  r.terms = p.Og() * p.kH * p.kW;
  for_each_tap(p, [&](int64_t n, int64_t o, int64_t c, int64_t kh, int64_t kw, int64_t oh,
                      int64_t ow, int64_t ih, int64_t iw, int64_t ci) {
    const double t = double(gy[((n * p.O + o) * p.Ho + oh) * p.Wo + ow]) *
                     w[((o * p.Cg() + c) * p.kH + kh) * p.kW + kw];
    const size_t xi = ((n * p.C + ci) * p.H + ih) * p.W + iw;
    r.val[xi] += t;
    r.mag[xi] += std::fabs(t);
  });
  return r;
}

// gw (O, C/g, kH, kW) followed by gb (O) in one vector.
inline Naive naive_bwd_weight(const ConvParams& p, const float* gy, const float* x) {
  Naive r;
  const int64_t nw = p.O * p.Cg() * p.kH * p.kW;
  r.val.assign(nw + p.O, 0.0);
  r.mag.assign(r.val.size(), 0.0);
  r.terms = p.N * p.Ho * p.Wo;
  for_each_tap(p, [&](int64_t n, int64_t o, int64_t c, int64_t kh, int64_t kw, int64_t oh,
                      int64_t ow, int64_t ih, int64_t iw, int64_t ci) {
    const double t = double(gy[((n * p.O + o) * p.Ho + oh) * p.Wo + ow]) *
                     x[((n * p.C + ci) * p.H + ih) * p.W + iw];
    const size_t wi = ((o * p.Cg() + c) * p.kH + kh) * p.kW + kw;
    r.val[wi] += t;
    r.mag[wi] += std::fabs(t);
  });
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t o = 0; o < p.O; ++o)
      for (int64_t i = 0; i < p.Ho * p.Wo; ++i) {
        const double t = gy[(n * p.O + o) * p.Ho * p.Wo + i];
        r.val[nw + o] += t;
        r.mag[nw + o] += std::fabs(t);
      }
  return r;
}

// Index of the first element outside the tolerance (see the policy above), or -1.
inline int64_t first_mismatch(const Naive& r, const float* got, double extra_factor = 1.0,
                              double floor_units = 0.0) {
  const double u = std::ldexp(1.0, -24);
  for (size_t i = 0; i < r.val.size(); ++i) {
    const double tol =
        (extra_factor * 2.0 * double(r.terms + 2) + floor_units) * u * r.mag[i] + 1e-30;
    if (!(std::fabs(double(got[i]) - r.val[i]) <= tol)) return static_cast<int64_t>(i);
  }
  return -1;
}

// A Winograd forward mixes the outputs of a tile in its transforms, so an output's rounding error
// scales with the largest S in its tile, not with its own (an output whose window reads only zeros,
// padding or data, has S = 0 but gets its tile's noise). For tiles of up to reach + 1 outputs
// along rows of W: this copy gives every element the largest S within reach along its row.
inline Naive rowwise(Naive r, int64_t W, int64_t reach) {
  const std::vector<double> own = r.mag;
  for (size_t i = 0; i < own.size(); ++i) {
    const int64_t j = static_cast<int64_t>(i) % W;
    for (int64_t d = -std::min(reach, j); d <= std::min(reach, W - 1 - j); ++d)
      r.mag[i] = std::max(r.mag[i], own[static_cast<size_t>(static_cast<int64_t>(i) + d)]);
  }
  return r;
}

// Winograd's weight gradient mixes the taps of a kernel in its transforms, so an element's
// rounding error scales with the largest S among the `taps` elements of its kernel, not with its
// own (a tap that reads mostly padding has a far smaller S). This copy of a weight-gradient result
// gives every element of gw (the first nw) its kernel's largest S.
inline Naive kernelwise(Naive r, int64_t nw, int64_t taps) {
  for (size_t k = 0; k < static_cast<size_t>(nw); k += static_cast<size_t>(taps)) {
    const auto first = r.mag.begin() + static_cast<std::ptrdiff_t>(k);
    const double m = *std::max_element(first, first + taps);
    std::fill(first, first + taps, m);
  }
  return r;
}

}  // namespace convkit::testing
