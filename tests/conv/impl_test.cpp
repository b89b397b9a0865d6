// Every convolution implementation in the dispatch lists against a naive double loop
// (tests/conv/naive_conv.h states the tolerance policy), over hand-picked edge shapes and seeded
// random ones, at the full ISA and with the portable fallbacks forced.
#include <convkit/error.h>
#include <convkit/runtime.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "base/cpu.h"
#include "conv/conv.h"
#include "conv/dispatch.h"
#include "conv/impls.h"
#include "conv/naive_conv.h"
#include "conv/pass_args.h"
#include "kernels/direct/direct.h"

namespace convkit {
namespace {

using conv::ConvArgs;
using conv::Impl;
using conv::Pass;
using testing::ConvParams;

std::string str(const ConvParams& p) {
  std::ostringstream o;
  o << "N" << p.N << " C" << p.C << " H" << p.H << " W" << p.W << " O" << p.O << " k" << p.kH << "x"
    << p.kW << " s" << p.sH << "x" << p.sW << " d" << p.dH << "x" << p.dW << " pad" << p.pad_t
    << "," << p.pad_b << "," << p.pad_l << "," << p.pad_r << " g" << p.groups;
  return o.str();
}

// Runs every implementation that applies to p for every pass and checks it; returns how many ran.
int check_all(const ConvParams& p, uint32_t seed, bool bias = true) {
  std::mt19937 rng(seed);
  const auto x = testing::random_vec(rng, p.N * p.C * p.H * p.W);
  const auto w = testing::random_vec(rng, p.O * p.Cg() * p.kH * p.kW);
  const auto b = testing::random_vec(rng, p.O);
  const auto gy = testing::random_vec(rng, p.N * p.O * p.Ho * p.Wo);
  const auto rf = testing::naive_fwd(p, x.data(), w.data(), bias ? b.data() : nullptr);
  const auto rd = testing::naive_bwd_data(p, gy.data(), w.data());
  const auto rw = testing::naive_bwd_weight(p, gy.data(), x.data());
  const float sentinel = std::numeric_limits<float>::quiet_NaN();  // catches unwritten outputs
  int ran = 0;
  for (Pass pass : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight}) {
    for (const Impl* impl : conv::impls(pass)) {
      if (impl->why_not(p)) continue;
      ++ran;
      SCOPED_TRACE(std::string(conv::pass_name(pass)) + " " + impl->name + " " + str(p));
      const testing::Naive* r = pass == Pass::Fwd ? &rf : pass == Pass::BwdData ? &rd : &rw;
      std::vector<float> out(r->val.size(), sentinel);
      const ConvArgs a = testing::pass_args(pass, p, x.data(), w.data(), bias ? b.data() : nullptr,
                                            gy.data(), out.data());
      conv::run_impl(*impl, pass, p, a);
      // Winograd's stated bounds: 4x the direct-sum bound (its transforms amplify rounding); for
      // the weight gradient, over the kernel's largest S and 256 u S more (measured at most 50 u
      // S over 1150 random shapes, with as few as 1 term).
      const bool wino = std::string(impl->name).rfind("winograd", 0) == 0;
      // The 1-D rows' forward: over the largest S within its tile of 4 along the row.
      const bool wino_w = wino && pass == Pass::BwdWeight;
      const bool rows_y = pass == Pass::Fwd && std::string(impl->name) == "winograd1d_avx2";
      const testing::Naive rk =
          wino_w   ? testing::kernelwise(*r, p.O * p.Cg() * p.kH * p.kW, p.kH * p.kW)
          : rows_y ? testing::rowwise(*r, p.Wo, 3)
                   : testing::Naive{};
      const int64_t bad = testing::first_mismatch(wino_w || rows_y ? rk : *r, out.data(),
                                                  wino ? 4.0 : 1.0, wino_w ? 256.0 : 0.0);
      if (bad >= 0)
        ADD_FAILURE() << "element " << bad << ": got " << out[bad] << ", expected " << r->val[bad]
                      << " (sum|term| " << r->mag[bad] << ")";
    }
  }
  return ran;
}

// Edge shapes: N = 1, odd and prime sizes, H != W, kernels 1..7, stride 2, padding (four-sided),
// dilation, groups = C, sizes straddling the 6x16 micro-tile and the cache blocks.
std::vector<ConvParams> edge_shapes() {
  using testing::make;
  std::vector<ConvParams> s = {
      make(1, 1, 6, 8, 1, 1, 2),                // the notebook
      make(1, 1, 1, 1, 1, 1, 1),                // smallest
      make(2, 3, 7, 5, 5, 3, 3, 1, 1),          // odd sizes, padding
      make(1, 4, 13, 11, 7, 5, 5, 2, 2),        // stride 2, 5x5
      make(3, 2, 17, 19, 13, 7, 7, 2, 3),       // 7x7 stride 2
      make(1, 6, 9, 23, 17, 3, 3, 1, 2, 2),     // dilation 2
      make(2, 8, 10, 10, 8, 3, 3, 1, 1, 1, 8),  // depthwise
      make(1, 6, 11, 9, 12, 3, 3, 2, 1, 1, 6),  // depthwise, multiplier 2, stride 2
      make(1, 5, 14, 12, 5, 5, 5, 1, 2, 1, 5),  // depthwise 5x5
      make(2, 6, 8, 9, 4, 3, 1, 1, 0, 1, 2),    // groups 2, non-square kernel
      make(1, 16, 17, 15, 23, 1, 1),            // 1x1: straight GEMM, edge tiles in M and N
      make(2, 19, 9, 9, 6, 1, 1, 2),            // 1x1 stride 2
      make(1, 1, 37, 41, 1, 3, 3, 1, 1),        // single channel
      make(1, 1, 29, 70, 1, 5, 3, 1, 2),        // single channel, 5x3, wide
      make(2, 29, 12, 18, 31, 3, 3, 1, 1),      // K = 261 straddles KC = 256
      make(1, 7, 4, 4, 3, 4, 4),                // kernel equal to input
      make(1, 3, 21, 21, 10, 3, 3, 1, 1),       // Winograd 4x4 tiles + edge
      make(2, 4, 6, 7, 9, 3, 3, 1, 0),          // Winograd, valid
      make(1, 13, 11, 12, 4, 5, 5, 2, 2),  // stride-2 bwd_data: 5-channel dcol blocks (125 rows)
      make(2, 5, 15, 16, 3, 7, 7, 2, 3),   // 7x7 stride 2: 2-channel dcol blocks (98 rows)
      make(1, 23, 9, 9, 5, 3, 3, 2, 1),    // 3x3 stride 2: 16-channel blocks and a tail
      // Few channels (smallc): row tails, W < 8, output-channel blocks, strides, crops.
      make(1, 1, 28, 28, 6, 5, 5, 1, 2),        // LeNet's first layer, N = 1 (28 = 3 * 8 + 4)
      make(2, 1, 9, 5, 8, 5, 5, 1, 2),          // W < 8, O = 8: two blocks of 4
      make(1, 3, 13, 17, 13, 3, 3, 1, 1),       // C = 3, O = 13: blocks 5 + 4 + 4
      make(1, 1, 11, 19, 7, 7, 7, 1, 3),        // 7x7, O = 7
      make(2, 3, 15, 21, 5, 3, 3, 2, 1),        // stride 2 (bwd_data: not smallc)
      make(3, 1, 12, 11, 6, 5, 5, 2, 2),        // 5x5 stride 2, odd width
      make(1, 2, 10, 16, 3, 3, 3),              // no padding, W a multiple of 8
      make(1, 2, 12, 20, 4, 3, 3, 1, 2, 2),     // dilation 2
      make(1, 4, 9, 10, 6, 3, 3, 1, 1, 1, 2),   // groups 2, C/g = 2
      make(1, 1, 7, 3, 1, 3, 3, 1, 1),          // O = 1, W = 3
      make(1, 2, 8, 12, 16, 3, 3, 1, 1),        // O = 16: three blocks
      make(1, 1, 6, 9, 2, 3, 3, 1, 3),          // pad 3 > k - 1: bwd_data crops gy
      make(2, 1, 9, 34, 5, 1, 5, 1, 2),         // 1x5, two full vectors and a tail of 2
      make(1, 3, 23, 21, 64, 7, 7, 2, 3),       // the ResNet stem's kernel: O = 64 in 11 blocks
      make(2, 4, 10, 9, 7, 3, 3, 3, 1),         // C = 4, stride 3
      make(1, 8, 9, 11, 12, 3, 3, 1, 1, 1, 4),  // groups 4, C/g = 2, O/g = 3
  };
  ConvParams four = make(1, 3, 10, 12, 6, 3, 3);
  four.pad_t = 0, four.pad_b = 2, four.pad_l = 1, four.pad_r = 3;
  testing::finish(four);
  s.push_back(four);
  ConvParams lopsided = make(2, 1, 11, 13, 5, 5, 3);  // smallc, four different pads
  lopsided.pad_t = 2, lopsided.pad_b = 0, lopsided.pad_l = 0, lopsided.pad_r = 1;
  testing::finish(lopsided);
  s.push_back(lopsided);
  return s;
}

TEST(ConvImpl, EdgeShapesEveryImplMatchesNaive) {
  uint32_t seed = 1;
  for (const auto& p : edge_shapes()) {
    EXPECT_GT(check_all(p, seed, seed % 2 == 0), 0);
    ++seed;
  }
}

// 1x1 stride-1 layers, whose forward (and stride-1 backward-data) GEMM reads x in place with the
// packing micro-kernel, with bias: K past KC, bias added per chunk of columns (tasks of 208
// columns: chunks 128 + 80), M below one panel (3) and of 42 panels, columns below one panel.
TEST(ConvImpl, OneByOneReadInPlaceMatchesNaive) {
  using testing::make;
  uint32_t seed = 500;
  for (const auto& p : {make(2, 300, 20, 20, 70, 1, 1), make(1, 7, 5, 41, 3, 1, 1),
                        make(1, 8, 3, 3, 5, 1, 1), make(3, 64, 9, 13, 250, 1, 1)})
    EXPECT_GT(check_all(p, seed++, true), 0);
}

TEST(ConvImpl, RandomShapesEveryImplMatchesNaive) {
  std::mt19937 rng(2024);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int done = 0;
  while (done < 40) {
    ConvParams p;
    p.N = pick(1, 3);
    const int kind = pick(0, 3);  // 0, 1: dense, 2: depthwise (multiplier 1 or 2), 3: groups 2..3
    if (kind <= 1) {
      p.groups = 1, p.C = pick(1, 12), p.O = pick(1, 20);
    } else if (kind == 2) {
      p.C = pick(1, 10), p.groups = p.C, p.O = p.C * pick(1, 2);
    } else {
      p.groups = pick(2, 3), p.C = p.groups * pick(1, 4), p.O = p.groups * pick(1, 5);
    }
    p.H = pick(1, 24), p.W = pick(1, 24);
    p.kH = pick(1, 7), p.kW = pick(1, 7);
    if (pick(0, 2) == 0) p.kW = p.kH = 3;
    p.sH = pick(1, 3), p.sW = pick(0, 1) ? p.sH : pick(1, 3);
    p.dH = pick(1, 2), p.dW = pick(1, 2);
    if (pick(0, 1)) p.sH = p.sW = p.dH = p.dW = 1;
    p.pad_t = pick(0, 3), p.pad_b = pick(0, 3), p.pad_l = pick(0, 3), p.pad_r = pick(0, 3);
    if (p.H + p.pad_t + p.pad_b < p.dH * (p.kH - 1) + 1) continue;
    if (p.W + p.pad_l + p.pad_r < p.dW * (p.kW - 1) + 1) continue;
    testing::finish(p);
    EXPECT_GT(check_all(p, static_cast<uint32_t>(done + 100), pick(0, 1) == 1), 0);
    ++done;
  }
}

// Backward data of strided layers by phases (gemm_phases_*, which gemm_bwd_data_* run where it
// pays), on every strided shape: strides 2 and 3, kernels 1..7 (smaller than the stride: phases
// without taps), padding 0..3 (past k - 1: crops), dilation 2, odd sizes, H or W below the stride,
// groups 2, N = 1, unequal strides and four-sided padding, rows wider than a column block, K and
// C/groups past the cache blocks, few channels; and the edge and random shapes above that are
// strided. gx (1 MiB and up) is streamed: the last shapes.
TEST(ConvImpl, StridedBackwardDataByPhasesMatchesNaive) {
  using testing::make;
  std::vector<ConvParams> s = {
      make(1, 24, 11, 13, 5, 3, 3, 2, 1),       // 3x3 stride 2, odd sizes
      make(1, 24, 8, 8, 4, 3, 3, 2, 0),         // no padding
      make(2, 24, 9, 10, 6, 1, 1, 2),           // 1x1: three phases without taps
      make(1, 24, 9, 9, 4, 2, 2, 2),            // 2x2, one tap per phase
      make(1, 24, 10, 11, 4, 2, 2, 3, 1),       // 2x2 stride 3: empty phases
      make(1, 25, 13, 12, 5, 5, 5, 2, 2),       // 5x5
      make(1, 24, 12, 13, 3, 5, 5, 3, 3),       // 5x5 stride 3, pad 3
      make(1, 24, 15, 14, 4, 7, 7, 2, 3),       // 7x7
      make(1, 24, 16, 17, 3, 7, 7, 3),          // 7x7 stride 3
      make(1, 24, 11, 12, 4, 3, 3, 2, 2, 2),    // dilation 2, stride 2: taps apart by 1 in gy
      make(1, 24, 13, 9, 4, 3, 3, 3, 1, 2),     // dilation 2, stride 3
      make(1, 24, 1, 7, 4, 3, 3, 2, 1),         // H = 1
      make(2, 24, 7, 2, 3, 1, 1, 3),            // W = 2 < stride 3
      make(1, 48, 9, 11, 6, 3, 3, 2, 1, 1, 2),  // groups 2
      make(1, 30, 5, 7, 4, 3, 3, 2, 3),         // pad 3 > k - 1
      make(1, 24, 3, 300, 3, 3, 3, 2, 1),       // 150 phase columns: blocks of part rows
      make(1, 24, 3, 301, 3, 5, 5, 2, 3),       // the same, wider taps, odd width
      make(1, 150, 6, 7, 70, 3, 3, 2, 1),       // Cg > MC, K = 280 > KC
      make(1, 3, 14, 15, 8, 3, 3, 2, 1),        // few channels (a partial micro-panel)
      make(2, 32, 32, 31, 8, 3, 3, 2, 1),       // gemm_avx2 takes the phases (full panels)
      make(1, 8, 230, 150, 2, 3, 3, 2, 1),      // gx streamed, even width
      make(1, 16, 133, 125, 2, 2, 2, 2, 0),     // gx streamed, odd rows and widths
  };
  ConvParams q = make(2, 24, 13, 17, 5, 3, 5, 2, 0);  // stride (2, 3), four-sided padding
  q.sW = 3, q.pad_t = 2, q.pad_b = 0, q.pad_l = 1, q.pad_r = 3;
  testing::finish(q);
  s.push_back(q);
  for (const auto& p : edge_shapes())
    if (p.sH > 1 || p.sW > 1) s.push_back(p);
  std::mt19937 rng(77);
  for (const Impl* impl :
       {&conv::impl::gemm_bwd_data_phases_avx2, &conv::impl::gemm_bwd_data_phases_generic}) {
    if (impl->why_not(testing::make(1, 1, 4, 4, 1, 3, 3, 2))) continue;  // no AVX2 here
    int ran = 0;
    for (const auto& p : s) {
      SCOPED_TRACE(std::string(impl->name) + " " + str(p));
      ASSERT_EQ(impl->why_not(p), nullptr);
      const auto w = testing::random_vec(rng, p.O * p.Cg() * p.kH * p.kW);
      const auto gy = testing::random_vec(rng, p.N * p.O * p.Ho * p.Wo);
      const auto r = testing::naive_bwd_data(p, gy.data(), w.data());
      std::vector<float> gx(r.val.size(), std::numeric_limits<float>::quiet_NaN());
      const ConvArgs a =
          testing::pass_args(Pass::BwdData, p, nullptr, w.data(), nullptr, gy.data(), gx.data());
      conv::run_impl(*impl, Pass::BwdData, p, a);
      const int64_t bad = testing::first_mismatch(r, gx.data());
      if (bad >= 0)
        ADD_FAILURE() << "element " << bad << ": got " << gx[bad] << ", expected " << r.val[bad];
      ++ran;
    }
    EXPECT_GT(ran, 30);
  }
}

// Where the phases pay (3x3 stride 2, C/groups >= 32, phase grids that fill the micro-panels),
// gemm_avx2's backward data is the phase path, bit for bit; elsewhere every implementation still
// matches the naive loops.
TEST(ConvImpl, GemmBackwardDataTakesThePhasesWhereTheyPay) {
  if (!base::use_avx2()) GTEST_SKIP() << "needs AVX2";
  using testing::make;
  for (const auto& p : {make(2, 32, 32, 31, 8, 3, 3, 2, 1), make(1, 64, 16, 16, 4, 2, 2, 2)}) {
    SCOPED_TRACE(str(p));
    EXPECT_GT(check_all(p, 1200, false), 0);
    std::mt19937 rng(3);
    const auto w = testing::random_vec(rng, p.O * p.Cg() * p.kH * p.kW);
    const auto gy = testing::random_vec(rng, p.N * p.O * p.Ho * p.Wo);
    std::vector<float> gemm(p.N * p.C * p.H * p.W), phases(gemm.size());
    for (auto [impl, out] : {std::pair{conv::find_impl(Pass::BwdData, "gemm_avx2"), &gemm},
                             std::pair{&conv::impl::gemm_bwd_data_phases_avx2, &phases}})
      conv::run_impl(
          *impl, Pass::BwdData, p,
          testing::pass_args(Pass::BwdData, p, nullptr, w.data(), nullptr, gy.data(), out->data()));
    EXPECT_EQ(gemm, phases);
  }
}

// Shapes for the Winograd blocking (tasks of consecutive tiles through rows, phases and images;
// output-channel blocks; K chunks; bwd_weight's tile chunks and channel blocks): each must run
// winograd_f4x3_avx2 in every pass.
TEST(ConvImpl, WinogradBlockingEdgeShapesMatchNaive) {
  if (!base::use_avx2()) GTEST_SKIP() << "needs AVX2";
  using testing::make;
  std::vector<ConvParams> shapes = {
      make(1, 16, 9, 13, 16, 3, 3, 1, 1),       // N = 1, W, H not multiples of 4: tasks span rows
      make(3, 16, 7, 5, 17, 3, 3, 1, 0),        // 3x1 tiles: tasks span images; 17 = 2 MR + 5
      make(2, 24, 11, 10, 20, 3, 3, 1, 2, 2),   // dilation 2, phases of unequal sizes
      make(2, 16, 14, 17, 18, 3, 3, 1, 3, 3),   // dilation 3
      make(1, 16, 5, 6, 16, 3, 3, 1, 2, 3),     // dilation 3, outputs fewer than the phases
      make(1, 300, 24, 23, 16, 3, 3, 1, 1),     // many channels: the K sum in chunks
      make(1, 96, 8, 8, 96, 3, 3, 1, 1),        // channel blocks (the workspace budget)
      make(2, 32, 9, 9, 48, 3, 3, 1, 1, 1, 2),  // groups
      make(1, 16, 33, 3, 16, 3, 3, 1, 1),       // one tile column
      make(1, 128, 24, 24, 16, 3, 3, 1, 2, 2),  // dilation 2 in per-task windows (no room for the
                                                // padded input)
      make(3, 16, 37, 41, 20, 3, 3, 1, 1),      // bwd_weight: 330 tiles in chunks, the last
                                                // partial; O = 20: 3 MR panels and one of 2
  };
  ConvParams four = make(2, 16, 10, 13, 16, 3, 3);
  four.pad_t = 0, four.pad_b = 2, four.pad_l = 2, four.pad_r = 1;
  testing::finish(four);
  shapes.push_back(four);
  // Padding wider than the kernel's extent leaves outputs with no input at all, which must be
  // exact zeros (the transforms would leave rounding noise there): not Winograd's.
  four.pad_r = 3;
  testing::finish(four);
  EXPECT_NE(conv::find_impl(Pass::Fwd, "winograd_f4x3_avx2")->why_not(four), nullptr);
  uint32_t seed = 300;
  for (const auto& p : shapes) {
    for (Pass pass : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight}) {
      const Impl* wino = conv::find_impl(pass, "winograd_f4x3_avx2");
      ASSERT_NE(wino, nullptr);
      EXPECT_EQ(wino->why_not(p), nullptr) << conv::pass_name(pass) << " " << str(p);
    }
    EXPECT_GT(check_all(p, seed, seed % 2 == 0), 0);
    ++seed;
  }
}

