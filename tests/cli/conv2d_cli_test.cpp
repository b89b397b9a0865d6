// `convkit conv2d` and `convkit conv2d-backward` end to end: the real binary on .npy files.
//
// Reference values come from PyTorch 1.13 (float64), computed offline with explicit padding
// (torch.nn.functional.pad, or numpy.pad(mode='symmetric')) followed by a valid convolution, on
// inputs whose values are small multiples of 1/4 so that every result is exact in float32:
//   x[i] = ((7 i) % 11 - 5) / 4,  w[i] = ((5 i) % 7 - 3) / 2,  b[o] = o / 4 - 1 / 2,
//   grad_output[i] = ((3 i) % 5 - 2) / 2   (i: the flat C-order index).
#include <convkit/io.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include "cli/run_cli.h"

namespace convkit {
namespace {

namespace fs = std::filesystem;
using testing::CliResult;
using testing::run_cli;

// ---- PyTorch's results (see the header comment) ----------------------------------------------

// Grouped: shape (2, 6, 2, 6)
const std::vector<float> kGrouped = {
    -0.25,  0.125,  2.125,  -5.875, 2.25,   0.75,   1.875,  -3.5,   1.5,   2.625,  -3.25,  0.5,
    -2.5,   1.75,   -2.75,  1.125,  -0.125, -3.25,  -2.875, 1.75,   1.0,   -2.625, 1.25,   -0.125,
    2.25,   -2.75,  2.0,    1.125,  0.125,  1.5,    2.0,    -2.625, 1.375, 2.625,  -3.0,   0.125,
    -2.25,  1.375,  3.25,   -5.125, 0.625,  1.0,    1.125,  -3.125, 3.5,   0.75,   -2.375, 1.875,
    3.25,   1.75,   -5.875, 3.75,   2.875,  -2.5,   -2.25,  1.5,    2.25,  -1.75,  2.625,  -2.375,
    0.875,  -2.25,  3.375,  2.125,  -1.875, 2.75,   2.25,   0.875,  1.875, 2.75,   -2.0,   3.0,
    -0.125, 0.25,   -6.5,   2.0,    0.375,  -3.875, -3.125, 1.125,  0.5,   -2.5,   0.75,   0.375,
    2.125,  -3.25,  1.75,   2.875,  -3.0,   0.75,   1.875,  -3.125, 0.25,  2.125,  -4.25,  -0.125,
    -2.625, 2.0,    1.25,   -2.375, 1.5,    0.125,  -2.75,  2.25,   0.875, -2.0,   1.25,   0.25,
    1.25,   2.125,  -5.5,   2.625,  0.75,   1.125,  0.625,  1.875,  -2.0,  0.75,   2.25,   -3.125,
    1.375,  -2.875, 3.75,   1.0,    -2.125, 2.125,  1.75,   1.375,  1.375, 2.875,  -2.25,  2.375,
    -2.0,   1.75,   2.5,    -1.5,   2.875,  -2.125, -3.25,  0.875,  1.25,  -2.0,   2.875,  -1.75};
// SameReflect: shape (1, 3, 5, 6)
const std::vector<float> kSameReflect = {
    -2.75,  3.0,    -0.625, 2.625,  0.375,  -0.5,   -1.75, 6.75,   -2.375, -3.25,  1.375,  -5.0,
    4.0,    1.5,    -0.75,  1.125,  1.625,  -0.625, 1.5,   -2.375, 0.875,  -2.75,  -5.0,   5.125,
    -0.5,   2.5,    -3.875, 0.75,   2.625,  0.375,  5.25,  -7.375, -0.125, 3.0,    -7.625, 2.0,
    -1.125, 1.375,  3.125,  2.125,  -1.625, 2.5,    -0.25, 2.25,   -0.125, -6.625, 4.75,   -4.875,
    5.625,  -0.125, 3.0,    0.625,  -0.375, 2.375,  1.875, -6.625, -3.5,   2.375,  -4.125, 5.5,
    -0.75,  0.625,  3.0,    -0.125, 3.625,  -1.625, 3.0,   -6.625, -0.125, 2.25,   -6.375, 2.125,
    0.75,   2.125,  3.125,  1.375,  -1.75,  4.0,    -2.5,  3.0,    -0.125, -7.375, 6.0,    -4.75,
    3.375,  -3.5,   3.0,    4.0,    2.25,   -1.625};
// CircularFourSided: shape (1, 2, 3, 3)
const std::vector<float> kCircularFourSided = {1.375, 3.625, -0.25,  3.0,    -7.125, -1.375,
                                               1.75,  2.625, -2.625, -4.125, -3.25,  0.875,
                                               2.625, 2.125, -3.375, -0.125, 2.125,  3.5};
// Symmetric: shape (1, 2, 6, 5)
const std::vector<float> kSymmetric = {
    -4.875, 4.75,   1.75,  -1.0,   2.25,   -4.125, 4.125,  2.5,   -1.625, 1.625, -0.875, 0.5,
    3.0,    1.625,  2.125, -0.625, 0.75,   1.875,  -2.25,  -1.75, 3.25,   -2.25, 1.625,  1.625,
    -2.0,   2.5,    -3.0,  2.25,   2.25,   -1.375, 1.125,  -0.75, 2.0,    0.875, -0.5,   1.875,
    -1.375, 2.75,   0.25,  -1.125, 2.125,  1.625,  3.0,    0.5,   -0.875, 1.875, -1.375, -1.375,
    0.25,   -1.125, 2.75,  2.25,   -1.875, 1.125,  -1.625, 2.0,   1.5,    -1.25, 1.75,   -1.0};
// Constant: shape (1, 2, 4, 4)
const std::vector<float> kConstant = {-3.875, 4.5,    2.75, 3.125, -1.0,   -3.25, -1.0,   5.125,
                                      -10.25, 4.375,  2.5,  -4.5,  -2.875, 3.75,  -3.625, 0.625,
                                      0.875,  -3.375, 4.0,  3.375, -5.75,  2.75,  4.625,  -2.5,
                                      3.875,  -0.75,  -3.0, 6.75,  0.375,  -1.5,  0.25,   -0.625};
// UnbatchedReplicate: shape (4, 6, 5)
const std::vector<float> kUnbatchedReplicate = {
    3.5,    6.25,   0.875,  1.0,    -1.125, 3.0,    5.75,   -2.375, 4.625,  -0.25,  -3.25,  6.375,
    -0.375, -0.25,  -1.0,   -5.375, 0.125,  5.75,   -5.125, 2.375,  -2.875, -2.875, 5.5,    -4.0,
    -3.375, -2.875, -2.875, 5.5,    -4.0,   -6.125, -5.0,   2.25,   2.25,   2.25,   0.5,    -5.25,
    2.0,    0.625,  -2.125, 3.0,    -6.875, -3.75,  7.25,   -3.75,  5.5,    -4.125, -6.5,   8.625,
    -3.75,  -4.125, 3.0,    -6.25,  2.0,    0.625,  -5.25,  3.25,   -6.0,   2.25,   2.25,   -5.0,
    -6.5,   -4.375, 1.0,    0.875,  -0.5,   -6.5,   -4.375, 1.0,    -1.875, 3.625,  -3.5,   -6.875,
    2.625,  -0.25,  -0.25,  4.125,  -6.125, -0.75,  4.625,  -3.625, 6.25,   -2.625, -4.125, 2.625,
    -0.125, 6.75,   -2.125, -3.625, 5.875,  3.125,  -7.125, -6.625, -2.0,   1.25,   0.25,   -6.875,
    -6.375, -0.375, 0.125,  -3.625, 0.75,   -5.625, -3.75,  5.0,    -4.25,  1.875,  -3.125, -4.0,
    3.375,  -3.125, 6.875,  1.875,  -5.875, 2.875,  3.25,   5.875,  0.875,  -6.875, 6.0,    7.75};
// StridedSame: shape (1, 3, 3, 4)
const std::vector<float> kStridedSame = {
    5.375, 1.625, -2.125, -0.375, 1.125,  1.5,   -2.25,  -0.375, -2.75, 3.0,   -0.875, -0.75,
    -2.0,  -1.0,  1.375,  -1.375, -1.875, -2.25, 1.5,    1.5,    -0.25, -1.0,  -0.375, 1.125,
    0.125, 3.125, -2.125, -1.375, -2.25,  3.5,   -0.375, -1.125, -2.25, 2.875, 2.5,    -0.875};
// GroupedGradInput: shape (2, 4, 3, 4)
const std::vector<float> kGroupedGradInput = {
    0.75, 2.25,  0.0,   -1.0, -4.5,  0.0,  0.75,  1.5,   2.25,  0.0,   -1.0, -2.0,  1.0,  -1.25,
    1.5,  0.5,   -2.5,  1.5,  -3.25, 3.25, -1.25, 1.5,   0.5,   -1.75, 0.5,  -1.5,  2.75, -0.5,
    3.75, 1.25,  -3.75, 0.0,  -1.5,  2.75, -0.5,  -1.25, 2.25,  0.0,   -1.0, -2.0,  0.0,  0.75,
    1.5,  2.25,  0.0,   -1.0, -2.0,  0.75, 0.0,   -1.0,  -2.0,  0.75,  0.75, 1.5,   2.25, -4.5,
    -1.0, -2.0,  0.75,  2.25, 1.5,   0.5,  -1.75, 1.0,   -3.25, 3.25,  1.0,  -2.5,  0.5,  -1.75,
    1.0,  -1.25, 2.75,  -0.5, -1.25, 0.5,  -3.75, 0.0,   -1.25, 3.75,  -0.5, -1.25, 0.5,  -1.5,
    -1.0, -2.0,  0.75,  2.25, 1.5,   2.25, -4.5,  0.0,   -2.0,  0.75,  2.25, 0.0};
// GroupedGradWeight: shape (6, 2, 3, 2)
const std::vector<float> kGroupedGradWeight = {
    -0.5,   0.125, -1.375, 0.375,  -1.125, 1.375,  -1.0,   1.375,  1.0,    -0.625, 1.75,   -0.875,
    1.375,  -0.5,  -0.625, -1.375, 0.125,  -1.125, -0.875, -1.0,   2.625,  1.0,    -1.25,  1.75,
    -1.125, 1.375, 1.375,  -0.625, 0.125,  0.125,  1.75,   -0.875, -1.375, 2.625,  1.375,  -1.25,
    0.125,  0.5,   0.625,  0.0,    1.25,   -1.5,   0.125,  -2.125, 1.5,    0.0,    2.125,  1.125,
    -1.5,   0.125, 2.5,    0.625,  -0.375, 1.25,   1.125,  0.125,  -2.625, 1.5,    -1.25,  2.125,
    1.25,   -1.5,  0.625,  2.5,    0.5,    -0.375, 2.125,  1.125,  -1.125, -2.625, -2.125, -1.25};
// GroupedGradBias: shape (6,)
const std::vector<float> kGroupedGradBias = {0.0, -0.5, -1.0, 1.0, 0.5, 0.0};
// ReflectGradInput: shape (1, 2, 5, 6)
const std::vector<float> kReflectGradInput = {
    1.25, -0.75, 0.0,  0.0,   0.0,  -0.25, -1.75, -1.0,  2.25,  3.25, -2.5, -1.0, -2.0, 1.25, 3.0,
    -2.0, 0.5,   0.25, 2.25,  0.5,  -2.5,  -4.75, 1.5,   1.5,   0.0,  2.0,  0.0,  0.75, -2.5, 1.0,
    0.0,  1.5,   1.25, -2.75, 1.25, -0.75, 2.25,  -2.25, -1.75, 0.5,  0.5,  2.0,  -2.0, 0.25, -3.25,
    3.5,  1.75,  -2.0, -1.75, 0.75, 0.5,   3.5,   1.5,   -3.75, 1.25, -3.0, 1.25, 0.25, -2.5, 1.0};
// ReflectGradWeight: shape (3, 2, 3, 3)
const std::vector<float> kReflectGradWeight = {
    -2.0,  -1.875, 2.75,   -0.5,   -3.125, 2.875,  -1.75,  1.125,  0.25,  3.375,  -2.0,
    2.625, -0.625, -3.25,  2.75,   -0.5,   3.75,   -2.625, -2.625, 3.75,  0.5,    -1.375,
    -3.25, 0.375,  2.625,  -2.0,   3.0,    -1.125, 1.125,  -2.125, -1.25, -3.125, 0.5,
    0.0,   -1.875, -2.375, 3.0,    -2.5,   2.625,  0.25,   1.625,  -1.5,  -1.125, 3.0,
    -4.25, 0.0,    -1.375, -3.125, 0.0,    1.375,  -1.75,  -1.375, 0.0,   1.0};

// ---- inputs ------------------------------------------------------------------------------------

int64_t numel_of(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<float> pattern(const Shape& shape, int mul, int mod, int shift, float div) {
  std::vector<float> v(static_cast<size_t>(numel_of(shape)));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<float>(static_cast<int64_t>(i * mul) % mod - shift) / div;
  return v;
}
Tensor X(const Shape& s) {
  return from_vector(pattern(s, 7, 11, 5, 4.f), s);
}
Tensor W(const Shape& s) {
  return from_vector(pattern(s, 5, 7, 3, 2.f), s);
}
Tensor GY(const Shape& s) {
  return from_vector(pattern(s, 3, 5, 2, 2.f), s);
}
Tensor B(int64_t o) {
  std::vector<float> v;
  for (int64_t k = 0; k < o; ++k) v.push_back(0.25f * static_cast<float>(k) - 0.5f);
  return from_vector(v, {o});
}

// Writes `t` as numpy's default float64 ('<f8', format 1.0), built by hand from the spec.
void save_f8(const std::string& path, const Tensor& t) {
  const Shape& s = t.shape();
  std::string shape = "(";
  for (size_t i = 0; i < s.size(); ++i) shape += (i ? ", " : "") + std::to_string(s[i]);
  shape += s.size() == 1 ? ",)" : ")";
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string bytes = "\x93NUMPY\x01";
  bytes += '\0';
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  bytes += header;
  for (float f : t.to_vector()) {
    const double d = f;
    char raw[8];
    std::memcpy(raw, &d, 8);  // little-endian host (x86-64, aarch64)
    bytes.append(raw, 8);
  }
  std::ofstream(path, std::ios::binary) << bytes;
}

class Conv2dCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::test_dir(std::string("conv2d_cli_") +
                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string p(const std::string& name) const { return (dir_ / name).string(); }
  std::string save(const std::string& name, const Tensor& t) {
    save_npy(p(name), t);
    return p(name);
  }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }
  // Runs convkit and expects success.
  void ok(const std::vector<std::string>& args) {
    const CliResult r = run_cli(args);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
  }
  // Runs convkit and expects exit status 2, every fragment in stderr, and no new file at all.
  void fails(const std::vector<std::string>& args, std::initializer_list<std::string> fragments) {
    const auto before = entries();
    const CliResult r = run_cli(args);
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_EQ(r.out, "");
    for (const auto& f : fragments)
      EXPECT_NE(r.err.find(f), std::string::npos) << "'" << f << "' not in: " << r.err;
    EXPECT_EQ(entries(), before) << r.err;
  }
  void expect_file(const std::string& name, const Shape& shape, const std::vector<float>& want) {
    const Tensor t = load_npy(p(name));
    ASSERT_EQ(t.shape(), shape);
    const std::vector<float> got = t.to_vector();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], want[i], 1e-5) << name << " at " << i;
  }

