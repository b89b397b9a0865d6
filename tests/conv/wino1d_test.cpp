// The forward and weight gradient by 1-D Winograd along rows ("winograd1d_avx2",
// conv/impl_smallc.cpp): its transform matrices, which layers it takes, its tiles (rows crossed by
// a block, partial tiles, both phases of a stride, padding rows and columns, chunks of the
// reduction) against the naive loops within Winograd's stated bound (4x the direct-sum bound) with
// the same bits at 1 and 2 threads, and NaN/Inf in x or gy (or a transform that overflows) handed
// to the direct loops.
#include "kernels/smallc/wino1d.h"

#include <convkit/runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "base/cpu.h"
#include "conv/dispatch.h"
#include "conv/impls.h"
#include "conv/naive_conv.h"
#include "conv/pass_args.h"

namespace convkit {
namespace {

using conv::ConvArgs;
using conv::Pass;
using testing::ConvParams;
using testing::make;
namespace w1 = kernels::smallc::wino1d;

constexpr const char* kName = "winograd1d_avx2";

// The implementation on any geometry it can run (the dispatched one also asks that it pays).
const conv::Impl* any(Pass pass) {
  return pass == Pass::Fwd       ? &conv::impl::wino1d_fwd_any_avx2
         : pass == Pass::BwdData ? &conv::impl::wino1d_bwd_data_any_avx2
                                 : &conv::impl::wino1d_bwd_weight_any_avx2;
}

std::string str(const ConvParams& p) {
  return "N" + std::to_string(p.N) + " C" + std::to_string(p.C) + " H" + std::to_string(p.H) +
         " W" + std::to_string(p.W) + " O" + std::to_string(p.O) + " k" + std::to_string(p.kH) +
         "x" + std::to_string(p.kW) + " s" + std::to_string(p.sH) + "x" + std::to_string(p.sW) +
         " pad" + std::to_string(p.pad_t) + "," + std::to_string(p.pad_b) + "," +
         std::to_string(p.pad_l) + "," + std::to_string(p.pad_r) + " g" + std::to_string(p.groups);
}

// AT (G g . BT d) is the correlation of g and d: sum_e AT[i][e] G[e][k] BT[e][j] = [j == i + k].
template <int R>
void check_minimal_filtering() {
  using M = w1::Mat<R>;
  static_assert(M::A == R + 3);
  for (int i = 0; i < 4; ++i)
    for (int k = 0; k < R; ++k)
      for (int j = 0; j < M::A; ++j) {
        double s = 0;
        for (int e = 0; e < M::A; ++e) s += M::AT[i][e] * M::G[e][k] * M::BT[e][j];
        EXPECT_NEAR(s, j == i + k ? 1.0 : 0.0, 1e-12)
            << "r " << R << " i " << i << " k " << k << " j " << j;
      }
  // AT and BT are applied in float: their entries must be exact there.
  for (int i = 0; i < 4; ++i)
    for (int e = 0; e < M::A; ++e) EXPECT_EQ(double(float(M::AT[i][e])), M::AT[i][e]);
  for (int e = 0; e < M::A; ++e)
    for (int j = 0; j < M::A; ++j) EXPECT_EQ(double(float(M::BT[e][j])), M::BT[e][j]);
}

TEST(ConvWino1d, TransformsAreMinimalFiltering) {
  check_minimal_filtering<2>();
  check_minimal_filtering<3>();
  check_minimal_filtering<4>();
}

TEST(ConvWino1d, TakesWideFewChannelRowsOnly) {
  if (!base::use_avx2()) GTEST_SKIP() << "no AVX2 on this machine";
  // The ResNet stem: 7x7 stride 2 (phases of 4 and 3 taps), 3 x 7 x 2 = 42 rows in the sum.
  const auto stem = make(4, 3, 224, 224, 64, 7, 7, 2, 3);
  EXPECT_STREQ(conv::choose(Pass::Fwd, stem).name, kName);
  EXPECT_STREQ(conv::choose(Pass::BwdWeight, stem).name, kName);
  EXPECT_STREQ(conv::choose(Pass::BwdData, stem).name, kName);
  const double im2col = 4.0 * 3 * 49 * 112 * 112 * sizeof(float);
  for (Pass pass : {Pass::Fwd, Pass::BwdWeight}) {
    const conv::Impl* impl = conv::find_impl(pass, kName);
    ASSERT_NE(impl, nullptr);
    EXPECT_LE(double(conv::workspace_bytes(*impl, stem)), 0.25 * im2col);
    // Fewer than 24 rows in the sum: the transforms cost what they save (a VGG-like first layer,
    // 3 x 3 x 1; 2 channels of 5x5 stride 2, 20), though the geometry is one they run.
    for (const auto& p : {make(1, 3, 64, 64, 64, 3, 3, 1, 1), make(1, 2, 64, 64, 64, 5, 5, 2, 2)}) {
      EXPECT_NE(impl->why_not(p), nullptr);
      EXPECT_EQ(any(pass)->why_not(p), nullptr);
    }
  }
  const conv::Impl* bd = conv::find_impl(Pass::BwdData, kName);
  ASSERT_NE(bd, nullptr);
  EXPECT_LE(double(conv::workspace_bytes(*bd, stem)), 0.25 * im2col);
  EXPECT_NE(bd->why_not(make(1, 3, 28, 28, 8, 7, 7, 3, 3)), nullptr);  // stride 3
  // gx column 7 of an 8-wide input is in no window (W 8, 7 wide, stride 2, no padding): its 0 has
  // no terms, which the transforms would fill with noise (scripts/conformance.py found it).
  EXPECT_NE(any(Pass::BwdData)->why_not(make(1, 2, 22, 8, 21, 7, 7, 2, 0)), nullptr);
  EXPECT_EQ(any(Pass::BwdData)->why_not(make(1, 2, 22, 9, 21, 7, 7, 2, 0)), nullptr);
  // Geometries they do not run: 5 taps a phase (5x5 stride 1), dilation, fewer than 8 output
  // channels, padding past kW / 2, 5 input channels, 3x3 stride 2 (a phase of 1 tap).
  const conv::Impl* impl = any(Pass::Fwd);
  EXPECT_NE(impl->why_not(make(1, 1, 28, 28, 8, 5, 5, 1, 2)), nullptr);
  EXPECT_NE(impl->why_not(make(1, 3, 28, 28, 8, 3, 3, 1, 2, 2)), nullptr);
  EXPECT_NE(impl->why_not(make(1, 3, 28, 28, 7, 7, 7, 2, 3)), nullptr);
  EXPECT_NE(impl->why_not(make(1, 3, 28, 28, 8, 3, 3, 1, 2)), nullptr);
  EXPECT_NE(impl->why_not(make(1, 5, 28, 28, 8, 7, 7, 2, 3)), nullptr);
  EXPECT_NE(impl->why_not(make(1, 3, 28, 28, 8, 3, 3, 2, 1)), nullptr);
  EXPECT_EQ(impl->why_not(make(1, 3, 28, 28, 8, 4, 4, 1, 2)), nullptr);  // pad 2 = kW / 2
}

// Runs the forward and the weight gradient at 1 and 2 threads: both within 4x the direct-sum bound
// of the naive loops, over the largest S in the output's tile (forward) or kernel (weight
// gradient, plus 256 u S; its bias gradient within the direct bound: it is summed directly), and
// the same bits.
void check(const ConvParams& p, uint32_t seed, bool bias) {
  SCOPED_TRACE(str(p) + (bias ? " bias" : ""));
  std::mt19937 rng(seed);
  const auto x = testing::random_vec(rng, p.N * p.C * p.H * p.W);
  const auto w = testing::random_vec(rng, p.O * p.Cg() * p.kH * p.kW);
  const auto b = testing::random_vec(rng, p.O);
  const auto gy = testing::random_vec(rng, p.N * p.O * p.Ho * p.Wo);
  for (Pass pass : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight}) {
    SCOPED_TRACE(conv::pass_name(pass));
    const conv::Impl* impl = any(pass);
    if (pass == Pass::BwdData && impl->why_not(p)) continue;  // its geometry: strides <= 2, ...
    ASSERT_EQ(impl->why_not(p), nullptr);
    const auto r = pass == Pass::Fwd
                       ? testing::naive_fwd(p, x.data(), w.data(), bias ? b.data() : nullptr)
                   : pass == Pass::BwdData ? testing::naive_bwd_data(p, gy.data(), w.data())
                                           : testing::naive_bwd_weight(p, gy.data(), x.data());
    const std::size_t nw = static_cast<std::size_t>(p.O * p.Cg() * p.kH * p.kW);
    std::vector<float> first;
    for (int threads : {1, 2}) {
      SCOPED_TRACE("threads " + std::to_string(threads));
      std::vector<float> out(r.val.size() + 8, std::numeric_limits<float>::quiet_NaN());
      ConvArgs a = testing::pass_args(pass, p, x.data(), w.data(), bias ? b.data() : nullptr,
                                      gy.data(), out.data());
      if (pass == Pass::BwdWeight && !bias) a.gb = nullptr;
      set_num_threads(threads);
      conv::run_impl(*impl, pass, p, a);
      set_num_threads(0);
      const std::size_t checked = pass == Pass::BwdWeight && !bias ? nw : r.val.size();
      // The weight gradient's stated bound, as F(4x4, 3x3)'s (tests/conv/impl_test.cpp): its
      // transforms mix the taps of a kernel, so an element's error scales with the largest S in
      // its kernel, plus 256 u S. The bias gradient is summed directly: the direct bound.
      // Backward-data: a tile holds 4 columns of each of gx's sW column phases.
      const testing::Naive rk = pass == Pass::BwdWeight
                                    ? testing::kernelwise(r, static_cast<int64_t>(nw), p.kH * p.kW)
                                : pass == Pass::BwdData ? testing::rowwise(r, p.W, 4 * p.sW - 1)
                                                        : testing::rowwise(r, p.Wo, 3);
      for (std::size_t i = 0; i < checked; ++i) {
        const double u = std::ldexp(1.0, -24);
        const bool gb = pass == Pass::BwdWeight && i >= nw;
        const double tol = ((gb ? 1.0 : 4.0) * 2.0 * double(r.terms + 2) +
                            (pass == Pass::BwdWeight ? 256.0 : 0.0)) *
                               u * rk.mag[i] +
                           1e-30;
        if (!(std::fabs(double(out[i]) - r.val[i]) <= tol)) {
          ADD_FAILURE() << "element " << i << ": got " << out[i] << ", expected " << r.val[i]
                        << " (sum|term| " << r.mag[i] << ", kernel's largest " << rk.mag[i] << ")";
          break;
        }
      }
      for (std::size_t i = checked; i < out.size(); ++i)
        EXPECT_TRUE(std::isnan(out[i])) << "wrote past the output at " << i;
      out.resize(checked);
      if (first.empty())
        first = out;
      else
        EXPECT_EQ(0, std::memcmp(first.data(), out.data(), out.size() * sizeof(float)))
            << "bits differ between 1 and 2 threads";
    }
  }
}

// Zeros in x (an image's black border, or padding the caller added): outputs whose windows read
// only zeros get their tiles' rounding noise (without the tile's S in the bound, this test fails),
// within the stated bound over the tile's largest S.
TEST(ConvWino1d, ZeroRegionsStayWithinTheTileBound) {
  if (!base::use_avx2()) GTEST_SKIP() << "no AVX2 on this machine";
  const conv::Impl* impl = any(Pass::Fwd);
  for (const auto& p : {make(2, 4, 10, 19, 8, 2, 2), make(1, 3, 30, 41, 16, 7, 7, 2, 3)}) {
    SCOPED_TRACE(str(p));
    ASSERT_EQ(impl->why_not(p), nullptr);
    std::mt19937 rng(3);
    auto x = testing::random_vec(rng, p.N * p.C * p.H * p.W, -100.f, 100.f);
    for (int64_t i = 0; i < static_cast<int64_t>(x.size()); ++i)
      if (i % p.W < 6 || (i / p.W) % p.H < 4) x[static_cast<size_t>(i)] = 0.f;
    const auto w = testing::random_vec(rng, p.O * p.Cg() * p.kH * p.kW);
    const auto b = testing::random_vec(rng, p.O, -1e-3f, 1e-3f);
    const auto r = testing::naive_fwd(p, x.data(), w.data(), b.data());
    std::vector<float> out(r.val.size());
    conv::run_impl(
        *impl, Pass::Fwd, p,
        testing::pass_args(Pass::Fwd, p, x.data(), w.data(), b.data(), nullptr, out.data()));
    const int64_t bad = testing::first_mismatch(testing::rowwise(r, p.Wo, 3), out.data(), 4.0);
    if (bad >= 0)
      ADD_FAILURE() << "element " << bad << ": got " << out[bad] << ", expected " << r.val[bad];
  }
}

TEST(ConvWino1d, TilesMatchNaive) {
  if (!base::use_avx2()) GTEST_SKIP() << "no AVX2 on this machine";
  std::vector<ConvParams> shapes = {
      make(2, 3, 30, 34, 64, 7, 7, 2, 3),        // the stem's kernel: Wo 17, partial last tile
      make(1, 3, 23, 21, 13, 7, 7, 2, 3),        // O 13: blocks 5 + 4 + 4
      make(3, 1, 20, 70, 8, 7, 7, 2, 0),         // no padding, Wo 32: blocks of 8 whole tiles
      make(1, 2, 9, 64, 9, 8, 8, 2, 3),          // 8 wide: phases of 4 and 4
      make(2, 4, 13, 40, 10, 5, 5, 2, 2),        // 5 wide: phases of 3 and 2 (F(4, 3))
      make(1, 3, 11, 29, 12, 4, 4, 2, 1),        // 4 wide: phases of 2 (F(4, 2))
      make(1, 3, 12, 30, 12, 6, 6, 2, 2),        // 6 wide: phases of 3
      make(2, 3, 15, 33, 16, 3, 3, 1, 1),        // 3x3 stride 1: one phase of 3
      make(1, 2, 10, 13, 11, 4, 4, 1, 0),        // 4x4 stride 1, Wo 10
      make(1, 1, 6, 9, 8, 2, 2, 1, 1),           // 2x2 stride 1, Wo 10, H small
      make(1, 3, 40, 9, 20, 7, 7, 2, 3),         // W < kW + ...: Wo 5, two tiles a row
      make(1, 3, 5, 5, 8, 7, 7, 2, 3),           // 5x5 input: every row reads padding rows
      make(2, 4, 17, 19, 16, 5, 5, 2, 2, 1, 2),  // groups 2 (C/g 2, O/g 8)
      make(5, 3, 30, 34, 13, 7, 7, 2, 3),        // 5 images: chunks shrink and stop at images
      make(1, 3, 130, 61, 8, 7, 7, 2, 3),        // tall: several chunks an image
      make(1, 3, 17, 19, 8, 7, 3, 1, 1),         // kH != kW, stride 1
  };
  ConvParams lopsided = make(2, 3, 16, 27, 9, 7, 7, 2, 0);  // four different pads
  lopsided.pad_t = 3, lopsided.pad_b = 0, lopsided.pad_l = 1, lopsided.pad_r = 3;
  testing::finish(lopsided);
  shapes.push_back(lopsided);
  ConvParams rect = make(1, 3, 20, 40, 12, 3, 5, 1, 0);  // strides 3 x 2, kernel 3 x 5
  rect.sH = 3, rect.sW = 2, rect.pad_t = 1, rect.pad_b = 1, rect.pad_l = 2, rect.pad_r = 2;
  testing::finish(rect);
  shapes.push_back(rect);
  uint32_t seed = 1;
  for (const ConvParams& p : shapes) {
    check(p, seed, seed % 2 == 1);
    ++seed;
  }
}

TEST(ConvWino1d, RandomShapesMatchNaive) {
  if (!base::use_avx2()) GTEST_SKIP() << "no AVX2 on this machine";
  std::mt19937 rng(77);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int done = 0;
  while (done < 40) {
    ConvParams p;
    p.groups = pick(1, 2);
    p.N = pick(1, 3), p.C = p.groups * pick(1, 4), p.O = p.groups * pick(8, 20);
    p.sW = pick(1, 2), p.sH = pick(1, 3);
    p.kW = p.sW == 1 ? pick(2, 4) : pick(4, 8);
    p.kH = pick(1, 7);
    p.H = pick(1, 30), p.W = pick(1, 60);
    p.pad_t = pick(0, 3), p.pad_b = pick(0, 3);
    p.pad_l = pick(0, static_cast<int>(p.kW) / 2), p.pad_r = pick(0, static_cast<int>(p.kW) / 2);
    if (p.H + p.pad_t + p.pad_b < p.kH || p.W + p.pad_l + p.pad_r < p.kW) continue;
    testing::finish(p);
    if (any(Pass::Fwd)->why_not(p)) continue;  // workspace over budget (tiny layers)
    check(p, static_cast<uint32_t>(300 + done), pick(0, 1) == 1);
    ++done;
  }
}

// Inf and NaN in x: the transforms would spread them over their tiles, so the call runs the direct
// forward, and the outputs are non-finite exactly where the direct sums are. Finite x whose
// transform overflows (x up to 1e38, tiny weights: every direct sum finite) must also
// come out finite and right.
TEST(ConvWino1d, NonFiniteOrHugeValuesRunTheDirectLoops) {
  if (!base::use_avx2()) GTEST_SKIP() << "no AVX2 on this machine";
  const conv::Impl* impl = any(Pass::Fwd);
  for (const auto& p : {make(2, 3, 20, 37, 16, 7, 7, 2, 3), make(1, 2, 9, 20, 8, 3, 3, 1, 1)}) {
    SCOPED_TRACE(str(p));
    ASSERT_EQ(impl->why_not(p), nullptr);
    std::mt19937 rng(7);
    auto x = testing::random_vec(rng, p.N * p.C * p.H * p.W);
    const auto w = testing::random_vec(rng, p.O * p.Cg() * p.kH * p.kW);
    x[0] = std::numeric_limits<float>::infinity();
    x[p.W - 1] = std::numeric_limits<float>::quiet_NaN();
    x[x.size() - 3] = -std::numeric_limits<float>::infinity();
    const auto r = testing::naive_fwd(p, x.data(), w.data(), nullptr);
    std::vector<float> out(r.val.size());
    conv::run_impl(
        *impl, Pass::Fwd, p,
        testing::pass_args(Pass::Fwd, p, x.data(), w.data(), nullptr, nullptr, out.data()));
    int nonfinite = 0, finite = 0;
    testing::expect_nonfinite_like(r, out, nonfinite, finite);
    EXPECT_GT(nonfinite, 0);
    EXPECT_GT(finite, 0);

    // Backward-data with Inf/NaN in gy.
    {
      SCOPED_TRACE("bwd_data, gy non-finite");
      auto g2 = testing::random_vec(rng, p.N * p.O * p.Ho * p.Wo);
      g2[1] = std::numeric_limits<float>::infinity();
      g2[g2.size() - 2] = std::numeric_limits<float>::quiet_NaN();
      const auto rd = testing::naive_bwd_data(p, g2.data(), w.data());
      std::vector<float> outd(rd.val.size());
      conv::run_impl(
          *any(Pass::BwdData), Pass::BwdData, p,
          testing::pass_args(Pass::BwdData, p, nullptr, w.data(), nullptr, g2.data(), outd.data()));
      testing::expect_nonfinite_like(rd, outd, nonfinite, finite);
      EXPECT_GT(nonfinite, 0);
      EXPECT_GT(finite, 0);
    }
    // The weight gradient with Inf/NaN in x, then in gy alone.
    const conv::Impl* gw = any(Pass::BwdWeight);
    auto gy = testing::random_vec(rng, p.N * p.O * p.Ho * p.Wo);
    const auto clean_x = testing::random_vec(rng, p.N * p.C * p.H * p.W);
    for (int which = 0; which < 2; ++which) {
      SCOPED_TRACE(which == 0 ? "gw, x non-finite" : "gw, gy non-finite");
      if (which == 1) gy[p.Wo + 1] = -std::numeric_limits<float>::infinity();
      const auto& xs = which == 0 ? x : clean_x;
      const auto rw = testing::naive_bwd_weight(p, gy.data(), xs.data());
      std::vector<float> outw(rw.val.size());
      conv::run_impl(*gw, Pass::BwdWeight, p,
                     testing::pass_args(Pass::BwdWeight, p, xs.data(), nullptr, nullptr, gy.data(),
                                        outw.data()));
      testing::expect_nonfinite_like(rw, outw, nonfinite, finite);
      EXPECT_GT(nonfinite, 0);
    }

    auto huge = testing::random_vec(rng, p.N * p.C * p.H * p.W, 0.5f, 1.f);
    for (float& v : huge) v *= 1e38f;
    auto tiny = w;
    for (float& v : tiny) v *= 1e-4f;
    const auto rh = testing::naive_fwd(p, huge.data(), tiny.data(), nullptr);
    std::vector<float> outh(rh.val.size());
    conv::run_impl(
        *impl, Pass::Fwd, p,
        testing::pass_args(Pass::Fwd, p, huge.data(), tiny.data(), nullptr, nullptr, outh.data()));
    const int64_t bad = testing::first_mismatch(rh, outh.data(), 4.0);
    if (bad >= 0)
      ADD_FAILURE() << "element " << bad << ": got " << outh[bad] << ", expected " << rh.val[bad];
  }
}

}  // namespace
}  // namespace convkit
