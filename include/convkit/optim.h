// Optimisers. SGD follows torch.optim.SGD (1.13) step for step.
#pragma once
#include <convkit/tensor.h>

#include <vector>

namespace convkit::optim {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool maximize = false;
};

class SGD {
 public:
  SGD(std::vector<Tensor> params, SGDOptions options);
  SGD(std::vector<Tensor> params, double lr, double momentum = 0.0, double dampening = 0.0,
      double weight_decay = 0.0, bool nesterov = false);
  // One update: d = grad (+ weight_decay * p); with momentum, buf = momentum * buf + (1 -
  // dampening) * d (buf = d on the first step), d = nesterov ? d + momentum * buf : buf;
  // p -= lr * d. Parameters without a gradient are skipped.
  void step();
  void zero_grad(bool set_to_none = false);
  const SGDOptions& options() const { return options_; }
  SGDOptions& options() { return options_; }

 private:
  std::vector<Tensor> params_;
  std::vector<Tensor> momentum_;
  SGDOptions options_;
};

}  // namespace convkit::optim
