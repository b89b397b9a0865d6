// The reference convolution against computations that share none of its code:
//   (1) pad explicitly into a bigger buffer (the padded axes built by concatenation, as numpy
//       documents np.pad), then a valid convolution;
//   (2) unfold (im2col) + a matrix product per group;
//   (3) finite differences of the forward and the adjoint identity, for both backward kernels;
//   (4) numbers from PyTorch 1.13 (F.pad + F.conv2d + autograd), generated offline, embedded below.
// Tolerance policy: small-integer data is compared exactly (every sum is exact in float and
// double); random floats within 1.2e-7 * sum|terms| (the reference rounds a double sum to float
// once).
#include "kernels/ref/conv2d_ref.h"

#include <convkit/error.h>
#include <convkit/functional.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "conv/conv.h"
#include "kernels/ref/pad_index.h"

namespace convkit::kernels {
namespace {

using Vec = std::vector<float>;
using DVec = std::vector<double>;
using Rng = std::mt19937;

int64_t uni(Rng& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

// Small integers in [-3, 3] (exact arithmetic) or floats in [-1, 1].
Vec random_values(Rng& rng, int64_t count, bool integer) {
  Vec v(static_cast<size_t>(count));
  for (float& e : v)
    e = integer ? float(uni(rng, -3, 3)) : std::uniform_real_distribution<float>(-1.f, 1.f)(rng);
  return v;
}

// ---- the test's own padding ---------------------------------------------------------------------

// One padded axis as the list of source indices it reads (-1: the padding value), built by
// concatenating the pieces numpy's np.pad documents for each mode. Valid within PyTorch's limits
// (reflect pad < n, circular / symmetric pad <= n), which every sweep below respects.
std::vector<int64_t> padded_axis(int64_t n, int64_t lead, int64_t trail, PadMode mode) {
  std::vector<int64_t> out;
  switch (mode) {
    case PadMode::Zeros:
    case PadMode::Constant:
      out.assign(size_t(lead), -1);
      for (int64_t j = 0; j < n; ++j) out.push_back(j);
      out.insert(out.end(), size_t(trail), -1);
      break;
    case PadMode::Replicate:
      out.assign(size_t(lead), 0);
      for (int64_t j = 0; j < n; ++j) out.push_back(j);
      out.insert(out.end(), size_t(trail), n - 1);
      break;
    case PadMode::Reflect:  // x[lead], ..., x[1] | x | x[n-2], ..., x[n-1-trail]
      for (int64_t j = lead; j >= 1; --j) out.push_back(j);
      for (int64_t j = 0; j < n; ++j) out.push_back(j);
      for (int64_t j = 1; j <= trail; ++j) out.push_back(n - 1 - j);
      break;
    case PadMode::Circular:  // x[n-lead], ..., x[n-1] | x | x[0], ..., x[trail-1]
      for (int64_t j = n - lead; j < n; ++j) out.push_back(j);
      for (int64_t j = 0; j < n; ++j) out.push_back(j);
      for (int64_t j = 0; j < trail; ++j) out.push_back(j);
      break;
    case PadMode::Symmetric:  // x[lead-1], ..., x[0] | x | x[n-1], ..., x[n-trail]
      for (int64_t j = lead - 1; j >= 0; --j) out.push_back(j);
      for (int64_t j = 0; j < n; ++j) out.push_back(j);
      for (int64_t j = 0; j < trail; ++j) out.push_back(n - 1 - j);
      break;
  }
  return out;
}

const char* mode_name(PadMode m) {
  static const char* names[] = {"zeros",    "reflect",   "replicate",
                                "circular", "symmetric", "constant"};
  return names[int(m)];
}

// ---- the two independent forward computations ---------------------------------------------------

struct Independent {
  DVec y;       // (N, O, Ho, Wo)
  DVec sumabs;  // (N, O, Ho, Wo): sum of |terms|, for the float tolerance
};

// (1) Pad x (N, C, H, W) into xp (N, C, Hp, Wp), then a valid strided, dilated, grouped
// convolution.
Independent padded_then_valid(const ConvParams& p, const Vec& x, const Vec& w, const Vec* b) {
  const auto rows = padded_axis(p.H, p.pad_t, p.pad_b, p.mode);
  const auto cols = padded_axis(p.W, p.pad_l, p.pad_r, p.mode);
  const int64_t Hp = int64_t(rows.size()), Wp = int64_t(cols.size());
  const double fill = p.mode == PadMode::Constant ? double(p.pad_value) : 0.0;
  DVec xp(size_t(p.N * p.C * Hp * Wp));
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t c = 0; c < p.C; ++c)
      for (int64_t i = 0; i < Hp; ++i)
        for (int64_t j = 0; j < Wp; ++j)
          xp[size_t(((n * p.C + c) * Hp + i) * Wp + j)] =
              rows[size_t(i)] < 0 || cols[size_t(j)] < 0
                  ? fill
                  : double(
                        x[size_t(((n * p.C + c) * p.H + rows[size_t(i)]) * p.W + cols[size_t(j)])]);
  const int64_t Ho = (Hp - p.dH * (p.kH - 1) - 1) / p.sH + 1;
  const int64_t Wo = (Wp - p.dW * (p.kW - 1) - 1) / p.sW + 1;
  const int64_t Cg = p.C / p.groups, Og = p.O / p.groups;
  Independent r{DVec(size_t(p.N * p.O * Ho * Wo)), DVec(size_t(p.N * p.O * Ho * Wo))};
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t o = 0; o < p.O; ++o)
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          double acc = b ? double((*b)[size_t(o)]) : 0.0;
          double mag = std::fabs(acc);
          for (int64_t ci = 0; ci < Cg; ++ci)
            for (int64_t kh = 0; kh < p.kH; ++kh)
              for (int64_t kw = 0; kw < p.kW; ++kw) {
                const int64_t c = (o / Og) * Cg + ci;
                const double t = xp[size_t(((n * p.C + c) * Hp + oh * p.sH + kh * p.dH) * Wp +
                                           ow * p.sW + kw * p.dW)] *
                                 double(w[size_t(((o * Cg + ci) * p.kH + kh) * p.kW + kw)]);
                acc += t;
                mag += std::fabs(t);
              }
          r.y[size_t(((n * p.O + o) * Ho + oh) * Wo + ow)] = acc;
          r.sumabs[size_t(((n * p.O + o) * Ho + oh) * Wo + ow)] = mag;
        }
  return r;
}

