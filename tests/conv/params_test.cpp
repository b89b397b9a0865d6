// conv::make_params and the option words: output sizes (D2L 7.3's examples, PyTorch's formula,
// TensorFlow's strided 'same', PyTorch's stride-1 'same'), padding-mode limits, and every bad input
// with the words its message must carry.
#include <convkit/error.h>
#include <convkit/functional.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <initializer_list>
#include <random>
#include <string>

#include "conv/conv.h"

namespace convkit::conv {
namespace {

using kernels::PadMode;

// Runs f, which must throw convkit::Error whose message holds every one of `words`.
void expect_error(const std::function<void()>& f, std::initializer_list<const char*> words) {
  try {
    f();
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const char* w : words)
      EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
    return;
  }
  ADD_FAILURE() << "no convkit::Error thrown";
}

Conv2dOptions opts(Padding padding, Pair2 stride = 1, Pair2 dilation = 1, int64_t groups = 1,
                   PaddingMode mode = PaddingMode::Zeros) {
  Conv2dOptions o;
  o.padding = padding;
  o.stride = stride;
  o.dilation = dilation;
  o.groups = groups;
  o.padding_mode = mode;
  return o;
}

// ---- option words -------------------------------------------------------------------------------

TEST(ConvParams, PaddingConstructors) {
  const Padding one = 2;
  EXPECT_EQ(one.kind, Padding::Kind::Explicit);
  EXPECT_EQ(one.left + one.right + one.top + one.bottom, 8);
  const Padding zero = 0;  // a literal 0 is an int pad, not a null "word"
  EXPECT_EQ(zero.kind, Padding::Kind::Explicit);
  EXPECT_EQ(zero.top, 0);
  const Padding hw(1, 3);  // (h, w)
  EXPECT_EQ(hw.top, 1);
  EXPECT_EQ(hw.bottom, 1);
  EXPECT_EQ(hw.left, 3);
  EXPECT_EQ(hw.right, 3);
  const Padding four(1, 2, 3, 4);  // torch.nn.functional.pad order: left, right, top, bottom
  EXPECT_EQ(four.left, 1);
  EXPECT_EQ(four.right, 2);
  EXPECT_EQ(four.top, 3);
  EXPECT_EQ(four.bottom, 4);
  EXPECT_EQ(Padding("same").kind, Padding::Kind::Same);
  EXPECT_EQ(Padding(std::string("valid")).kind, Padding::Kind::Valid);
  EXPECT_EQ(Padding::same().kind, Padding::Kind::Same);
  EXPECT_EQ(Padding::valid().kind, Padding::Kind::Valid);
  expect_error([] { Padding("full"); }, {"conv2d", "'full'", "same", "valid"});
  expect_error([] { Padding("SAME"); }, {"'SAME'", "same", "valid"});
  expect_error([] { Padding(static_cast<const char*>(nullptr)); }, {"padding", "same", "valid"});
}

TEST(ConvParams, PaddingModeWords) {
  const PaddingMode all[] = {PaddingMode::Zeros,    PaddingMode::Reflect,   PaddingMode::Replicate,
                             PaddingMode::Circular, PaddingMode::Symmetric, PaddingMode::Constant};
  const char* names[] = {"zeros", "reflect", "replicate", "circular", "symmetric", "constant"};
  const PadMode kernel_modes[] = {PadMode::Zeros,    PadMode::Reflect,   PadMode::Replicate,
                                  PadMode::Circular, PadMode::Symmetric, PadMode::Constant};
  for (int i = 0; i < 6; ++i) {
    EXPECT_STREQ(to_string(all[i]), names[i]);
    EXPECT_EQ(padding_mode_from_string(names[i]), all[i]);
    // The public mode reaches the kernels as the matching PadMode.
    EXPECT_EQ(make_params({1, 1, 4, 4}, {1, 1, 3, 3}, opts(1, 1, 1, 1, all[i])).mode,
              kernel_modes[i]);
  }
  expect_error([] { padding_mode_from_string("mirror"); },
               {"padding_mode", "'mirror'", "zeros", "reflect", "replicate", "circular",
                "symmetric", "constant"});
  Conv2dOptions o = opts(2, 1, 1, 1, PaddingMode::Constant);
  o.padding_value = -1.25f;
  EXPECT_EQ(make_params({1, 1, 4, 4}, {1, 1, 3, 3}, o).pad_value, -1.25f);
}

// ---- output sizes -------------------------------------------------------------------------------

TEST(ConvParams, D2LSection73Examples) {
  // 8x8 input, 3x3 kernel, padding 1 -> 8x8.
  ConvParams p = make_params({1, 1, 8, 8}, {1, 1, 3, 3}, opts(1));
  EXPECT_EQ(p.Ho, 8);
  EXPECT_EQ(p.Wo, 8);
  // Kernel (5, 3), padding (2, 1) -> 8x8.
  p = make_params({1, 1, 8, 8}, {1, 1, 5, 3}, opts(Padding(2, 1)));
  EXPECT_EQ(p.Ho, 8);
  EXPECT_EQ(p.Wo, 8);
  // 3x3, padding 1, stride 2 -> 4x4.
  p = make_params({1, 1, 8, 8}, {1, 1, 3, 3}, opts(1, 2));
  EXPECT_EQ(p.Ho, 4);
  EXPECT_EQ(p.Wo, 4);
  // Kernel (3, 5), padding (0, 1), stride (3, 4) -> 2x2.
  p = make_params({1, 1, 8, 8}, {1, 1, 3, 5}, opts(Padding(0, 1), Pair2(3, 4)));
  EXPECT_EQ(p.Ho, 2);
  EXPECT_EQ(p.Wo, 2);
  EXPECT_EQ(p.pad_t, 0);
  EXPECT_EQ(p.pad_l, 1);
  EXPECT_EQ(p.sH, 3);
  EXPECT_EQ(p.sW, 4);
}

// floor((H + pt + pb - dh (kH - 1) - 1) / sh) + 1 against counting the windows that fit.
TEST(ConvParams, OutputSizeIsPyTorchsFormula) {
  std::mt19937 rng(11);
  auto uni = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  int checked = 0;
  for (int it = 0; it < 2000; ++it) {
    const int64_t H = uni(1, 20), W = uni(1, 20), kH = uni(1, 7), kW = uni(1, 7);
    const int64_t l = uni(0, 4), r = uni(0, 4), t = uni(0, 4), b = uni(0, 4);
    const Pair2 s(uni(1, 4), uni(1, 4)), d(uni(1, 4), uni(1, 4));
    const int64_t Hp = H + t + b, Wp = W + l + r;
    const Conv2dOptions o = opts(Padding(l, r, t, b), s, d);
    if (d.h * (kH - 1) + 1 > Hp || d.w * (kW - 1) + 1 > Wp) {
      expect_error(
          [&] {
            make_params({2, 1, H, W}, {1, 1, kH, kW}, o);
          },
          {"conv2d", "larger than the padded input"});
      continue;
    }
    int64_t Ho = 0, Wo = 0;  // windows start at 0, s, 2s, ... and must end inside the padded input
    while (Ho * s.h + d.h * (kH - 1) + 1 <= Hp) ++Ho;
    while (Wo * s.w + d.w * (kW - 1) + 1 <= Wp) ++Wo;
    const ConvParams p = make_params({2, 1, H, W}, {1, 1, kH, kW}, o);
    ASSERT_EQ(p.Ho, Ho) << H << " " << kH << " " << t << "+" << b << " s" << s.h << " d" << d.h;
    ASSERT_EQ(p.Wo, Wo) << W << " " << kW << " " << l << "+" << r << " s" << s.w << " d" << d.w;
    EXPECT_EQ(p.pad_l, l);
    EXPECT_EQ(p.pad_r, r);
    EXPECT_EQ(p.pad_t, t);
    EXPECT_EQ(p.pad_b, b);
    ++checked;
  }
  EXPECT_GT(checked, 1000);
}

// PyTorch's padding='same' at stride 1: the lead pad that reproduces torch.nn.functional.conv2d(x,
// w, padding='same', dilation=d) for kernel k, found offline by trying every split (torch 1.13).
TEST(ConvParams, SameAtStrideOneMatchesPyTorch) {
  struct Row {
    int64_t k, d, lead, trail;
  };
  const Row rows[] = {{2, 1, 0, 1}, {2, 2, 1, 1}, {2, 3, 1, 2}, {3, 1, 1, 1}, {3, 2, 2, 2},
                      {3, 3, 3, 3}, {4, 1, 1, 2}, {4, 2, 3, 3}, {4, 3, 4, 5}, {5, 1, 2, 2},
                      {5, 2, 4, 4}, {5, 3, 6, 6}, {6, 1, 2, 3}, {6, 2, 5, 5}, {6, 3, 7, 8}};
  for (const Row& r : rows) {
    const ConvParams p =
        make_params({1, 1, 11, 11}, {1, 1, r.k, r.k}, opts(Padding::same(), 1, Pair2(r.d, r.d)));
    EXPECT_EQ(p.pad_t, r.lead) << "k=" << r.k << " d=" << r.d;
    EXPECT_EQ(p.pad_b, r.trail) << "k=" << r.k << " d=" << r.d;
    EXPECT_EQ(p.pad_l, r.lead);
    EXPECT_EQ(p.pad_r, r.trail);
    EXPECT_EQ(p.Ho, 11);
    EXPECT_EQ(p.Wo, 11);
  }
}

// TensorFlow's 'same' at stride > 1: Ho = ceil(H / s), the extra pad goes to the bottom / right.
TEST(ConvParams, SameWhenStridedOrDilatedFollowsTensorFlow) {
  struct Row {
    int64_t H, k, s, d, Ho, top, bottom;
  };
  const Row rows[] = {
      {5, 3, 2, 1, 3, 1, 1},   // total (3-1)*2 + 3 - 5 = 2
      {6, 3, 2, 1, 3, 0, 1},   // total 1: TensorFlow pads the bottom
      {7, 1, 3, 1, 3, 0, 0},   // 1x1 strided: no padding
      {5, 3, 2, 2, 3, 2, 2},   // dilated: effective kernel 5, total 4
      {8, 4, 3, 1, 3, 1, 1},   // even kernel: total (3-1)*3 + 4 - 8 = 2
      {4, 5, 2, 1, 2, 1, 2},   // kernel larger than the input: total 3
      {10, 2, 4, 3, 3, 1, 1},  // dilated even kernel: total (3-1)*4 + 3 + 1 - 10 = 2
  };
  for (const Row& r : rows) {
    const ConvParams p = make_params({1, 1, r.H, 3}, {1, 1, r.k, 1},
                                     opts(Padding::same(), Pair2(r.s, 1), Pair2(r.d, 1)));
    const int64_t total = std::max<int64_t>((r.Ho - 1) * r.s + r.d * (r.k - 1) + 1 - r.H, 0);
    EXPECT_EQ(p.Ho, r.Ho) << "H=" << r.H << " k=" << r.k << " s=" << r.s << " d=" << r.d;
    EXPECT_EQ(p.pad_t, total / 2) << "H=" << r.H << " k=" << r.k;
    EXPECT_EQ(p.pad_b, total - total / 2) << "H=" << r.H << " k=" << r.k;
    EXPECT_EQ(p.pad_t, r.top) << "H=" << r.H;
    EXPECT_EQ(p.pad_b, r.bottom) << "H=" << r.H;
    EXPECT_EQ(p.Wo, 3);  // width: kernel 1, stride 1
    EXPECT_EQ(p.pad_l + p.pad_r, 0);
  }
  // Every stride: the output size is ceil(H / s).
  for (int64_t H = 1; H <= 12; ++H)
    for (int64_t s = 1; s <= 4; ++s)
      for (int64_t k = 1; k <= 5; ++k)
        for (int64_t d = 1; d <= 3; ++d) {
          const ConvParams p = make_params({1, 1, H, H}, {1, 1, k, k}, opts(Padding::same(), s, d));
          ASSERT_EQ(p.Ho, (H + s - 1) / s) << "H=" << H << " s=" << s << " k=" << k << " d=" << d;
          ASSERT_EQ(p.Wo, (H + s - 1) / s);
          ASSERT_LE(p.pad_t, p.pad_b);
          ASSERT_LE(p.pad_b - p.pad_t, 1);
        }
}

TEST(ConvParams, ValidMeansNoPadding) {
  const ConvParams p = make_params({3, 2, 7, 9}, {4, 2, 3, 2}, opts(Padding::valid(), Pair2(2, 3)));
  EXPECT_EQ(p.pad_l + p.pad_r + p.pad_t + p.pad_b, 0);
  EXPECT_EQ(p.Ho, 3);
  EXPECT_EQ(p.Wo, 3);
  EXPECT_FALSE(p.has_padding());
}

TEST(ConvParams, ResolvesShapesAndGroups) {
  const ConvParams p =
      make_params({2, 6, 5, 7}, {9, 2, 3, 1}, opts(Padding(1, 0, 2, 3), Pair2(1, 2), 1, 3));
  EXPECT_EQ(p.N, 2);
  EXPECT_EQ(p.C, 6);
  EXPECT_EQ(p.H, 5);
  EXPECT_EQ(p.W, 7);
  EXPECT_EQ(p.O, 9);
  EXPECT_EQ(p.kH, 3);
  EXPECT_EQ(p.kW, 1);
  EXPECT_EQ(p.groups, 3);
  EXPECT_EQ(p.Cg(), 2);
  EXPECT_EQ(p.Og(), 3);
  EXPECT_EQ(p.Ho, 8);  // 5 + 2 + 3 - 3 + 1
  EXPECT_EQ(p.Wo, 4);  // (7 + 1 - 1) / 2 + 1
  // Depthwise with a channel multiplier of 2.
  const ConvParams dw = make_params({1, 4, 6, 6}, {8, 1, 3, 3}, opts(1, 1, 1, 4));
  EXPECT_EQ(dw.Cg(), 1);
  EXPECT_EQ(dw.Og(), 2);
}

TEST(ConvParams, EmptyBatchIsAllowed) {
  const ConvParams p = make_params({0, 3, 5, 5}, {2, 3, 3, 3}, opts(1));
  EXPECT_EQ(p.N, 0);
  EXPECT_EQ(p.Ho, 5);
  EXPECT_EQ(p.Wo, 5);
}

// ---- padding-mode limits ------------------------------------------------------------------------

TEST(ConvParams, PaddingModeLimits) {
  const Shape x = {1, 1, 3, 4}, w = {1, 1, 1, 1};
  // reflect: pad < dim.
  EXPECT_NO_THROW(make_params(x, w, opts(Padding(3, 3, 2, 2), 1, 1, 1, PaddingMode::Reflect)));
  expect_error([&] { make_params(x, w, opts(Padding(0, 0, 3, 0), 1, 1, 1, PaddingMode::Reflect)); },
               {"conv2d", "reflect", "top pad is 3", "height is 3", "pad <= 2", "(1, 1, 3, 4)"});
  expect_error([&] { make_params(x, w, opts(Padding(0, 4, 0, 0), 1, 1, 1, PaddingMode::Reflect)); },
               {"reflect", "right pad is 4", "width is 4", "pad <= 3"});
  // circular and symmetric: pad <= dim.
  for (PaddingMode m : {PaddingMode::Circular, PaddingMode::Symmetric}) {
    EXPECT_NO_THROW(make_params(x, w, opts(Padding(4, 4, 3, 3), 1, 1, 1, m)));
    expect_error([&] { make_params(x, w, opts(Padding(0, 0, 0, 4), 1, 1, 1, m)); },
                 {"conv2d", to_string(m), "bottom pad is 4", "height is 3", "pad <= 3"});
    expect_error([&] { make_params(x, w, opts(Padding(5, 0, 0, 0), 1, 1, 1, m)); },
                 {to_string(m), "left pad is 5", "width is 4", "pad <= 4"});
  }
  // zeros, constant, replicate: unlimited.
  for (PaddingMode m : {PaddingMode::Zeros, PaddingMode::Constant, PaddingMode::Replicate}) {
    const ConvParams p = make_params(x, w, opts(Padding(9, 8, 7, 6), 1, 1, 1, m));
    EXPECT_EQ(p.Ho, 3 + 7 + 6);
    EXPECT_EQ(p.Wo, 4 + 9 + 8);
  }
  // The limits apply to the pads 'same' resolves to: a 1-row input cannot reflect.
  expect_error(
      [&] {
        make_params({1, 1, 1, 5}, {1, 1, 3, 3},
                    opts(Padding::same(), 1, 1, 1, PaddingMode::Reflect));
      },
      {"reflect", "top pad is 1", "height is 1"});
  EXPECT_NO_THROW(make_params({1, 1, 1, 5}, {1, 1, 3, 3},
                              opts(Padding::same(), 1, 1, 1, PaddingMode::Symmetric)));
}

// ---- bad inputs ---------------------------------------------------------------------------------

TEST(ConvParams, RejectsBadShapes) {
  expect_error(
      [] {
        make_params({4, 5, 5}, {8, 4, 3, 3}, {});
      },
      {"conv2d", "input", "(N, C, H, W)", "(4, 5, 5)", "3-D"});
  expect_error(
      [] {
        make_params({1, 4, 5, 5}, {8, 4, 3}, {});
      },
      {"conv2d", "weight", "(O, C/groups, kH, kW)", "(8, 4, 3)"});
  expect_error(
      [] {
        make_params({1, 0, 5, 5}, {8, 1, 3, 3}, {});
      },
      {"conv2d", "input (1, 0, 5, 5)", "channel"});
  expect_error([] { make_params({1, 3, 0, 5}, {8, 3, 1, 1}, {}); }, {"conv2d", "(1, 3, 0, 5)"});
  expect_error([] { make_params({-1, 3, 5, 5}, {8, 3, 1, 1}, {}); }, {"conv2d", "(-1, 3, 5, 5)"});
  expect_error(
      [] {
        make_params({1, 3, 5, 5}, {0, 3, 1, 1}, {});
      },
      {"conv2d", "weight (0, 3, 1, 1)", ">= 1"});
  expect_error([] { make_params({1, 3, 5, 5}, {2, 3, 0, 1}, {}); }, {"weight (2, 3, 0, 1)"});
  expect_error([] { make_params({1, int64_t(1) << 40, 5, 5}, {2, 1, 1, 1}, {}); }, {"2^31"});
}

TEST(ConvParams, RejectsChannelAndGroupMismatches) {
  try {
    make_params({1, 4, 5, 5}, {8, 3, 3, 3}, {});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(
                  "conv2d: weight (8, 3, 3, 3) expects 3 input channels per group (groups=1), but "
                  "input (1, 4, 5, 5) has 4 channels",
                  0),
              0u)
        << e.what();
  }
  expect_error(
      [] {
        make_params({1, 4, 5, 5}, {8, 1, 3, 3}, opts(0, 1, 1, 2));
      },
      {"conv2d", "weight (8, 1, 3, 3)", "expects 1", "groups=2", "has 4 channels", "C/groups=2"});
  expect_error(
      [] {
        make_params({1, 4, 5, 5}, {6, 1, 3, 3}, opts(0, 1, 1, 3));
      },
      {"conv2d", "groups=3", "divide", "input (1, 4, 5, 5)", "4 channels"});
  expect_error(
      [] {
        make_params({1, 4, 5, 5}, {6, 1, 3, 3}, opts(0, 1, 1, 4));
      },
      {"conv2d", "groups=4", "output channels", "weight (6, 1, 3, 3)", "O=6"});
  expect_error(
      [] {
        make_params({1, 4, 5, 5}, {4, 4, 3, 3}, opts(0, 1, 1, 0));
      },
      {"conv2d", "groups", ">= 1", "groups=0"});
  expect_error([] { make_params({1, 4, 5, 5}, {4, 4, 3, 3}, opts(0, 1, 1, -2)); }, {"groups=-2"});
}