  fs::path dir_;
};

// ---- forward -----------------------------------------------------------------------------------

TEST_F(Conv2dCli, GroupedStridedDilatedWithBiasFromFloat64) {
  save_f8(p("x.npy"), X({2, 4, 3, 4}));  // numpy's default dtype, converted on load
  save("w.npy", W({6, 2, 3, 2}));
  save("b.npy", B(6));
  ok({"conv2d", "--stride", "2,1", "--input", p("x.npy"), "--weight=" + p("w.npy"), "--bias",
      p("b.npy"), "--padding=1,2", "--dilation", "1,2", "--groups", "2", "--output", p("y.npy")});
  expect_file("y.npy", {2, 6, 2, 6}, kGrouped);
}

TEST_F(Conv2dCli, SameWithEvenKernelAndReflect) {
  save("x.npy", X({1, 2, 5, 6}));
  save("w.npy", W({3, 2, 4, 3}));
  ok({"conv2d", "--input", p("x.npy"), "--weight", p("w.npy"), "--output", p("y.npy"), "--padding",
      "same", "--padding-mode", "reflect"});
  expect_file("y.npy", {1, 3, 5, 6}, kSameReflect);
}

TEST_F(Conv2dCli, FourSidedCircularStrided) {
  save("x.npy", X({1, 2, 5, 6}));
  save("w.npy", W({2, 2, 3, 3}));
  ok({"conv2d", "--input", p("x.npy"), "--weight", p("w.npy"), "--output", p("y.npy"), "--padding",
      "1,0,2,1", "--padding-mode=circular", "--stride", "2"});
  expect_file("y.npy", {1, 2, 3, 3}, kCircularFourSided);
}