// Winograd's dispatch does not depend on the thread count, its bits neither, and its workspace
// stays within the budget (a quarter of the im2col buffer, or 1 MiB) at any thread count, or
// within what its NaN/Inf fallback (gemm_avx2) books, which it must hold too.
TEST(ConvImpl, WinogradBudgetAndBitsAtAnyThreadCount) {
  if (!base::use_avx2()) GTEST_SKIP() << "needs AVX2";
  const ConvParams p = testing::make(1, 96, 8, 8, 96, 3, 3, 1, 1);  // near the budget
  const double budget_bytes =
      4.0 * std::max(0.25 * double(p.N * p.C * 9 * p.Ho * p.Wo), double(1 << 18));
  std::mt19937 rng(7);
  const auto x = testing::random_vec(rng, p.N * p.C * p.H * p.W);
  const auto w = testing::random_vec(rng, p.O * p.Cg() * 9);
  const Impl* wino = conv::find_impl(Pass::Fwd, "winograd_f4x3_avx2");
  const Impl* gemm = conv::find_impl(Pass::Fwd, "gemm_avx2");
  ASSERT_NE(wino, nullptr);
  ASSERT_NE(gemm, nullptr);
  std::vector<float> first;
  for (int threads : {1, 3, 64}) {
    set_num_threads(threads);
    EXPECT_EQ(wino->why_not(p), nullptr) << threads;
    EXPECT_LE(double(conv::workspace_bytes(*wino, p)),
              std::max(budget_bytes, double(conv::workspace_bytes(*gemm, p))))
        << threads;
    std::vector<float> y(p.N * p.O * p.Ho * p.Wo);
    ConvArgs a;
    a.x = x.data(), a.w = w.data(), a.y = y.data();
    conv::run_impl(*wino, Pass::Fwd, p, a);
    if (first.empty()) first = y;
    EXPECT_EQ(first, y) << threads;
  }
  set_num_threads(0);
}