// (2) Unfold: per image and group, cols (Cg*kH*kW, Ho*Wo); then y_g (Og, Ho*Wo) = W_g (Og,
// Cg*kH*kW) · cols, W_g being rows g*Og.. of the weight read as an (O, Cg*kH*kW) matrix (OIHW is
// row-major).
DVec unfold_matmul(const ConvParams& p, const Vec& x, const Vec& w, const Vec* b) {
  const auto rows = padded_axis(p.H, p.pad_t, p.pad_b, p.mode);
  const auto colmap = padded_axis(p.W, p.pad_l, p.pad_r, p.mode);
  const int64_t Ho = (int64_t(rows.size()) - p.dH * (p.kH - 1) - 1) / p.sH + 1;
  const int64_t Wo = (int64_t(colmap.size()) - p.dW * (p.kW - 1) - 1) / p.sW + 1;
  const int64_t Cg = p.C / p.groups, Og = p.O / p.groups, K = Cg * p.kH * p.kW, P = Ho * Wo;
  const double fill = p.mode == PadMode::Constant ? double(p.pad_value) : 0.0;
  DVec y(size_t(p.N * p.O * P));
  DVec cols(size_t(K * P));
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t g = 0; g < p.groups; ++g) {
      for (int64_t ci = 0; ci < Cg; ++ci)
        for (int64_t kh = 0; kh < p.kH; ++kh)
          for (int64_t kw = 0; kw < p.kW; ++kw)
            for (int64_t oh = 0; oh < Ho; ++oh)
              for (int64_t ow = 0; ow < Wo; ++ow) {
                const int64_t r = (ci * p.kH + kh) * p.kW + kw;
                const int64_t sh = rows[size_t(oh * p.sH + kh * p.dH)];
                const int64_t sw = colmap[size_t(ow * p.sW + kw * p.dW)];
                cols[size_t(r * P + oh * Wo + ow)] =
                    sh < 0 || sw < 0
                        ? fill
                        : double(x[size_t(((n * p.C + g * Cg + ci) * p.H + sh) * p.W + sw)]);
              }
      for (int64_t og = 0; og < Og; ++og) {
        const int64_t o = g * Og + og;
        for (int64_t q = 0; q < P; ++q) {
          double acc = b ? double((*b)[size_t(o)]) : 0.0;
          for (int64_t r = 0; r < K; ++r)
            acc += double(w[size_t(o * K + r)]) * cols[size_t(r * P + q)];
          y[size_t((n * p.O + o) * P + q)] = acc;
        }
      }
    }
  return y;
}

// ---- random problems ----------------------------------------------------------------------------

struct Problem {
  Shape x, w;  // (N, C, H, W), (O, C/groups, kH, kW)
  Conv2dOptions opt;
  bool bias = false;
  int padding_kind = 0;  // 0 int, 1 (h, w), 2 four-sided, 3 same, 4 valid
};

// The pad on one dimension that PyTorch allows for `mode` (reflect < n, circular / symmetric <= n).
int64_t pad_limit(PaddingMode mode, int64_t n, int64_t unlimited) {
  if (mode == PaddingMode::Reflect) return n - 1;
  if (mode == PaddingMode::Circular || mode == PaddingMode::Symmetric) return n;
  return unlimited;
}

Problem random_problem(Rng& rng, int64_t max_n, int64_t max_hw) {
  Problem pr;
  const int64_t N = uni(rng, 1, max_n);
  int64_t C = 1, O = 1, groups = 1;
  switch (uni(rng, 0, 2)) {
    case 0:  // dense
      C = uni(rng, 1, 8);
      O = uni(rng, 1, 8);
      break;
    case 1:  // depthwise, channel multiplier 1 or 2
      C = uni(rng, 1, 8);
      groups = C;
      O = C * uni(rng, 1, 2);
      break;
    default:  // grouped with multipliers
      groups = uni(rng, 1, 4);
      C = groups * uni(rng, 1, 2);
      O = groups * uni(rng, 1, 2);
      break;
  }
  const int64_t H = uni(rng, 1, max_hw), W = uni(rng, 1, max_hw);
  const int64_t kH = uni(rng, 0, 5) == 0 ? H : uni(rng, 1, 5);  // sometimes the whole input
  const int64_t kW = uni(rng, 0, 5) == 0 ? W : uni(rng, 1, 5);
  pr.x = {N, C, H, W};
  pr.w = {O, C / groups, kH, kW};
  pr.bias = uni(rng, 0, 1) == 1;
  Conv2dOptions& o = pr.opt;
  o.groups = groups;
  o.stride = Pair2(uni(rng, 1, 3), uni(rng, 1, 3));
  o.dilation = uni(rng, 0, 1) ? Pair2(1) : Pair2(uni(rng, 1, 3), uni(rng, 1, 3));
  o.padding_mode = PaddingMode(uni(rng, 0, 5));
  o.padding_value = o.padding_mode == PaddingMode::Constant ? 0.5f * float(uni(rng, -4, 4)) : 0.f;
  const int64_t lh = pad_limit(o.padding_mode, H, 4), lw = pad_limit(o.padding_mode, W, 4);
  pr.padding_kind = int(uni(rng, 0, 4));
  switch (pr.padding_kind) {
    case 0:
      o.padding = Padding(uni(rng, 0, std::min(lh, lw)));
      break;
    case 1:
      o.padding = Padding(uni(rng, 0, lh), uni(rng, 0, lw));
      break;
    case 2:
      o.padding = Padding(uni(rng, 0, lw), uni(rng, 0, lw), uni(rng, 0, lh), uni(rng, 0, lh));
      break;
    case 3:
      o.padding = Padding("same");
      break;
    default:
      o.padding = Padding("valid");
      break;
  }
  return pr;
}

// What make_params should give, worked out here from the rules; nullopt when the problem
// is invalid (a pad over the mode's limit, or a dilated kernel larger than the padded input).
std::optional<ConvParams> expected_params(const Problem& pr) {
  ConvParams p;
  p.N = pr.x[0], p.C = pr.x[1], p.H = pr.x[2], p.W = pr.x[3];
  p.O = pr.w[0], p.kH = pr.w[2], p.kW = pr.w[3];
  p.sH = pr.opt.stride.h, p.sW = pr.opt.stride.w, p.dH = pr.opt.dilation.h,
  p.dW = pr.opt.dilation.w;
  p.groups = pr.opt.groups;
  p.mode = PadMode(int(pr.opt.padding_mode));
  p.pad_value = pr.opt.padding_value;
  const Padding& q = pr.opt.padding;
  if (q.kind == Padding::Kind::Explicit) {
    p.pad_l = q.left, p.pad_r = q.right, p.pad_t = q.top, p.pad_b = q.bottom;
  } else if (q.kind == Padding::Kind::Same) {
    // TensorFlow: out = ceil(in / s); total = max((out - 1) s + d (k - 1) + 1 - in, 0).
    auto same = [](int64_t in, int64_t k, int64_t s, int64_t d, int64_t& lead, int64_t& trail) {
      const int64_t out = in / s + (in % s != 0);
      const int64_t total = std::max<int64_t>((out - 1) * s + d * (k - 1) + 1 - in, 0);
      lead = total / 2;
      trail = total - lead;
    };
    same(p.H, p.kH, p.sH, p.dH, p.pad_t, p.pad_b);
    same(p.W, p.kW, p.sW, p.dW, p.pad_l, p.pad_r);
  }
  const int64_t lh = pad_limit(pr.opt.padding_mode, p.H, 1 << 30);
  const int64_t lw = pad_limit(pr.opt.padding_mode, p.W, 1 << 30);
  if (p.pad_t > lh || p.pad_b > lh || p.pad_l > lw || p.pad_r > lw) return std::nullopt;
  const int64_t Hp = p.H + p.pad_t + p.pad_b, Wp = p.W + p.pad_l + p.pad_r;
  if (p.dH * (p.kH - 1) + 1 > Hp || p.dW * (p.kW - 1) + 1 > Wp) return std::nullopt;
  // Count the windows that fit rather than use the formula: the first starts at 0, each next one
  // sH later, and a window fits while its last tap is inside the padded input.
  p.Ho = 0;
  while (p.Ho * p.sH + p.dH * (p.kH - 1) < Hp) ++p.Ho;
  p.Wo = 0;
  while (p.Wo * p.sW + p.dW * (p.kW - 1) < Wp) ++p.Wo;
  return p;
}