TEST_F(Conv2dCli, SymmetricDilated) {
  save("x.npy", X({1, 1, 4, 5}));
  save("w.npy", W({2, 1, 2, 3}));
  ok({"conv2d", "--input", p("x.npy"), "--weight", p("w.npy"), "--output", p("y.npy"), "--padding",
      "2", "--padding-mode", "symmetric", "--dilation", "2"});
  expect_file("y.npy", {1, 2, 6, 5}, kSymmetric);
}

TEST_F(Conv2dCli, ConstantValueWithBias) {
  save("x.npy", X({1, 3, 4, 4}));
  save("w.npy", W({2, 3, 3, 3}));
  save("b.npy", B(2));
  ok({"conv2d", "--padding-mode=constant", "--padding-value", "1.5", "--padding", "1", "--input",
      p("x.npy"), "--weight", p("w.npy"), "--bias", p("b.npy"), "--output", p("y.npy")});
  expect_file("y.npy", {1, 2, 4, 4}, kConstant);
}

TEST_F(Conv2dCli, UnbatchedReplicate) {
  save("x.npy", X({2, 4, 5}));
  save("w.npy", W({4, 2, 3, 3}));
  ok({"conv2d", "--input", p("x.npy"), "--weight", p("w.npy"), "--output", p("y.npy"), "--padding",
      "2,1", "--padding-mode", "replicate"});
  expect_file("y.npy", {4, 6, 5}, kUnbatchedReplicate);
}

