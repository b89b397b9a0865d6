// SGD against values worked out by hand from torch.optim.SGD's update rule.
#include <convkit/convkit.h>
#include <gtest/gtest.h>

using namespace convkit;

namespace {
Tensor param(std::vector<float> v) {
  Tensor p = from_vector(v, {static_cast<int64_t>(v.size())});
  p.requires_grad_();
  return p;
}
}  // namespace

TEST(SGD, PlainStep) {
  Tensor p = param({1.f, -2.f});
  p.set_grad(tensor({0.5f, 4.f}));
  optim::SGD opt({p}, 0.1);
  opt.step();  // p - 0.1 * g
  EXPECT_FLOAT_EQ(p.at({0}), 0.95f);
  EXPECT_FLOAT_EQ(p.at({1}), -2.4f);
}

TEST(SGD, MomentumDampeningWeightDecayNesterov) {
  // weight_decay 0.1: d = g + 0.1 p. momentum 0.9, dampening 0.5.
  Tensor p = param({1.f});
  optim::SGD opt({p}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.5, .weight_decay = 0.1});
  p.set_grad(tensor({1.f}));
  opt.step();  // d = 1.1, buf = 1.1, p = 1 - 0.11 = 0.89
  EXPECT_NEAR(p.item(), 0.89, 1e-6);
  opt.step();  // d = 1 + 0.089 = 1.089; buf = 0.9*1.1 + 0.5*1.089 = 1.5345; p = 0.89 - 0.15345
  EXPECT_NEAR(p.item(), 0.73655, 1e-6);

  Tensor q = param({2.f});
  optim::SGD nes({q}, {.lr = 0.5, .momentum = 0.5, .nesterov = true});
  q.set_grad(tensor({1.f}));
  nes.step();  // buf = 1, d = 1 + 0.5 * 1 = 1.5, q = 2 - 0.75
  EXPECT_NEAR(q.item(), 1.25, 1e-6);
  nes.step();  // buf = 0.5 + 1 = 1.5, d = 1 + 0.75 = 1.75, q = 1.25 - 0.875
  EXPECT_NEAR(q.item(), 0.375, 1e-6);
}

TEST(SGD, SkipsParametersWithoutGradAndValidates) {
  Tensor p = param({1.f});
  optim::SGD opt({p}, 0.1);
  opt.step();
  EXPECT_EQ(p.item(), 1.f);
  EXPECT_THROW(optim::SGD({p}, -1.0), Error);
  EXPECT_THROW(optim::SGD({p}, {.lr = 0.1, .nesterov = true}), Error);
  EXPECT_THROW(optim::SGD({ones({1})}, 0.1), Error);  // does not require grad
  p.set_grad(tensor({3.f}));
  opt.zero_grad();
  EXPECT_EQ(p.grad().item(), 0.f);
}
