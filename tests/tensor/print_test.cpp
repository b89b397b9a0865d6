// Expected strings are repr() of the same tensors in PyTorch 1.13 (torch/_tensor_str.py).
#include <convkit/convkit.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

using namespace convkit;

TEST(Print, NotebookOutputs) {
  EXPECT_EQ(to_string(tensor({{19.f, 25.f}, {37.f, 43.f}})),
            "tensor([[19., 25.],\n        [37., 43.]])");
  EXPECT_EQ(to_string(tensor({{0.7703f, -0.6284f}})), "tensor([[ 0.7703, -0.6284]])");
}

TEST(Print, ModesMatchPyTorch) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(to_string(tensor({1e-5f, 1.f})), "tensor([1.0000e-05, 1.0000e+00])");
  EXPECT_EQ(to_string(tensor({1.5f, nan, inf})), "tensor([1.5000,    nan,    inf])");
  EXPECT_EQ(to_string(tensor({1000000.f, 1.f})), "tensor([1.0000e+06, 1.0000e+00])");
  EXPECT_EQ(to_string(tensor(3.5f)), "tensor(3.5000)");
  EXPECT_EQ(to_string(zeros({0, 3})), "tensor([], size=(0, 3))");
  EXPECT_EQ(to_string(tensor({0.f, 0.f})), "tensor([0., 0.])");
  EXPECT_EQ(to_string(tensor({-1.f, 2.f, nan})), "tensor([-1.,  2., nan])");
  EXPECT_EQ(to_string(tensor({123456789.f, 1.f})), "tensor([1.2346e+08, 1.0000e+00])");
  Tensor w = tensor({{1.f, 2.f}, {3.f, 4.f}});
  w.requires_grad_();
  EXPECT_EQ(to_string(w), "tensor([[1., 2.],\n        [3., 4.]], requires_grad=True)");
}

TEST(Print, LineWrappingAndThreeDims) {
  EXPECT_EQ(to_string(arange(30) / 3.f),
            "tensor([0.0000, 0.3333, 0.6667, 1.0000, 1.3333, 1.6667, 2.0000, 2.3333, 2.6667,\n"
            "        3.0000, 3.3333, 3.6667, 4.0000, 4.3333, 4.6667, 5.0000, 5.3333, 5.6667,\n"
            "        6.0000, 6.3333, 6.6667, 7.0000, 7.3333, 7.6667, 8.0000, 8.3333, 8.6667,\n"
            "        9.0000, 9.3333, 9.6667])");
  EXPECT_EQ(to_string(arange(24).reshape({2, 3, 4}) / 7.f),
            "tensor([[[0.0000, 0.1429, 0.2857, 0.4286],\n"
            "         [0.5714, 0.7143, 0.8571, 1.0000],\n"
            "         [1.1429, 1.2857, 1.4286, 1.5714]],\n\n"
            "        [[1.7143, 1.8571, 2.0000, 2.1429],\n"
            "         [2.2857, 2.4286, 2.5714, 2.7143],\n"
            "         [2.8571, 3.0000, 3.1429, 3.2857]]])");
}

TEST(Print, SummarisesLargeTensors) {
  EXPECT_EQ(to_string(arange(2000).reshape({40, 50})),
            "tensor([[0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 4.7000e+01, 4.8000e+01,\n"
            "         4.9000e+01],\n"
            "        [5.0000e+01, 5.1000e+01, 5.2000e+01,  ..., 9.7000e+01, 9.8000e+01,\n"
            "         9.9000e+01],\n"
            "        [1.0000e+02, 1.0100e+02, 1.0200e+02,  ..., 1.4700e+02, 1.4800e+02,\n"
            "         1.4900e+02],\n"
            "        ...,\n"
            "        [1.8500e+03, 1.8510e+03, 1.8520e+03,  ..., 1.8970e+03, 1.8980e+03,\n"
            "         1.8990e+03],\n"
            "        [1.9000e+03, 1.9010e+03, 1.9020e+03,  ..., 1.9470e+03, 1.9480e+03,\n"
            "         1.9490e+03],\n"
            "        [1.9500e+03, 1.9510e+03, 1.9520e+03,  ..., 1.9970e+03, 1.9980e+03,\n"
            "         1.9990e+03]])");
}