// Depthwise edge tiles (dwconv_avx2 must take every one when AVX2 is there; every other
// implementation that applies runs too): widths 1..20 around the 8-wide vectors (and stride 2's
// 16-wide loads), H = 1, N = 1, padding 0/1/2, stride 2, 3x3 and 5x5, multiplier 2, with and
// without bias.
TEST(ConvImpl, DepthwiseEdgeTilesMatchNaive) {
  using testing::make;
  uint32_t seed = 700;
  int shapes = 0;
  for (int64_t W = 1; W <= 20; ++W)
    for (int64_t H : {1, 6, 11})
      for (int64_t k : {3, 5})
        for (int64_t s : {1, 2})
          for (int64_t pad : {0, 1, 2}) {
            if (W + 2 * pad < k || H + 2 * pad < k) continue;
            const int64_t N = 1 + seed % 2, C = 3, M = 1 + (seed / 2) % 2;
            const ConvParams p = make(N, C, H, W, C * M, k, k, s, pad, 1, C);
            SCOPED_TRACE(str(p));
            if (base::use_avx2()) {
              for (Pass pass : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight})
                EXPECT_EQ(conv::find_impl(pass, "dwconv_avx2")->why_not(p), nullptr);
            }
            check_all(p, seed, seed % 3 != 0);
            ++seed, ++shapes;
          }
  EXPECT_GT(shapes, 500);
}

