// Module, Parameter, and the convolution layers.
#include <convkit/autograd.h>
#include <convkit/nn.h>

#include <cmath>

namespace convkit::nn {

Tensor Parameter(const Tensor& t) {
  check(t.defined(), "Parameter: the tensor is undefined");
  Tensor p = t.detach();
  p.requires_grad_(true);
  return p;
}

// ---- Module
// ---------------------------------------------------------------------------------------

Tensor& Module::register_parameter(const std::string& name, Tensor& slot, const Tensor& value) {
  for (const auto& [n, s] : params_) {
    check(n != name, "register_parameter: a parameter named '", name, "' is already registered");
  }
  if (value.defined()) slot = Parameter(value);
  params_.emplace_back(name, &slot);
  return slot;
}

Module& Module::register_module(const std::string& name, Module& child) {
  check(&child != this, "register_module: a module cannot be its own child");
  children_.emplace_back(name, &child);
  return child;
}

void Module::check_parameter_ready(const std::string&, const Tensor&) const {}

void Module::collect(const std::string& prefix, bool recurse,
                     std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [name, slot] : params_) {
    check_parameter_ready(name, *slot);
    if (slot->defined()) out.emplace_back(prefix + name, *slot);
  }
  if (!recurse) return;
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", true, out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", recurse, out);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_children() const {
  return children_;
}

void Module::zero_grad(bool set_to_none) {
  for (const auto& [name, slot] : params_) {
    if (!slot->defined() || !slot->grad().defined()) continue;
    if (set_to_none) {
      slot->set_grad(Tensor());
    } else {
      slot->grad().zero_();
    }
  }
  for (const auto& [name, child] : children_) child->zero_grad(set_to_none);
}

void Module::train(bool on) {
  training_ = on;
  for (const auto& [name, child] : children_) child->train(on);
}

// ---- Conv2d
// ---------------------------------------------------------------------------------------

static Conv2dArgs positional(Pair2 stride, Padding padding, Pair2 dilation, int64_t groups,
                             bool bias, PaddingMode mode) {
  Conv2dArgs a;
  a.stride = stride;
  a.padding = padding;
  a.dilation = dilation;
  a.groups = groups;
  a.bias = bias;
  a.padding_mode = mode;
  return a;
}

Conv2d::Conv2d(int64_t in_channels_, int64_t out_channels_, Pair2 kernel_size_, Conv2dArgs args_)
    : in_channels(in_channels_),
      out_channels(out_channels_),
      kernel_size(kernel_size_),
      args(args_) {
  check(in_channels > 0, "Conv2d: in_channels must be positive, got ", in_channels);
  validate();
  register_parameter("weight", weight);
  if (args.bias) register_parameter("bias", bias);
  materialize(in_channels);
}

Conv2d::Conv2d(int64_t in_channels_, int64_t out_channels_, Pair2 kernel_size_, Pair2 stride,
               Padding padding, Pair2 dilation, int64_t groups, bool has_bias, PaddingMode mode)
    : Conv2d(in_channels_, out_channels_, kernel_size_,
             positional(stride, padding, dilation, groups, has_bias, mode)) {}

Conv2d::Conv2d(int64_t out_channels_, Pair2 kernel_size_, Conv2dArgs args_, bool)
    : in_channels(0), out_channels(out_channels_), kernel_size(kernel_size_), args(args_) {
  validate();
  register_parameter("weight", weight);
  if (args.bias) register_parameter("bias", bias);
}

void Conv2d::validate() const {
  const char* who = in_channels > 0 ? "Conv2d" : "LazyConv2d";
  check(out_channels > 0, who, ": out_channels must be positive, got ", out_channels);
  check(kernel_size.h > 0 && kernel_size.w > 0, who, ": kernel_size must be positive, got (",
        kernel_size.h, ", ", kernel_size.w, ")");
  check(args.groups > 0, who, ": groups must be positive, got ", args.groups);
  check(out_channels % args.groups == 0, who, ": out_channels ", out_channels,
        " must be divisible by groups ", args.groups);
  check(in_channels % args.groups == 0, who, ": in_channels ", in_channels,
        " must be divisible by groups ", args.groups);
  check(args.stride.h > 0 && args.stride.w > 0, who, ": stride must be positive, got (",
        args.stride.h, ", ", args.stride.w, ")");
  check(args.dilation.h > 0 && args.dilation.w > 0, who, ": dilation must be positive, got (",
        args.dilation.h, ", ", args.dilation.w, ")");
}

