// Differentiable functions over the conv drivers: corr2d, conv2d, mse_loss.
#include <convkit/autograd.h>
#include <convkit/functional.h>

#include "conv/conv.h"
#include "tensor/tensor_impl.h"

namespace convkit {

// ---- corr2d: the notebook's function, as a conv2d with N = C = O = 1
// -----------------------------

Tensor corr2d(const Tensor& X, const Tensor& K) {
  check(X.defined() && K.defined(), "corr2d: X and K must be defined tensors");
  check(X.dim() == 2 && K.dim() == 2, "corr2d: expects a 2-D X and a 2-D K, but got X of shape ",
        X.shape_str(), " and K of shape ", K.shape_str());
  check(K.size(0) <= X.size(0) && K.size(1) <= X.size(1), "corr2d: kernel ", K.shape_str(),
        " is larger than input ", X.shape_str(),
        "; each kernel dimension must be <= the input's (valid cross-correlation)");
  check(K.size(0) > 0 && K.size(1) > 0, "corr2d: kernel ", K.shape_str(),
        " is empty; it needs at least one row and one column");
  const int64_t h = X.size(0), w = X.size(1), kh = K.size(0), kw = K.size(1);
  return conv2d(X.reshape({1, 1, h, w}), K.reshape({1, 1, kh, kw})).view({h - kh + 1, w - kw + 1});
}

// ---- conv2d
// ---------------------------------------------------------------------------------------

Shape conv2d_output_shape(const Shape& input, const Shape& weight, const Conv2dOptions& options) {
  check(input.size() == 3 || input.size() == 4, "conv2d: expects input (N, C, H, W) or unbatched ",
        "(C, H, W), but got shape ", shape_to_string(input));
  const bool batched = input.size() == 4;
  const Shape in4 = batched ? input : Shape{1, input[0], input[1], input[2]};
  const auto p = conv::make_params(in4, weight, options);
  if (batched) return {p.N, p.O, p.Ho, p.Wo};
  return {p.O, p.Ho, p.Wo};
}

namespace {

struct Prepared {
  conv::ConvParams p;
  bool batched;
  Tensor x, w, b;  // contiguous, detached
};

Prepared prepare(const Tensor& input, const Tensor& weight, bool has_bias, const Tensor& bias,
                 const Conv2dOptions& options) {
  check(input.defined() && weight.defined(), "conv2d: input and weight must be defined tensors");
  check(input.dim() == 3 || input.dim() == 4, "conv2d: expects input (N, C, H, W) or unbatched ",
        "(C, H, W), but got shape ", input.shape_str());
  check(weight.dim() == 4, "conv2d: expects weight (O, C/groups, kH, kW), but got shape ",
        weight.shape_str());
  Prepared r;
  r.batched = input.dim() == 4;
  Shape in4 = input.shape();
  if (!r.batched) in4.insert(in4.begin(), 1);
  r.p = conv::make_params(in4, weight.shape(), options);
  if (has_bias) {
    check(bias.defined() && bias.dim() == 1 && bias.size(0) == r.p.O, "conv2d: bias of shape ",
          bias.defined() ? bias.shape_str() : std::string("undefined"), " does not fit weight ",
          weight.shape_str(), "; expected bias (", r.p.O, ",)");
    r.b = bias.detach().contiguous();
  }
  r.x = input.detach().contiguous();
  r.w = weight.detach().contiguous();
  return r;
}

Tensor output_tensor(const conv::ConvParams& p, bool batched) {
  return batched ? empty({p.N, p.O, p.Ho, p.Wo}) : empty({p.O, p.Ho, p.Wo});
}

}  // namespace

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
              const Conv2dOptions& options) {
  const bool has_bias = bias.defined();
  Prepared r = prepare(input, weight, has_bias, bias, options);
  Tensor y = output_tensor(r.p, r.batched);
  if (y.numel() > 0) {
    conv::forward(r.p, r.x.data_ptr(), r.w.data_ptr(), has_bias ? r.b.data_ptr() : nullptr,
                  y.data_ptr());
  }
  const Tensor x = r.x, w = r.w;
  const conv::ConvParams p = r.p;
  const Shape in_shape = input.shape();
  const bool need_x = input.requires_grad(), need_w = weight.requires_grad(),
             need_b = has_bias && bias.requires_grad();
  return autograd::record(y, "ConvolutionBackward0", {input, weight, bias},
                          [x, w, p, in_shape, need_x, need_w, need_b](const Tensor& g) {
                            const Tensor gy = g.contiguous();
                            Tensor gx, gw, gb;
                            if (need_x) {
                              gx = empty(in_shape);
                              if (gx.numel() > 0)
                                conv::backward_data(p, gy.data_ptr(), w.data_ptr(), gx.data_ptr());
                            }
                            if (need_w || need_b) {
                              if (need_w) gw = empty(w.shape());
                              if (need_b) gb = empty({p.O});
                              conv::backward_weight(p, gy.data_ptr(), x.data_ptr(),
                                                    need_w ? gw.data_ptr() : nullptr,
                                                    need_b ? gb.data_ptr() : nullptr);
                            }
                            return std::vector<Tensor>{gx, gw, gb};
                          });
}

Conv2dGrads conv2d_backward(const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                            bool has_bias, const Conv2dOptions& options, bool need_input,
                            bool need_weight, bool need_bias) {
  Prepared r = prepare(input, weight, false, Tensor(), options);
  const Shape expected =
      r.batched ? Shape{r.p.N, r.p.O, r.p.Ho, r.p.Wo} : Shape{r.p.O, r.p.Ho, r.p.Wo};
  check(grad_output.defined() && grad_output.shape() == expected,
        "conv2d_backward: grad_output of shape ",
        grad_output.defined() ? grad_output.shape_str() : std::string("undefined"),
        " does not match the convolution's output shape ", shape_to_string(expected));
  const Tensor gy = grad_output.detach().contiguous();
  Conv2dGrads out;
  if (need_input) {
    out.input = empty(input.shape());
    if (out.input.numel() > 0) {
      conv::backward_data(r.p, gy.data_ptr(), r.w.data_ptr(), out.input.data_ptr());
    }
  }
  need_bias = need_bias && has_bias;
  if (need_weight || need_bias) {
    if (need_weight) out.weight = empty(weight.shape());
    if (need_bias) out.bias = empty({r.p.O});
    conv::backward_weight(r.p, gy.data_ptr(), r.x.data_ptr(),
                          need_weight ? out.weight.data_ptr() : nullptr,
                          need_bias ? out.bias.data_ptr() : nullptr);
  }
  return out;
}

// ---- losses
// ---------------------------------------------------------------------------------------

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check(input.defined() && target.defined(), "mse_loss: input and target must be defined");
  check(input.shape() == target.shape(), "mse_loss: input of shape ", input.shape_str(),
        " and target of shape ", target.shape_str(), " differ; they must have the same shape");
  const Tensor sq = (input - target).pow(2.f);
  switch (reduction) {
    case Reduction::none:
      return sq;
    case Reduction::sum:
      return sq.sum();
    case Reduction::mean:
      break;
  }
  return sq.mean();
}

}  // namespace convkit