// Depthwise shapes for the other dwconv kernels: 7x7, the any-size kernels (dilation, non-square,
// unequal strides), padding past k - 1 (backward-data's flipped padding turns negative), four-sided
// padding, a wide row (interior vectors of the any-size kernels), a single-channel image with six
// outputs, and enough rows per plane to cut planes into row chunks.
TEST(ConvImpl, DepthwiseKernelsMatchNaive) {
  using testing::make;
  std::vector<ConvParams> s = {
      make(2, 3, 13, 21, 3, 7, 7, 1, 3, 1, 3),   // 7x7
      make(1, 2, 17, 30, 4, 7, 7, 2, 3, 1, 2),   // 7x7 stride 2, multiplier 2
      make(1, 3, 9, 37, 3, 3, 3, 1, 2, 2, 3),    // dilation 2
      make(2, 2, 11, 41, 4, 5, 5, 2, 4, 2, 2),   // dilation 2, stride 2
      make(1, 4, 8, 12, 4, 3, 3, 1, 3, 1, 4),    // pad 3 > k - 1
      make(1, 2, 6, 9, 2, 5, 5, 2, 4, 1, 2),     // pad 4 > k - 1, stride 2
      make(1, 3, 10, 70, 3, 3, 3, 1, 1, 1, 3),   // wide rows
      make(1, 1, 30, 45, 6, 5, 5, 1, 2),         // single channel, six outputs
      make(1, 2, 150, 20, 2, 3, 3, 1, 1, 1, 2),  // few planes, many rows: row chunks
  };
  ConvParams q = make(2, 4, 9, 26, 8, 1, 5, 1, 0, 1, 4);  // 1x5, stride (2, 1), four-sided pads
  q.sH = 2, q.pad_t = 0, q.pad_b = 1, q.pad_l = 3, q.pad_r = 1;
  testing::finish(q);
  s.push_back(q);
  ConvParams r = make(1, 3, 12, 33, 3, 4, 2, 1, 0, 1, 3);  // 4x2, stride (3, 2), dilation (1, 3)
  r.sH = 3, r.sW = 2, r.dW = 3, r.pad_t = 2, r.pad_b = 1, r.pad_l = 1, r.pad_r = 2;
  testing::finish(r);
  s.push_back(r);
  ConvParams t = make(1, 2, 12, 19, 2, 3, 3, 2, 1, 1, 2);  // 3x3, stride (1, 2): the any-size path
  t.sH = 1;
  testing::finish(t);
  s.push_back(t);
  uint32_t seed = 900;
  for (const auto& p : s) {
    SCOPED_TRACE(str(p));
    if (base::use_avx2()) {
      for (Pass pass : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight})
        EXPECT_EQ(conv::find_impl(pass, "dwconv_avx2")->why_not(p), nullptr);
    }
    check_all(p, seed, seed % 2 == 0);
    ++seed;
  }
}

