// Every value the notebook (../shared/seed/convolutions-for-images.txt) prints, computed with
// convkit.
#include <convkit/convkit.h>
#include <gtest/gtest.h>

#include <cstdio>

using namespace convkit;

namespace {
Tensor edge_image(int64_t zero_from, int64_t zero_to) {
  Tensor X = ones({6, 8});
  X.index({Slice(), Slice(zero_from, zero_to)}) = 0;
  return X;
}

// The notebook's training cell (In [18]) under a seed; returns the printed losses and kernel.
std::pair<std::vector<float>, Tensor> train(uint64_t seed) {
  manual_seed(seed);
  Tensor X2d = ones({6, 8});
  X2d.index({Slice(), Slice(2)}) = 0;
  const Tensor K = tensor({{1., -1.}});
  const Tensor Y2d = corr2d(X2d, K);
  const Tensor X = X2d.reshape({1, 1, 6, 8}), Y = Y2d.reshape({1, 1, 6, 7});
  nn::LazyConv2d conv2d(1, {1, 2}, {.bias = false});
  const float lr = 3e-2f;
  std::vector<float> losses;
  for (int i = 0; i < 10; ++i) {
    Tensor l = (conv2d(X) - Y).pow(2);
    conv2d.zero_grad();
    l.sum().backward();
    conv2d.weight.data() -= lr * conv2d.weight.grad();
    if ((i + 1) % 2 == 0) losses.push_back(l.sum().item());
  }
  return {losses, conv2d.weight.data().reshape({1, 2})};
}
}  // namespace

TEST(Notebook, In3) {
  const Tensor X = tensor({{0.0, 1.0, 2.0}, {3.0, 4.0, 5.0}, {6.0, 7.0, 8.0}});
  const Tensor K = tensor({{0.0, 1.0}, {2.0, 3.0}});
  EXPECT_EQ(to_string(corr2d(X, K)), "tensor([[19., 25.],\n        [37., 43.]])");
}

TEST(Notebook, In5In6In7In8) {
  const Tensor X = edge_image(2, 6);
  EXPECT_EQ(to_string(X.index({0})), "tensor([1., 1., 0., 0., 0., 0., 1., 1.])");
  const Tensor K = tensor({{0.0, 1.0}, {2.0, 3.0}});  // the notebook reuses In [3]'s K
  const Tensor Y = corr2d(X, K);
  ASSERT_EQ(Y.shape(), (Shape{5, 7}));
  for (int64_t i = 0; i < 5; ++i) {
    EXPECT_EQ(Y.index({i}).to_vector(), (std::vector<float>{6, 2, 0, 0, 0, 4, 6}));
  }
  const Tensor Yt = corr2d(X.t(), K);
  ASSERT_EQ(Yt.shape(), (Shape{7, 5}));
  const std::vector<float> rows = {6, 1, 0, 0, 0, 5, 6};
  for (int64_t i = 0; i < 7; ++i) {
    EXPECT_EQ(Yt.index({i}).to_vector(), std::vector<float>(5, rows[static_cast<size_t>(i)]));
  }
}

TEST(Notebook, EdgeKernelOutput) {
  // Y2d = corr2d(X2d, [[1, -1]]): 1 where the image steps from 1 to 0 (column 1), else 0.
  Tensor X2d = ones({6, 8});
  X2d.index({Slice(), Slice(2)}) = 0;
  const Tensor Y = corr2d(X2d, tensor({{1., -1.}}));
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_EQ(Y.index({i}).to_vector(), (std::vector<float>{0, 1, 0, 0, 0, 0, 0}));
  }
}

TEST(Notebook, TrainingMatchesPyTorchUnderTheSameSeed) {
  // Printed by the notebook's code under torch.manual_seed(s) with PyTorch 1.13 (recorded offline).
  struct Case {
    uint64_t seed;
    std::vector<float> losses;
    float w0, w1;
  };
  const std::vector<Case> cases = {
      {0, {4.939f, 2.732f, 1.512f, 0.837f, 0.463f}, 0.7962f, -0.6702f},
      {1, {1.443f, 0.797f, 0.441f, 0.244f, 0.135f}, 0.8899f, -0.8219f},
      {42, {4.328f, 2.389f, 1.322f, 0.732f, 0.405f}, 0.8094f, -0.6916f},
  };
  for (const auto& c : cases) {
    const auto [losses, kernel] = train(c.seed);
    ASSERT_EQ(losses.size(), 5u);
    // Compared as printed: "%.3f" for the losses, PyTorch's format for the kernel.
    for (size_t i = 0; i < 5; ++i) {
      char got[32], want[32];
      std::snprintf(got, sizeof got, "%.3f", double(losses[i]));
      std::snprintf(want, sizeof want, "%.3f", double(c.losses[i]));
      EXPECT_STREQ(got, want) << "seed " << c.seed << " epoch " << 2 * (i + 1);
    }
    EXPECT_EQ(to_string(kernel), to_string(tensor({{c.w0, c.w1}}))) << "seed " << c.seed;
  }
}
