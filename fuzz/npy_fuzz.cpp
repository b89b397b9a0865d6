// libFuzzer target for the .npy and .npz readers (src/io/npy.cpp).
//
// Any input must give either an array or a convkit::Error: never a crash, a sanitizer report, a
// hang, or an allocation beyond what the input's size justifies (libFuzzer's -rss_limit_mb and
// -malloc_limit_mb catch those). A successful parse must also survive a write/read round trip,
// and reading the same bytes from a file (read_npy_file: header first, data in chunks) must give
// the same outcome as parsing them in memory.
#include <convkit/error.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "io/npy.h"

namespace {

bool same(const convkit::io::NpyArray& a, const convkit::io::NpyArray& b) {
  return a.shape == b.shape && a.values.size() == b.values.size() &&
         (a.values.empty() ||
          std::memcmp(a.values.data(), b.values.data(), a.values.size() * sizeof(float)) == 0);
}

// The input as a file: an in-memory file (memfd) opened again through /proc/self/fd.
std::optional<convkit::io::NpyArray> read_as_file(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("npy_fuzz", 0);
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (fd < 0 || ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size))
    __builtin_trap();
  try {
    return convkit::io::read_npy_file(path);
  } catch (const convkit::Error&) {
    return std::nullopt;
  }
}

void check_npy(const uint8_t* data, size_t size) {
  using namespace convkit::io;
  const std::optional<NpyArray> from_file = read_as_file(data, size);
  NpyArray a;
  try {
    a = parse_npy(data, size, "fuzz.npy");
  } catch (const convkit::Error&) {
    if (from_file) __builtin_trap();  // the file reader accepted what the parser refused
    return;
  }
  if (!from_file || !same(*from_file, a)) __builtin_trap();
  // values hold prod(shape) elements (shape () is one element).
  size_t numel = 1;
  for (int64_t d : a.shape) numel *= static_cast<size_t>(d);
  if (numel != a.values.size()) __builtin_trap();
  // Writing the array and reading it back gives the same shape and the same bits (NaNs included).
  const std::string again = encode_npy(a.shape, a.values.data());
  const NpyArray b =
      parse_npy(reinterpret_cast<const uint8_t*>(again.data()), again.size(), "again");
  if (!same(a, b)) __builtin_trap();
}

void check_npz(const uint8_t* data, size_t size) {
  try {
    convkit::io::parse_npz(data, size, "fuzz.npz");
  } catch (const convkit::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  check_npy(data, size);
  check_npz(data, size);
  return 0;
}