TEST_F(Conv2dCli, StridedSameDepthwise) {
  // TensorFlow's 'same' at stride 2: H 6 -> 3 (pads top 0, bottom 1), W 7 -> 4 (left 0, right 1).
  save("x.npy", X({1, 3, 6, 7}));
  save("w.npy", W({3, 1, 3, 2}));
  ok({"conv2d", "--input", p("x.npy"), "--weight", p("w.npy"), "--output", p("y.npy"), "--stride",
      "2", "--padding", "same", "--groups", "3"});
  expect_file("y.npy", {1, 3, 3, 4}, kStridedSame);
}

TEST_F(Conv2dCli, ValidIsNoPaddingAndOutputIsReplaced) {
  save("x.npy", X({1, 2, 5, 6}));
  save("w.npy", W({2, 2, 3, 3}));
  save("y.npy", X({7}));  // an older file, replaced
  ok({"conv2d", "--input", p("x.npy"), "--weight", p("w.npy"), "--output", p("y.npy"), "--padding",
      "valid"});
  ok({"conv2d", "--input", p("x.npy"), "--weight", p("w.npy"), "--output", p("y0.npy")});
  EXPECT_EQ(load_npy(p("y.npy")).shape(), (Shape{1, 2, 3, 4}));
  EXPECT_TRUE(equal(load_npy(p("y.npy")), load_npy(p("y0.npy"))));
  EXPECT_EQ(entries(), (std::vector<std::string>{"w.npy", "x.npy", "y.npy", "y0.npy"}));
}

