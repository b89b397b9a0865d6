#include <convkit/convkit.h>
#include <gtest/gtest.h>

using namespace convkit;

namespace {
Tensor leaf(Shape shape, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  manual_seed(seed);
  Tensor t = empty(std::move(shape)).uniform_(lo, hi);
  t.requires_grad_();
  return t;
}

void expect_gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                      const std::vector<Tensor>& inputs) {
  std::string report;
  EXPECT_TRUE(gradcheck(fn, inputs, {}, &report)) << report;
}
}  // namespace

TEST(Autograd, HandComputedGradients) {
  Tensor x = tensor({1.f, 2.f, 3.f});
  x.requires_grad_();
  Tensor y = (x * x).sum();  // dy/dx = 2x
  y.backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{2, 4, 6}));
  // Accumulation: a second backward adds.
  (x * 3.f).sum().backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{5, 7, 9}));
  // Explicit gradient for a non-scalar output.
  x.set_grad(Tensor());
  (x * 2.f).backward(tensor({1.f, 10.f, 100.f}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{2, 20, 200}));
}

TEST(Autograd, DiamondGraphSumsBothPaths) {
  Tensor x = tensor({2.f});
  x.requires_grad_();
  Tensor a = x * 3.f;
  Tensor y = (a * a + a).sum();  // y = 9x^2 + 3x, dy/dx = 18x + 3 = 39
  y.backward();
  EXPECT_EQ(x.grad().item(), 39.f);
}

TEST(Autograd, NoGradDetachAndErrors) {
  Tensor x = ones({2});
  x.requires_grad_();
  {
    NoGradGuard guard;
    Tensor y = x * 2.f;
    EXPECT_FALSE(y.requires_grad());
  }
  EXPECT_FALSE(x.detach().requires_grad());
  EXPECT_TRUE((x * 2.f).requires_grad());
  EXPECT_EQ((x * 2.f).grad_fn()->name, "MulBackward0");
  EXPECT_THROW((x * 2.f).backward(), Error);        // not a scalar, no gradient given
  EXPECT_THROW(ones({2}).sum().backward(), Error);  // nothing requires grad
  EXPECT_THROW((x * 2.f).backward(ones({3})), Error);
}

TEST(Autograd, GradcheckArithmeticWithBroadcasting) {
  const auto a = leaf({2, 3}, 1), b = leaf({3}, 2), c = leaf({2, 1}, 3, 0.5f, 2.f);
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0] + v[1]; }, {a, b});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0] - v[1]; }, {a, b});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0] * v[1]; }, {a, b});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0] / v[1]; }, {a, c});
  expect_gradcheck([](const std::vector<Tensor>& v) { return 2.f - v[0] * 3.f + 1.f; }, {a});
  expect_gradcheck([](const std::vector<Tensor>& v) { return 1.f / v[0]; }, {c});
  expect_gradcheck([](const std::vector<Tensor>& v) { return -v[0] / 2.f; }, {a});
}

TEST(Autograd, GradcheckUnaryAndReductions) {
  const auto a = leaf({2, 3}, 4), p = leaf({2, 3}, 5, 0.5f, 2.f);
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].pow(3.f); }, {a});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].pow(0.5f); }, {p});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].abs(); }, {a});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].sqrt(); }, {p});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].exp(); }, {a});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].log(); }, {p});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].sigmoid(); }, {a});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].tanh(); }, {a});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].relu(); }, {a});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].sum(); }, {a});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].sum(1); }, {a});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].sum(0, true); }, {a});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].mean(); }, {a});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].max(); }, {a});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].min(); }, {a});
  const auto m = leaf({3, 2}, 6);
  expect_gradcheck([](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); }, {a, m});
}