std::string describe(const ConvParams& p, bool bias) {
  return detail::concat("x (", p.N, ", ", p.C, ", ", p.H, ", ", p.W, ") w (", p.O, ", ", p.Cg(),
                        ", ", p.kH, ", ", p.kW, ") groups ", p.groups, " stride (", p.sH, ", ",
                        p.sW, ") dilation (", p.dH, ", ", p.dW, ") pad (l ", p.pad_l, ", r ",
                        p.pad_r, ", t ", p.pad_t, ", b ", p.pad_b, ") ", mode_name(p.mode),
                        " value ", p.pad_value, bias ? " bias" : " no bias");
}

// Draws problems until one is valid; each invalid draw must be refused by make_params.
ConvParams draw_valid(Rng& rng, int64_t max_n, int64_t max_hw, Problem& pr) {
  for (;;) {
    pr = random_problem(rng, max_n, max_hw);
    const auto want = expected_params(pr);
    if (!want) {
      EXPECT_THROW(conv::make_params(pr.x, pr.w, pr.opt), Error);
      continue;
    }
    const ConvParams got = conv::make_params(pr.x, pr.w, pr.opt);
    EXPECT_EQ(got.pad_t, want->pad_t);
    EXPECT_EQ(got.pad_b, want->pad_b);
    EXPECT_EQ(got.pad_l, want->pad_l);
    EXPECT_EQ(got.pad_r, want->pad_r);
    EXPECT_EQ(got.Ho, want->Ho);
    EXPECT_EQ(got.Wo, want->Wo);
    EXPECT_EQ(got.mode, want->mode);
    return *want;
  }
}

int64_t numel_x(const ConvParams& p) {
  return p.N * p.C * p.H * p.W;
}
int64_t numel_w(const ConvParams& p) {
  return p.O * p.Cg() * p.kH * p.kW;
}
int64_t numel_y(const ConvParams& p) {
  return p.N * p.O * p.Ho * p.Wo;
}

Vec forward(const ConvParams& p, const Vec& x, const Vec& w, const Vec* b) {
  Vec y(size_t(numel_y(p)), std::numeric_limits<float>::quiet_NaN());
  ref::conv2d_fwd(p, x.data(), w.data(), b ? b->data() : nullptr, y.data());
  return y;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * double(b[i]);
  return s;
}
double absdot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += std::fabs(double(a[i]) * double(b[i]));
  return s;
}

// ---- pad_index ----------------------------------------------------------------------------------

TEST(PadIndex, MatchesConcatenatedPaddingWithinLimits) {
  for (int m = 0; m < 6; ++m) {
    const PadMode mode = PadMode(m);
    for (int64_t n = 1; n <= 6; ++n) {
      const int64_t limit = mode == PadMode::Reflect                                    ? n - 1
                            : (mode == PadMode::Circular || mode == PadMode::Symmetric) ? n
                                                                                        : 9;
      for (int64_t lead = 0; lead <= limit; ++lead)
        for (int64_t trail = 0; trail <= limit; ++trail) {
          const auto table = padded_axis(n, lead, trail, mode);
          ASSERT_EQ(int64_t(table.size()), n + lead + trail);
          for (int64_t i = 0; i < int64_t(table.size()); ++i)
            EXPECT_EQ(pad_index(i - lead, n, mode), table[size_t(i)])
                << mode_name(mode) << " n=" << n << " lead=" << lead << " i=" << i - lead;
        }
    }
  }
}

// Beyond PyTorch's limits the mapping keeps folding, as numpy's np.pad does; the tables are
// np.pad(np.arange(n), (lead, trail), mode) from numpy (mode 'wrap' is circular, 'edge' replicate).
TEST(PadIndex, BeyondTheLimitsFoldsLikeNumpy) {
  struct Row {
    PadMode mode;
    int64_t n, lead;
    std::vector<int64_t> table;
  };
  const std::vector<Row> rows = {
      {PadMode::Reflect, 3, 7, {1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1}},
      {PadMode::Reflect, 2, 4, {0, 1, 0, 1, 0, 1, 0, 1, 0, 1}},
      {PadMode::Reflect, 1, 3, {0, 0, 0, 0, 0, 0}},
      {PadMode::Symmetric, 3, 7, {0, 0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1}},
      {PadMode::Symmetric, 2, 4, {0, 1, 1, 0, 0, 1, 1, 0, 0, 1}},
      {PadMode::Symmetric, 1, 3, {0, 0, 0, 0, 0, 0}},
      {PadMode::Circular, 3, 7, {2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1}},
      {PadMode::Circular, 2, 4, {0, 1, 0, 1, 0, 1, 0, 1, 0, 1}},
      {PadMode::Replicate, 3, 7, {0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 2, 2}},
      {PadMode::Replicate, 2, 4, {0, 0, 0, 0, 0, 1, 1, 1, 1, 1}},
  };
  for (const Row& r : rows)
    for (size_t i = 0; i < r.table.size(); ++i)
      EXPECT_EQ(pad_index(int64_t(i) - r.lead, r.n, r.mode), r.table[i])
          << mode_name(r.mode) << " n=" << r.n << " i=" << int64_t(i) - r.lead;
  EXPECT_EQ(pad_index(-5, 4, PadMode::Zeros), kPadConstant);
  EXPECT_EQ(pad_index(4, 4, PadMode::Constant), kPadConstant);
  EXPECT_EQ(pad_index(3, 4, PadMode::Constant), 3);
}