// ---- backward ----------------------------------------------------------------------------------

TEST_F(Conv2dCli, BackwardAllGradients) {
  save("x.npy", X({2, 4, 3, 4}));
  save("w.npy", W({6, 2, 3, 2}));
  save("b.npy", B(6));
  save("gy.npy", GY({2, 6, 2, 6}));
  ok({"conv2d-backward",
      "--input",
      p("x.npy"),
      "--weight",
      p("w.npy"),
      "--bias",
      p("b.npy"),
      "--grad-output",
      p("gy.npy"),
      "--stride",
      "2,1",
      "--padding",
      "1,2",
      "--dilation",
      "1,2",
      "--groups",
      "2",
      "--grad-input",
      p("gx.npy"),
      "--grad-weight",
      p("gw.npy"),
      "--grad-bias",
      p("gb.npy")});
  expect_file("gx.npy", {2, 4, 3, 4}, kGroupedGradInput);
  expect_file("gw.npy", {6, 2, 3, 2}, kGroupedGradWeight);
  expect_file("gb.npy", {6}, kGroupedGradBias);
}

TEST_F(Conv2dCli, BackwardThroughReflectPaddingSomeGradients) {
  save("x.npy", X({1, 2, 5, 6}));
  save("w.npy", W({3, 2, 3, 3}));
  save("gy.npy", GY({1, 3, 4, 3}));
  ok({"conv2d-backward", "--input", p("x.npy"), "--weight", p("w.npy"), "--grad-output",
      p("gy.npy"), "--padding", "2,1", "--padding-mode", "reflect", "--stride", "2", "--grad-input",
      p("gx.npy")});
  expect_file("gx.npy", {1, 2, 5, 6}, kReflectGradInput);
  ok({"conv2d-backward", "--input", p("x.npy"), "--weight", p("w.npy"), "--grad-output",
      p("gy.npy"), "--padding", "2,1", "--padding-mode", "reflect", "--stride", "2",
      "--grad-weight", p("gw.npy")});
  expect_file("gw.npy", {3, 2, 3, 3}, kReflectGradWeight);
  EXPECT_EQ(entries(), (std::vector<std::string>{"gw.npy", "gx.npy", "gy.npy", "w.npy", "x.npy"}));
}

