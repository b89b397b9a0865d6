// Differentiable math on tensors: broadcasting arithmetic, unary functions, reductions, matmul.
#include <convkit/autograd.h>
#include <convkit/tensor.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/tensor_impl.h"

namespace convkit {

namespace {

// out[i] = f(a[i], b[i]) with both broadcast to their common shape.
template <typename F>
Tensor binary_values(const Tensor& a, const Tensor& b, const char* op, F f) {
  check(a.defined() && b.defined(), op, ": an operand is undefined");
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor out = detail::make_tensor(shape);
  float* o = out.data_ptr();
  const float* ab = a.impl()->storage->data.data();
  const float* bb = b.impl()->storage->data.data();
  if (a.shape() == shape && b.shape() == shape && a.is_contiguous() && b.is_contiguous()) {
    const float* x = a.data_ptr();
    const float* y = b.data_ptr();
    for (int64_t i = 0, n = out.numel(); i < n; ++i) o[i] = f(x[i], y[i]);
    return out;
  }
  std::vector<int64_t> boffs(static_cast<size_t>(out.numel()));
  detail::for_each_offset(shape, detail::broadcast_strides(b, shape), b.storage_offset(),
                          [&](int64_t i, int64_t off) { boffs[static_cast<size_t>(i)] = off; });
  detail::for_each_offset(
      shape, detail::broadcast_strides(a, shape), a.storage_offset(),
      [&](int64_t i, int64_t off) { o[i] = f(ab[off], bb[boffs[static_cast<size_t>(i)]]); });
  return out;
}

template <typename F>
Tensor unary_values(const Tensor& a, F f) {
  check(a.defined(), "tensor op: operand is undefined");
  Tensor out = detail::make_tensor(a.shape());
  float* o = out.data_ptr();
  const float* base = a.impl()->storage->data.data();
  detail::for_each_offset(a.shape(), a.strides(), a.storage_offset(),
                          [&](int64_t i, int64_t off) { o[i] = f(base[off]); });
  return out;
}

Tensor scalar_tensor(float v) {
  Tensor t = detail::make_tensor({});
  t.data_ptr()[0] = v;
  return t;
}

}  // namespace

// ---- arithmetic ---------------------------------------------------------------------------------

Tensor operator+(const Tensor& a, const Tensor& b) {
  Tensor out = binary_values(a, b, "add", [](float x, float y) { return x + y; });
  const Shape as = a.shape(), bs = b.shape();
  return autograd::record(out, "AddBackward0", {a, b}, [as, bs](const Tensor& g) {
    return std::vector<Tensor>{autograd::sum_to(g, as), autograd::sum_to(g, bs)};
  });
}

Tensor operator-(const Tensor& a, const Tensor& b) {
  Tensor out = binary_values(a, b, "sub", [](float x, float y) { return x - y; });
  const Shape as = a.shape(), bs = b.shape();
  return autograd::record(out, "SubBackward0", {a, b}, [as, bs](const Tensor& g) {
    return std::vector<Tensor>{autograd::sum_to(g, as), autograd::sum_to(-g, bs)};
  });
}

Tensor operator*(const Tensor& a, const Tensor& b) {
  Tensor out = binary_values(a, b, "mul", [](float x, float y) { return x * y; });
  const Tensor ad = a.detach(), bd = b.detach();
  return autograd::record(out, "MulBackward0", {a, b}, [ad, bd](const Tensor& g) {
    return std::vector<Tensor>{autograd::sum_to(g * bd, ad.shape()),
                               autograd::sum_to(g * ad, bd.shape())};
  });
}

Tensor operator/(const Tensor& a, const Tensor& b) {
  Tensor out = binary_values(a, b, "div", [](float x, float y) { return x / y; });
  const Tensor ad = a.detach(), bd = b.detach();
  return autograd::record(out, "DivBackward0", {a, b}, [ad, bd](const Tensor& g) {
    return std::vector<Tensor>{autograd::sum_to(g / bd, ad.shape()),
                               autograd::sum_to(-g * ad / (bd * bd), bd.shape())};
  });
}

Tensor operator+(const Tensor& a, float b) {
  Tensor out = unary_values(a, [b](float x) { return x + b; });
  return autograd::record(out, "AddBackward0", {a},
                          [](const Tensor& g) { return std::vector<Tensor>{g}; });
}
Tensor operator-(const Tensor& a, float b) {
  Tensor out = unary_values(a, [b](float x) { return x - b; });
  return autograd::record(out, "SubBackward0", {a},
                          [](const Tensor& g) { return std::vector<Tensor>{g}; });
}
Tensor operator*(const Tensor& a, float b) {
  Tensor out = unary_values(a, [b](float x) { return x * b; });
  return autograd::record(out, "MulBackward0", {a},
                          [b](const Tensor& g) { return std::vector<Tensor>{g * b}; });
}
Tensor operator/(const Tensor& a, float b) {
  Tensor out = unary_values(a, [b](float x) { return x / b; });
  return autograd::record(out, "DivBackward0", {a},
                          [b](const Tensor& g) { return std::vector<Tensor>{g / b}; });
}
Tensor operator+(float a, const Tensor& b) {
  return b + a;
}
Tensor operator*(float a, const Tensor& b) {
  return b * a;
}
Tensor operator-(float a, const Tensor& b) {
  Tensor out = unary_values(b, [a](float x) { return a - x; });
  return autograd::record(out, "RsubBackward1", {b},
                          [](const Tensor& g) { return std::vector<Tensor>{-g}; });
}
Tensor operator/(float a, const Tensor& b) {
  return scalar_tensor(a) / b;
}

Tensor operator-(const Tensor& a) {
  Tensor out = unary_values(a, [](float x) { return -x; });
  return autograd::record(out, "NegBackward0", {a},
                          [](const Tensor& g) { return std::vector<Tensor>{-g}; });
}

// ---- unary functions
// ------------------------------------------------------------------------------

Tensor Tensor::pow(float e) const {
  Tensor out = unary_values(*this, [e](float x) {
    return e == 2.f ? x * x : static_cast<float>(std::pow(static_cast<double>(x), double(e)));
  });
  const Tensor x = detach();
  return autograd::record(out, "PowBackward0", {*this}, [x, e](const Tensor& g) {
    if (e == 0.f) return std::vector<Tensor>{zeros_like(x)};
    return std::vector<Tensor>{g * (x.pow(e - 1.f) * e)};
  });
}
Tensor pow(const Tensor& a, float e) {
  return a.pow(e);
}

Tensor Tensor::abs() const {
  Tensor out = unary_values(*this, [](float x) { return std::fabs(x); });
  const Tensor x = detach();
  return autograd::record(out, "AbsBackward0", {*this}, [x](const Tensor& g) {
    return std::vector<Tensor>{
        g * unary_values(x, [](float v) { return float((v > 0.f) - (v < 0.f)); })};
  });
}

Tensor Tensor::sqrt() const {
  Tensor out = unary_values(*this, [](float x) { return std::sqrt(x); });
  const Tensor y = out.detach();
  return autograd::record(out, "SqrtBackward0", {*this},
                          [y](const Tensor& g) { return std::vector<Tensor>{g / (y * 2.f)}; });
}

Tensor Tensor::exp() const {
  Tensor out = unary_values(*this, [](float x) { return std::exp(x); });
  const Tensor y = out.detach();
  return autograd::record(out, "ExpBackward0", {*this},
                          [y](const Tensor& g) { return std::vector<Tensor>{g * y}; });
}

Tensor Tensor::log() const {
  Tensor out = unary_values(*this, [](float x) { return std::log(x); });
  const Tensor x = detach();
  return autograd::record(out, "LogBackward0", {*this},
                          [x](const Tensor& g) { return std::vector<Tensor>{g / x}; });
}

Tensor Tensor::relu() const {
  Tensor out = unary_values(*this, [](float x) { return x > 0.f ? x : 0.f; });
  const Tensor x = detach();
  return autograd::record(out, "ReluBackward0", {*this}, [x](const Tensor& g) {
    return std::vector<Tensor>{g * unary_values(x, [](float v) { return v > 0.f ? 1.f : 0.f; })};
  });
}

Tensor Tensor::sigmoid() const {
  Tensor out = unary_values(*this, [](float x) { return 1.f / (1.f + std::exp(-x)); });
  const Tensor y = out.detach();
  return autograd::record(out, "SigmoidBackward0", {*this},
                          [y](const Tensor& g) { return std::vector<Tensor>{g * y * (1.f - y)}; });
}

Tensor Tensor::tanh() const {
  Tensor out = unary_values(*this, [](float x) { return std::tanh(x); });
  const Tensor y = out.detach();
  return autograd::record(out, "TanhBackward0", {*this},
                          [y](const Tensor& g) { return std::vector<Tensor>{g * (1.f - y * y)}; });
}

// ---- reductions --------------------------------------------------------------------------------

Tensor Tensor::sum() const {
  check(defined(), "sum: the tensor is undefined");
  double acc = 0.0;
  const float* base = impl()->storage->data.data();
  detail::for_each_offset(shape(), strides(), storage_offset(),
                          [&](int64_t, int64_t off) { acc += base[off]; });
  Tensor out = scalar_tensor(static_cast<float>(acc));
  const Shape in_shape = shape();
  return autograd::record(out, "SumBackward0", {*this}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{g.expand(in_shape).contiguous()};
  });
}

