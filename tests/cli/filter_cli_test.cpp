// `convkit filter` end to end: the binary's output against conv2d on the same tensor and against a
// naive double loop (tests/cli/picture_files.h); every bad input exits 2 with a message and leaves
// no output file.
//
// Tolerances: .npy outputs are float32 sums of <= 25 products of values in [0, 1]: 1e-5 absolute.
// PNG outputs are 8-bit: within one level (1/255) of the mapped reference.
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
using testing::Picture;
using testing::run_cli;

Tensor to_tensor(const Picture& p) {
  std::vector<float> f(p.v.begin(), p.v.end());
  return from_vector(f, {p.C, p.H, p.W});
}

Picture to_picture(const Tensor& t) {
  Picture p{t.size(0), t.size(1), t.size(2), {}};
  for (float v : t.to_vector()) p.v.push_back(v);
  return p;
}

class FilterCli : public ::testing::Test {
 protected:
  fs::path dir = testing::test_dir("filter_cli");
  // Kept for inspection when a test fails.
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir);
  }
  // A 16-bit RGB PNG (so the decoded floats are exactly the levels written) and its tensor.
  fs::path png = dir / "in.png";
  Tensor image;

  void SetUp() override {
    write_png(png.string(), to_tensor(testing::generated_picture(3, 17, 23, 7)), 16);
    image = read_image(png.string());
  }

  void expect_close(const Tensor& got, const Picture& want, double tol) {
    ASSERT_EQ(got.shape(), (Shape{want.C, want.H, want.W}));
    const auto g = got.to_vector();
    for (size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g[i], want.v[i], tol) << "at " << i;
  }

  // Exit 2, a message on stderr containing `what`, and nothing new in the directory.
  void expect_refused(const std::vector<std::string>& args, const std::string& what) {
    std::vector<std::string> before;
    for (const auto& e : fs::directory_iterator(dir)) before.push_back(e.path().filename());
    const auto r = run_cli(args);
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << "expected '" << what << "' in: " << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    std::vector<std::string> after;
    for (const auto& e : fs::directory_iterator(dir)) after.push_back(e.path().filename());
    EXPECT_EQ(after.size(), before.size()) << "a file was left behind";
  }
};

TEST_F(FilterCli, KernelTextEqualsConv2dAndTheNaiveLoop) {
  const auto out = (dir / "out.npy").string();
  const auto r = run_cli({"filter", png.string(), out, "--kernel", "0,1;2,3"});
  ASSERT_EQ(r.status, 0) << r.err;
  const Tensor got = load_npy(out);
  // The same tensor through conv2d: depthwise, same padding, replicate.
  const Tensor k = tensor({{0.f, 1.f}, {2.f, 3.f}});
  Conv2dOptions opt;
  opt.padding = Padding::same();
  opt.padding_mode = PaddingMode::Replicate;
  opt.groups = 3;
  const Tensor ref =
      conv2d(image, k.reshape({1, 1, 2, 2}).expand({3, 1, 2, 2}).contiguous(), {}, opt);
  EXPECT_TRUE(allclose(got, ref, 0, 1e-5));
  expect_close(got, testing::naive_filter(to_picture(image), {0, 1, 2, 3}, 2, 2, true), 1e-5);
}

TEST_F(FilterCli, EveryPresetMatchesTheNaiveLoop) {
  struct Case {
    const char* preset;
    std::vector<double> k;
    int64_t kh, kw;
  };
  const double g1[3] = {0.274068619, 0.451862762, 0.274068619};  // numpy, sigma 1 size 3
  std::vector<double> gauss;
  for (double a : g1)
    for (double b : g1) gauss.push_back(a * b);
  const Case cases[] = {
      {"edge-x", {1, -1}, 1, 2},
      {"edge-y", {1, -1}, 2, 1},
      {"sobel-x", {-1, 0, 1, -2, 0, 2, -1, 0, 1}, 3, 3},
      {"sobel-y", {-1, -2, -1, 0, 0, 0, 1, 2, 1}, 3, 3},
      {"laplacian", {0, 1, 0, 1, -4, 1, 0, 1, 0}, 3, 3},
      {"sharpen", {0, -1, 0, -1, 5, -1, 0, -1, 0}, 3, 3},
      {"box", std::vector<double>(9, 1.0 / 9), 3, 3},
      {"gaussian", gauss, 3, 3},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.preset);
    const auto out = (dir / "p.npy").string();
    std::vector<std::string> args = {"filter", png.string(), out, "--preset", c.preset};
    if (std::string(c.preset) == "gaussian")
      args.insert(args.end(), {"--sigma", "1", "--size", "3"});
    const auto r = run_cli(args);
    ASSERT_EQ(r.status, 0) << r.err;
    expect_close(load_npy(out), testing::naive_filter(to_picture(image), c.k, c.kh, c.kw, true),
                 1e-5);
  }
}

TEST_F(FilterCli, PngOutputIsTheMappedResult) {
  // sobel-x maps by abs by default; sharpen by clip; --map minmax on request.
  const std::vector<double> sobel = {-1, 0, 1, -2, 0, 2, -1, 0, 1};
  const Picture ref = testing::naive_filter(to_picture(image), sobel, 3, 3, true);
  const auto out = (dir / "edges.png").string();
  auto r = run_cli({"filter", png.string(), out, "--preset", "sobel-x"});
  ASSERT_EQ(r.status, 0) << r.err;
  Tensor got = read_image(out);
  ASSERT_EQ(got.shape(), (Shape{3, 17, 23}));
  auto g = got.to_vector();
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_NEAR(g[i], std::min(1.0, std::fabs(ref.v[i])), 1.0 / 255 + 1e-6) << i;

  r = run_cli(
      {"filter", png.string(), out, "--preset", "sobel-x", "--map", "minmax", "--depth", "16"});
  ASSERT_EQ(r.status, 0) << r.err;
  got = read_image(out);
  g = got.to_vector();
  const auto [lo, hi] = std::minmax_element(ref.v.begin(), ref.v.end());
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_NEAR(g[i], (ref.v[i] - *lo) / (*hi - *lo), 1.0 / 65535 + 1e-6) << i;
}

