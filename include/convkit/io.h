// Tensors to and from files: numpy's .npy (and .npz).
#pragma once
#include <convkit/tensor.h>

#include <map>
#include <string>

namespace convkit {

// Loads a .npy file (format 1.0, 2.0 or 3.0): float32 in either byte order; float16/float64 and
// integer/bool dtypes converted to float32; C or Fortran order. Malformed files throw convkit::Error.
Tensor load_npy(const std::string& path);
// Saves float32, little-endian, C order, format 1.0 — atomically (a temporary file, then rename).
void save_npy(const std::string& path, const Tensor& t);

}  // namespace convkit
