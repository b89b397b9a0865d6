// torch.optim.SGD, step for step (PyTorch 1.13's _single_tensor_sgd).
#include <convkit/autograd.h>
#include <convkit/optim.h>

namespace convkit::optim {

SGD::SGD(std::vector<Tensor> params, SGDOptions options)
    : params_(std::move(params)), momentum_(params_.size()), options_(options) {
  check(options_.lr >= 0.0, "SGD: invalid learning rate ", options_.lr, "; lr must be >= 0");
  check(options_.momentum >= 0.0, "SGD: invalid momentum ", options_.momentum,
        "; momentum must be >= 0");
  check(options_.weight_decay >= 0.0, "SGD: invalid weight_decay ", options_.weight_decay,
        "; weight_decay must be >= 0");
  check(!options_.nesterov || (options_.momentum > 0.0 && options_.dampening == 0.0),
        "SGD: nesterov momentum requires a momentum > 0 and zero dampening");
  for (size_t i = 0; i < params_.size(); ++i) {
    check(params_[i].defined() && params_[i].is_leaf() && params_[i].requires_grad(),
          "SGD: parameter ", i, " must be a defined leaf tensor that requires grad");
  }
}

SGD::SGD(std::vector<Tensor> params, double lr, double momentum, double dampening,
         double weight_decay, bool nesterov)
    : SGD(std::move(params), SGDOptions{lr, momentum, dampening, weight_decay, nesterov, false}) {}

void SGD::step() {
  NoGradGuard no_grad;
  const auto lr = static_cast<float>(options_.lr);
  const auto momentum = static_cast<float>(options_.momentum);
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    if (!p.grad().defined()) continue;
    Tensor d = options_.maximize ? -p.grad() : p.grad();
    if (options_.weight_decay != 0.0) d = d + p * static_cast<float>(options_.weight_decay);
    if (options_.momentum != 0.0) {
      Tensor& buf = momentum_[i];
      if (!buf.defined()) {
        buf = d.clone();
      } else {
        buf.mul_(momentum).add_(d, static_cast<float>(1.0 - options_.dampening));
      }
      d = options_.nesterov ? d + buf * momentum : buf;
    }
    p.add_(d, -lr);
  }
}

void SGD::zero_grad(bool set_to_none) {
  for (Tensor& p : params_) {
    if (!p.grad().defined()) continue;
    if (set_to_none) {
      p.set_grad(Tensor());
    } else {
      p.grad().zero_();
    }
  }
}

}  // namespace convkit::optim
