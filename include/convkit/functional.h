// Differentiable functions: the notebook's corr2d, the complete conv2d, losses.
#pragma once
#include <convkit/tensor.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

namespace convkit {

// 2-D valid cross-correlation of a 2-D X with a 2-D K (the notebook's corr2d), differentiable in
// both.
Tensor corr2d(const Tensor& X, const Tensor& K);

// (h, w) pair that converts from a single int: Pair2(1) == Pair2{1, 1}.
struct Pair2 {
  int64_t h = 1, w = 1;
  Pair2() = default;
  Pair2(int64_t both) : h(both), w(both) {}
  Pair2(int64_t h_, int64_t w_) : h(h_), w(w_) {}
  bool operator==(const Pair2&) const = default;
};

// conv2d padding: an int, (h, w), four-sided (left, right, top, bottom — torch.nn.functional.pad's
// order), or the words "same" / "valid".
//   "same": TensorFlow's rule at every stride and dilation: Ho = ceil(H / sh);
//           total = max((Ho - 1) * sh + dh * (kH - 1) + 1 - H, 0); top = total / 2, bottom the
//           rest.
struct Padding {
  enum class Kind { Explicit, Same, Valid };
  Kind kind = Kind::Explicit;
  int64_t left = 0, right = 0, top = 0, bottom = 0;

  Padding() = default;
  Padding(int64_t p) : left(p), right(p), top(p), bottom(p) {}
  // Exact match for int literals: without it `Padding p = 0` is ambiguous with the const char*
  // constructor (a literal 0 is also a null pointer constant).
  Padding(int p) : Padding(int64_t{p}) {}
  Padding(int64_t ph, int64_t pw) : left(pw), right(pw), top(ph), bottom(ph) {}
  Padding(int64_t l, int64_t r, int64_t t, int64_t b) : left(l), right(r), top(t), bottom(b) {}
  Padding(const char* word);  // "same" or "valid"
  Padding(const std::string& word) : Padding(word.c_str()) {}
  static Padding same() { return Padding("same"); }
  static Padding valid() { return Padding("valid"); }
};

enum class PaddingMode { Zeros, Reflect, Replicate, Circular, Symmetric, Constant };
PaddingMode padding_mode_from_string(const std::string& name);  // "zeros", "reflect", ...
const char* to_string(PaddingMode mode);

struct Conv2dOptions {
  Pair2 stride = 1;
  Padding padding = 0;
  PaddingMode padding_mode = PaddingMode::Zeros;
  float padding_value = 0.f;  // for PaddingMode::Constant
  Pair2 dilation = 1;
  int64_t groups = 1;
};

// input (N, C, H, W) or unbatched (C, H, W); weight (O, C/groups, kH, kW); bias (O) or undefined.
// Returns (N, O, Ho, Wo) (or (O, Ho, Wo)), Ho = floor((H + top + bottom - dh*(kH-1) - 1) / sh) + 1.
// Differentiable in input, weight and bias.
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor(),
              const Conv2dOptions& options = {});

// The output shape conv2d would give, validating everything conv2d validates.
Shape conv2d_output_shape(const Shape& input, const Shape& weight,
                          const Conv2dOptions& options = {});

// Gradients of conv2d without the tape (for tools): any of the outputs may be skipped.
struct Conv2dGrads {
  Tensor input, weight, bias;
};
Conv2dGrads conv2d_backward(const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                            bool has_bias, const Conv2dOptions& options, bool need_input = true,
                            bool need_weight = true, bool need_bias = true);

// reduction='none' | 'mean' | 'sum', spelled as in PyTorch.
enum class Reduction { none, mean, sum };
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);

}  // namespace convkit
