// The public .npy / .npz functions of convkit/io.h: the Tensor-free core in io/npy.h, wrapped.
#include <convkit/io.h>

#include "io/npy.h"

namespace convkit {

namespace {

Tensor to_tensor(const io::NpyArray& array) {
  return from_vector(array.values, array.shape);
}

// A tensor's values in C order as an NpyArray (copies through contiguous() when it is a view).
io::NpyArray to_array(const Tensor& t, const std::string& path, const std::string& key) {
  check(t.defined(), "save_npz: cannot save the undefined tensor '", key, "' to '", path, "'");
  const Tensor c = t.contiguous();
  io::NpyArray array;
  array.shape = c.shape();
  const float* values = c.data_ptr();
  array.values.assign(values, values + c.numel());
  return array;
}

}  // namespace

Tensor load_npy(const std::string& path) {
  return to_tensor(io::read_npy_file(path));
}

void save_npy(const std::string& path, const Tensor& t) {
  check(t.defined(), "save_npy: cannot save an undefined tensor to '", path, "'");
  const Tensor c = t.contiguous();  // (the data in C order)
  io::write_npy_file(path, c.shape(), c.data_ptr());
}

std::map<std::string, Tensor> load_npz(const std::string& path) {
  std::map<std::string, Tensor> out;
  for (const auto& [key, array] : io::read_npz_file(path)) out.emplace(key, to_tensor(array));
  return out;
}

void save_npz(const std::string& path, const std::map<std::string, Tensor>& tensors) {
  std::map<std::string, io::NpyArray> arrays;
  for (const auto& [key, t] : tensors) arrays.emplace(key, to_array(t, path, key));
  io::write_npz_file(path, arrays);
}

}  // namespace convkit