// Narrow depthwise planes with multiplier 1 run 8 channels at a time (kd::f32_dwconv_c8_*): whole
// and partial groups of 8 (C = 20, 17, 9), several groups per image and images per call (C 72 and
// 64: each call runs every image), strides 1 and 2, dilation 2, 5x5, padding on some sides only,
// output rows of 4 to 16 (one block of 8 or 4, 8 + 4, 8 + 8 reaching past the row), with and
// without bias.
TEST(ConvImpl, DepthwiseNarrowPlanesEightChannelsAtATime) {
  using testing::make;
  std::vector<ConvParams> s = {
      make(2, 20, 14, 14, 20, 3, 3, 1, 1, 1, 20), make(1, 16, 7, 7, 16, 3, 3, 2, 1, 1, 16),
      make(3, 9, 11, 13, 9, 5, 5, 1, 2, 1, 9),    make(2, 17, 9, 10, 17, 3, 3, 1, 2, 2, 17),
      make(1, 24, 23, 23, 24, 3, 3, 1, 1, 1, 24), make(2, 8, 30, 12, 8, 3, 3, 2, 0, 1, 8),
      make(3, 72, 7, 7, 72, 3, 3, 1, 1, 1, 72),   make(2, 64, 16, 16, 64, 3, 3, 1, 1, 1, 64)};
  ConvParams q = make(1, 12, 10, 9, 12, 3, 3, 1, 0, 1, 12);
  q.pad_t = 2, q.pad_b = 0, q.pad_l = 0, q.pad_r = 1;
  testing::finish(q);
  s.push_back(q);
  uint32_t seed = 1300;
  for (const auto& p : s) {
    SCOPED_TRACE(str(p));
    if (base::use_avx2()) {
      for (Pass pass : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight})
        EXPECT_EQ(conv::find_impl(pass, "dwconv_avx2")->why_not(p), nullptr);
    }
    EXPECT_GT(check_all(p, seed, seed % 2 == 0), 0);
    ++seed;
  }
}

