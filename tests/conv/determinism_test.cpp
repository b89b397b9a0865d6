// Results are bitwise identical whatever the thread count: every implementation that applies is
// run at 1 and at 2 threads on shapes big enough to wake both threads, and the bits compared.
#include <convkit/runtime.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "conv/dispatch.h"
#include "conv/impls.h"
#include "conv/naive_conv.h"
#include "conv/pass_args.h"

namespace convkit {
namespace {

using conv::ConvArgs;
using conv::Impl;
using conv::Pass;

std::vector<float> run(const Impl& impl, Pass pass, const testing::ConvParams& p,
                       const std::vector<float>& x, const std::vector<float>& w,
                       const std::vector<float>& b, const std::vector<float>& gy, int threads) {
  set_num_threads(threads);
  std::vector<float> out(testing::pass_out_floats(pass, p), 0.f);
  conv::run_impl(impl, pass, p,
                 testing::pass_args(pass, p, x.data(), w.data(), b.data(), gy.data(), out.data()));
  set_num_threads(0);
  return out;
}

TEST(ConvDeterminism, OneAndTwoThreadsGiveIdenticalBits) {
  using testing::make;
  const testing::ConvParams shapes[] = {
      make(2, 16, 20, 20, 24, 3, 3, 1, 1),         // 3x3 stride 1 (implicit GEMM / Winograd)
      make(2, 16, 20, 20, 24, 3, 3, 1, 2, 2),      // dilated (Winograd phases)
      make(2, 32, 21, 21, 32, 3, 3, 2, 1),         // stride 2 (bwd_data by phases)
      make(3, 64, 14, 14, 40, 1, 1),               // 1x1
      make(4, 3, 40, 40, 8, 5, 5, 2, 2),           // stem-like: bwd_weight in fixed q chunks
      make(2, 48, 30, 30, 48, 3, 3, 1, 1, 1, 48),  // depthwise
      make(1, 1, 300, 300, 1, 3, 3, 1, 1),         // single channel
      make(1, 96, 8, 8, 96, 3, 3, 1, 1),           // Winograd channel blocks
      make(3, 32, 17, 15, 24, 3, 3, 1, 3, 3),      // Winograd, dilation 3, tasks across images
      make(3, 16, 37, 41, 20, 3, 3, 1, 1),         // Winograd bwd_weight: tile chunks
      make(32, 1, 28, 28, 6, 5, 5, 1, 2),          // LeNet (smallc: chunks cross images)
      make(4, 3, 96, 90, 10, 3, 3, 2, 1),          // few channels, stride 2
  };
  std::mt19937 rng(99);
  int compared = 0;
  for (const auto& p : shapes) {
    const auto x = testing::random_vec(rng, p.N * p.C * p.H * p.W);
    const auto w = testing::random_vec(rng, p.O * p.Cg() * p.kH * p.kW);
    const auto b = testing::random_vec(rng, p.O);
    const auto gy = testing::random_vec(rng, p.N * p.O * p.Ho * p.Wo);
    for (Pass pass : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight})
      for (const Impl* impl : conv::impls(pass)) {
        if (impl->why_not(p) || std::string(impl->name) == "ref") continue;
        const auto one = run(*impl, pass, p, x, w, b, gy, 1);
        const auto two = run(*impl, pass, p, x, w, b, gy, 2);
        EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)), 0)
            << conv::pass_name(pass) << " " << impl->name << " N" << p.N << " C" << p.C << " O"
            << p.O << " k" << p.kH << " s" << p.sH << " g" << p.groups;
        ++compared;
      }
  }
  EXPECT_GT(compared, 10);
}

// Backward data by phases (taken by gemm where it pays) at 1 and 2 threads: tasks of whole phase
// rows (3x3, 2x2 stride 2) and of part rows (wide, stride 3), gx plain and streamed.
TEST(ConvDeterminism, BackwardDataByPhasesOneAndTwoThreads) {
  using testing::make;
  std::mt19937 rng(98);
  int compared = 0;
  for (const auto& p : {make(2, 32, 21, 21, 32, 3, 3, 2, 1), make(1, 24, 7, 300, 24, 5, 5, 3, 2),
                        make(2, 64, 64, 64, 16, 2, 2, 2)}) {
    const auto w = testing::random_vec(rng, p.O * p.Cg() * p.kH * p.kW);
    const auto gy = testing::random_vec(rng, p.N * p.O * p.Ho * p.Wo);
    for (const Impl* impl :
         {&conv::impl::gemm_bwd_data_phases_avx2, &conv::impl::gemm_bwd_data_phases_generic}) {
      if (impl->why_not(p)) continue;
      const auto one = run(*impl, Pass::BwdData, p, {}, w, {}, gy, 1);
      const auto two = run(*impl, Pass::BwdData, p, {}, w, {}, gy, 2);
      EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)), 0)
          << impl->name << " N" << p.N << " C" << p.C << " k" << p.kH << " s" << p.sH;
      ++compared;
    }
  }
  EXPECT_GT(compared, 2);
}

}  // namespace
}  // namespace convkit
