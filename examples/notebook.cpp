// "Convolutions for Images" (Dive into Deep Learning, 7.2), ported line by line to convkit.
// Each block is one notebook cell; the Python it replaces is in the comment above it.
#include <convkit/convkit.h>

#include <cstdio>
#include <iostream>

using namespace convkit;

// In [2]: def corr2d(X, K) — written out here as the notebook does; convkit::corr2d is the same
// function, built in and differentiable.
Tensor my_corr2d(const Tensor& X, const Tensor& K) {
  const int64_t h = K.size(0), w = K.size(1);
  Tensor Y = zeros({X.size(0) - h + 1, X.size(1) - w + 1});
  for (int64_t i = 0; i < Y.size(0); ++i) {
    for (int64_t j = 0; j < Y.size(1); ++j) {
      // Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
      Y.index({i, j}) = (X.index({Slice(i, i + h), Slice(j, j + w)}) * K).sum();
    }
  }
  return Y;
}

// In [4]: class Conv2D(nn.Module) — a user-defined layer: register its parameters, write forward.
class Conv2D : public nn::Module {
 public:
  explicit Conv2D(Pair2 kernel_size) {
    register_parameter("weight", weight, rand({kernel_size.h, kernel_size.w}));
    register_parameter("bias", bias, zeros({1}));
  }
  Tensor forward(const Tensor& x) override { return corr2d(x, weight) + bias; }
  Tensor weight, bias;
};

int main() {
  // In [3]
  Tensor X = tensor({{0.0, 1.0, 2.0}, {3.0, 4.0, 5.0}, {6.0, 7.0, 8.0}});
  Tensor K = tensor({{0.0, 1.0}, {2.0, 3.0}});
  std::cout << my_corr2d(X, K) << "\n";

  // In [5]: X = torch.ones((6, 8)); X[:, 2:6] = 0
  X = ones({6, 8});
  X.index({Slice(), Slice(2, 6)}) = 0;
  std::cout << X << "\n";

  // In [7] and In [8]
  Tensor Y = corr2d(X, K);
  std::cout << Y << "\n" << corr2d(X.t(), K) << "\n";

  // The notebook's own layer (In [4]) works on the same image: corr2d(X, weight) + bias.
  Conv2D layer({1, 2});
  std::cout << "Conv2D output shape: " << shape_to_string(layer(X).shape()) << "\n";

  // In [18]: learn the edge kernel back with LazyConv2d.
  Tensor X2d = ones({6, 8});
  X2d.index({Slice(), Slice(2)}) = 0;  // X2d[:, 2:] = 0
  K = tensor({{1., -1.}});
  Tensor Y2d = corr2d(X2d, K);
  X = X2d.reshape({1, 1, 6, 8});
  Y = Y2d.reshape({1, 1, 6, 7});
  nn::LazyConv2d conv2d(1, {1, 2},
                        {.bias = false});  // nn.LazyConv2d(1, kernel_size=(1, 2), bias=False)
  const float lr = 3e-2f;
  for (int i = 0; i < 10; ++i) {
    Tensor Y_hat = conv2d(X);
    Tensor l = (Y_hat - Y).pow(2);
    conv2d.zero_grad();
    l.sum().backward();
    conv2d.weight.data() -= lr * conv2d.weight.grad();  // conv2d.weight.data[:] -= lr * grad
    if ((i + 1) % 2 == 0) std::printf("epoch %d, loss %.3f\n", i + 1, double(l.sum().item()));
  }

  // In [19]
  std::cout << conv2d.weight.data().reshape({1, 2}) << "\n";
}