// ---- errors: status 2, a message on stderr, nothing written ------------------------------------

TEST_F(Conv2dCli, BadFilesAndPaths) {
  save("x.npy", X({1, 2, 5, 6}));
  save("w.npy", W({4, 2, 3, 3}));
  save("b.npy", B(3));
  std::ofstream(p("junk.npy")) << "not a npy";
  const std::string x = p("x.npy"), w = p("w.npy"), y = p("y.npy");
  fails({"conv2d", "--input", p("none.npy"), "--weight", w, "--output", y},
        {"--input: load_npy: '" + p("none.npy") + "': cannot open"});
  fails({"conv2d", "--input", x, "--weight", p("junk.npy"), "--output", y},
        {"--weight: load_npy:", "not a .npy file"});
  fails({"conv2d", "--input", x, "--weight", w, "--bias", p("b.npy"), "--output", y},
        {"--bias", "(3,)", "(4, 2, 3, 3)", "expected bias (4,)"});
  fails({"conv2d", "--input", x, "--weight", w, "--output", p("missing/y.npy")},
        {"--output: cannot write '" + p("missing/y.npy") + "'", "does not exist"});
  fails({"conv2d", "--input", x, "--weight", w, "--output", p(std::string(300, 'y'))},
        {"--output: the file name", "at most 255"});
  fs::create_directories(dir_ / "sub");
  fails({"conv2d", "--input", x, "--weight", w, "--output", p("sub")},
        {"--output: cannot write '" + p("sub") + "': it is a directory"});
  fails({"conv2d", "--input", x, "--weight", w, "--output", dir_.string() + "/"},
        {"--output", "names a directory"});
}

