// Factories and the PyTorch-equal random generator.
//
// PyTorch's CPU generator is mt19937 seeded with the low 32 bits of the seed (the standard
// init_genrand). A float draw of U(from, to) takes r = the next 32-bit output and computes
//   x = (r & 0xFFFFFF) * 2^-24                       (double)
//   value = float(x * double(float(to) - float(from)) + double(float(from)))
// (at::uniform_real_distribution<float> with its double accumulator). Same seed, same bits.
#include <convkit/autograd.h>
#include <convkit/runtime.h>
#include <convkit/tensor.h>

#include <cmath>
#include <mutex>
#include <random>

#include "tensor/tensor_impl.h"

namespace convkit {

namespace {

struct Generator {
  std::mutex mutex;
  uint64_t seed = 67280421310721ULL;  // PyTorch's default_rng_seed_val
  std::mt19937 engine{static_cast<uint32_t>(67280421310721ULL & 0xFFFFFFFFULL)};
};

Generator& generator() {
  static Generator g;
  return g;
}

}  // namespace

void manual_seed(uint64_t seed) {
  Generator& g = generator();
  std::lock_guard<std::mutex> lock(g.mutex);
  g.seed = seed;
  g.engine.seed(static_cast<uint32_t>(seed & 0xFFFFFFFFULL));
}

uint64_t initial_seed() {
  Generator& g = generator();
  std::lock_guard<std::mutex> lock(g.mutex);
  return g.seed;
}

Tensor& Tensor::uniform_(double from, double to) {
  detail::check_inplace(*this, "uniform_");
  check(from <= to, "uniform_: expects from <= to, but got from=", from, " > to=", to);
  const float f = static_cast<float>(from);
  const float t = static_cast<float>(to);
  const double range = static_cast<double>(t - f);  // float subtraction, as PyTorch's template
  Generator& g = generator();
  std::lock_guard<std::mutex> lock(g.mutex);
  float* base = impl()->storage->data.data();
  detail::for_each_offset(shape(), strides(), storage_offset(), [&](int64_t, int64_t off) {
    const uint32_t r = static_cast<uint32_t>(g.engine());
    const double x = static_cast<double>(r & 0xFFFFFFu) * (1.0 / 16777216.0);
    base[off] = static_cast<float>(x * range + static_cast<double>(f));
  });
  return *this;
}

Tensor& Tensor::normal_(double mean, double std) {
  detail::check_inplace(*this, "normal_");
  check(std >= 0.0, "normal_: expects std >= 0, but got std=", std);
  Generator& g = generator();
  std::lock_guard<std::mutex> lock(g.mutex);
  float* base = impl()->storage->data.data();
  // Box-Muller on 53-bit uniforms; values differ from PyTorch's vectorised normal.
  auto uniform53 = [&] {
    const uint64_t hi = g.engine(), lo = g.engine();
    return static_cast<double>(((hi << 32) | lo) & ((1ULL << 53) - 1)) / double(1ULL << 53);
  };
  detail::for_each_offset(shape(), strides(), storage_offset(), [&](int64_t, int64_t off) {
    const double u1 = 1.0 - uniform53();
    const double u2 = uniform53();
    const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
    base[off] = static_cast<float>(mean + std * z);
  });
  return *this;
}

Tensor empty(Shape shape) {
  return detail::make_tensor(shape);
}
Tensor zeros(Shape shape) {
  return detail::make_tensor(shape);
}
Tensor ones(Shape shape) {
  return full(std::move(shape), 1.f);
}
Tensor full(Shape shape, float value) {
  Tensor t = detail::make_tensor(shape);
  std::fill(t.impl()->storage->data.begin(), t.impl()->storage->data.end(), value);
  return t;
}
Tensor zeros_like(const Tensor& t) {
  return zeros(t.shape());
}
Tensor ones_like(const Tensor& t) {
  return ones(t.shape());
}

Tensor arange(int64_t end) {
  return arange(0.0, static_cast<double>(end), 1.0);
}

Tensor arange(double start, double end, double step) {
  check(std::isfinite(start) && std::isfinite(end) && std::isfinite(step),
        "arange: start, end and step must be finite, got ", start, ", ", end, ", ", step);
  check(step != 0.0, "arange: step must be nonzero");
  check(std::fabs((end - start) / step) < 9e15, "arange: the range [", start, ", ", end,
        ") with step ", step, " has too many elements");
  check((step > 0 && start <= end) || (step < 0 && start >= end) || start == end,
        "arange: the range [", start, ", ", end, ") is empty in the direction of step ", step,
        "; use start <= end for a positive step");
  const auto n = static_cast<int64_t>(std::ceil((end - start) / step));
  Tensor t = detail::make_tensor({n});
  float* p = t.data_ptr();
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(start + double(i) * step);
  return t;
}

Tensor rand(Shape shape) {
  Tensor t = detail::make_tensor(shape);
  t.uniform_(0.0, 1.0);
  return t;
}

Tensor randn(Shape shape) {
  Tensor t = detail::make_tensor(shape);
  t.normal_(0.0, 1.0);
  return t;
}

static void collect(const NestedList& list, size_t depth, Shape& shape, std::vector<float>& out) {
  if (list.is_scalar()) {
    check(depth == shape.size(), "tensor: nested lists are ragged; every element at depth ", depth,
          " must be a list of the same length, as in {{0.f, 1.f}, {2.f, 3.f}}");
    out.push_back(list.scalar());
    return;
  }
  const auto n = static_cast<int64_t>(list.items().size());
  if (depth == shape.size()) {
    check(out.empty() || depth > 0, "tensor: nested lists are ragged");
    shape.push_back(n);
  } else {
    check(depth < shape.size() && shape[depth] == n, "tensor: nested lists are ragged: a list of ",
          n, " elements at depth ", depth, " where others have ",
          depth < shape.size() ? shape[depth] : 0, "; every row must have the same length");
  }
  for (const auto& item : list.items()) collect(item, depth + 1, shape, out);
}

Tensor tensor(const NestedList& values) {
  Shape shape;
  std::vector<float> data;
  if (!values.is_scalar() && values.items().empty()) return detail::make_tensor({0});
  collect(values, 0, shape, data);
  check(static_cast<int64_t>(data.size()) == detail::numel_of(shape),
        "tensor: nested lists are ragged; every row must have the same length");
  return from_vector(data, shape);
}

Tensor from_vector(const std::vector<float>& values, Shape shape) {
  check(static_cast<int64_t>(values.size()) == detail::numel_of(shape),
        "from_vector: ", values.size(), " values cannot fill shape ", shape_to_string(shape), " (",
        detail::numel_of(shape), " elements)");
  Tensor t = detail::make_tensor(shape);
  std::copy(values.begin(), values.end(), t.data_ptr());
  return t;
}

}  // namespace convkit