TEST_F(FilterCli, ConvOptionsAndGrayPassThrough) {
  const auto out = (dir / "o.npy").string();
  const auto r =
      run_cli({"filter", png.string(), out, "--kernel", "1,2,3;4,5,6;7,8,9", "--gray", "--stride",
               "2,1", "--padding=1,2", "--padding-mode", "reflect", "--dilation", "2"});
  ASSERT_EQ(r.status, 0) << r.err;
  Conv2dOptions opt;
  opt.stride = Pair2(2, 1);
  opt.padding = Padding(1, 2);
  opt.padding_mode = PaddingMode::Reflect;
  opt.dilation = 2;
  const Tensor k = arange(1.0, 10.0).reshape({1, 1, 3, 3});
  const Tensor ref = conv2d(to_gray(image), k, {}, opt);
  const Tensor got = load_npy(out);
  ASSERT_EQ(got.shape(), ref.shape());
  EXPECT_TRUE(allclose(got, ref, 0, 1e-4));
}

TEST_F(FilterCli, KernelFileAndVerbose) {
  // A (1, 1, 1, 2) kernel file holding the notebook's [1, -1].
  const auto kfile = dir / "k.npy";
  testing::write_npy(kfile, {1, 1, 1, 2}, {1, -1});
  const auto out = (dir / "o.npy").string();
  const auto r =
      run_cli({"filter", png.string(), out, "--kernel-file", kfile.string(), "--verbose"});
  ASSERT_EQ(r.status, 0) << r.err;
  expect_close(load_npy(out), testing::naive_filter(to_picture(image), {1, -1}, 1, 2, true), 1e-5);
  EXPECT_NE(r.out.find("conv2d"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" ms"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tensor([[ 1., -1.]])"), std::string::npos) << r.out;
}

TEST_F(FilterCli, AlphaIsKeptUnfiltered) {
  // RGBA: the colour channels are filtered, alpha is copied (filtering it would make the picture
  // transparent); when the size changes alpha is dropped.
  const Picture rgba = testing::generated_picture(4, 12, 15, 9);
  const auto in = (dir / "rgba.png").string();
  write_png(in, to_tensor(rgba), 16);
  const Tensor image4 = read_image(in);
  const auto out = (dir / "o.npy").string();
  auto r = run_cli({"filter", in, out, "--preset", "laplacian"});
  ASSERT_EQ(r.status, 0) << r.err;
  const Tensor got = load_npy(out);
  ASSERT_EQ(got.shape(), (Shape{4, 12, 15}));
  expect_close(got.slice(0, 0, 3).contiguous(),
               testing::naive_filter(to_picture(image4.slice(0, 0, 3).contiguous()),
                                     {0, 1, 0, 1, -4, 1, 0, 1, 0}, 3, 3, true),
               1e-5);
  EXPECT_TRUE(equal(got.slice(0, 3, 4).contiguous(), image4.slice(0, 3, 4).contiguous()));
  r = run_cli({"filter", in, out, "--preset", "laplacian", "--stride", "2"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(load_npy(out).shape(), (Shape{3, 6, 8}));
}

TEST_F(FilterCli, BadInputExitsTwoAndWritesNothing) {
  const auto out = (dir / "never.png").string();
  expect_refused({"filter", (dir / "missing.png").string(), out, "--preset", "sobel-x"},
                 "No such file");
  // Truncated PNG.
  {
    const auto bytes = testing::read_text(png);
    std::ofstream((dir / "cut.png").string(), std::ios::binary)
        << bytes.substr(0, bytes.size() / 2);
  }
  expect_refused({"filter", (dir / "cut.png").string(), out, "--preset", "sobel-x"}, "truncated");
  // Unsupported format (a GIF named .png).
  std::ofstream((dir / "gif.png").string(), std::ios::binary) << "GIF89a\x01\x00\x01\x00";
  expect_refused({"filter", (dir / "gif.png").string(), out, "--preset", "sobel-x"}, "GIF");
  // A kernel larger than the image (17 x 23).
  expect_refused({"filter", png.string(), out, "--preset", "gaussian", "--sigma", "4"},
                 "larger than the image");
  expect_refused({"filter", png.string(), out, "--kernel", "1,-1", "--dilation", "30"},
                 "larger than the image");
  // Kernel sources: none, two, malformed.
  expect_refused({"filter", png.string(), out}, "exactly one of");
  expect_refused({"filter", png.string(), out, "--kernel", "1,-1", "--preset", "sobel-x"},
                 "excludes");
  expect_refused({"filter", png.string(), out, "--kernel", "1,-1;2"}, "row 2");
  expect_refused({"filter", png.string(), out, "--preset", "emboss"}, "emboss");
  expect_refused({"filter", png.string(), out, "--preset", "sobel-x", "--sigma", "2"}, "--sigma");
  // Outputs: a JPEG name, a missing directory.
  expect_refused({"filter", png.string(), (dir / "o.jpg").string(), "--preset", "sobel-x"}, ".png");
  expect_refused({"filter", png.string(), (dir / "no/o.png").string(), "--preset", "sobel-x"},
                 "no/o.png");
  expect_refused({"filter", png.string(), out, "--preset", "sobel-x", "--padding-mode", "mirror"},
                 "mirror");
}

}  // namespace
}  // namespace convkit