TEST_F(Conv2dCli, ShapesThatDoNotFit) {
  save("x.npy", X({1, 2, 5, 6}));
  save("x3.npy", X({1, 3, 5, 6}));
  save("w.npy", W({4, 2, 3, 3}));
  const std::string x = p("x.npy"), w = p("w.npy"), y = p("y.npy");
  fails({"conv2d", "--input", p("x3.npy"), "--weight", w, "--output", y},
        {"conv2d", "has 3 channels"});
  fails({"conv2d", "--input", x, "--weight", w, "--output", y, "--groups", "3"},
        {"conv2d", "groups"});
  fails({"conv2d", "--input", x, "--weight", w, "--output", y, "--padding", "5", "--padding-mode",
         "reflect"},
        {"conv2d", "reflect"});
  // Dilation 4 spreads the 3x3 kernel over 9x9, more than the 5x6 input.
  fails({"conv2d", "--input", x, "--weight", w, "--output", y, "--dilation", "4"},
        {"conv2d: the dilated kernel (9, 9)"});
}

TEST_F(Conv2dCli, BadNumberOptions) {
  save("x.npy", X({1, 2, 5, 6}));
  save("w.npy", W({4, 2, 3, 3}));
  const std::string x = p("x.npy"), w = p("w.npy"), y = p("y.npy");
  const std::vector<std::string> base = {"conv2d", "--input", x, "--weight", w, "--output", y};
  const auto with = [&](std::initializer_list<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra);
    return args;
  };
  fails({"conv2d", "--input", x, "--weight", w}, {"--output", "required"});
  fails({"conv2d", "--weight", w, "--output", y}, {"--input", "required"});
  fails(with({"--stride", "a"}), {"--stride: 'a' in 'a' is not an integer", "S or SH,SW"});
  fails(with({"--stride", "1,2,3"}), {"--stride: '1,2,3' has 3 values", "S or SH,SW"});
  fails(with({"--stride", "2,"}), {"--stride: '' in '2,' is not an integer"});
  fails(with({"--stride", "0"}), {"conv2d: stride must be >= 1"});
  fails(with({"--stride", "-1,1"}), {"conv2d: stride must be >= 1"});
  fails(with({"--stride", "2", "3"}), {"not expected: 3"});  // one value per option
  fails(with({"--dilation", "x,1"}), {"--dilation: 'x' in 'x,1' is not an integer", "D or DH,DW"});
  fails(with({"--groups", "two"}), {"--groups: 'two' in 'two' is not an integer"});
  fails(with({"--groups", "0"}), {"conv2d", "groups"});
  fails(with({"--no-such-option", "1"}), {"--no-such-option"});
}

TEST_F(Conv2dCli, BadPaddingOptions) {
  save("x.npy", X({1, 2, 5, 6}));
  save("w.npy", W({4, 2, 3, 3}));
  const std::vector<std::string> base = {"conv2d",   "--input",  p("x.npy"), "--weight",
                                         p("w.npy"), "--output", p("y.npy")};
  const auto with = [&](std::initializer_list<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra);
    return args;
  };
  fails(with({"--padding", "1,2,3"}), {"--padding: '1,2,3' has 3 values", "L,R,T,B"});
  fails(with({"--padding", "1,a"}), {"--padding: 'a' in '1,a' is not an integer", "'same'"});
  fails(with({"--padding", "half"}), {"--padding: 'half' in 'half' is not an integer"});
  fails(with({"--padding", "-1"}), {"--padding: '-1' has a negative pad"});
  fails(with({"--padding", "1,2,3,4,5"}), {"--padding: '1,2,3,4,5' has 5 values"});
  fails(with({"--padding-mode", "mirror"}), {"--padding-mode", "mirror", "reflect", "symmetric"});
  fails(with({"--padding-value", "2"}), {"--padding-value", "only with --padding-mode constant"});
  fails(with({"--padding-mode", "constant", "--padding-value", "abc"}),
        {"--padding-value: 'abc' is not a number"});
}

