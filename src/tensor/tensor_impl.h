// TensorImpl: what a Tensor handle points to. Storage is shared between a tensor and its views.
#pragma once
#include <convkit/autograd.h>
#include <convkit/tensor.h>

#include <memory>
#include <vector>

namespace convkit {

struct Storage {
  std::vector<float> data;
  explicit Storage(size_t n) : data(n) {}
  explicit Storage(std::vector<float> values) : data(std::move(values)) {}
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  std::vector<int64_t> strides;  // in elements
  int64_t offset = 0;            // element index of [0, ..., 0] in storage
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<autograd::Node> grad_fn;
};

namespace detail {

int64_t numel_of(const Shape& shape);
std::vector<int64_t> contiguous_strides(const Shape& shape);
// A fresh contiguous tensor of `shape` (values uninitialised but zero-filled by std::vector).
Tensor make_tensor(const Shape& shape);
// A view of `base`'s storage with the given geometry (no autograd recording).
Tensor make_view(const Tensor& base, Shape shape, std::vector<int64_t> strides, int64_t offset);
// Normalises a possibly negative dimension for an op, or throws naming the op.
int64_t wrap_dim(int64_t dim, int64_t rank, const char* op);
// Calls f(i, offset) for every element in row-major order, i its linear index, offset its storage
// index.
template <typename F>
void for_each_offset(const Shape& shape, const std::vector<int64_t>& strides, int64_t offset, F f) {
  const size_t rank = shape.size();
  const int64_t n = numel_of(shape);
  if (n == 0) return;
  std::vector<int64_t> idx(rank, 0);
  int64_t off = offset;
  for (int64_t i = 0; i < n; ++i) {
    f(i, off);
    for (size_t d = rank; d-- > 0;) {
      if (++idx[d] < shape[d]) {
        off += strides[d];
        break;
      }
      off -= strides[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}
// Strides that read `t` broadcast to `shape` (0 along broadcast dimensions).
std::vector<int64_t> broadcast_strides(const Tensor& t, const Shape& shape);
// Checks that an in-place op may write `t` (not a tensor that requires grad while recording).
void check_inplace(const Tensor& t, const char* op);

}  // namespace detail
}  // namespace convkit
