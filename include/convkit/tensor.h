// convkit::Tensor — a float32 n-dimensional array with shared storage, views and autograd.
//
// Shaped like PyTorch's: a Tensor is a handle; copies of it share the same data. Views (view,
// reshape when possible, t, transpose, permute, slice, select, index) share storage with their
// base. Dimensions are outermost first and strides are counted in elements.
#pragma once
#include <convkit/error.h>

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace convkit {

using Shape = std::vector<int64_t>;

namespace autograd {
struct Node;
}
struct TensorImpl;

// Python's slice: Slice() is ':', Slice(2) is '2:', Slice(2, 6) is '2:6', Slice(None, -1) is ':-1'.
constexpr std::nullopt_t None = std::nullopt;
struct Slice {
  std::optional<int64_t> start;
  std::optional<int64_t> stop;
  int64_t step = 1;
  Slice() = default;
  Slice(std::optional<int64_t> start_, std::optional<int64_t> stop_ = None, int64_t step_ = 1)
      : start(start_), stop(stop_), step(step_) {}
};
// One entry of Tensor::index: an integer (removes that dimension) or a Slice.
using TensorIndex = std::variant<int64_t, Slice>;

// Nested initializer lists for convkit::tensor({{0.f, 1.f}, {2.f, 3.f}}).
class NestedList {
 public:
  NestedList(float v) : scalar_(v), is_scalar_(true) {}
  NestedList(double v) : scalar_(static_cast<float>(v)), is_scalar_(true) {}
  NestedList(int v) : scalar_(static_cast<float>(v)), is_scalar_(true) {}
  NestedList(std::initializer_list<NestedList> items) : items_(items), is_scalar_(false) {}
  bool is_scalar() const { return is_scalar_; }
  float scalar() const { return scalar_; }
  const std::vector<NestedList>& items() const { return items_; }

 private:
  float scalar_ = 0.f;
  std::vector<NestedList> items_;
  bool is_scalar_;
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor (like a missing .grad)
  explicit Tensor(std::shared_ptr<TensorImpl> impl);

  Tensor(const Tensor&) = default;
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(const Tensor&) & = default;
  Tensor& operator=(Tensor&&) & noexcept = default;
  // Assigning to a temporary view writes into it, as in PyTorch:
  //   X.index({Slice(), Slice(2, 6)}) = 0;      // X[:, 2:6] = 0
  //   W.data().index({Slice()}) = other;         // W.data[:] = other (broadcast)
  Tensor& operator=(float value) &&;
  Tensor& operator=(const Tensor& src) &&;

  bool defined() const { return impl_ != nullptr; }

  // ---- shape ----
  const Shape& shape() const;
  const Shape& sizes() const { return shape(); }
  int64_t size(int64_t dim) const;  // negative dims count from the end
  const std::vector<int64_t>& strides() const;
  int64_t stride(int64_t dim) const;
  int64_t dim() const;
  int64_t numel() const;
  int64_t storage_offset() const;
  bool is_contiguous() const;
  std::string shape_str() const;  // "(2, 3)"

  // ---- data ----
  // Pointer to element [0, ..., 0]; walk it with strides() unless is_contiguous().
  float* data_ptr();
  const float* data_ptr() const;
  float item() const;  // the value of a one-element tensor
  float at(std::initializer_list<int64_t> index) const;
  void set(std::initializer_list<int64_t> index, float value);
  std::vector<float> to_vector() const;  // elements in row-major order

  // ---- views (share storage) ----
  Tensor view(Shape shape) const;     // one dimension may be -1
  Tensor reshape(Shape shape) const;  // a view when possible, else a copy
  Tensor t() const;                   // transpose of a 1-D or 2-D tensor
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor slice(int64_t dim, std::optional<int64_t> start, std::optional<int64_t> stop,
               int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t i) const;
  Tensor index(std::initializer_list<TensorIndex> indices) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor flatten() const;
  Tensor expand(Shape shape) const;  // broadcast view (stride 0), read-only in spirit

  // ---- copies ----
  Tensor contiguous() const;  // self when already contiguous
  Tensor clone() const;

  // ---- autograd ----
  bool requires_grad() const;
  Tensor& requires_grad_(bool value = true);
  Tensor grad() const;  // undefined until a backward pass reaches this leaf
  void set_grad(const Tensor& g);
  bool is_leaf() const;
  std::shared_ptr<autograd::Node> grad_fn() const;
  // Backward from this tensor: a scalar, or any shape with an explicit gradient of its shape.
  void backward(const Tensor& gradient = Tensor()) const;
  Tensor detach() const;                    // shares storage, no history
  Tensor data() const { return detach(); }  // PyTorch's .data

  // ---- in-place (a leaf that requires grad may be changed only under NoGradGuard) ----
  Tensor& fill_(float value);
  Tensor& zero_();
  Tensor& copy_(const Tensor& src);                      // src broadcast to this shape
  Tensor& uniform_(double from = 0.0, double to = 1.0);  // PyTorch's bits for the same seed
  Tensor& normal_(double mean = 0.0, double std = 1.0);
  Tensor& add_(const Tensor& other, float alpha = 1.f);
  Tensor& add_(float other);
  Tensor& sub_(const Tensor& other);
  Tensor& sub_(float other);
  Tensor& mul_(const Tensor& other);
  Tensor& mul_(float other);
  Tensor& div_(const Tensor& other);
  Tensor& div_(float other);
  Tensor& operator+=(const Tensor& o) { return add_(o); }
  Tensor& operator-=(const Tensor& o) { return sub_(o); }
  Tensor& operator*=(const Tensor& o) { return mul_(o); }
  Tensor& operator/=(const Tensor& o) { return div_(o); }
  Tensor& operator+=(float o) { return add_(o); }
  Tensor& operator-=(float o) { return sub_(o); }
  Tensor& operator*=(float o) { return mul_(o); }
  Tensor& operator/=(float o) { return div_(o); }

  // ---- math (differentiable) ----
  Tensor sum() const;
  Tensor sum(int64_t dim, bool keepdim = false) const;
  Tensor mean() const;
  Tensor abs() const;
  Tensor max() const;  // the largest element, as a 0-dim tensor
  Tensor min() const;
  Tensor pow(float exponent) const;
  Tensor sqrt() const;
  Tensor exp() const;
  Tensor log() const;
  Tensor relu() const;
  Tensor sigmoid() const;
  Tensor tanh() const;
  Tensor matmul(const Tensor& other) const;  // 2-D x 2-D

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// ---- factories ----
Tensor empty(Shape shape);
Tensor zeros(Shape shape);
Tensor ones(Shape shape);
Tensor full(Shape shape, float value);
Tensor arange(int64_t end);
Tensor arange(double start, double end, double step = 1.0);
Tensor rand(Shape shape);   // U[0, 1), PyTorch's bits after manual_seed
Tensor randn(Shape shape);  // N(0, 1); values differ from PyTorch's
Tensor tensor(const NestedList& values);
Tensor from_vector(const std::vector<float>& values, Shape shape);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);

// ---- arithmetic with broadcasting (differentiable) ----
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, float b);
Tensor operator-(const Tensor& a, float b);
Tensor operator*(const Tensor& a, float b);
Tensor operator/(const Tensor& a, float b);
Tensor operator+(float a, const Tensor& b);
Tensor operator-(float a, const Tensor& b);
Tensor operator*(float a, const Tensor& b);
Tensor operator/(float a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor pow(const Tensor& a, float exponent);
Tensor matmul(const Tensor& a, const Tensor& b);

// True when |a - b| <= atol + rtol * |b| everywhere (shapes broadcast); NaNs are unequal unless
// equal_nan.
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8,
              bool equal_nan = false);
bool equal(const Tensor& a, const Tensor& b);  // same shape and same values

// The shape two shapes broadcast to, or a convkit::Error naming `op`.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// Printing in PyTorch's format: tensor([[19., 25.],\n        [37., 43.]]).
std::string to_string(const Tensor& t);
std::ostream& operator<<(std::ostream& out, const Tensor& t);
std::string shape_to_string(const Shape& shape);

}  // namespace convkit