// ---- forward against the two independent computations -----------------------------------------

TEST(Conv2dRef, ForwardMatchesPaddedAndUnfoldedOverRandomShapes) {
  Rng rng(20240611);
  int modes_seen[6] = {}, kinds_seen[5] = {};
  int strided_same = 0, dilated_same = 0, even_same = 0, depthwise = 0, whole = 0;
  for (int it = 0; it < 400; ++it) {
    Problem pr;
    const ConvParams p = draw_valid(rng, 3, 9, pr);
    const bool integer = it % 2 == 0;
    const Vec x = random_values(rng, numel_x(p), integer);
    const Vec w = random_values(rng, numel_w(p), integer);
    const Vec b = random_values(rng, p.O, integer);
    const Vec* bp = pr.bias ? &b : nullptr;
    ++modes_seen[int(p.mode)];
    ++kinds_seen[pr.padding_kind];
    if (pr.padding_kind == 3) {
      strided_same += p.sH > 1 || p.sW > 1;
      dilated_same += p.dH > 1 || p.dW > 1;
      even_same += p.kH % 2 == 0 || p.kW % 2 == 0;
    }
    depthwise += p.groups == p.C && p.C > 1;
    whole += p.kH == p.H && p.kW == p.W;

    const Vec y = forward(p, x, w, bp);
    const Independent padded = padded_then_valid(p, x, w, bp);
    const DVec unfolded = unfold_matmul(p, x, w, bp);
    ASSERT_EQ(padded.y.size(), y.size()) << describe(p, pr.bias);
    ASSERT_EQ(unfolded.size(), y.size()) << describe(p, pr.bias);
    for (size_t i = 0; i < y.size(); ++i) {
      if (integer) {
        ASSERT_EQ(double(y[i]), padded.y[i]) << describe(p, pr.bias) << " at " << i;
        ASSERT_EQ(double(y[i]), unfolded[i]) << describe(p, pr.bias) << " at " << i;
      } else {
        const double tol = 1.2e-7 * padded.sumabs[i] + 1e-30;
        ASSERT_NEAR(double(y[i]), padded.y[i], tol) << describe(p, pr.bias) << " at " << i;
        ASSERT_NEAR(double(y[i]), unfolded[i], tol) << describe(p, pr.bias) << " at " << i;
      }
    }
  }
  // The sweep reached every mode, every padding kind and the awkward corners.
  for (int m = 0; m < 6; ++m) EXPECT_GT(modes_seen[m], 10) << mode_name(PadMode(m));
  for (int k = 0; k < 5; ++k) EXPECT_GT(kinds_seen[k], 10) << "padding kind " << k;
  EXPECT_GT(strided_same, 5);
  EXPECT_GT(dilated_same, 5);
  EXPECT_GT(even_same, 5);
  EXPECT_GT(depthwise, 10);
  EXPECT_GT(whole, 5);
}

// Stride 1 'same' keeps the size for odd and even kernels (PyTorch's padding='same').
TEST(Conv2dRef, SameAtStrideOneKeepsTheSize) {
  Rng rng(7);
  for (int64_t k = 1; k <= 6; ++k)
    for (int m = 0; m < 6; ++m) {
      Conv2dOptions o;
      o.padding = Padding::same();
      o.padding_mode = PaddingMode(m);
      o.padding_value = 1.5f;
      const ConvParams p = conv::make_params({2, 3, 7, 6}, {4, 3, k, k}, o);
      EXPECT_EQ(p.Ho, 7);
      EXPECT_EQ(p.Wo, 6);
      const Vec x = random_values(rng, numel_x(p), true), w = random_values(rng, numel_w(p), true);
      const Vec y = forward(p, x, w, nullptr);
      const DVec want = unfold_matmul(p, x, w, nullptr);
      for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(double(y[i]), want[i]) << describe(p, false);
    }
}

// ---- backward -----------------------------------------------------------------------------------

// L = <y, gy> in double.
double loss(const ConvParams& p, const Vec& x, const Vec& w, const Vec* b, const Vec& gy) {
  return dot(forward(p, x, w, b), gy);
}

// With small-integer data the forward is exact and linear in x, w and b, so a central difference
// with step 1 is the exact gradient: both backward kernels must match it bit for bit.
TEST(Conv2dRef, BackwardMatchesFiniteDifferences) {
  Rng rng(99);
  for (int it = 0; it < 30; ++it) {
    Problem pr;
    const ConvParams p = draw_valid(rng, 2, 5, pr);
    Vec x = random_values(rng, numel_x(p), true);
    Vec w = random_values(rng, numel_w(p), true);
    Vec b = random_values(rng, p.O, true);
    const Vec gy = random_values(rng, numel_y(p), true);
    const std::string what = describe(p, true);

    Vec gx(x.size(), -7.f), gw(w.size(), -7.f), gb(b.size(), -7.f);
    ref::conv2d_bwd_data(p, gy.data(), w.data(), gx.data());
    ref::conv2d_bwd_weight(p, gy.data(), x.data(), gw.data(), gb.data());

    auto central = [&](Vec& v, size_t i) {
      const float keep = v[i];
      v[i] = keep + 1.f;
      const double up = loss(p, x, w, &b, gy);
      v[i] = keep - 1.f;
      const double down = loss(p, x, w, &b, gy);
      v[i] = keep;
      return (up - down) / 2.0;
    };
    for (size_t i = 0; i < x.size(); ++i)
      ASSERT_EQ(double(gx[i]), central(x, i)) << what << " x" << i;
    for (size_t i = 0; i < w.size(); ++i)
      ASSERT_EQ(double(gw[i]), central(w, i)) << what << " w" << i;
    for (size_t i = 0; i < b.size(); ++i)
      ASSERT_EQ(double(gb[i]), central(b, i)) << what << " b" << i;
  }
}