TEST(ConvParams, RejectsBadStrideDilationPadding) {
  const Shape x = {1, 2, 6, 6}, w = {3, 2, 3, 3};
  expect_error([&] { make_params(x, w, opts(0, Pair2(0, 1))); },
               {"conv2d", "stride", ">= 1", "(0, 1)"});
  expect_error([&] { make_params(x, w, opts(0, Pair2(2, -1))); }, {"stride", "(2, -1)"});
  expect_error([&] { make_params(x, w, opts(0, 1, Pair2(1, 0))); },
               {"conv2d", "dilation", ">= 1", "(1, 0)"});
  expect_error([&] { make_params(x, w, opts(-1)); },
               {"conv2d", "padding", ">= 0", "(-1, -1, -1, -1)"});
  expect_error([&] { make_params(x, w, opts(Padding(0, 0, 0, -2))); },
               {"padding", "(left, right, top, bottom) = (0, 0, 0, -2)"});
}

TEST(ConvParams, RejectsKernelLargerThanPaddedInput) {
  expect_error(
      [] {
        make_params({1, 1, 2, 5}, {1, 1, 3, 3}, {});
      },
      {"conv2d", "kernel (3, 3)", "larger than the padded input (2, 5)", "(1, 1, 2, 5)"});
  // Dilation makes the effective kernel 5 rows: too big for 2 rows plus 1 + 1 padding.
  expect_error(
      [] {
        make_params({1, 1, 2, 5}, {1, 1, 3, 1}, opts(1, 1, Pair2(2, 1)));
      },
      {"conv2d", "dilated kernel (5, 1)", "dilation (2, 1)", "padded input (4, 7)"});
  // Padding rescues it; equal sizes are fine.
  EXPECT_EQ(make_params({1, 1, 2, 5}, {1, 1, 3, 3}, opts(Padding(0, 0, 1, 0))).Ho, 1);
  EXPECT_EQ(make_params({1, 1, 2, 5}, {1, 1, 2, 5}, {}).Wo, 1);
}

}  // namespace
}  // namespace convkit::conv
