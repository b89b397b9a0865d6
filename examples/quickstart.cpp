#include <convkit/convkit.h>

#include <iostream>
using namespace convkit;

int main() {
  Tensor X = ones({6, 8});
  X.index({Slice(), Slice(2)}) = 0;           // X[:, 2:] = 0: a vertical edge
  Tensor Y = corr2d(X, tensor({{1., -1.}}));  // the edge detector [1, -1]
  Tensor x = X.reshape({1, 1, 6, 8}), y = Y.reshape({1, 1, 6, 7});
  nn::LazyConv2d conv(1, {1, 2}, {.bias = false});  // learn the kernel back
  conv(x);                                          // the first call sets in_channels
  optim::SGD opt(conv.parameters(), 3e-2);
  for (int i = 0; i < 20; ++i) {
    Tensor loss = (conv(x) - y).pow(2).sum();
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  std::cout << conv.weight.data().reshape({1, 2}) << "\n";  // close to [[1, -1]]
}