TEST(Autograd, GradcheckViews) {
  const auto a = leaf({3, 4}, 7);
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].t() * 2.f; }, {a});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].reshape({2, 6}); }, {a});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].index({Slice(1), 2}); }, {a});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].slice(1, 0, 4, 2); }, {a});
  expect_gradcheck(
      [](const std::vector<Tensor>& v) {
        return v[0].permute({1, 0}).contiguous();
      },
      {a});
  expect_gradcheck(
      [](const std::vector<Tensor>& v) {
        return v[0].unsqueeze(1).expand({3, 2, 4});
      },
      {a});
  expect_gradcheck([](const std::vector<Tensor>& v) { return v[0].clone(); }, {a});
}

TEST(Autograd, GradcheckCorr2dBothArguments) {
  const auto X = leaf({5, 6}, 8), K = leaf({2, 3}, 9);
  expect_gradcheck([](const std::vector<Tensor>& v) { return corr2d(v[0], v[1]); }, {X, K});
  const auto T = leaf({4, 4}, 10), K1 = leaf({1, 2}, 11);
  expect_gradcheck([](const std::vector<Tensor>& v) { return corr2d(v[0].t(), v[1]); }, {T, K1});
}

TEST(Autograd, GradcheckConv2dAndLoss) {
  const auto x = leaf({2, 4, 6, 5}, 12), w = leaf({6, 2, 3, 2}, 13), b = leaf({6}, 14);
  Conv2dOptions o;
  o.stride = {2, 1};
  o.padding = {1, 0, 2, 1};
  o.dilation = {1, 2};
  o.groups = 2;
  expect_gradcheck([o](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], v[2], o); },
                   {x, w, b});
  const auto y = leaf({2, 3}, 15), t = leaf({2, 3}, 16);
  for (auto r : {Reduction::none, Reduction::mean, Reduction::sum}) {
    expect_gradcheck([r](const std::vector<Tensor>& v) { return mse_loss(v[0], v[1], r); }, {y, t});
  }
}

TEST(Autograd, GradcheckReportsAWrongGradient) {
  // A deliberately wrong backward (claims d/dx x^2 = x) must be caught.
  const auto a = leaf({3}, 17, 0.5f, 1.f);
  auto wrong = [](const std::vector<Tensor>& v) {
    Tensor out = (v[0] * v[0]).detach();
    return autograd::record(out, "WrongBackward", {v[0]}, [x = v[0].detach()](const Tensor& g) {
      return std::vector<Tensor>{g * x};
    });
  };
  std::string report;
  EXPECT_FALSE(gradcheck(wrong, {a}, {}, &report));
  EXPECT_NE(report.find("finite difference"), std::string::npos);
}

TEST(Autograd, LongTapeIsFreedWithoutRecursion) {
  // 50k chained ops: freeing the tape recursively would overflow the stack.
  Tensor w = ones({1});
  w.requires_grad_();
  {
    Tensor acc = zeros({1});
    for (int i = 0; i < 50000; ++i) acc = acc + w;
    acc.sum().backward();
  }
  EXPECT_EQ(w.grad().item(), 50000.f);
}

TEST(Autograd, InPlaceWithASourceThatRequiresGradIsRefused) {
  Tensor w = tensor({1.f, 2.f});
  w.requires_grad_();
  Tensor m = zeros({2});
  EXPECT_THROW(m += w * 3.f, Error);
  EXPECT_THROW(m.index({0}) = w.index({1}), Error);
  m += (w * 3.f).detach();  // explicit: no gradient wanted
  EXPECT_EQ(m.to_vector(), (std::vector<float>{3, 6}));
}

TEST(Autograd, TiesShareTheGradientAndLeavesTakeTheSeed) {
  Tensor x = tensor({1.f, 3.f, 3.f});
  x.requires_grad_();
  x.max().backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{0, 0.5f, 0.5f}));
  Tensor s = tensor(2.f);
  s.requires_grad_();
  s.backward();
  EXPECT_EQ(s.grad().item(), 1.f);
  EXPECT_EQ((x * 2.f).grad_fn()->name, "MulBackward0");
  EXPECT_EQ(x.mean().grad_fn()->name, "MeanBackward0");
  EXPECT_EQ(x.unsqueeze(0).t().grad_fn()->name, "TBackward0");
}