// <conv(x) - conv(0), gy> == <x, bwd_data(gy)> and <conv_w(w), gy> == <w, bwd_weight(gy)> in
// double, with random floats (conv(0) removes the constant-padding term, which does not depend on
// x).
TEST(Conv2dRef, BackwardSatisfiesTheAdjointIdentity) {
  Rng rng(4242);
  for (int it = 0; it < 200; ++it) {
    Problem pr;
    const ConvParams p = draw_valid(rng, 3, 9, pr);
    const Vec x = random_values(rng, numel_x(p), false);
    const Vec w = random_values(rng, numel_w(p), false);
    const Vec gy = random_values(rng, numel_y(p), false);
    const std::string what = describe(p, false);

    Vec gx(x.size()), gw(w.size()), gb(size_t(p.O));
    ref::conv2d_bwd_data(p, gy.data(), w.data(), gx.data());
    ref::conv2d_bwd_weight(p, gy.data(), x.data(), gw.data(), gb.data());
    const Vec y = forward(p, x, w, nullptr);
    const Vec y0 = forward(p, Vec(x.size(), 0.f), w, nullptr);

    const double lhs = dot(y, gy) - dot(y0, gy), rhs = dot(x, gx);
    const double scale = absdot(y, gy) + absdot(y0, gy) + absdot(x, gx) + 1e-30;
    EXPECT_NEAR(lhs, rhs, 1e-6 * scale) << what;
    // Linear in w (constant padding included: value * w), so no offset term.
    EXPECT_NEAR(dot(y, gy), dot(w, gw), 1e-6 * (absdot(y, gy) + absdot(w, gw) + 1e-30)) << what;
    // The bias gradient is the sum of gy over N, Ho, Wo.
    for (int64_t o = 0; o < p.O; ++o) {
      double s = 0, mag = 0;
      for (int64_t n = 0; n < p.N; ++n)
        for (int64_t i = 0; i < p.Ho * p.Wo; ++i) {
          s += gy[size_t((n * p.O + o) * p.Ho * p.Wo + i)];
          mag += std::fabs(gy[size_t((n * p.O + o) * p.Ho * p.Wo + i)]);
        }
      EXPECT_NEAR(double(gb[size_t(o)]), s, 1.2e-7 * mag + 1e-30) << what;
    }
  }
}

// A null gb or gw leaves the other computed; N = 0 writes zero gradients and touches no x or y.
TEST(Conv2dRef, OptionalOutputsAndEmptyBatch) {
  Conv2dOptions o;
  o.padding = 1;
  o.padding_mode = PaddingMode::Reflect;
  ConvParams p = conv::make_params({0, 2, 4, 4}, {3, 2, 3, 3}, o);
  EXPECT_EQ(p.N, 0);
  EXPECT_EQ(p.Ho, 4);
  const Vec w(18 * 3, 1.f);
  Vec gw(w.size(), 5.f), gb(3, 5.f);
  ref::conv2d_fwd(p, nullptr, w.data(), nullptr, nullptr);
  ref::conv2d_bwd_data(p, nullptr, w.data(), nullptr);
  ref::conv2d_bwd_weight(p, nullptr, nullptr, gw.data(), gb.data());
  for (float v : gw) EXPECT_EQ(v, 0.f);
  for (float v : gb) EXPECT_EQ(v, 0.f);

  p = conv::make_params({1, 2, 4, 4}, {3, 2, 3, 3}, o);
  Rng rng(5);
  const Vec x = random_values(rng, numel_x(p), true), gy = random_values(rng, numel_y(p), true);
  Vec gw_only(w.size(), 9.f), gb_only(3, 9.f);
  ref::conv2d_bwd_weight(p, gy.data(), x.data(), gw_only.data(), nullptr);
  ref::conv2d_bwd_weight(p, gy.data(), x.data(), nullptr, gb_only.data());
  Vec gw_both(w.size()), gb_both(3);
  ref::conv2d_bwd_weight(p, gy.data(), x.data(), gw_both.data(), gb_both.data());
  EXPECT_EQ(gw_only, gw_both);
  EXPECT_EQ(gb_only, gb_both);
}

// ---- PyTorch 1.13 numbers -----------------------------------------------------------------------

// Integer inputs, so every expected value is exact. Generated offline with
//   xp = F.pad(x, (l, r, t, b), mode)        (symmetric: np.pad(..., mode="symmetric") indices)
//   y = F.conv2d(xp, w, b, stride, dilation=..., groups=...); (y * gy).sum().backward()
// giving y, x.grad, w.grad and b.grad.
struct TorchCase {
  const char* name;
  Shape x_shape, w_shape;
  bool has_bias;
  Pair2 stride, dilation;
  int64_t groups;
  std::vector<int64_t> pad;  // left, right, top, bottom
  PadMode mode;
  float value;
  std::vector<float> x, w, b;
  Shape y_shape;
  std::vector<float> y, gy, gx, gw, gb;
};