Tensor Tensor::sum(int64_t d, bool keepdim) const {
  d = detail::wrap_dim(d, dim(), "sum");
  if (dim() == 0) return sum();
  Shape out_shape = shape();
  out_shape[d] = 1;
  Tensor out = zeros(out_shape);
  // Accumulate in double per output element, in index order along d.
  std::vector<double> acc(static_cast<size_t>(out.numel()), 0.0);
  std::vector<int64_t> ost = detail::contiguous_strides(out_shape);
  ost[d] = 0;
  std::vector<int64_t> oidx(static_cast<size_t>(numel()));
  detail::for_each_offset(shape(), ost, 0,
                          [&](int64_t i, int64_t off) { oidx[static_cast<size_t>(i)] = off; });
  const float* base = impl()->storage->data.data();
  detail::for_each_offset(shape(), strides(), storage_offset(), [&](int64_t i, int64_t off) {
    acc[static_cast<size_t>(oidx[static_cast<size_t>(i)])] += base[off];
  });
  float* o = out.data_ptr();
  for (size_t i = 0; i < acc.size(); ++i) o[i] = static_cast<float>(acc[i]);
  if (!keepdim) {
    Shape sq = shape();
    sq.erase(sq.begin() + d);
    out = out.view(sq);
  }
  const Shape in_shape = shape();
  return autograd::record(out, "SumBackward1", {*this}, [in_shape, d, keepdim](const Tensor& g) {
    Tensor gk = keepdim ? g : g.unsqueeze(d);
    return std::vector<Tensor>{gk.expand(in_shape).contiguous()};
  });
}