TEST_F(Conv2dCli, BackwardErrors) {
  save("x.npy", X({1, 2, 5, 6}));
  save("w.npy", W({4, 2, 3, 3}));
  save("gy.npy", GY({1, 4, 3, 4}));
  save("gy_bad.npy", GY({1, 4, 3, 5}));
  const std::string x = p("x.npy"), w = p("w.npy"), gy = p("gy.npy");
  fails({"conv2d-backward", "--input", x, "--weight", w, "--grad-output", gy},
        {"at least one of --grad-input, --grad-weight and --grad-bias"});
  fails({"conv2d-backward", "--input", x, "--weight", w, "--grad-input", p("gx.npy")},
        {"--grad-output", "required"});
  fails({"conv2d-backward", "--input", x, "--weight", w, "--grad-output", p("gy_bad.npy"),
         "--grad-input", p("gx.npy")},
        {"grad_output of shape (1, 4, 3, 5)", "(1, 4, 3, 4)"});
  fails({"conv2d-backward", "--input", x, "--weight", w, "--grad-output", gy, "--grad-input",
         p("g.npy"), "--grad-weight", p("g.npy")},
        {"--grad-input and --grad-weight name the same file"});
  // The second output cannot be written: the first must not be left behind either.
  fails({"conv2d-backward", "--input", x, "--weight", w, "--grad-output", gy, "--grad-input",
         p("gx.npy"), "--grad-weight", p("missing/gw.npy")},
        {"--grad-weight: cannot write"});
  fails(
      {"conv2d-backward", "--input", x, "--weight", w, "--grad-output", gy, "--output", p("y.npy")},
      {"--output"});
}

TEST_F(Conv2dCli, ErrorKeepsAnExistingOutput) {
  save("x.npy", X({1, 2, 5, 6}));
  save("w.npy", W({4, 3, 3, 3}));  // wrong channel count
  save("y.npy", X({3}));
  fails({"conv2d", "--input", p("x.npy"), "--weight", p("w.npy"), "--output", p("y.npy")},
        {"conv2d"});
  EXPECT_TRUE(equal(load_npy(p("y.npy")), X({3})));
}

TEST_F(Conv2dCli, HelpDocumentsEverything) {
  const CliResult top = run_cli({"--help"});
  EXPECT_EQ(top.status, 0);
  EXPECT_NE(top.out.find("conv2d-backward"), std::string::npos) << top.out;
  EXPECT_NE(top.out.find("conv2d "), std::string::npos) << top.out;
  for (const char* cmd : {"conv2d", "conv2d-backward"}) {
    const CliResult r = run_cli({cmd, "--help"});
    EXPECT_EQ(r.status, 0);
    for (const char* opt : {"--input", "--weight", "--bias", "--stride", "--padding",
                            "--padding-mode", "--padding-value", "--dilation", "--groups", "same",
                            "L,R,T,B", "symmetric", "Ho = floor", "exit status is 2"})
      EXPECT_NE(r.out.find(opt), std::string::npos) << cmd << ": " << opt << "\n" << r.out;
  }
  const CliResult b = run_cli({"conv2d-backward", "--help"});
  for (const char* opt : {"--grad-output", "--grad-input", "--grad-weight", "--grad-bias"})
    EXPECT_NE(b.out.find(opt), std::string::npos) << opt;
}

}  // namespace
}  // namespace convkit
