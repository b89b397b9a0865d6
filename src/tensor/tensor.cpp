// Tensor basics: geometry, element access, views (with their autograd), copies, in-place ops.
#include <convkit/autograd.h>
#include <convkit/tensor.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "tensor/tensor_impl.h"

namespace convkit {

namespace detail {

int64_t numel_of(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) {
    if (__builtin_mul_overflow(n, s, &n)) {
      fail("tensor: shape ", shape_to_string(shape), " has too many elements (over 2^63)");
    }
  }
  return n;
}

std::vector<int64_t> contiguous_strides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size());
  int64_t s = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    strides[d] = s;
    s *= std::max<int64_t>(shape[d], 1);
  }
  return strides;
}

Tensor make_tensor(const Shape& shape) {
  for (int64_t s : shape) {
    check(s >= 0, "tensor: invalid shape ", shape_to_string(shape),
          "; every dimension must be >= 0");
  }
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(numel_of(shape)));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  return Tensor(std::move(impl));
}

Tensor make_view(const Tensor& base, Shape shape, std::vector<int64_t> strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl()->storage;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  return Tensor(std::move(impl));
}

int64_t wrap_dim(int64_t dim, int64_t rank, const char* op) {
  const int64_t r = std::max<int64_t>(rank, 1);
  check(dim >= -r && dim < r, op, ": dimension ", dim, " is out of range for a ", rank,
        "-D tensor; valid dimensions are ", -r, " to ", r - 1);
  return dim < 0 ? dim + r : dim;
}

std::vector<int64_t> broadcast_strides(const Tensor& t, const Shape& shape) {
  const auto& ts = t.shape();
  std::vector<int64_t> out(shape.size(), 0);
  const size_t lead = shape.size() - ts.size();
  for (size_t d = 0; d < ts.size(); ++d) out[lead + d] = ts[d] == 1 ? 0 : t.strides()[d];
  return out;
}

void check_inplace(const Tensor& t, const char* op) {
  check(t.defined(), op, ": the tensor is undefined");
  check(!(GradMode::is_enabled() && t.requires_grad()), op,
        ": an in-place change to a tensor that requires grad", " (shape ", t.shape_str(),
        ") would break autograd; do it under convkit::NoGradGuard or on .data()");
  for (size_t d = 0; d < t.shape().size(); ++d) {
    check(t.strides()[d] != 0 || t.shape()[d] <= 1, op, ": the tensor of shape ", t.shape_str(),
          " is a broadcast (expanded) view whose elements share memory; write into a clone()");
  }
}

}  // namespace detail

using detail::make_view;
using detail::wrap_dim;

Tensor::Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

static const TensorImpl& need(const std::shared_ptr<TensorImpl>& impl) {
  if (!impl)
    fail(
        "tensor: this tensor is undefined (a .grad() before any backward pass, a layer without "
        "bias, a LazyConv2d parameter before its first forward pass, or never assigned)");
  return *impl;
}

const Shape& Tensor::shape() const {
  return need(impl_).shape;
}
const std::vector<int64_t>& Tensor::strides() const {
  return need(impl_).strides;
}
int64_t Tensor::dim() const {
  return static_cast<int64_t>(shape().size());
}
int64_t Tensor::numel() const {
  return detail::numel_of(shape());
}
int64_t Tensor::storage_offset() const {
  return need(impl_).offset;
}
int64_t Tensor::size(int64_t d) const {
  return shape()[wrap_dim(d, dim(), "size")];
}
int64_t Tensor::stride(int64_t d) const {
  return strides()[wrap_dim(d, dim(), "stride")];
}
std::string Tensor::shape_str() const {
  return shape_to_string(shape());
}

bool Tensor::is_contiguous() const {
  const auto& sh = shape();
  const auto& st = strides();
  int64_t expected = 1;
  for (size_t d = sh.size(); d-- > 0;) {
    if (sh[d] == 1) continue;
    if (st[d] != expected) return false;
    expected *= sh[d];
  }
  return true;
}

