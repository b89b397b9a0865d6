// The small-channel direct convolution ("smallc_avx2"): which layers it takes, the scratch it
// books, and NaN/Inf through its fast paths (finite weights; the buffer's zero padding is
// multiplied, so a non-finite input or gradient must still give the direct convolution's pattern).
#include <convkit/runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "base/cpu.h"
#include "conv/dispatch.h"
#include "conv/naive_conv.h"
#include "conv/pass_args.h"

namespace convkit {
namespace {

using conv::ConvArgs;
using conv::Pass;
using testing::make;

TEST(ConvSmallc, TakesFewChannelLayersOnly) {
  if (!base::use_avx2()) GTEST_SKIP() << "no AVX2 on this machine";
  const auto lenet = make(256, 1, 28, 28, 6, 5, 5, 1, 2);
  for (Pass pass : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight}) {
    const conv::Impl& impl = conv::choose(pass, lenet);
    EXPECT_STREQ(impl.name, "smallc_avx2") << conv::pass_name(pass);
    // Far below the im2col buffer (N * C * kH * kW * Ho * Wo floats): at most a quarter of it.
    const double im2col = 256.0 * 25 * 28 * 28 * sizeof(float);
    EXPECT_LE(double(conv::workspace_bytes(impl, lenet)), 0.25 * im2col) << conv::pass_name(pass);
  }
  const auto s2 = make(2, 3, 30, 30, 8, 3, 3, 2, 1);
  EXPECT_STREQ(conv::choose(Pass::Fwd, s2).name, "smallc_avx2");
  EXPECT_STREQ(conv::choose(Pass::BwdWeight, s2).name, "smallc_avx2");
  EXPECT_STRNE(conv::choose(Pass::BwdData, s2).name, "smallc_avx2");  // stride 1 only
  // Any kernel size and output channel count (blocked by 6): the ResNet stem.
  const auto stem = make(4, 3, 224, 224, 64, 7, 7, 2, 3);
  EXPECT_STREQ(conv::choose(Pass::Fwd, stem).name, "smallc_avx2");
  EXPECT_STREQ(conv::choose(Pass::BwdWeight, stem).name, "smallc_avx2");
  // More input channels per group, depthwise, padding modes other than zeros: others serve them.
  EXPECT_STRNE(conv::choose(Pass::Fwd, make(2, 16, 20, 20, 8, 3, 3, 1, 1)).name, "smallc_avx2");
  EXPECT_STRNE(conv::choose(Pass::Fwd, make(2, 8, 20, 20, 8, 3, 3, 1, 1, 1, 8)).name,
               "smallc_avx2");
  auto reflect = make(2, 1, 20, 20, 6, 5, 5, 1, 2);
  reflect.mode = kernels::PadMode::Reflect;
  EXPECT_STRNE(conv::choose(Pass::Fwd, reflect).name, "smallc_avx2");
}

// x (fwd) and gy (bwd_data, bwd_weight) hold Inf and NaN, weights are finite: the fast paths run
// (no fallback for fwd / bwd_data) and outputs are non-finite exactly where the direct sum is.
TEST(ConvSmallc, NonFiniteActivationsPropagateLikeDirectConvolution) {
  if (!base::use_avx2()) GTEST_SKIP() << "no AVX2 on this machine";
  const conv::Impl* impls[] = {conv::find_impl(Pass::Fwd, "smallc_avx2"),
                               conv::find_impl(Pass::BwdData, "smallc_avx2"),
                               conv::find_impl(Pass::BwdWeight, "smallc_avx2")};
  for (const auto& p : {make(2, 1, 12, 13, 6, 5, 5, 1, 2), make(1, 2, 9, 20, 3, 3, 3, 1, 1)}) {
    std::mt19937 rng(7);
    auto x = testing::random_vec(rng, p.N * p.C * p.H * p.W);
    const auto w = testing::random_vec(rng, p.O * p.Cg() * p.kH * p.kW);
    auto gy = testing::random_vec(rng, p.N * p.O * p.Ho * p.Wo);
    x[0] = std::numeric_limits<float>::infinity();                   // a corner, next to padding
    x[p.W - 1] = std::numeric_limits<float>::quiet_NaN();            // the right edge
    x[x.size() - 3] = -std::numeric_limits<float>::infinity();       // near the last row's end
    gy[p.Wo - 1] = std::numeric_limits<float>::infinity();           // right edge of row 0
    gy[gy.size() - p.Wo] = std::numeric_limits<float>::quiet_NaN();  // left edge, last row
    const auto rf = testing::naive_fwd(p, x.data(), w.data(), nullptr);
    const auto rd = testing::naive_bwd_data(p, gy.data(), w.data());
    const auto rw = testing::naive_bwd_weight(p, gy.data(), x.data());
    int pass_i = 0;
    for (Pass pass : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight}) {
      SCOPED_TRACE(conv::pass_name(pass));
      const auto& r = pass == Pass::Fwd ? rf : pass == Pass::BwdData ? rd : rw;
      std::vector<float> out(r.val.size());
      const ConvArgs a =
          testing::pass_args(pass, p, x.data(), w.data(), nullptr, gy.data(), out.data());
      ASSERT_NE(impls[pass_i], nullptr);
      conv::run_impl(*impls[pass_i++], pass, p, a);
      int nonfinite = 0, finite = 0;
      testing::expect_nonfinite_like(r, out, nonfinite, finite);
      EXPECT_GT(nonfinite, 0);
      if (pass != Pass::BwdWeight) {
        EXPECT_GT(finite, 0);
      }
    }
  }
}

}  // namespace
}  // namespace convkit