Tensor Tensor::mean() const {
  check(numel() > 0, "mean: the mean of an empty tensor (shape ", shape_str(), ") is undefined");
  const auto n = static_cast<float>(numel());
  Tensor out;
  {
    NoGradGuard no_grad;
    out = sum() / n;
  }
  const Shape in_shape = shape();
  return autograd::record(out, "MeanBackward0", {*this}, [in_shape, n](const Tensor& g) {
    return std::vector<Tensor>{(g / n).expand(in_shape).contiguous()};
  });
}

static Tensor extreme(const Tensor& t, bool largest, const char* op, const char* node) {
  check(t.defined() && t.numel() > 0, op, ": needs a non-empty tensor, got shape ",
        t.defined() ? t.shape_str() : std::string("undefined"));
  const std::vector<float> v = t.to_vector();
  size_t best = 0;
  for (size_t i = 1; i < v.size(); ++i) {
    if (std::isnan(v[best])) break;
    if (std::isnan(v[i]) || (largest ? v[i] > v[best] : v[i] < v[best])) best = i;
  }
  Tensor out = scalar_tensor(v[best]);
  // As PyTorch's all-reduce max/min: the gradient is shared evenly among tied elements.
  std::vector<size_t> ties;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i == best || (!std::isnan(v[best]) && v[i] == v[best])) ties.push_back(i);
  }
  const Shape in_shape = t.shape();
  return autograd::record(out, node, {t}, [in_shape, ties](const Tensor& g) {
    Tensor gi = zeros(in_shape);
    const float share = g.item() / static_cast<float>(ties.size());
    for (size_t i : ties) gi.data_ptr()[i] = share;
    return std::vector<Tensor>{gi};
  });
}
Tensor Tensor::max() const {
  return extreme(*this, true, "max", "MaxBackward1");
}
Tensor Tensor::min() const {
  return extreme(*this, false, "min", "MinBackward1");
}

// ---- matmul ------------------------------------------------------------------------------------

Tensor matmul(const Tensor& a, const Tensor& b) {
  check(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "matmul: shapes ", a.shape_str(),
        " and ", b.shape_str(), " cannot be multiplied; expected (n, k) and (k, m)");
  const int64_t n = a.size(0), k = a.size(1), m = b.size(1);
  const Tensor ac = a.contiguous(), bc = b.contiguous();
  Tensor out = zeros({n, m});
  const float* x = ac.data_ptr();
  const float* y = bc.data_ptr();
  float* o = out.data_ptr();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < m; ++j) {
      double acc = 0.0;
      for (int64_t p = 0; p < k; ++p) acc += double(x[i * k + p]) * double(y[p * m + j]);
      o[i * m + j] = static_cast<float>(acc);
    }
  }
  const Tensor ad = a.detach(), bd = b.detach();
  return autograd::record(out, "MmBackward0", {a, b}, [ad, bd](const Tensor& g) {
    return std::vector<Tensor>{matmul(g, bd.t()), matmul(ad.t(), g)};
  });
}
Tensor Tensor::matmul(const Tensor& other) const {
  return convkit::matmul(*this, other);
}

// ---- comparisons -------------------------------------------------------------------------------

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol, bool equal_nan) {
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), "allclose");
  const Tensor ae = a.detach().expand(shape), be = b.detach().expand(shape);
  const std::vector<float> x = ae.to_vector(), y = be.to_vector();
  for (size_t i = 0; i < x.size(); ++i) {
    const double p = x[i], q = y[i];
    if (std::isnan(p) || std::isnan(q)) {
      if (!(equal_nan && std::isnan(p) && std::isnan(q))) return false;
      continue;
    }
    if (p == q) continue;  // equal infinities
    if (!(std::fabs(p - q) <= atol + rtol * std::fabs(q))) return false;
  }
  return true;
}

bool equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_vector() == b.to_vector();
}

}  // namespace convkit
