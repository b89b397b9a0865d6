// libFuzzer target for the .npy and .npz readers (src/io/npy.cpp).
//
// Any input must give either an array or a convkit::Error: never a crash, a sanitizer report, a
// hang, or an allocation beyond what the input's size justifies (libFuzzer's -rss_limit_mb and
// -malloc_limit_mb catch those). A successful parse must also survive a write/read round trip.
#include <convkit/error.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "io/npy.h"

namespace {

void check_npy(const uint8_t* data, size_t size) {
  using namespace convkit::io;
  NpyArray a;
  try {
    a = parse_npy(data, size, "fuzz.npy");
  } catch (const convkit::Error&) {
    return;
  }
  // values hold prod(shape) elements (shape () is one element).
  size_t numel = 1;
  for (int64_t d : a.shape) numel *= static_cast<size_t>(d);
  if (numel != a.values.size()) __builtin_trap();
  // Writing the array and reading it back gives the same shape and the same bits (NaNs included).
  const std::string again = encode_npy(a.shape, a.values.data());
  const NpyArray b = parse_npy(reinterpret_cast<const uint8_t*>(again.data()), again.size(), "again");
  if (b.shape != a.shape || b.values.size() != a.values.size()) __builtin_trap();
  if (!a.values.empty() &&
      std::memcmp(a.values.data(), b.values.data(), a.values.size() * sizeof(float)) != 0)
    __builtin_trap();
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