const std::vector<TorchCase>& torch_cases() {
  static const std::vector<TorchCase> cases = {
      // reflect, pad (h=1, w=2)
      {"reflect, pad (h=1, w=2)",
       {1, 2, 4, 5},
       {3, 2, 3, 3},
       true,
       {1, 1},
       {1, 1},
       1,
       {2, 2, 1, 1},
       PadMode::Reflect,
       0.0f,
       {3, 1,  -3, 2, -3, -2, 3, 1, -3, -1, -1, 0,  -2, 2, -3, 0, 1, -2, 3,  2,
        0, -2, -1, 2, 1,  2,  2, 3, 0,  -2, 1,  -2, -1, 1, 1,  0, 1, -1, -2, -2},
       {-1, 0,  -2, 0, -3, 1,  -3, 2,  2,  0,  2,  0, 1,  3, 2, -2, 2,  -2,
        2,  -1, -1, 3, 1,  -2, -1, -1, 1,  -3, 2,  1, -3, 1, 1, -2, -2, 0,
        3,  -3, -3, 1, -2, -2, 0,  3,  -3, -3, -1, 0, -1, 3, 3, 3,  1,  -2},
       {1, 2, 0},
       {1, 3, 4, 7},
       {-6,  -29, -1,  9,  -13, 23, -7,  -4,  27, 1,   -1,  27,  -19, 39,  14,  -9, -2,
        14,  15,  28,  -8, 0,   15, -7,  -2,  -1, -28, 0,   -29, 9,   0,   -4,  -3, -3,
        17,  3,   6,   0,  34,  -7, -2,  -7,  -1, 9,   -15, 14,  11,  0,   6,   5,  11,
        0,   6,   -6,  13, 5,   -5, -24, -20, 35, 22,  20,  -14, -12, 4,   29,  6,  6,
        -12, 21,  -12, -3, -21, -1, 15,  7,   14, -2,  5,   13,  -25, -13, -25, -2},
       {0,  0, -3, -3, 3, -1, 1,  -3, -3, 1,  -2, -3, 2,  -3, 2,  -1, -1, 2, 1,  0,  2,
        -1, 3, 0,  -3, 1, 3,  -3, 3,  3,  -1, 2,  -3, -3, 3,  1,  2,  -3, 3, -1, 3,  -1,
        2,  2, 0,  -3, 2, -2, 3,  2,  0,  -1, -2, 3,  1,  -2, -2, 3,  -1, 1, -2, 0,  0,
        -3, 1, -3, 0,  0, 3,  -1, 2,  3,  1,  -3, 0,  -1, 2,  -2, 3,  2,  2, 1,  -3, -1},
       {-16, 63,  15, -18, 15, -7, 1,   1,   10, 12,  16, -47, 9,   -40, 26, -9, -2, -1,  31, -22,
        26,  -44, 5,  -19, -5, 11, -74, -50, 38, -30, 41, 22,  -34, -20, 29, 7,  11, -34, -3, 10},
       {52, -58, 1,  -60, 39,  -5,  40, -38, 32, 17, -2, -7, -22, -6,  -5,  5,   -12, -21,
        31, -24, 54, -34, 40,  -19, 25, 6,   11, -2, 27, 55, -13, -3,  -26, -19, 27,  42,
        18, -25, 36, -6,  -21, -12, 22, -5,  8,  -7, 19, 21, -1,  -10, -30, -21, 20,  4},
       {-9, 13, 2}},
      // circular, stride 2, groups 2
      {"circular, stride 2, groups 2",
       {2, 2, 4, 4},
       {4, 1, 3, 2},
       false,
       {2, 2},
       {1, 1},
       2,
       {1, 2, 2, 1},
       PadMode::Circular,
       0.0f,
       {-2, -3, -2, -1, -3, 3,  0,  3,  0, -2, -3, 3, 1,  1,  0,  3,  2,  -2, -1, 3, -1, 2,
        2,  0,  1,  1,  -2, -2, -1, 1,  2, 3,  3,  3, 0,  -1, 1,  0,  3,  2,  -2, 0, 3,  -2,
        -1, 1,  1,  1,  1,  0,  2,  -1, 1, -3, 1,  1, -1, -1, -1, -3, -1, -1, -1, 2},
       {0, 3, 2, 1, -3, 0, 2, -1, 0, 3, 1, 1, 0, 2, -1, 3, -1, -2, -2, -2, 1, -2, 1, 0},
       {},
       {2, 4, 3, 3},
       {10,  2,  10,  -12, 6,  -12, 10,  2,  10,  6,  -6, 6,  -6,  -9,  -6,  6,  -6, 6,
        -11, 5,  -11, 1,   5,  1,   -11, 5,  -11, 10, -3, 10, -10, 5,   -10, 10, -3, 10,
        -2,  3,  -2,  20,  3,  20,  -2,  3,  -2,  -3, 3,  -3, -6,  18,  -6,  -3, 3,  -3,
        -8,  -8, -8,  9,   13, 9,   -8,  -8, -8,  11, 5,  11, -4,  -10, -4,  11, 5,  11},
       {2,  -1, -1, 2, -1, -1, -3, 0,  -2, 1,  -2, -1, -2, 3,  1,  3, 0, 1,  3,  -3, 0,  2,  -2, -3,
        -1, 1,  -2, 1, -1, -1, 0,  2,  -1, -3, 2,  3,  -1, 0,  -3, 1, 2, -3, 2,  2,  -3, -2, -3, 3,
        -1, 3,  1,  3, -2, -1, 0,  -1, 2,  -2, 1,  -1, 1,  -1, -1, 0, 2, 1,  -2, 1,  -3, 1,  2,  3},
       {8,   7, -8,  14,  -2, -2, 8, 2,  -17, 2, 2,  4,  8,  -2, -7,  -8,  0,  -1, -4,  2,   -1, 4,
        -10, 0, 2,   2,   -2, 0,  0, 3,  -8,  0, -3, -5, -2, 18, -2,  4,   11, -4, -18, -13, 14, 12,
        4,   4, -13, -10, 0,  4,  4, 13, 1,   0, 1,  -2, 0,  -8, -14, -12, -4, 6,  -14, 3},
       {10, 13, -20, 4,  27, 8, 11,  -19, 14, 8,  -25, 5,
        -2, 3,  -6,  -9, 10, 5, -20, -18, 3,  -6, 11,  11},
       {}},
      // replicate four-sided, stride (2,1), dilation (1,2)
      {"replicate four-sided, stride (2,1), dilation (1,2)",
       {1, 3, 5, 4},
       {2, 3, 2, 3},
       true,
       {2, 1},
       {1, 2},
       1,
       {3, 0, 1, 2},
       PadMode::Replicate,
       0.0f,
       {-1, -3, -3, 3, 2,  1,  -3, -1, -2, -2, 3, 0, 2,  -1, 2,  -3, 2,  1,  -3, 3,
        -3, -3, -2, 1, 1,  -1, 0,  -1, -3, 2,  2, 3, -2, 3,  3,  3,  3,  -1, -3, 3,
        1,  0,  3,  3, -2, 0,  3,  2,  0,  1,  1, 3, 0,  -2, -3, -2, -3, -2, -2, 1},
       {0, 0,  -2, 3, 0, -2, -3, 2, -3, 0,  0,  -2, -3, 2, -1, -2, -2, -2,
        1, -1, -2, 0, 1, 0,  1,  0, -3, -1, -2, 2,  -2, 0, -1, 2,  -3, -3},
       {2, 3},
       {1, 2, 4, 3},
       {24, 10, -29, -4, -12, -14, 21, 28,  11, 27, 53, -18,
        14, 1,  -11, 17, 19,  3,   -4, -13, 6,  15, 25, 0},
       {-1, 2, 3, -3, 0, -2, -3, 0, 0, 0, 2, 2, -2, 1, -1, -3, 0, 0, -3, 0, -3, 1, -1, -2},
       {10,  8,  -10, -10, 0,  12, 0, 4, -18, 6,  0, 4, -3, 15, 0, 6, -2,  1,  -6, -4,
        -8,  15, -11, -14, 6,  14, 0, 6, 9,   0,  0, 4, -3, 18, 0, 9, 4,   13, -9, -14,
        -17, 14, -10, -5,  15, 2,  0, 2, 19,  19, 0, 4, 15, 6,  0, 3, -11, 26, -2, 11},
       {-12, -18, 8, 8,  0,  9,  1, -3, -2,  6,  -12, -7,  2,  -3, 15, 1,  -2, 10,
        -20, -7,  7, -8, -1, -8, 9, 2,  -16, -9, 11,  -13, 10, 15, 10, 22, 18, -2},
       {0, -13}},
      // symmetric (numpy), depthwise x2
      {"symmetric (numpy), depthwise x2",
       {1, 2, 3, 4},
       {4, 1, 3, 3},
       true,
       {1, 2},
       {1, 1},
       2,
       {4, 3, 3, 2},
       PadMode::Symmetric,
       0.0f,
       {-3, 1, 3, 3, 0, 1, 3, -2, -2, 1, -2, 0, 1, -2, -2, 2, 0, 2, 3, 1, -1, 0, -1, -3},
       {-1, 0, 3, 2,  -2, 1, 3, 1,  -2, -2, -3, 0, 0, -3, -2, 3, 2, 0,
        -1, 3, 1, -2, -2, 2, 3, -2, 0,  1,  2,  0, 3, -3, 3,  3, 2, -1},
       {-3, -3, -3, 3},
       {1, 4, 6, 5},
       {1,   -2,  -20, 13,  1,   13,  7,  -13, -3,  13,  -7, -5,  -1,  17,  -7,  -16, -6,  9,
        5,   -16, 3,   5,   -3,  -22, 3,  0,   -3,  -20, 6,  0,   7,   -2,  -18, 26,  7,   -4,
        7,   -22, -3,  -4,  -29, 22,  -7, -28, -29, -33, 3,  -13, -14, -33, -8,  4,   -9,  -9,
        -8,  7,   14,  1,   6,   7,   3,  -19, 6,   -30, 3,  13,  -9,  11,  -8,  13,  -20, 13,
        -18, 18,  -20, -24, 1,   -13, 4,  -24, 8,   -3,  3,  3,   8,   2,   -1,  -7,  -5,  2,
        2,   2,   6,   1,   2,   20,  -6, 11,  -2,  20,  14, 3,   4,   9,   14,  -10, 8,   1,
        8,   -10, -7,  4,   -1,  -1,  -7, -1,  7,   -3,  3,  -1},
       {0,  3,  1,  3,  -1, -3, 1,  1,  0,  0,  1,  1,  -2, 2,  0,  0, -3, 2,  3,  3,
        -2, 1,  -2, 3,  -1, 0,  -2, 2,  -3, -2, 3,  -2, -1, -1, -2, 0, 0,  2,  0,  -2,
        2,  -3, 3,  -2, 3,  2,  -1, -1, -3, 1,  -2, 0,  3,  0,  -2, 1, 2,  -3, 1,  -3,
        0,  -1, 0,  0,  -2, 2,  -1, -1, -3, -2, -2, 0,  3,  -1, 3,  3, 1,  0,  0,  -3,
        0,  -2, -1, 1,  1,  0,  -1, -1, -2, 2,  2,  3,  -3, 0,  0,  3, -3, 1,  -3, 2,
        3,  0,  -2, 1,  -1, 3,  -3, -3, 2,  -2, 1,  -2, 0,  -1, 1,  2, -3, -3, 3,  -2},
       {14,  17, -35, -6, 17,  -45, 14, 50, 5,   2,   47, -25,
        -22, -4, -2,  41, -47, -10, 2,  28, -33, -22, 4,  11},
       {43, 15, -1, 18, 2,   -9,  -21, -10, 4, 19,  8,  27, -38, 43,  17,  -20, 18,  7,
        -3, -4, -6, 6,  -18, -11, -6,  5,   6, -17, 15, 17, 27,  -23, -27, 19,  -17, -18},
       {6, -5, -7, -4}},
      // constant 2, dilation 2
      {"constant 2, dilation 2",
       {1, 1, 4, 4},
       {2, 1, 2, 2},
       false,
       {1, 1},
       {2, 2},
       1,
       {1, 3, 2, 0},
       PadMode::Constant,
       2.0f,
       {1, -2, -3, 3, 3, 1, 1, 0, 2, 0, 1, -2, -3, -1, 0, 1},
       {1, 0, 2, 3, -3, 1, 1, -3},
       {},
       {1, 2, 4, 6},
       {0,  -5, 7,   2,  14, 12, 9,  11, 4,   10, 8,   12,  6,  8,  -8, 5,
        5,  12, 3,   -3, 2,  7,  8,  12, 4,   6,  -15, -13, -7, -8, -5, -4,
        -3, -9, -10, -8, -6, -7, 15, 6,  -15, -8, 0,   -11, -7, -7, -3, -8},
       {0, 2, 0, -1, -2, 3,  0,  -1, -2, 2, 1,  -1, 3,  0,  -1, -3, -1, 2,  2,  -1, 0,  1,  -2, -3,
        3, 3, 2, 3,  0,  -3, -2, 3,  3,  2, -1, 3,  -1, -2, -1, -3, -2, -2, -3, 3,  -1, -2, 0,  -3},
       {13, -6, 2, -6, -9, 5, 4, -17, -2, 9, -3, -4, 1, 14, -12, -1},
       {16, -18, 8, -15, 23, 13, -23, -22},
       {}},
      // zeros, stride 3, dilation (2,1)
      {"zeros, stride 3, dilation (2,1)",
       {1, 2, 7, 6},
       {2, 2, 2, 3},
       true,
       {3, 2},
       {2, 1},
       1,
       {1, 1, 2, 2},
       PadMode::Zeros,
       0.0f,
       {-1, 0,  -3, 0,  1,  2, 0,  -3, -1, 2,  1,  3,  0,  0, 2,  1,  0,  1, -2, -1, -2,
        0,  -1, -2, -2, -3, 3, -3, -2, -1, 2,  1,  -3, 3,  2, -3, -1, 3,  0, -2, -2, 1,
        3,  3,  0,  -1, 2,  1, 3,  1,  -3, -3, -2, 2,  -2, 3, 1,  1,  2,  2, -1, 2,  -1,
        2,  -1, -1, 2,  1,  1, 3,  -2, 0,  -3, -2, 3,  0,  1, 1,  -1, -3, 1, 0,  2,  -2},
       {3, 2, -3, -2, 1, 3, 0, -2, -3, 1, 1, 2, -1, 3, -2, -3, -1, -2, 3, 3, -2, 2, 1, 1},
       {1, 0},
       {1, 2, 3, 3},
       {9, -1, 11, -1, 4, -10, 0, -18, -2, 7, 8, -4, 18, 6, -17, -5, 8, 8},
       {3, 1, 0, 3, 1, 2, 3, 2, -2, 2, -1, -3, -3, -3, 1, 2, -1, 0},
       {1, 6, 2, 14, 3,   6,  -3,  3,   -7,  8, 7,  -8, 0, 0, 0, 0, 0, 0, 6,  22, 4,
        2, 1, 4, 12, -6,  1,  -10, -4,  6,   0, 0,  0,  0, 0, 0, 1, 4, 3, 12, -2, -6,
        5, 7, 0, -5, -3,  -3, -15, -12, -11, 6, -1, -8, 0, 0, 0, 0, 0, 0, 0,  -2, -2,
        3, 3, 5, 0,  -16, -7, -4,  4,   6,   0, 0,  0,  0, 0, 0, 5, 8, 1, 1,  -2, -4},
       {1, 5, -14, 9, -15, -4, -9, 14, 13, 3, -2, 9, 14, -3, 3, 0, 7, 3, -7, 1, 7, -1, 2, -15},
       {13, -6}},
  };
  return cases;
}

