// The small-channel direct convolution ("smallc_avx2"): which layers it takes, the scratch it
// books, its kernel-row walk, stride-2 fill and row chunking against the naive loops, NaN/Inf
// through its fast paths (finite weights; the buffer's zero padding is multiplied, so a non-finite
// input or gradient must still give the direct convolution's pattern).
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
using testing::ConvParams;
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
  // Any kernel size and output channel count (blocked by 6): the ResNet stem (whose forward and
  // weight gradient winograd1d_avx2 takes first: tests/conv/wino1d_test.cpp).
  const auto stem = make(4, 3, 224, 224, 64, 7, 7, 2, 3);
  EXPECT_EQ(conv::find_impl(Pass::Fwd, "smallc_avx2")->why_not(stem), nullptr);
  EXPECT_EQ(conv::find_impl(Pass::BwdWeight, "smallc_avx2")->why_not(stem), nullptr);
  // More input channels per group, depthwise, padding modes other than zeros: others serve them.
  EXPECT_STRNE(conv::choose(Pass::Fwd, make(2, 16, 20, 20, 8, 3, 3, 1, 1)).name, "smallc_avx2");
  EXPECT_STRNE(conv::choose(Pass::Fwd, make(2, 8, 20, 20, 8, 3, 3, 1, 1, 1, 8)).name,
               "smallc_avx2");
  auto reflect = make(2, 1, 20, 20, 6, 5, 5, 1, 2);
  reflect.mode = kernels::PadMode::Reflect;
  EXPECT_STRNE(conv::choose(Pass::Fwd, reflect).name, "smallc_avx2");
}

// The kernel-row walk (kernels 3, 5, 7 at stride 1 or 2) and the per-tap walk (other kernels,
// dilation), with every pad 0..3, widths below, at and across the 8-wide stride-2 gather and the
// vector tiles, odd widths; and enough rows that the chunks handed to the threads shrink towards
// the end and stop at images. Every pass smallc serves, at 1 and 2 threads, against the naive
// loops.
TEST(ConvSmallc, KernelRowsFillAndRowChunksMatchNaive) {
  if (!base::use_avx2()) GTEST_SKIP() << "no AVX2 on this machine";
  std::vector<ConvParams> shapes;
  for (int64_t stride : {2, 1})
    for (int64_t k : {7, 5, 3})
      for (int64_t pad = 0; pad <= 3; ++pad)
        for (int64_t w : {7, 16, 18, 33}) {
          if (w + 2 * pad < k) continue;
          shapes.push_back(make(3, 3, 21 + pad, w, 7, k, k, stride, pad));
        }
  shapes.push_back(make(5, 3, 30, 34, 13, 7, 7, 2, 3));    // 5 images of 15 rows: guided chunks
  shapes.push_back(make(2, 3, 130, 150, 6, 7, 7, 2, 3));   // Ho = 65 > R = 55: two chunks an image
  shapes.push_back(make(1, 2, 41, 9, 8, 5, 5, 2, 1));      // N = 1, W < 16
  shapes.push_back(make(2, 3, 21, 23, 7, 4, 4, 2, 1));     // kernel 4: per-tap walk
  shapes.push_back(make(2, 2, 21, 23, 7, 3, 3, 2, 2, 2));  // dilation 2: per-tap walk
  shapes.push_back(make(1, 1, 17, 40, 9, 7, 7, 1, 3, 1));  // 7x7 stride 1, O = 9: blocks 5 + 4
  for (const ConvParams& p : shapes)
    for (Pass pass : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight}) {
      if (pass == Pass::BwdData && p.sH != 1) continue;  // smallc's bwd_data: stride 1 only
      const conv::Impl* impl = conv::find_impl(pass, "smallc_avx2");
      ASSERT_NE(impl, nullptr);
      ASSERT_EQ(impl->why_not(p), nullptr);
      std::mt19937 rng(11);
      const auto x = testing::random_vec(rng, p.N * p.C * p.H * p.W);
      const auto w = testing::random_vec(rng, p.O * p.Cg() * p.kH * p.kW);
      const auto b = testing::random_vec(rng, p.O);
      const auto gy = testing::random_vec(rng, p.N * p.O * p.Ho * p.Wo);
      const auto r = pass == Pass::Fwd       ? testing::naive_fwd(p, x.data(), w.data(), b.data())
                     : pass == Pass::BwdData ? testing::naive_bwd_data(p, gy.data(), w.data())
                                             : testing::naive_bwd_weight(p, gy.data(), x.data());
      for (int threads : {1, 2}) {
        SCOPED_TRACE(std::string(conv::pass_name(pass)) + " k" + std::to_string(p.kH) + " s" +
                     std::to_string(p.sH) + " d" + std::to_string(p.dH) + " pad" +
                     std::to_string(p.pad_t) + " W" + std::to_string(p.W) + " N" +
                     std::to_string(p.N) + " threads " + std::to_string(threads));
        std::vector<float> out(r.val.size(), std::numeric_limits<float>::quiet_NaN());
        const ConvArgs a =
            testing::pass_args(pass, p, x.data(), w.data(), b.data(), gy.data(), out.data());
        set_num_threads(threads);
        conv::run_impl(*impl, pass, p, a);
        set_num_threads(0);
        const int64_t bad = testing::first_mismatch(r, out.data());
        if (bad >= 0)
          ADD_FAILURE() << "element " << bad << ": got " << out[bad] << ", expected " << r.val[bad];
      }
    }
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
