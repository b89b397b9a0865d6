// convkit::Error — the one exception type the library throws for bad input.
//
// Every message names the operation, the shapes or values at fault, and what would be valid, e.g.
//   "corr2d: kernel (3, 4) is larger than input (2, 5); each kernel dimension must be <= the
//   input's"
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace convkit {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
template <typename... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}
}  // namespace detail

// Throws convkit::Error with the parts streamed together: fail("conv2d: groups ", g, " ...").
template <typename... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  throw Error(detail::concat(std::forward<Parts>(parts)...));
}

// check(cond, parts...) throws fail(parts...) when cond is false.
template <typename... Parts>
void check(bool condition, Parts&&... parts) {
  if (!condition) fail(std::forward<Parts>(parts)...);
}

}  // namespace convkit