TEST(Conv2dRef, MatchesPyTorchForwardAndBackward) {
  ASSERT_EQ(torch_cases().size(), 6u);
  for (const TorchCase& tc : torch_cases()) {
    ConvParams p;
    p.N = tc.x_shape[0], p.C = tc.x_shape[1], p.H = tc.x_shape[2], p.W = tc.x_shape[3];
    p.O = tc.w_shape[0], p.kH = tc.w_shape[2], p.kW = tc.w_shape[3];
    p.Ho = tc.y_shape[2], p.Wo = tc.y_shape[3];
    p.sH = tc.stride.h, p.sW = tc.stride.w, p.dH = tc.dilation.h, p.dW = tc.dilation.w;
    p.pad_l = tc.pad[0], p.pad_r = tc.pad[1], p.pad_t = tc.pad[2], p.pad_b = tc.pad[3];
    p.groups = tc.groups;
    p.mode = tc.mode;
    p.pad_value = tc.value;
    ASSERT_EQ(tc.w_shape[1], p.Cg()) << tc.name;

    const Vec y = forward(p, tc.x, tc.w, tc.has_bias ? &tc.b : nullptr);
    EXPECT_EQ(y, tc.y) << tc.name;
    Vec gx(tc.x.size()), gw(tc.w.size()), gb(size_t(p.O));
    ref::conv2d_bwd_data(p, tc.gy.data(), tc.w.data(), gx.data());
    ref::conv2d_bwd_weight(p, tc.gy.data(), tc.x.data(), gw.data(), gb.data());
    EXPECT_EQ(gx, tc.gx) << tc.name;
    EXPECT_EQ(gw, tc.gw) << tc.name;
    if (tc.has_bias) {
      EXPECT_EQ(gb, tc.gb) << tc.name;
    }
  }
}

