// `convkit learn` end to end: it recovers known kernels from generated pictures and their filtered
// copies (made here by a naive double loop, tests/cli/picture_files.h), writes the kernel and the
// loss curve, and refuses bad input with exit 2 and no output files.
//
// Tolerance: the learned kernel within 2e-3 of the true one, entry by entry (float32 training on
// exact targets converges far below that; the bound leaves room for different thread counts and
// kernels).
#include <convkit/convkit.h>
#include <convkit/image.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/picture_files.h"
#include "cli/run_cli.h"

namespace convkit {
namespace {

namespace fs = std::filesystem;
using testing::run_cli;

class LearnCli : public ::testing::Test {
 protected:
  fs::path dir = testing::test_dir("learn_cli");
  // Kept for inspection when a test fails.
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir);
  }

  // Writes a generated picture and its filtered copy, runs learn, returns the learned kernel.
  std::vector<float> learn(const std::vector<double>& k, int64_t kh, int64_t kw, bool same,
                           std::vector<std::string> extra = {}, int64_t C = 1, double noise = 0.2) {
    const auto pic = testing::generated_picture(C, 40, 44, 11, noise);
    testing::write_npy(dir / "x.npy", pic);
    testing::write_npy(dir / "y.npy", testing::naive_filter(pic, k, kh, kw, same));
    const auto kout = dir / "k.npy";
    std::vector<std::string> args = {"learn",
                                     (dir / "x.npy").string(),
                                     (dir / "y.npy").string(),
                                     "--kernel-size",
                                     std::to_string(kh) + "x" + std::to_string(kw),
                                     "--kernel-out",
                                     kout.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run_cli(args);
    EXPECT_EQ(r.status, 0) << r.err;
    last_out = r.out;
    if (r.status != 0) return {};
    const Tensor learned = load_npy(kout.string());
    EXPECT_EQ(learned.shape(), (Shape{kh, kw}));
    return learned.to_vector();
  }

  void expect_kernel(const std::vector<float>& got, const std::vector<double>& want, double tol) {
    ASSERT_EQ(got.size(), want.size()) << last_out;
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(got[i], want[i], tol) << "entry " << i << "\n" << last_out;
  }

  std::string last_out;
};

TEST_F(LearnCli, RecoversTheNotebookEdgeKernel) {
  expect_kernel(learn({1, -1}, 1, 2, false), {1, -1}, 2e-3);
  // The notebook's output format: the learned kernel printed as PyTorch prints it.
  EXPECT_NE(last_out.find("learned kernel (1x2):\ntensor([["), std::string::npos) << last_out;
  // Not a terminal: plain progress lines.
  EXPECT_NE(last_out.find("epoch 1/300, loss "), std::string::npos) << last_out;
  EXPECT_NE(last_out.find("epoch 300/300, loss "), std::string::npos) << last_out;
}

TEST_F(LearnCli, RecoversSobelWithSamePaddingFromAnRgbPicture) {
  const std::vector<double> sobel = {-1, 0, 1, -2, 0, 2, -1, 0, 1};
  expect_kernel(learn(sobel, 3, 3, true, {}, 3), sobel, 2e-3);
}

TEST_F(LearnCli, RecoversSobelFromANearlyNoiseFreePicture) {
  // Smooth pictures are the hard case for gradient descent (faint fine detail, kappa ~ 1e3 after
  // standardisation): the automatic lr and momentum must still converge in the default 300 epochs.
  const std::vector<double> sobel = {-1, 0, 1, -2, 0, 2, -1, 0, 1};
  expect_kernel(learn(sobel, 3, 3, true, {}, 1, 0.02), sobel, 2e-3);
}

TEST_F(LearnCli, RecoversAGaussian) {
  std::vector<double> g;
  const double r[5] = {0.054488685, 0.244201342, 0.402619947, 0.244201342, 0.054488685};  // numpy
  for (double a : r)
    for (double b : r) g.push_back(a * b);
  expect_kernel(learn(g, 5, 5, false, {"--epochs", "400"}), g, 2e-3);
}

TEST_F(LearnCli, LearnsABiasAndWritesTheLossCurve) {
  const auto pic = testing::generated_picture(1, 30, 30, 3);
  auto target = testing::naive_filter(pic, {0.5, -1, 0.25, 2}, 2, 2, false);
  for (double& v : target.v) v += 0.3;
  testing::write_npy(dir / "x.npy", pic);
  testing::write_npy(dir / "y.npy", target);
  const auto plot = dir / "loss.svg";
  const auto r =
      run_cli({"learn", (dir / "x.npy").string(), (dir / "y.npy").string(), "--kernel-size", "2x2",
               "--bias", "--epochs", "500", "--plot", plot.string(), "--seed", "3"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("bias: tensor([0.30"), std::string::npos) << r.out;
  const std::string svg = testing::read_text(plot);
  ASSERT_NE(svg.find("<polyline"), std::string::npos);
  const size_t start = svg.find("points=\"", svg.find("<polyline")) + 8;
  const std::string points = svg.substr(start, svg.find('"', start) - start);
  EXPECT_EQ(std::count(points.begin(), points.end(), ','), 500) << "one point per epoch";
}

TEST_F(LearnCli, PngPicturesWork) {
  // A gray PNG and its box-blurred copy, both through PNG (16-bit keeps the targets precise).
  const auto pic = testing::generated_picture(1, 32, 32, 5);
  const auto blurred = testing::naive_filter(pic, std::vector<double>(4, 0.25), 2, 2, true);
  std::vector<float> a(pic.v.begin(), pic.v.end()), b(blurred.v.begin(), blurred.v.end());
  write_png((dir / "x.png").string(), from_vector(a, {1, 32, 32}), 16);
  write_png((dir / "y.png").string(), from_vector(b, {1, 32, 32}), 16);
  const auto r = run_cli({"learn", (dir / "x.png").string(), (dir / "y.png").string(),
                          "--kernel-size", "2x2", "--kernel-out", (dir / "k.npy").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  for (float v : load_npy((dir / "k.npy").string()).to_vector())
    EXPECT_NEAR(v, 0.25, 2e-3) << r.out;
}

TEST_F(LearnCli, BadInputExitsTwoAndWritesNothing) {
  testing::write_npy(dir / "x.npy", testing::generated_picture(1, 20, 20, 1));
  testing::write_npy(dir / "y13.npy", testing::generated_picture(1, 13, 20, 2));
  testing::write_npy(dir / "rgb.npy", testing::generated_picture(3, 20, 20, 2));
  const auto kout = (dir / "k.npy").string(), plot = (dir / "p.svg").string();
  auto refused = [&](std::vector<std::string> args, const std::string& what) {
    args.insert(args.end(), {"--kernel-out", kout, "--plot", plot});
    const auto r = run_cli(args);
    EXPECT_EQ(r.status, 2) << r.out << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << "expected '" << what << "' in: " << r.err;
    EXPECT_FALSE(fs::exists(kout));
    EXPECT_FALSE(fs::exists(plot));
  };
  const auto x = (dir / "x.npy").string();
  refused({"learn", x, (dir / "y13.npy").string(), "--kernel-size", "3x3"}, "different sizes");
  refused({"learn", x, x, "--kernel-size", "21x3"}, "larger than the picture");
  refused({"learn", x, (dir / "rgb.npy").string(), "--kernel-size", "3x3"}, "channel");
  refused({"learn", x, (dir / "missing.png").string(), "--kernel-size", "3x3"}, "No such file");
  refused({"learn", x, x, "--kernel-size", "3by3"}, "--kernel-size");
  refused({"learn", x, x, "--kernel-size", "3x3", "--epochs", "0"}, "--epochs");
  refused({"learn", x, x, "--kernel-size", "3x3", "--lr", "1e6", "--epochs", "50"}, "diverged");
  const auto r = run_cli({"learn", x, x});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--kernel-size"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace convkit
