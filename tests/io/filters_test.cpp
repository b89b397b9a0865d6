// Preset kernels against textbook values, the kernel-text parser, and what the derivative kernels
// measure on pictures whose derivatives are known in closed form.
//
// Gaussian reference rows: numpy, exp(-x^2 / (2 sigma^2)) over x = -r..r, normalised (computed
// offline); the 2-D kernel is their outer product. Tolerance 1e-7 absolute (float rounding).
#include <convkit/error.h>
#include <convkit/filters.h>
#include <convkit/functional.h>
#include <convkit/tensor.h>
#include <gtest/gtest.h>

#include <vector>

namespace convkit {
namespace {

void expect_values(const Tensor& t, const Shape& shape, const std::vector<float>& want) {
  ASSERT_EQ(t.shape(), shape);
  EXPECT_EQ(t.to_vector(), want);
}

TEST(Filters, DerivativeAndSharpenPresetsAreTheTextbookKernels) {
  expect_values(filters::edge_x(), {1, 2}, {1, -1});  // D2L 7.2: K = torch.tensor([[1.0, -1.0]])
  expect_values(filters::edge_y(), {2, 1}, {1, -1});
  expect_values(filters::sobel_x(), {3, 3}, {-1, 0, 1, -2, 0, 2, -1, 0, 1});
  expect_values(filters::sobel_y(), {3, 3}, {-1, -2, -1, 0, 0, 0, 1, 2, 1});
  expect_values(filters::laplacian(), {3, 3}, {0, 1, 0, 1, -4, 1, 0, 1, 0});
  expect_values(filters::sharpen(), {3, 3}, {0, -1, 0, -1, 5, -1, 0, -1, 0});
  expect_values(filters::box(2), {2, 2}, {0.25f, 0.25f, 0.25f, 0.25f});
  EXPECT_EQ(filters::box(3).shape(), (Shape{3, 3}));
  EXPECT_FLOAT_EQ(filters::box(3).at({1, 1}), 1.f / 9);
}

TEST(Filters, GaussianMatchesNumpyRows) {
  struct Case {
    double sigma;
    int64_t size;
    std::vector<double> row;
  };
  const Case cases[] = {
      {1.0,
       0,
       {0.004433048, 0.054005583, 0.242036229, 0.39905028, 0.242036229, 0.054005583, 0.004433048}},
      {0.5,
       5,
       {2.638650827e-04, 1.064507720e-01, 7.865707259e-01, 1.064507720e-01, 2.638650827e-04}},
      {2.0,
       0,
       {0.002218196, 0.008773135, 0.027023158, 0.064825185, 0.12110939, 0.176213123, 0.199675627,
        0.176213123, 0.12110939, 0.064825185, 0.027023158, 0.008773135, 0.002218196}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("sigma " + std::to_string(c.sigma));
    const Tensor g = filters::gaussian(c.sigma, c.size);
    const auto n = static_cast<int64_t>(c.row.size());
    ASSERT_EQ(g.shape(), (Shape{n, n}));  // size 0 -> 2 * ceil(3 sigma) + 1
    double total = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        EXPECT_NEAR(g.at({i, j}), c.row[i] * c.row[j], 1e-7) << i << "," << j;
        total += g.at({i, j});
      }
    EXPECT_NEAR(total, 1.0, 1e-6);
  }
  EXPECT_THROW(filters::gaussian(0.0), Error);
  EXPECT_THROW(filters::gaussian(1.0, 4), Error);  // even size
  EXPECT_THROW(filters::box(0), Error);
}

TEST(Filters, PresetsByNameAndTheirValueMaps) {
  for (const std::string& name : filters::preset_names()) {
    SCOPED_TRACE(name);
    const Tensor k = filters::preset(name, 1.0, 0);
    EXPECT_EQ(k.dim(), 2);
  }
  EXPECT_TRUE(equal(filters::preset("sobel-y"), filters::sobel_y()));
  EXPECT_EQ(filters::preset("box", 1.0, 5).shape(), (Shape{5, 5}));
  EXPECT_EQ(filters::preset("gaussian", 0.5).shape(), (Shape{5, 5}));
  EXPECT_EQ(filters::default_value_map("sobel-x"), ValueMap::Abs);
  EXPECT_EQ(filters::default_value_map("edge-x"), ValueMap::Abs);
  EXPECT_EQ(filters::default_value_map("laplacian"), ValueMap::Abs);
  EXPECT_EQ(filters::default_value_map("gaussian"), ValueMap::Clip);
  EXPECT_EQ(filters::default_value_map("sharpen"), ValueMap::Clip);
  try {
    filters::preset("emboss");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sobel-x"), std::string::npos) << e.what();
  }
}

TEST(Filters, DerivativeKernelsMeasureKnownDerivatives) {
  // f(y, x) = 0.5 x + 0.25 y + 0.1 (x^2 + y^2) on a 7x9 grid; valid cross-correlation.
  const int64_t H = 7, W = 9;
  Tensor f = empty({1, 1, H, W});
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      f.set({0, 0, y, x}, static_cast<float>(0.5 * x + 0.25 * y + 0.1 * (x * x + y * y)));
  auto apply = [&](const Tensor& k) { return conv2d(f, k.unsqueeze(0).unsqueeze(0)); };
  // Sobel x: 8 * df/dx at the centre = 8 * (0.5 + 0.2 x) (exact for quadratics).
  const Tensor sx = apply(filters::sobel_x());
  const Tensor sy = apply(filters::sobel_y());
  const Tensor lap = apply(filters::laplacian());
  const Tensor ex = apply(filters::edge_x());
  for (int64_t y = 0; y < H - 2; ++y)
    for (int64_t x = 0; x < W - 2; ++x) {
      const double cx = x + 1, cy = y + 1;
      EXPECT_NEAR(sx.at({0, 0, y, x}), 8 * (0.5 + 0.2 * cx), 1e-4);
      EXPECT_NEAR(sy.at({0, 0, y, x}), 8 * (0.25 + 0.2 * cy), 1e-4);
      EXPECT_NEAR(lap.at({0, 0, y, x}), 0.4, 1e-4);  // f_xx + f_yy = 0.2 + 0.2
    }
  // [1, -1]: f(x) - f(x + 1) = -(0.5 + 0.1 (2x + 1)).
  for (int64_t x = 0; x < W - 1; ++x)
    EXPECT_NEAR(ex.at({0, 0, 3, x}), -(0.5 + 0.1 * (2 * x + 1)), 1e-4);
}

TEST(Filters, ParseKernelText) {
  expect_values(filters::parse_kernel("1,-1"), {1, 2}, {1, -1});
  expect_values(filters::parse_kernel("0,1;2,3"), {2, 2}, {0, 1, 2, 3});
  expect_values(filters::parse_kernel(" 1 ; -1 "), {2, 1}, {1, -1});
  expect_values(filters::parse_kernel("0.5,1e-1,-.25"), {1, 3}, {0.5f, 0.1f, -0.25f});
  for (const char* bad : {"", "1,", "1,,2", "1;2,3", "a,b", "1,nan", "1;inf", "1 2", "1,-1;"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(filters::parse_kernel(bad), Error);
  }
}

}  // namespace
}  // namespace convkit