void Conv2d::materialize(int64_t in_channels_) {
  in_channels = in_channels_;
  validate();
  Tensor w = empty({out_channels, in_channels / args.groups, kernel_size.h, kernel_size.w});
  Tensor b = args.bias ? empty({out_channels}) : Tensor();
  weight = Parameter(w);
  if (args.bias) bias = Parameter(b);
  reset_parameters();
}

void Conv2d::reset_parameters() {
  NoGradGuard no_grad;
  // kaiming_uniform_(weight, a=sqrt(5)): gain = sqrt(2 / (1 + a^2)), std = gain / sqrt(fan_in),
  // bound = sqrt(3) * std — all in double, as torch.nn.init computes them.
  const double fan_in = double(weight.size(1)) * double(weight.size(2)) * double(weight.size(3));
  const double a = std::sqrt(5.0);
  const double gain = std::sqrt(2.0 / (1.0 + a * a));
  const double std_dev = gain / std::sqrt(fan_in);
  const double bound = std::sqrt(3.0) * std_dev;
  weight.uniform_(-bound, bound);
  if (bias.defined()) {
    const double b = fan_in > 0 ? 1.0 / std::sqrt(fan_in) : 0.0;
    bias.uniform_(-b, b);
  }
}

Conv2dOptions Conv2d::options() const {
  Conv2dOptions o;
  o.stride = args.stride;
  o.padding = args.padding;
  o.padding_mode = args.padding_mode;
  o.padding_value = args.padding_value;
  o.dilation = args.dilation;
  o.groups = args.groups;
  return o;
}

Tensor Conv2d::forward(const Tensor& x) {
  return conv2d(x, weight, bias, options());
}

// ---- LazyConv2d
// -----------------------------------------------------------------------------------

LazyConv2d::LazyConv2d(int64_t out_channels_, Pair2 kernel_size_, Conv2dArgs args_)
    : Conv2d(out_channels_, kernel_size_, args_, true) {}

void LazyConv2d::check_parameter_ready(const std::string& name, const Tensor&) const {
  check(initialized_, "LazyConv2d: parameter '", name,
        "' is not initialised yet (in_channels are taken from the first input); run one forward "
        "pass, e.g. layer(x) with x of shape (N, C, H, W), before using its parameters "
        "(optimizer, zero_grad, named_parameters)");
}

Tensor LazyConv2d::forward(const Tensor& x) {
  check(x.defined() && (x.dim() == 3 || x.dim() == 4),
        "LazyConv2d: expects input (N, C, H, W) or unbatched (C, H, W), but got shape ",
        x.defined() ? x.shape_str() : std::string("undefined"));
  const int64_t c = x.dim() == 4 ? x.size(1) : x.size(0);
  if (!initialized_) {
    check(c > 0 && c % args.groups == 0, "LazyConv2d: input of shape ", x.shape_str(), " has ", c,
          " channels, which must be positive and divisible by groups ", args.groups);
    materialize(c);
    initialized_ = true;
  } else {
    check(c == in_channels, "LazyConv2d: this layer took in_channels=", in_channels,
          " from its first input, but this input of shape ", x.shape_str(), " has ", c,
          " channels; every input must have ", in_channels, " channels");
  }
  return Conv2d::forward(x);
}

// ---- losses
// ---------------------------------------------------------------------------------------

Tensor MSELoss::forward(const Tensor&) {
  fail("MSELoss: needs an input and a target; call loss(input, target)");
}

Tensor MSELoss::operator()(const Tensor& input, const Tensor& target) const {
  return mse_loss(input, target, reduction_);
}

}  // namespace convkit::nn
