// Tensors to and from files: numpy's .npy (and .npz).
#pragma once
#include <convkit/tensor.h>

#include <map>
#include <string>

namespace convkit {

// Loads a .npy file (format 1.0, 2.0 or 3.0): float32 in either byte order; float16/float64 and
// integer/bool dtypes converted to float32; C or Fortran order. Malformed files throw
// convkit::Error.
Tensor load_npy(const std::string& path);
// Saves float32, little-endian, C order, format 1.0 — atomically (a temporary file, then rename).
void save_npy(const std::string& path, const Tensor& t);

// Loads a .npz archive (np.savez; np.savez_compressed when built with zlib): name -> tensor, the
// names without their ".npy" suffix, each member read as load_npy reads a file.
std::map<std::string, Tensor> load_npz(const std::string& path);
// Saves an uncompressed .npz (what np.savez writes, readable by np.load) — atomically.
void save_npz(const std::string& path, const std::map<std::string, Tensor>& tensors);

}  // namespace convkit