float* Tensor::data_ptr() {
  need(impl_);
  return impl_->storage->data.data() + impl_->offset;
}
const float* Tensor::data_ptr() const {
  need(impl_);
  return impl_->storage->data.data() + impl_->offset;
}

float Tensor::item() const {
  check(numel() == 1, "item: a tensor with ", numel(), " elements (shape ", shape_str(),
        ") has no single value; item() needs exactly one element");
  int64_t off = impl_->offset;
  return impl_->storage->data[static_cast<size_t>(off)];
}

static int64_t element_offset(const Tensor& t, std::initializer_list<int64_t> index,
                              const char* op) {
  check(static_cast<int64_t>(index.size()) == t.dim(), op, ": ", index.size(),
        " indices given for a tensor of shape ", t.shape_str(), "; give exactly ", t.dim());
  int64_t off = t.storage_offset();
  int64_t d = 0;
  for (int64_t i : index) {
    const int64_t n = t.shape()[d];
    check(i >= -n && i < n, op, ": index ", i, " is out of range for dimension ", d, " of size ", n,
          " (shape ", t.shape_str(), ")");
    off += (i < 0 ? i + n : i) * t.strides()[d];
    ++d;
  }
  return off;
}

float Tensor::at(std::initializer_list<int64_t> index) const {
  const int64_t off = element_offset(*this, index, "at");
  return impl_->storage->data[static_cast<size_t>(off)];
}

void Tensor::set(std::initializer_list<int64_t> index, float value) {
  detail::check_inplace(*this, "set");
  const int64_t off = element_offset(*this, index, "set");
  impl_->storage->data[static_cast<size_t>(off)] = value;
}

std::vector<float> Tensor::to_vector() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  const float* base = impl_->storage->data.data();
  detail::for_each_offset(shape(), strides(), impl_->offset,
                          [&](int64_t i, int64_t off) { out[static_cast<size_t>(i)] = base[off]; });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Views. Each records a backward that maps the view's gradient onto the base's shape.

static Shape infer_shape(Shape shape, int64_t numel, const Shape& from) {
  int64_t known = 1;
  int64_t infer = -1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == -1) {
      check(infer < 0, "view: only one dimension can be -1, got ", shape_to_string(shape));
      infer = static_cast<int64_t>(d);
    } else {
      check(shape[d] >= 0, "view: invalid dimension ", shape[d], " in ", shape_to_string(shape));
      known *= shape[d];
    }
  }
  if (infer >= 0) {
    check(known > 0 && numel % known == 0, "view: shape ", shape_to_string(shape),
          " is invalid for a tensor of shape ", shape_to_string(from), " (", numel, " elements)");
    shape[static_cast<size_t>(infer)] = numel / known;
  }
  check(detail::numel_of(shape) == numel, "view: shape ", shape_to_string(shape),
        " is invalid for a tensor of shape ", shape_to_string(from), " (", numel,
        " elements); the new shape must hold the same number of elements");
  return shape;
}

Tensor Tensor::view(Shape new_shape) const {
  new_shape = infer_shape(std::move(new_shape), numel(), shape());
  check(is_contiguous(), "view: the tensor of shape ", shape_str(),
        " is not contiguous; use reshape() (which copies) or contiguous() first");
  Tensor out = make_view(*this, new_shape, detail::contiguous_strides(new_shape), impl_->offset);
  const Shape in_shape = shape();
  return autograd::record(out, "ViewBackward0", {*this}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(in_shape)};
  });
}

Tensor Tensor::reshape(Shape new_shape) const {
  if (is_contiguous()) return view(std::move(new_shape));
  return contiguous().view(std::move(new_shape));
}

Tensor Tensor::flatten() const {
  return reshape({-1});
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  d0 = wrap_dim(d0, dim(), "transpose");
  d1 = wrap_dim(d1, dim(), "transpose");
  if (dim() == 0) return *this;
  Shape sh = shape();
  auto st = strides();
  std::swap(sh[d0], sh[d1]);
  std::swap(st[d0], st[d1]);
  Tensor out = make_view(*this, sh, st, impl_->offset);
  return autograd::record(out, "TransposeBackward0", {*this}, [d0, d1](const Tensor& g) {
    return std::vector<Tensor>{g.transpose(d0, d1)};
  });
}

