// Small helpers shared by the tests.
#pragma once
#include <convkit/convkit.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace convkit::testing {

// The message of the convkit::Error that f throws, or "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The IEEE-754 bit patterns of a tensor's elements (row-major), at most `limit` of them.
inline std::vector<uint32_t> bits_of(const Tensor& t, size_t limit = SIZE_MAX) {
  std::vector<uint32_t> out;
  for (float v : t.to_vector()) {
    if (out.size() == limit) break;
    uint32_t b;
    std::memcpy(&b, &v, 4);
    out.push_back(b);
  }
  return out;
}

}  // namespace convkit::testing