// 1x1 layers whose weight gradient runs in q chunks as the transposed product (x read in place by
// the rows micro-kernel, gy packed): channel counts off the 6-row and 16-column tiles, q blocks
// that stop at image ends (P = 81, 221), groups, and the bias gradient fused into the sweep.
TEST(ConvImpl, PointwiseWeightGradientInChunks) {
  using testing::make;
  uint32_t seed = 1400;
  for (const auto& p :
       {make(3, 64, 14, 14, 40, 1, 1), make(2, 19, 17, 13, 7, 1, 1), make(1, 8, 40, 40, 16, 1, 1),
        make(2, 30, 20, 30, 4, 1, 1, 1, 0, 1, 2), make(4, 16, 9, 9, 24, 1, 1)}) {
    SCOPED_TRACE(str(p));
    EXPECT_GT(check_all(p, seed, seed % 2 == 0), 0);
    ++seed;
  }
}

// Forward weights of 2 MB and more on the planes path are read in place by the rows micro-kernel
// instead of packed (the workspace then holds no copy of them): 3x3 with 256 channels on 7x7
// images, two groups of 192, and a 5x5 layer, with and without bias.
TEST(ConvImpl, LargeForwardWeightsReadInPlace) {
  using testing::make;
  uint32_t seed = 1500;
  for (const auto& p :
       {make(1, 256, 7, 7, 256, 3, 3, 1, 1), make(1, 384, 4, 5, 384, 3, 3, 1, 1, 1, 2),
        make(1, 160, 7, 7, 160, 5, 5, 1, 2)}) {
    SCOPED_TRACE(str(p));
    if (base::use_avx2()) {
      const conv::Impl* gemm = conv::find_impl(Pass::Fwd, "gemm_avx2");
      ASSERT_EQ(gemm->why_not(p), nullptr);
      EXPECT_LT(gemm->workspace_floats(p, 1), static_cast<std::size_t>(p.O * p.Cg() * p.kH * p.kW));
    }
    EXPECT_GT(check_all(p, seed, seed % 2 == 0), 0);
    ++seed;
  }
}

// The same shapes through the portable fallbacks (as on a machine without AVX2).
TEST(ConvImpl, PortableFallbacksMatchNaive) {
  base::set_isa_limit(base::Isa::Generic);
  uint32_t seed = 500;
  for (const auto& p : edge_shapes()) {
    for (Pass pass : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight})
      EXPECT_EQ(std::string(conv::choose(pass, p).name).find("avx2"), std::string::npos);
    check_all(p, seed++);
  }
  base::set_isa_limit(base::Isa::Avx2Fma);
}