Tensor Tensor::t() const {
  check(dim() <= 2, "t: expects a tensor with <= 2 dimensions, but got shape ", shape_str(),
        "; use transpose(dim0, dim1) for higher ranks");
  if (dim() < 2) return *this;
  Tensor out = transpose(0, 1);
  if (out.grad_fn()) out.grad_fn()->name = "TBackward0";
  return out;
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  check(static_cast<int64_t>(dims.size()) == dim(), "permute: ", dims.size(),
        " dimensions given for a tensor of shape ", shape_str());
  Shape sh(dims.size());
  std::vector<int64_t> st(dims.size());
  std::vector<int64_t> inverse(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = wrap_dim(dims[i], dim(), "permute");
    check(inverse[d] < 0, "permute: dimension ", d, " repeated; give each dimension once");
    inverse[d] = static_cast<int64_t>(i);
    sh[i] = shape()[d];
    st[i] = strides()[d];
  }
  Tensor out = make_view(*this, sh, st, impl_->offset);
  return autograd::record(out, "PermuteBackward0", {*this}, [inverse](const Tensor& g) {
    return std::vector<Tensor>{g.permute(inverse)};
  });
}

Tensor Tensor::slice(int64_t d, std::optional<int64_t> start, std::optional<int64_t> stop,
                     int64_t step) const {
  check(dim() > 0, "slice: cannot slice a 0-dim tensor");
  d = wrap_dim(d, dim(), "slice");
  check(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = shape()[d];
  auto clamp = [n](int64_t v) {
    if (v < 0) v += n;
    return std::clamp<int64_t>(v, 0, n);
  };
  const int64_t b = start ? clamp(*start) : 0;
  const int64_t e = std::max(b, stop ? clamp(*stop) : n);
  Shape sh = shape();
  auto st = strides();
  sh[d] = e > b ? (e - b - 1) / step + 1 : 0;
  st[d] *= step;
  Tensor out = make_view(*this, sh, st, impl_->offset + b * strides()[d]);
  const Shape in_shape = shape();
  return autograd::record(out, "SliceBackward0", {*this},
                          [in_shape, d, b, e, step](const Tensor& g) {
                            Tensor gi = zeros(in_shape);
                            gi.slice(d, b, e, step).copy_(g);
                            return std::vector<Tensor>{gi};
                          });
}

Tensor Tensor::select(int64_t d, int64_t i) const {
  check(dim() > 0, "select: cannot index a 0-dim tensor");
  d = wrap_dim(d, dim(), "select");
  const int64_t n = shape()[d];
  check(i >= -n && i < n, "select: index ", i, " is out of range for dimension ", d, " of size ", n,
        " (shape ", shape_str(), ")");
  if (i < 0) i += n;
  Shape sh = shape();
  auto st = strides();
  sh.erase(sh.begin() + d);
  st.erase(st.begin() + d);
  Tensor out = make_view(*this, sh, st, impl_->offset + i * strides()[d]);
  const Shape in_shape = shape();
  return autograd::record(out, "SelectBackward0", {*this}, [in_shape, d, i](const Tensor& g) {
    Tensor gi = zeros(in_shape);
    gi.select(d, i).copy_(g);
    return std::vector<Tensor>{gi};
  });
}

Tensor Tensor::index(std::initializer_list<TensorIndex> indices) const {
  check(static_cast<int64_t>(indices.size()) <= dim(), "index: ", indices.size(),
        " indices for a tensor of shape ", shape_str());
  Tensor out = *this;
  int64_t d = 0;
  for (const auto& ix : indices) {
    if (const auto* i = std::get_if<int64_t>(&ix)) {
      out = out.select(d, *i);
    } else {
      const auto& s = std::get<Slice>(ix);
      out = out.slice(d, s.start, s.stop, s.step);
      ++d;
    }
  }
  return out;
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape sh = shape();
  auto st = strides();
  const int64_t s = d < dim() ? st[d] * sh[d] : 1;
  sh.insert(sh.begin() + d, 1);
  st.insert(st.begin() + d, s);
  Tensor out = make_view(*this, sh, st, impl_->offset);
  const Shape in_shape = shape();
  return autograd::record(out, "UnsqueezeBackward0", {*this}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(in_shape)};
  });
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  if (dim() == 0) return *this;
  if (shape()[d] != 1) return *this;
  Shape sh = shape();
  auto st = strides();
  sh.erase(sh.begin() + d);
  st.erase(st.begin() + d);
  Tensor out = make_view(*this, sh, st, impl_->offset);
  const Shape in_shape = shape();
  return autograd::record(out, "SqueezeBackward0", {*this}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(in_shape)};
  });
}

