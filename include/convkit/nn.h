// nn: modules with named parameters, and the convolution layers (PyTorch's initialisation, drawn in
// PyTorch's order, so manual_seed(s) then Conv2d(...) gives PyTorch's exact weights).
#pragma once
#include <convkit/functional.h>
#include <convkit/tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace convkit::nn {

// nn.Parameter(t): a leaf that requires grad, holding t's values.
Tensor Parameter(const Tensor& t);

// Base of every layer. Modules are reference-like objects (as in PyTorch): not copyable, and their
// parameters are registered by address, so a layer can replace a parameter (LazyConv2d does).
class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }

  // Parameters of this module (and, with recurse, its children), in registration order.
  std::vector<Tensor> parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Module*>> named_children() const;
  // Clears every parameter's gradient: zeroes it (PyTorch 1.13's default), or drops it with
  // set_to_none.
  void zero_grad(bool set_to_none = false);
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

 protected:
  // Registers `slot` under `name`; `slot` must live as long as the module (a member).
  // With `value` defined, slot becomes Parameter(value).
  Tensor& register_parameter(const std::string& name, Tensor& slot, const Tensor& value = Tensor());
  Module& register_module(const std::string& name, Module& child);
  // Called by parameters() for each registered slot; LazyConv2d throws here until initialised.
  virtual void check_parameter_ready(const std::string& name, const Tensor& slot) const;

 private:
  void collect(const std::string& prefix, bool recurse,
               std::vector<std::pair<std::string, Tensor>>& out) const;
  std::vector<std::pair<std::string, Tensor*>> params_;
  std::vector<std::pair<std::string, Module*>> children_;
  bool training_ = true;
};

// The keyword arguments of Conv2d / LazyConv2d, e.g. LazyConv2d(1, {1, 2}, {.bias = false}).
struct Conv2dArgs {
  Pair2 stride = 1;
  Padding padding = 0;
  Pair2 dilation = 1;
  int64_t groups = 1;
  bool bias = true;
  PaddingMode padding_mode = PaddingMode::Zeros;
  float padding_value = 0.f;
};

class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, Pair2 kernel_size, Conv2dArgs args = {});
  Conv2d(int64_t in_channels, int64_t out_channels, Pair2 kernel_size, Pair2 stride,
         Padding padding = 0, Pair2 dilation = 1, int64_t groups = 1, bool bias = true,
         PaddingMode padding_mode = PaddingMode::Zeros);
  Tensor forward(const Tensor& x) override;
  // Re-draws weight and bias as PyTorch's reset_parameters does.
  void reset_parameters();
  Conv2dOptions options() const;

  Tensor weight;  // (out_channels, in_channels / groups, kH, kW)
  Tensor bias;    // (out_channels), undefined when bias = false
  int64_t in_channels, out_channels;
  Pair2 kernel_size;
  Conv2dArgs args;

 protected:
  Conv2d(int64_t out_channels, Pair2 kernel_size, Conv2dArgs args, bool lazy);
  void materialize(int64_t in_channels_);
  void validate() const;
};

// Conv2d whose in_channels come from the first input (N, C, H, W) or (C, H, W). Its parameters are
// created then, with the same draws PyTorch makes; using them earlier is an error.
class LazyConv2d : public Conv2d {
 public:
  LazyConv2d(int64_t out_channels, Pair2 kernel_size, Conv2dArgs args = {});
  Tensor forward(const Tensor& x) override;
  bool initialized() const { return initialized_; }

 protected:
  void check_parameter_ready(const std::string& name, const Tensor& slot) const override;

 private:
  bool initialized_ = false;
};

// Loss modules.
class MSELoss : public Module {
 public:
  explicit MSELoss(Reduction reduction = Reduction::mean) : reduction_(reduction) {}
  Tensor forward(const Tensor&) override;
  Tensor operator()(const Tensor& input, const Tensor& target) const;

 private:
  Reduction reduction_;
};

}  // namespace convkit::nn
