#include <convkit/convkit.h>
#include <gtest/gtest.h>

#include "test_util.h"

using namespace convkit;
using convkit::testing::error_of;

namespace {
// A user-defined layer, as in the notebook's In [4].
class Conv2D : public nn::Module {
 public:
  explicit Conv2D(Pair2 k) {
    register_parameter("weight", weight, rand({k.h, k.w}));
    register_parameter("bias", bias, zeros({1}));
  }
  Tensor forward(const Tensor& x) override { return corr2d(x, weight) + bias; }
  Tensor weight, bias;
};

class Net : public nn::Module {
 public:
  Net() {
    register_module("c1", c1);
    register_module("c2", c2);
  }
  Tensor forward(const Tensor& x) override { return c2(c1(x).relu()); }
  nn::Conv2d c1{1, 2, 3, {.padding = 1}};
  nn::Conv2d c2{2, 1, 3};
};

}  // namespace

TEST(Module, NamedParametersAndChildren) {
  Net net;
  const auto named = net.named_parameters();
  ASSERT_EQ(named.size(), 4u);
  EXPECT_EQ(named[0].first, "c1.weight");
  EXPECT_EQ(named[3].first, "c2.bias");
  EXPECT_EQ(net.named_children().size(), 2u);
  EXPECT_EQ(net.parameters(false).size(), 0u);
  Tensor y = net(randn({1, 1, 5, 5}));
  EXPECT_EQ(y.shape(), (Shape{1, 1, 3, 3}));
  y.sum().backward();
  for (auto& p : net.parameters()) ASSERT_TRUE(p.grad().defined());
  net.zero_grad();
  for (auto& p : net.parameters()) EXPECT_EQ(p.grad().abs().sum().item(), 0.f);
  net.zero_grad(true);
  for (auto& p : net.parameters()) EXPECT_FALSE(p.grad().defined());
}

TEST(Module, UserDefinedLayerTrains) {
  manual_seed(0);
  Conv2D layer({1, 2});
  Tensor X = ones({6, 8});
  X.index({Slice(), Slice(2, 6)}) = 0;
  Tensor Y = corr2d(X, tensor({{1.f, -1.f}}));
  optim::SGD opt(layer.parameters(), 1e-2);
  float first = 0, last = 0;
  for (int i = 0; i < 60; ++i) {
    Tensor l = (layer(X) - Y).pow(2).sum();
    if (i == 0) first = l.item();
    last = l.item();
    opt.zero_grad();
    l.backward();
    opt.step();
  }
  EXPECT_LT(last, first * 0.05f);
}

TEST(Module, LazyConv2dLifecycleAndErrors) {
  nn::LazyConv2d lazy(1, {1, 2}, {.bias = false});
  const std::string before = error_of([&] { (void)lazy.parameters(); });
  EXPECT_NE(before.find("LazyConv2d"), std::string::npos);
  EXPECT_NE(before.find("forward"), std::string::npos);
  EXPECT_THROW(optim::SGD(lazy.parameters(), 0.1), Error);
  lazy.zero_grad();  // a no-op before initialisation, as in PyTorch
  EXPECT_FALSE(lazy.weight.defined());

  Tensor y = lazy(ones({1, 1, 6, 8}));
  EXPECT_EQ(y.shape(), (Shape{1, 1, 6, 7}));
  EXPECT_EQ(lazy.parameters().size(), 1u);
  EXPECT_EQ(lazy.weight.shape(), (Shape{1, 1, 1, 2}));
  // Unbatched input works after initialisation too.
  EXPECT_EQ(lazy(ones({1, 6, 8})).shape(), (Shape{1, 6, 7}));

  const std::string mismatch = error_of([&] { lazy(ones({1, 3, 6, 8})); });
  EXPECT_NE(mismatch.find("in_channels=1"), std::string::npos);
  EXPECT_NE(mismatch.find("(1, 3, 6, 8)"), std::string::npos);
  EXPECT_THROW(lazy(ones({6, 8})), Error);
}

TEST(Module, Conv2dValidatesItsArguments) {
  EXPECT_THROW(nn::Conv2d(3, 4, 3, {.groups = 2}), Error);  // 3 % 2
  EXPECT_THROW(nn::Conv2d(4, 3, 3, {.groups = 2}), Error);  // 3 % 2
  EXPECT_THROW(nn::Conv2d(0, 3, 3), Error);
  EXPECT_THROW(nn::Conv2d(1, 1, {0, 3}), Error);
  EXPECT_THROW(nn::Conv2d(1, 1, 3, {.stride = 0}), Error);
  nn::Conv2d conv(2, 4, 3);
  const std::string msg = error_of([&] { conv(ones({1, 3, 8, 8})); });
  EXPECT_NE(msg.find("conv2d"), std::string::npos);
  EXPECT_NE(msg.find("(1, 3, 8, 8)"), std::string::npos);
}

TEST(Module, Conv2dPositionalArgumentsMatchKeywords) {
  manual_seed(1);
  nn::Conv2d a(2, 2, 3, /*stride=*/2, /*padding=*/1, /*dilation=*/1, /*groups=*/2, /*bias=*/true);
  manual_seed(1);
  nn::Conv2d b(2, 2, 3, {.stride = 2, .padding = 1, .groups = 2});
  EXPECT_TRUE(equal(a.weight, b.weight));
  const Tensor x = randn({1, 2, 7, 7});
  EXPECT_TRUE(equal(a(x), b(x)));
  EXPECT_EQ(a(x).shape(), (Shape{1, 2, 4, 4}));
}
