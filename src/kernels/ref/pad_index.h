// pad_index — where a padded coordinate reads from, for every padding mode.
//
// Coordinates are in the source frame: i in [0, n) is an ordinary sample, i < 0 lies in the
// leading pad and i >= n in the trailing pad. Two-dimensional padding is separable (PyTorch's
// F.pad and numpy's np.pad both map each dimension on its own), so a padded (ih, iw) reads
// x[pad_index(ih, H, mode)][pad_index(iw, W, mode)] unless either is kPadConstant.
//
//   n = 4, samples a b c d, two padded slots on each side:
//     Zeros / Constant   v v | a b c d | v v     (kPadConstant: 0 or the constant value)
//     Reflect            c b | a b c d | c b     (edge not repeated; PyTorch needs pad < n)
//     Replicate          a a | a b c d | d d     (edge repeated forever; no limit)
//     Circular           c d | a b c d | a b     (wraps around; PyTorch needs pad <= n)
//     Symmetric          b a | a b c d | d c     (edge repeated once; numpy's 'symmetric', pad <=
//     n)
//
// conv::make_params enforces those limits; beyond them the mapping still returns an index in
// [0, n) (reflect and symmetric fold again, circular wraps again), so a kernel never reads out of
// bounds whatever ConvParams it is handed.
#pragma once
#include <cstdint>

#include "kernels/conv_params.h"

namespace convkit::kernels {

// The value pad_index returns for a slot filled with the padding value (Zeros / Constant).
inline constexpr int64_t kPadConstant = -1;

// Source index in [0, n) that padded coordinate i reads, or kPadConstant. Requires n >= 1.
inline int64_t pad_index(int64_t i, int64_t n, PadMode mode) {
  if (i >= 0 && i < n) return i;
  // Non-negative remainder, for the periodic modes.
  auto wrap = [](int64_t a, int64_t period) {
    const int64_t r = a % period;
    return r < 0 ? r + period : r;
  };
  switch (mode) {
    case PadMode::Zeros:
    case PadMode::Constant:
      return kPadConstant;
    case PadMode::Replicate:
      return i < 0 ? 0 : n - 1;
    case PadMode::Circular:
      return wrap(i, n);
    case PadMode::Reflect: {
      // Period 2(n - 1): a b c d c b | a b c d ...
      if (n == 1) return 0;
      const int64_t period = 2 * (n - 1);
      const int64_t r = wrap(i, period);
      return r < n ? r : period - r;
    }
    case PadMode::Symmetric: {
      // Period 2n: a b c d d c b a | a b c d ...
      const int64_t period = 2 * n;
      const int64_t r = wrap(i, period);
      return r < n ? r : period - 1 - r;
    }
  }
  return kPadConstant;
}

}  // namespace convkit::kernels
