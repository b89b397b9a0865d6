// numpy's .npy and .npz formats, Tensor-free: bytes or files in, {shape, float32 values} out.
//
// The .npy layout (numpy/lib/format.py, "NEP 1"):
//   "\x93NUMPY" major minor  header_len  header  data
//   header_len is uint16 LE for version 1.0 and uint32 LE for 2.0 / 3.0 (3.0: the header is UTF-8).
//   header is a Python dict literal, padded with spaces and ending in '\n':
//     {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
//   data is prod(shape) items of dtype `descr`, in C or Fortran order, with nothing after it.
//
// Readers accept float16/32/64, int8..64, uint8..64 and bool in either byte order and convert to
// float32 in C order. Anything malformed throws convkit::Error naming the file and the fault; no
// reader allocates more than the input's own size justifies.
//
// A .npz is a ZIP archive of .npy members named "<key>.npy" (np.savez stores them;
// np.savez_compressed deflates them, readable when the library is built with zlib: see
// npz_deflate_supported()).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace convkit::io {

// A decoded array: values in C (row-major) order, shape outermost first. shape {} is a scalar.
struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// Element types a .npy may hold (the ones we read).
enum class NpyKind { Float, Int, UInt, Bool };

// The parsed header of a .npy.
struct NpyHeader {
  int major = 1, minor = 0;
  NpyKind kind = NpyKind::Float;
  int itemsize = 4;            // bytes per element: 1, 2, 4 or 8
  bool big_endian = false;     // byte order of multi-byte items
  bool fortran_order = false;  // data is column-major
  std::vector<int64_t> shape;
  int64_t numel = 0;         // prod(shape)
  uint64_t data_offset = 0;  // bytes before the data (magic + version + length + header)
  uint64_t data_bytes = 0;   // numel * itemsize
};

// Parses the preamble and header of a .npy held in `bytes` (at least the whole header; the data
// may be missing). `name` (a path or "<member> in <archive>") starts every error message.
// `total_size` is the size of the whole file, used to reject headers promising more data than the
// file holds before anything is allocated.
NpyHeader parse_npy_header(const uint8_t* bytes, size_t size, uint64_t total_size,
                           const std::string& name);

// Parses a whole .npy held in memory: the data must be exactly what the header announces.
NpyArray parse_npy(const uint8_t* bytes, size_t size, const std::string& name);

// Reads a .npy file (reads the header first and checks sizes before reading the data).
NpyArray read_npy_file(const std::string& path);

// The bytes of a .npy (format 1.0, '<f4', C order) holding `values` (C order) with `shape`.
std::string encode_npy(const std::vector<int64_t>& shape, const float* values);

// Writes a .npy (format 1.0, float32 little-endian, C order) atomically.
void write_npy_file(const std::string& path, const std::vector<int64_t>& shape,
                    const float* values);

// ---- .npz ----

// Parses a .npz held in memory: key (member name without ".npy") -> array.
std::map<std::string, NpyArray> parse_npz(const uint8_t* bytes, size_t size,
                                          const std::string& name);
std::map<std::string, NpyArray> read_npz_file(const std::string& path);
// The bytes of an uncompressed .npz (what np.savez writes) holding each array as "<key>.npy".
std::string encode_npz(const std::map<std::string, NpyArray>& arrays);
void write_npz_file(const std::string& path, const std::map<std::string, NpyArray>& arrays);
// True when deflated members (np.savez_compressed) can be read, i.e. the library has zlib.
bool npz_deflate_supported();

}  // namespace convkit::io
