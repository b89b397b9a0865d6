// conv::forward / backward_* with reflect, replicate, circular, symmetric and constant padding
// (materialised by the driver, then run on the fast paths) against the reference loops, which read
// the padded samples directly.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "conv/conv.h"
#include "kernels/ref/conv2d_ref.h"

using convkit::kernels::ConvParams;
using convkit::kernels::PadMode;

namespace {

std::vector<float> random_vector(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& e : v) e = d(rng);
  return v;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, double tol,
                  const char* what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], tol) << what << " element " << i;
  }
}

}  // namespace

TEST(PaddingModes, DriverMatchesReferenceOnTheFastPaths) {
  std::mt19937 rng(7);
  for (PadMode mode : {PadMode::Reflect, PadMode::Replicate, PadMode::Circular, PadMode::Symmetric,
                       PadMode::Constant}) {
    for (int64_t groups : {1, 16}) {
      ConvParams p;
      p.N = 2, p.C = 16, p.H = 11, p.W = 9, p.O = 16, p.kH = 3, p.kW = 3;
      p.pad_t = 1, p.pad_b = 2, p.pad_l = 2, p.pad_r = 1;
      p.groups = groups;
      p.mode = mode;
      p.pad_value = mode == PadMode::Constant ? 0.75f : 0.f;
      p.Ho = p.H + p.pad_t + p.pad_b - 2;
      p.Wo = p.W + p.pad_l + p.pad_r - 2;
      const auto x = random_vector(size_t(p.N * p.C * p.H * p.W), rng);
      const auto w = random_vector(size_t(p.O * p.Cg() * 9), rng);
      const auto b = random_vector(size_t(p.O), rng);
      const auto gy = random_vector(size_t(p.N * p.O * p.Ho * p.Wo), rng);
      // Every term is below 1 in magnitude: a sum of K terms is within K * 2^-22 of the exact one.
      const double tol = 1e-5 * double(p.Cg() * 9 + p.N * p.Ho * p.Wo);

      std::vector<float> y(gy.size()), y_ref(gy.size());
      convkit::conv::forward(p, x.data(), w.data(), b.data(), y.data());
      convkit::kernels::ref::conv2d_fwd(p, x.data(), w.data(), b.data(), y_ref.data());
      expect_close(y, y_ref, tol, "forward");

      std::vector<float> gx(x.size()), gx_ref(x.size());
      convkit::conv::backward_data(p, gy.data(), w.data(), gx.data());
      convkit::kernels::ref::conv2d_bwd_data(p, gy.data(), w.data(), gx_ref.data());
      expect_close(gx, gx_ref, tol, "backward_data");

      std::vector<float> gw(w.size()), gw_ref(w.size()), gb(b.size()), gb_ref(b.size());
      convkit::conv::backward_weight(p, gy.data(), x.data(), gw.data(), gb.data());
      convkit::kernels::ref::conv2d_bwd_weight(p, gy.data(), x.data(), gw_ref.data(),
                                               gb_ref.data());
      expect_close(gw, gw_ref, tol, "backward_weight");
      expect_close(gb, gb_ref, tol, "bias");
    }
  }
}