Tensor Tensor::expand(Shape new_shape) const {
  check(new_shape.size() >= shape().size(), "expand: cannot expand shape ", shape_str(), " to ",
        shape_to_string(new_shape), "; the target needs at least as many dimensions");
  const size_t lead = new_shape.size() - shape().size();
  for (size_t d = 0; d < new_shape.size(); ++d) {
    if (new_shape[d] == -1) {
      check(d >= lead, "expand: -1 is not allowed for a new leading dimension");
      new_shape[d] = shape()[d - lead];
    }
    check(new_shape[d] >= 0, "expand: invalid size ", new_shape[d], " in ",
          shape_to_string(new_shape), "; sizes must be >= 0 (or -1 to keep a dimension)");
    if (d >= lead) {
      const int64_t s = shape()[d - lead];
      check(s == new_shape[d] || s == 1, "expand: cannot expand shape ", shape_str(), " to ",
            shape_to_string(new_shape), "; a dimension can grow only from size 1");
    }
  }
  Tensor out =
      make_view(*this, new_shape, detail::broadcast_strides(*this, new_shape), impl_->offset);
  const Shape in_shape = shape();
  return autograd::record(out, "ExpandBackward0", {*this}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{autograd::sum_to(g, in_shape)};
  });
}

// ---------------------------------------------------------------------------------------------
// Copies.

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = detail::make_tensor(shape());
  float* dst = out.data_ptr();
  const float* base = impl_->storage->data.data();
  detail::for_each_offset(shape(), strides(), impl_->offset,
                          [&](int64_t i, int64_t off) { dst[i] = base[off]; });
  return autograd::record(out, "CloneBackward0", {*this},
                          [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor Tensor::detach() const {
  need(impl_);
  return make_view(*this, shape(), strides(), impl_->offset);
}

// ---------------------------------------------------------------------------------------------
// Autograd accessors.

bool Tensor::requires_grad() const {
  return need(impl_).requires_grad;
}

Tensor& Tensor::requires_grad_(bool value) {
  need(impl_);
  check(value || !impl_->grad_fn, "requires_grad_: cannot turn off requires_grad on a tensor ",
        "computed by an operation (", impl_->grad_fn ? impl_->grad_fn->name : "",
        "); use detach()");
  impl_->requires_grad = value;
  return *this;
}

Tensor Tensor::grad() const {
  return need(impl_).grad;
}
void Tensor::set_grad(const Tensor& g) {
  need(impl_);
  if (g.defined()) {
    check(g.shape() == shape(), "set_grad: gradient of shape ", g.shape_str(),
          " does not match the tensor's shape ", shape_str());
  }
  impl_->grad = g.defined() ? g.detach() : g;  // no history: a graph holding this tensor would leak
}
bool Tensor::is_leaf() const {
  return !need(impl_).grad_fn;
}
std::shared_ptr<autograd::Node> Tensor::grad_fn() const {
  return need(impl_).grad_fn;
}

// ---------------------------------------------------------------------------------------------
// In-place ops.

Tensor& Tensor::fill_(float value) {
  detail::check_inplace(*this, "fill_");
  float* base = impl_->storage->data.data();
  detail::for_each_offset(shape(), strides(), impl_->offset,
                          [&](int64_t, int64_t off) { base[off] = value; });
  return *this;
}

Tensor& Tensor::zero_() {
  return fill_(0.f);
}

// Applies dst[i] = f(dst[i], src[i]) with src broadcast to this tensor's shape. The source is
// copied first when it may share memory with this tensor.
template <typename F>
static Tensor& inplace_binary(Tensor& self, const Tensor& src, const char* op, F f) {
  detail::check_inplace(self, op);
  check(src.defined(), op, ": the source tensor is undefined");
  check(!(GradMode::is_enabled() && src.requires_grad()), op, ": the source (shape ",
        src.shape_str(),
        ") requires grad, and an in-place op cannot carry its gradient; write "
        "a = a + b instead, or use .detach() / NoGradGuard when no gradient is wanted");
  const Shape out = broadcast_shapes(self.shape(), src.shape(), op);
  check(out == self.shape(), op, ": cannot write a result of shape ", shape_to_string(out),
        " into a tensor of shape ", self.shape_str(), "; the other operand (shape ",
        src.shape_str(), ") must broadcast to the destination's shape");
  const Tensor s = src.impl()->storage == self.impl()->storage ? src.detach().clone() : src;
  const auto sst = detail::broadcast_strides(s, self.shape());
  const float* sb = s.impl()->storage->data.data();
  float* db = self.impl()->storage->data.data();
  std::vector<int64_t> soffs(static_cast<size_t>(self.numel()));
  detail::for_each_offset(self.shape(), sst, s.storage_offset(),
                          [&](int64_t i, int64_t off) { soffs[static_cast<size_t>(i)] = off; });
  detail::for_each_offset(
      self.shape(), self.strides(), self.storage_offset(),
      [&](int64_t i, int64_t off) { db[off] = f(db[off], sb[soffs[static_cast<size_t>(i)]]); });
  return self;
}

Tensor& Tensor::copy_(const Tensor& src) {
  return inplace_binary(*this, src, "copy_", [](float, float b) { return b; });
}
Tensor& Tensor::add_(const Tensor& o, float alpha) {
  return inplace_binary(*this, o, "add_", [alpha](float a, float b) { return a + alpha * b; });
}
Tensor& Tensor::sub_(const Tensor& o) {
  return inplace_binary(*this, o, "sub_", [](float a, float b) { return a - b; });
}
Tensor& Tensor::mul_(const Tensor& o) {
  return inplace_binary(*this, o, "mul_", [](float a, float b) { return a * b; });
}
Tensor& Tensor::div_(const Tensor& o) {
  return inplace_binary(*this, o, "div_", [](float a, float b) { return a / b; });
}

template <typename F>
static Tensor& inplace_scalar(Tensor& self, const char* op, F f) {
  detail::check_inplace(self, op);
  float* base = self.impl()->storage->data.data();
  detail::for_each_offset(self.shape(), self.strides(), self.storage_offset(),
                          [&](int64_t, int64_t off) { base[off] = f(base[off]); });
  return self;
}

Tensor& Tensor::add_(float o) {
  return inplace_scalar(*this, "add_", [o](float a) { return a + o; });
}
Tensor& Tensor::sub_(float o) {
  return inplace_scalar(*this, "sub_", [o](float a) { return a - o; });
}
Tensor& Tensor::mul_(float o) {
  return inplace_scalar(*this, "mul_", [o](float a) { return a * o; });
}
Tensor& Tensor::div_(float o) {
  return inplace_scalar(*this, "div_", [o](float a) { return a / o; });
}

Tensor& Tensor::operator=(float value) && {
  return fill_(value);
}
Tensor& Tensor::operator=(const Tensor& src) && {
  return copy_(src);
}

// ---------------------------------------------------------------------------------------------

std::string shape_to_string(const Shape& shape) {
  std::ostringstream out;
  out << '(';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  if (shape.size() == 1) out << ',';
  out << ')';
  return out.str();
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t x = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t y = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    check(x == y || x == 1 || y == 1, op, ": shapes ", shape_to_string(a), " and ",
          shape_to_string(b),
          " cannot be broadcast together; each dimension, aligned from the "
          "right, must be equal or 1");
    out[i] = x == 1 ? y : x;
  }
  return out;
}

}  // namespace convkit