// NaN and Inf propagate as in a direct convolution: an output is NaN or Inf exactly where the
// double-precision direct sum is, and other outputs stay finite and accurate (Winograd falls back).
TEST(ConvImpl, NonFiniteInputsPropagateLikeDirectConvolution) {
  using testing::make;
  // The third shape's bwd_weight GEMM runs in q chunks (each checks its own slice of gy); the
  // fourth is dilated (Winograd's padded-input path); the last two are strided, one without
  // padding (the bwd_data phases, run too, still meet gy's zero border: rows past Ho); the rest
  // are depthwise.
  for (const auto& p :
       {make(1, 16, 12, 12, 16, 3, 3, 1, 1), make(2, 3, 9, 9, 4, 3, 3, 1, 1),
        make(2, 2, 16, 16, 2, 3, 3, 1, 1), make(1, 16, 13, 12, 16, 3, 3, 1, 2, 2),
        make(1, 16, 12, 12, 16, 3, 3, 1, 1, 1, 16), make(2, 3, 9, 21, 6, 5, 5, 2, 2, 1, 3),
        make(1, 4, 7, 30, 4, 3, 3, 1, 2, 2, 4), make(1, 4, 9, 20, 4, 3, 3, 2, 1, 1, 4),
        make(1, 24, 14, 14, 8, 3, 3, 2), make(1, 32, 16, 15, 8, 3, 3, 2, 1)}) {
    std::mt19937 rng(5);
    auto x = testing::random_vec(rng, p.N * p.C * p.H * p.W);
    auto w = testing::random_vec(rng, p.O * p.Cg() * p.kH * p.kW);
    auto gy = testing::random_vec(rng, p.N * p.O * p.Ho * p.Wo);
    x[5] = std::numeric_limits<float>::infinity();
    x[p.H * p.W + 40] = std::numeric_limits<float>::quiet_NaN();
    gy[7] = -std::numeric_limits<float>::infinity();
    gy[2 * p.Wo] = -std::numeric_limits<float>::infinity();  // column 0: meets the left padding
    w[3] = std::numeric_limits<float>::infinity();           // meets zero padding: skipped, not NaN
    const auto rf = testing::naive_fwd(p, x.data(), w.data(), nullptr);
    const auto rd = testing::naive_bwd_data(p, gy.data(), w.data());
    const auto rw = testing::naive_bwd_weight(p, gy.data(), x.data());
    for (Pass pass : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight}) {
      std::vector<const Impl*> list(conv::impls(pass).begin(), conv::impls(pass).end());
      if (pass == Pass::BwdData)
        list.insert(list.end(), {&conv::impl::gemm_bwd_data_phases_avx2,
                                 &conv::impl::gemm_bwd_data_phases_generic});
      for (const Impl* impl : list) {
        if (impl->why_not(p)) continue;
        SCOPED_TRACE(std::string(conv::pass_name(pass)) + " " + impl->name + " " + str(p));
        const auto& r = pass == Pass::Fwd ? rf : pass == Pass::BwdData ? rd : rw;
        std::vector<float> out(r.val.size());
        const ConvArgs a =
            testing::pass_args(pass, p, x.data(), w.data(), nullptr, gy.data(), out.data());
        conv::run_impl(*impl, pass, p, a);
        int nonfinite = 0, finite = 0;
        testing::expect_nonfinite_like(r, out, nonfinite, finite);
        EXPECT_GT(nonfinite, 0);
      }
    }
  }
}

// Winograd's weight gradient must hand a call to the GEMM when either operand holds Inf or NaN
// (x alone, gy alone; plain and dilated), so that they propagate as in the direct sums.
TEST(ConvImpl, WinogradWeightGradientNonFiniteEitherOperand) {
  if (!base::use_avx2()) GTEST_SKIP() << "needs AVX2";
  using testing::make;
  const Impl* wino = conv::find_impl(Pass::BwdWeight, "winograd_f4x3_avx2");
  ASSERT_NE(wino, nullptr);
  for (const auto& p :
       {make(2, 16, 12, 13, 18, 3, 3, 1, 1), make(1, 16, 13, 12, 16, 3, 3, 1, 2, 2)})
    for (int which = 0; which < 2; ++which) {
      SCOPED_TRACE(str(p) + (which == 0 ? " x" : " gy"));
      ASSERT_EQ(wino->why_not(p), nullptr);
      std::mt19937 rng(11);
      auto x = testing::random_vec(rng, p.N * p.C * p.H * p.W);
      auto gy = testing::random_vec(rng, p.N * p.O * p.Ho * p.Wo);
      if (which == 0)
        x[p.H * p.W + 3 * p.W + 4] = std::numeric_limits<float>::infinity();
      else
        gy[p.Ho * p.Wo + 2 * p.Wo + 5] = std::numeric_limits<float>::quiet_NaN();
      const auto r = testing::naive_bwd_weight(p, gy.data(), x.data());
      std::vector<float> out(r.val.size());
      conv::run_impl(*wino, Pass::BwdWeight, p,
                     testing::pass_args(Pass::BwdWeight, p, x.data(), nullptr, nullptr, gy.data(),
                                        out.data()));
      int nonfinite = 0, finite = 0;
      testing::expect_nonfinite_like(r, out, nonfinite, finite);
      EXPECT_GT(nonfinite, 0);
      EXPECT_GT(finite, 0);
    }
}

