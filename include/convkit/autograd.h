// Autograd: a dynamic tape as in PyTorch. Every differentiable op on tensors that require grad
// records a Node; Tensor::backward() walks them in reverse topological order.
#pragma once
#include <convkit/tensor.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace convkit {

// Thread-local switch for recording; NoGradGuard turns it off for a scope (torch.no_grad()).
struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

class NoGradGuard {
 public:
  NoGradGuard() : previous_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

namespace autograd {

// One recorded operation: its inputs and a function from the output's gradient to one gradient per
// input (an undefined Tensor where an input gets none).
struct Node {
  using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;
  std::string name;            // e.g. "MulBackward0", as PyTorch prints in grad_fn=<...>
  std::vector<Tensor> inputs;  // the op's tensor inputs, in order
  BackwardFn backward;
  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  // Frees the chain of nodes behind this one iteratively: a tape of 100k ops must not overflow
  // the stack when its last tensor goes away.
  ~Node();
};

// Records `output = op(inputs)` on the tape when grad mode is on and any input requires grad.
// Ops written by users (custom layers) can call it too. Returns output.
Tensor record(Tensor output, std::string name, std::vector<Tensor> inputs,
              Node::BackwardFn backward);

// True when recording is on and some input requires grad.
bool needs_grad(std::initializer_list<Tensor> inputs);

// Reduces a broadcast gradient back to `shape` by summing the broadcast dimensions.
Tensor sum_to(const Tensor& grad, const Shape& shape);

}  // namespace autograd

// Finite-difference gradient check, in double, of a scalar-valued function of `inputs`.
// For each input that requires grad, compares autograd's gradient of sum(fn(inputs)) with central
// differences (step eps). Returns true when every entry is within atol + rtol * |numeric|;
// otherwise false, and *report (when given) says which input and entry differ and by how much.
struct GradcheckOptions {
  double eps = 1e-3;
  double atol = 1e-3;
  double rtol = 1e-3;
};
bool gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
               const std::vector<Tensor>& inputs, GradcheckOptions options = {},
               std::string* report = nullptr);

}  // namespace convkit
