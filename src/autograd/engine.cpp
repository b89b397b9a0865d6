// The tape: recording ops, and the backward pass in reverse topological order.
#include <convkit/autograd.h>

#include <unordered_map>
#include <unordered_set>

#include "tensor/tensor_impl.h"

namespace convkit {

namespace {
thread_local bool grad_mode_enabled = true;
}

bool GradMode::is_enabled() {
  return grad_mode_enabled;
}
void GradMode::set_enabled(bool enabled) {
  grad_mode_enabled = enabled;
}

namespace autograd {

Node::~Node() {
  std::vector<std::shared_ptr<Node>> pending;
  auto take = [&pending](std::vector<Tensor>& tensors) {
    for (auto& t : tensors) {
      TensorImpl* impl = t.impl();
      // Only nodes this chain owns alone are detached here; shared ones die with their owners.
      if (impl && t.impl_ptr().use_count() == 1 && impl->grad_fn &&
          impl->grad_fn.use_count() == 1) {
        pending.push_back(std::move(impl->grad_fn));
      }
    }
    tensors.clear();
  };
  take(inputs);
  while (!pending.empty()) {
    std::shared_ptr<Node> node = std::move(pending.back());
    pending.pop_back();
    take(node->inputs);
  }
}

bool needs_grad(std::initializer_list<Tensor> inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const auto& t : inputs) {
    if (t.defined() && t.requires_grad()) return true;
  }
  return false;
}

Tensor record(Tensor output, std::string name, std::vector<Tensor> inputs,
              Node::BackwardFn backward) {
  if (!GradMode::is_enabled()) return output;
  bool any = false;
  for (const auto& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!any) return output;
  auto node = std::make_shared<Node>();
  node->name = std::move(name);
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  output.impl()->requires_grad = true;
  output.impl()->grad_fn = std::move(node);
  return output;
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  check(grad.shape().size() >= shape.size(), "sum_to: a gradient of shape ", grad.shape_str(),
        " cannot be reduced to the larger rank of ", shape_to_string(shape));
  Tensor g = grad;
  const size_t lead = g.shape().size() - shape.size();
  for (size_t i = 0; i < lead; ++i) g = g.sum(0);
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1 && g.shape()[d] != 1) g = g.sum(static_cast<int64_t>(d), true);
  }
  return g.reshape(shape);
}

}  // namespace autograd

void Tensor::backward(const Tensor& gradient) const {
  check(defined(), "backward: the tensor is undefined");
  check(requires_grad(), "backward: the tensor (shape ", shape_str(),
        ") does not require grad and has no grad_fn; mark its inputs with requires_grad_()");
  Tensor seed = gradient;
  if (!seed.defined()) {
    check(numel() == 1,
          "backward: grad can be implicitly created only for scalar outputs, but "
          "this tensor has shape ",
          shape_str(), "; pass a gradient of that shape");
    seed = ones(shape());
  } else {
    check(seed.shape() == shape(), "backward: gradient of shape ", seed.shape_str(),
          " does not match the output's shape ", shape_str());
  }

  NoGradGuard no_grad;
  if (!impl()->grad_fn) {  // a leaf: its gradient is the seed itself
    if (impl()->grad.defined()) {
      impl()->grad.add_(seed);
    } else {
      impl()->grad = seed.detach().contiguous().clone();
    }
    return;
  }
  // Reverse topological order of the non-leaf tensors reachable from this one (iterative DFS).
  std::vector<TensorImpl*> order;
  std::unordered_set<TensorImpl*> seen;
  std::vector<std::pair<TensorImpl*, size_t>> stack{{impl(), 0}};
  seen.insert(impl());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    const auto& fn = node->grad_fn;
    if (fn && next < fn->inputs.size()) {
      TensorImpl* child = fn->inputs[next++].impl();
      if (child && child->grad_fn && seen.insert(child).second) stack.emplace_back(child, 0);
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }

  std::unordered_map<TensorImpl*, Tensor> grads;
  grads[impl()] = seed.detach();
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    TensorImpl* node = *it;
    auto found = grads.find(node);
    if (found == grads.end() || !node->grad_fn) continue;
    const Tensor g = found->second;
    grads.erase(found);
    const auto& fn = *node->grad_fn;
    std::vector<Tensor> input_grads = fn.backward(g);
    check(input_grads.size() == fn.inputs.size(), "backward: ", fn.name, " returned ",
          input_grads.size(), " gradients for ", fn.inputs.size(), " inputs");
    for (size_t i = 0; i < fn.inputs.size(); ++i) {
      const Tensor& input = fn.inputs[i];
      const Tensor& gi = input_grads[i];
      if (!input.defined() || !input.requires_grad() || !gi.defined()) continue;
      check(gi.shape() == input.shape(), "backward: ", fn.name, " gave a gradient of shape ",
            gi.shape_str(), " for an input of shape ", input.shape_str());
      TensorImpl* target = input.impl();
      if (!target->grad_fn) {
        // A leaf: accumulate into .grad (in place, as PyTorch does).
        if (!target->grad.defined()) {
          target->grad = gi.contiguous().clone();
        } else {
          target->grad.add_(gi);
        }
      } else {
        auto slot = grads.find(target);
        if (slot == grads.end()) {
          grads.emplace(target, gi);
        } else {
          slot->second = slot->second + gi;
        }
      }
    }
  }
}

}  // namespace convkit