// ---- NaN and Inf --------------------------------------------------------------------------------

// An output is non-finite exactly where a non-finite input or weight meets its receptive field.
TEST(Conv2dRef, NonFiniteValuesStayInTheirReceptiveField) {
  Rng rng(31337);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (int it = 0; it < 60; ++it) {
    Problem pr;
    const ConvParams p = draw_valid(rng, 2, 7, pr);
    const std::string what = describe(p, false);
    const auto rows = padded_axis(p.H, p.pad_t, p.pad_b, p.mode);
    const auto cols = padded_axis(p.W, p.pad_l, p.pad_r, p.mode);
    // Nonzero finite values, so a finite tap times a non-finite one is never 0 * Inf by accident.
    auto nonzero = [&](int64_t count) {
      Vec v(static_cast<size_t>(count));
      for (float& e : v) e = std::uniform_real_distribution<float>(0.5f, 1.5f)(rng);
      return v;
    };
    Vec x = nonzero(numel_x(p)), w = nonzero(numel_w(p)), gy = nonzero(numel_y(p));
    const int64_t Cg = p.Cg(), Og = p.Og();

    {  // NaN in one input sample.
      const int64_t n0 = uni(rng, 0, p.N - 1), c0 = uni(rng, 0, p.C - 1);
      const int64_t i0 = uni(rng, 0, p.H - 1), j0 = uni(rng, 0, p.W - 1);
      Vec xn = x;
      xn[size_t(((n0 * p.C + c0) * p.H + i0) * p.W + j0)] = nan;
      const Vec y = forward(p, xn, w, nullptr);
      for (int64_t n = 0; n < p.N; ++n)
        for (int64_t o = 0; o < p.O; ++o)
          for (int64_t oh = 0; oh < p.Ho; ++oh)
            for (int64_t ow = 0; ow < p.Wo; ++ow) {
              bool hit = false;
              if (n == n0 && o / Og == c0 / Cg)
                for (int64_t kh = 0; kh < p.kH; ++kh)
                  for (int64_t kw = 0; kw < p.kW; ++kw)
                    hit = hit || (rows[size_t(oh * p.sH + kh * p.dH)] == i0 &&
                                  cols[size_t(ow * p.sW + kw * p.dW)] == j0);
              const float v = y[size_t(((n * p.O + o) * p.Ho + oh) * p.Wo + ow)];
              ASSERT_EQ(std::isfinite(v), !hit)
                  << what << " NaN input, output " << n << "," << o << "," << oh << "," << ow;
            }
      // Backward-data: the NaN in gy below spreads exactly to the samples its output reads.
      const int64_t o0 = uni(rng, 0, p.O - 1), oh0 = uni(rng, 0, p.Ho - 1),
                    ow0 = uni(rng, 0, p.Wo - 1);
      Vec gyn = gy;
      gyn[size_t(((n0 * p.O + o0) * p.Ho + oh0) * p.Wo + ow0)] = nan;
      Vec gx(x.size());
      ref::conv2d_bwd_data(p, gyn.data(), w.data(), gx.data());
      for (int64_t n = 0; n < p.N; ++n)
        for (int64_t c = 0; c < p.C; ++c)
          for (int64_t i = 0; i < p.H; ++i)
            for (int64_t j = 0; j < p.W; ++j) {
              bool hit = false;
              if (n == n0 && c / Cg == o0 / Og)
                for (int64_t kh = 0; kh < p.kH; ++kh)
                  for (int64_t kw = 0; kw < p.kW; ++kw)
                    hit = hit || (rows[size_t(oh0 * p.sH + kh * p.dH)] == i &&
                                  cols[size_t(ow0 * p.sW + kw * p.dW)] == j);
              const float v = gx[size_t(((n * p.C + c) * p.H + i) * p.W + j)];
              ASSERT_EQ(std::isfinite(v), !hit)
                  << what << " NaN grad, input " << n << "," << c << "," << i << "," << j;
            }
    }
    {  // Inf in one weight tap: every output of that channel whose tap reads a sample, or a
       // constant (not zero padding: padded zero taps are skipped).
      const int64_t o0 = uni(rng, 0, p.O - 1), ci0 = uni(rng, 0, Cg - 1);
      const int64_t kh0 = uni(rng, 0, p.kH - 1), kw0 = uni(rng, 0, p.kW - 1);
      Vec wn = w;
      wn[size_t(((o0 * Cg + ci0) * p.kH + kh0) * p.kW + kw0)] = inf;
      const Vec y = forward(p, x, wn, nullptr);
      for (int64_t n = 0; n < p.N; ++n)
        for (int64_t o = 0; o < p.O; ++o)
          for (int64_t oh = 0; oh < p.Ho; ++oh)
            for (int64_t ow = 0; ow < p.Wo; ++ow) {
              const bool reads = rows[size_t(oh * p.sH + kh0 * p.dH)] >= 0 &&
                                 cols[size_t(ow * p.sW + kw0 * p.dW)] >= 0;
              const bool hit = o == o0 && (reads || p.mode == PadMode::Constant);
              const float v = y[size_t(((n * p.O + o) * p.Ho + oh) * p.Wo + ow)];
              ASSERT_EQ(std::isfinite(v), !hit)
                  << what << " Inf weight, output " << n << "," << o << "," << oh << "," << ow;
            }
    }
  }
}

}  // namespace
}  // namespace convkit::kernels