TEST(ConvDispatch, ReferenceIsLastAndAppliesToEverything) {
  for (Pass pass : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight}) {
    const auto list = conv::impls(pass);
    ASSERT_FALSE(list.empty());
    EXPECT_STREQ(list.back()->name, "ref");
    ConvParams p = testing::make(1, 2, 5, 5, 2, 3, 3, 1, 1);
    p.mode = kernels::PadMode::Reflect;
    EXPECT_STREQ(conv::choose(pass, p).name, "ref");  // fast paths read zeros only
  }
}

TEST(ConvDispatch, DepthwiseLayersTakeDwconv) {
  if (!base::use_avx2()) GTEST_SKIP() << "no AVX2";
  const ConvParams dw = testing::make(4, 128, 56, 56, 128, 3, 3, 1, 1, 1, 128);
  for (Pass pass : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight})
    EXPECT_STREQ(conv::choose(pass, dw).name, "dwconv_avx2");
  // Column stride 3 is beyond the kernels: the direct kernels take it.
  const ConvParams s3 = testing::make(1, 8, 20, 20, 8, 3, 3, 3, 1, 1, 8);
  EXPECT_NE(conv::find_impl(Pass::Fwd, "dwconv_avx2")->why_not(s3), nullptr);
  EXPECT_STRNE(conv::choose(Pass::Fwd, s3).name, "dwconv_avx2");
}

TEST(ConvDispatch, NotebookShapeTakesTheTinyPath) {
  const ConvParams p = testing::make(1, 1, 6, 8, 1, 1, 2);
  EXPECT_STREQ(conv::choose(Pass::Fwd, p).name, "tiny_direct");
  EXPECT_EQ(conv::workspace_bytes(conv::choose(Pass::Fwd, p), p), 0u);
}

// The tiny path's AVX2 forward (unpadded, column stride 1) gives the portable loop's bits, so the
// notebook's numbers are the same on any CPU; and it writes nothing past the output.
TEST(ConvTiny, Avx2ForwardEqualsPortableBitForBit) {
  if (!base::use_avx2()) GTEST_SKIP() << "no AVX2";
  std::mt19937 rng(41);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 300; ++trial) {
    const int g = pick(1, 2), kH = pick(1, 3), kW = pick(1, 3), d = pick(1, 2);
    ConvParams p =
        testing::make(pick(1, 2), g * pick(1, 3), 1, 1, g * pick(1, 3), kH, kW, 1, 0, d, g);
    p.sH = pick(1, 2);
    p.H = d * (kH - 1) + pick(1, 6);
    p.W = d * (kW - 1) + pick(1, 20);  // Wo 1 .. 20: under, at and past one vector
    testing::finish(p);
    SCOPED_TRACE(str(p));
    const auto x = testing::random_vec(rng, p.N * p.C * p.H * p.W);
    const auto w = testing::random_vec(rng, p.O * p.Cg() * p.kH * p.kW);
    const auto b = testing::random_vec(rng, p.O);
    const float* bias = trial % 3 == 0 ? nullptr : b.data();
    const size_t n = static_cast<size_t>(p.N * p.O * p.Ho * p.Wo);
    std::vector<float> portable(n), fast(n + 8, 7.f);  // 8 guard floats past the output
    kernels::direct::fwd(p, x.data(), w.data(), bias, portable.data());
    kernels::direct::fwd_unpadded_s1__avx2(p, x.data(), w.data(), bias, fast.data());
    for (size_t i = 0; i < n; ++i)
      ASSERT_EQ(std::bit_cast<uint32_t>(fast[i]), std::bit_cast<uint32_t>(portable[i]))
          << "element " << i << ": " << fast[i] << " vs " << portable[i];
    for (size_t i = n; i < n + 8; ++i) ASSERT_EQ(fast[i], 7.f) << "wrote past the output";
  }
}

TEST(ConvDispatch, ForcedImplementationRunsOrFails) {
  const ConvParams p = testing::make(1, 3, 40, 40, 8, 3, 3, 1, 1);
  conv::set_forced_impl("ref");
  EXPECT_STREQ(conv::choose(Pass::Fwd, p).name, "ref");
  EXPECT_STREQ(conv::choose(Pass::BwdWeight, p).name, "ref");
  conv::set_forced_impl("tiny_direct");  // too big for the tiny path: an error, not a fallback
  EXPECT_THROW(conv::choose(Pass::Fwd, p), Error);
  try {
    conv::choose(Pass::Fwd, p);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tiny_direct"), std::string::npos) << e.what();
  }
  EXPECT_THROW(conv::set_forced_impl("no_such_impl"), Error);
  conv::set_forced_impl("");
  EXPECT_STRNE(conv::choose(Pass::Fwd, p).name, "tiny_direct");
}

TEST(ConvDispatch, EmptyBatchGivesZeroGradients) {
  ConvParams p = testing::make(0, 2, 5, 5, 3, 3, 3);
  std::vector<float> gw(3 * 2 * 9, 7.f), gb(3, 7.f);
  conv::backward_weight(p, nullptr, nullptr, gw.data(), gb.data());
  for (float v : gw) EXPECT_EQ(v, 0.f);
  for (float v : gb) EXPECT_EQ(v, 0.f);
}

}  // namespace
}  // namespace convkit
