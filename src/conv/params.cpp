// conv2d's options: parsing the padding words and modes, and make_params, which validates shapes
// and options and resolves them into the plain integers of kernels::ConvParams.
#include <convkit/error.h>
#include <convkit/functional.h>

#include <cstring>
#include <sstream>
#include <string>

#include "conv/conv.h"

namespace convkit {

namespace {

constexpr const char* kModeNames = "zeros, reflect, replicate, circular, symmetric, constant";

}  // namespace

Padding::Padding(const char* word) {
  if (word != nullptr && std::strcmp(word, "same") == 0) {
    kind = Kind::Same;
  } else if (word != nullptr && std::strcmp(word, "valid") == 0) {
    kind = Kind::Valid;
  } else {
    fail("conv2d: unknown padding '", word ? word : "(null)",
         "'; valid paddings are an int, (h, w), (left, right, top, bottom), \"same\" or "
         "\"valid\"");
  }
}

PaddingMode padding_mode_from_string(const std::string& name) {
  if (name == "zeros") return PaddingMode::Zeros;
  if (name == "reflect") return PaddingMode::Reflect;
  if (name == "replicate") return PaddingMode::Replicate;
  if (name == "circular") return PaddingMode::Circular;
  if (name == "symmetric") return PaddingMode::Symmetric;
  if (name == "constant") return PaddingMode::Constant;
  fail("conv2d: unknown padding_mode '", name, "'; valid modes are ", kModeNames);
}

const char* to_string(PaddingMode mode) {
  switch (mode) {
    case PaddingMode::Zeros:
      return "zeros";
    case PaddingMode::Reflect:
      return "reflect";
    case PaddingMode::Replicate:
      return "replicate";
    case PaddingMode::Circular:
      return "circular";
    case PaddingMode::Symmetric:
      return "symmetric";
    case PaddingMode::Constant:
      return "constant";
  }
  return "unknown";
}

namespace conv {

namespace {

// "(1, 4, 5, 5)" — kept local so this file needs no Tensor code.
std::string shape_str(const Shape& s) {
  std::ostringstream out;
  out << '(';
  for (size_t i = 0; i < s.size(); ++i) out << (i ? ", " : "") << s[i];
  out << (s.size() == 1 ? ",)" : ")");
  return out.str();
}

kernels::PadMode to_kernel_mode(PaddingMode mode) {
  switch (mode) {
    case PaddingMode::Zeros:
      return kernels::PadMode::Zeros;
    case PaddingMode::Reflect:
      return kernels::PadMode::Reflect;
    case PaddingMode::Replicate:
      return kernels::PadMode::Replicate;
    case PaddingMode::Circular:
      return kernels::PadMode::Circular;
    case PaddingMode::Symmetric:
      return kernels::PadMode::Symmetric;
    case PaddingMode::Constant:
      return kernels::PadMode::Constant;
  }
  fail("conv2d: padding_mode ", int(mode), " is not one of ", kModeNames);
}

// TensorFlow's 'same' along one dimension: out = ceil(in / s), the total padding makes the last
// window end at or past the input's end, the leading side gets the smaller half.
void resolve_same(int64_t in, int64_t k, int64_t s, int64_t d, int64_t& lead, int64_t& trail) {
  const int64_t out = (in + s - 1) / s;
  const int64_t needed = (out - 1) * s + d * (k - 1) + 1 - in;
  const int64_t total = needed > 0 ? needed : 0;
  lead = total / 2;
  trail = total - lead;
}

// The limits PyTorch puts on each pad: reflect needs pad < dim (the mirror excludes the edge),
// circular and symmetric pad <= dim (one copy of the input at most); zeros, constant and
// replicate are unlimited.
void check_mode_limit(PaddingMode mode, const char* side, int64_t pad, const char* dim_name,
                      int64_t dim, const Shape& input) {
  if (mode == PaddingMode::Reflect && pad >= dim) {
    fail(
        "conv2d: padding_mode 'reflect' needs each pad smaller than the input dimension it pads, "
        "but the ",
        side, " pad is ", pad, " and the input ", dim_name, " is ", dim, " (input ",
        shape_str(input), "); use pad <= ", dim - 1,
        " or padding_mode 'symmetric', 'replicate', 'zeros' or 'constant'");
  }
  if ((mode == PaddingMode::Circular || mode == PaddingMode::Symmetric) && pad > dim) {
    fail("conv2d: padding_mode '", to_string(mode),
         "' needs each pad at most the input dimension it pads, but the ", side, " pad is ", pad,
         " and the input ", dim_name, " is ", dim, " (input ", shape_str(input),
         "); use pad <= ", dim, " or padding_mode 'replicate', 'zeros' or 'constant'");
  }
}

}  // namespace

ConvParams make_params(const Shape& input, const Shape& weight, const Conv2dOptions& opt) {
  check(input.size() == 4, "conv2d: expected input (N, C, H, W) or unbatched (C, H, W), but got ",
        input.size(), "-D input ", shape_str(input));
  check(weight.size() == 4, "conv2d: expected weight (O, C/groups, kH, kW), but got ",
        weight.size(), "-D weight ", shape_str(weight));
  check(input[0] >= 0 && input[1] >= 1 && input[2] >= 1 && input[3] >= 1, "conv2d: input ",
        shape_str(input),
        " must have at least one channel, row and column (only the batch N may be 0)");
  check(weight[0] >= 1 && weight[1] >= 1 && weight[2] >= 1 && weight[3] >= 1, "conv2d: weight ",
        shape_str(weight), " must have every dimension >= 1");

  // Every size, stride, dilation and pad stays below 2^31 so that no sum or product below
  // overflows.
  constexpr int64_t kLimit = int64_t(1) << 31;
  auto sane = [&](int64_t v) { return v < kLimit; };
  check(sane(input[0]) && sane(input[1]) && sane(input[2]) && sane(input[3]) && sane(weight[0]) &&
            sane(weight[1]) && sane(weight[2]) && sane(weight[3]),
        "conv2d: input ", shape_str(input), " or weight ", shape_str(weight),
        " has a dimension of 2^31 or more; each dimension must be < 2147483648");
  check(sane(opt.stride.h) && sane(opt.stride.w) && sane(opt.dilation.h) && sane(opt.dilation.w) &&
            sane(opt.groups),
        "conv2d: stride (", opt.stride.h, ", ", opt.stride.w, "), dilation (", opt.dilation.h, ", ",
        opt.dilation.w, ") and groups ", opt.groups, " must each be < 2147483648");
  if (opt.padding.kind == Padding::Kind::Explicit) {
    const Padding& q = opt.padding;
    check(sane(q.left) && sane(q.right) && sane(q.top) && sane(q.bottom),
          "conv2d: padding (left, right, top, bottom) = (", q.left, ", ", q.right, ", ", q.top,
          ", ", q.bottom, ") must be < 2147483648 on every side");
  }

  ConvParams p;
  p.N = input[0];
  p.C = input[1];
  p.H = input[2];
  p.W = input[3];
  p.O = weight[0];
  p.kH = weight[2];
  p.kW = weight[3];
  p.groups = opt.groups;

  check(p.groups >= 1, "conv2d: groups must be >= 1, but got groups=", p.groups);
  check(p.C % p.groups == 0, "conv2d: groups=", p.groups,
        " must divide the input channels, but input ", shape_str(input), " has ", p.C,
        " channels; groups must divide both C=", p.C, " and the weight's O=", p.O);
  check(p.O % p.groups == 0, "conv2d: groups=", p.groups,
        " must divide the output channels, but weight ", shape_str(weight), " has ", p.O,
        " output channels; groups must divide both C=", p.C, " and O=", p.O);
  check(weight[1] == p.C / p.groups, "conv2d: weight ", shape_str(weight), " expects ", weight[1],
        " input channels per group (groups=", p.groups, "), but input ", shape_str(input), " has ",
        p.C, " channels", p.groups > 1 ? " (" : "",
        p.groups > 1 ? std::to_string(p.C / p.groups) + " per group)" : "",
        "; weight dimension 1 must be C/groups=", p.C / p.groups);

  p.sH = opt.stride.h;
  p.sW = opt.stride.w;
  p.dH = opt.dilation.h;
  p.dW = opt.dilation.w;
  check(p.sH >= 1 && p.sW >= 1, "conv2d: stride must be >= 1 in each dimension, but got (", p.sH,
        ", ", p.sW, ")");
  check(p.dH >= 1 && p.dW >= 1, "conv2d: dilation must be >= 1 in each dimension, but got (", p.dH,
        ", ", p.dW, ")");

  switch (opt.padding.kind) {
    case Padding::Kind::Explicit: {
      const Padding& q = opt.padding;
      check(q.left >= 0 && q.right >= 0 && q.top >= 0 && q.bottom >= 0,
            "conv2d: padding must be >= 0 on every side, but got (left, right, top, bottom) = (",
            q.left, ", ", q.right, ", ", q.top, ", ", q.bottom, ")");
      p.pad_l = q.left;
      p.pad_r = q.right;
      p.pad_t = q.top;
      p.pad_b = q.bottom;
      break;
    }
    case Padding::Kind::Same:
      resolve_same(p.H, p.kH, p.sH, p.dH, p.pad_t, p.pad_b);
      resolve_same(p.W, p.kW, p.sW, p.dW, p.pad_l, p.pad_r);
      break;
    case Padding::Kind::Valid:
      break;
  }

  check_mode_limit(opt.padding_mode, "top", p.pad_t, "height", p.H, input);
  check_mode_limit(opt.padding_mode, "bottom", p.pad_b, "height", p.H, input);
  check_mode_limit(opt.padding_mode, "left", p.pad_l, "width", p.W, input);
  check_mode_limit(opt.padding_mode, "right", p.pad_r, "width", p.W, input);
  p.mode = to_kernel_mode(opt.padding_mode);
  p.pad_value = opt.padding_value;

  // Effective (dilated) kernel extent against the padded input.
  const int64_t ekH = p.dH * (p.kH - 1) + 1, ekW = p.dW * (p.kW - 1) + 1;
  const int64_t pH = p.H + p.pad_t + p.pad_b, pW = p.W + p.pad_l + p.pad_r;
  check(ekH <= pH && ekW <= pW, "conv2d: the dilated kernel (", ekH, ", ", ekW, ") (kernel (", p.kH,
        ", ", p.kW, "), dilation (", p.dH, ", ", p.dW, ")) is larger than the padded input (", pH,
        ", ", pW, ") (input ", shape_str(input), ", padding (left, right, top, bottom) = (",
        p.pad_l, ", ", p.pad_r, ", ", p.pad_t, ", ", p.pad_b,
        ")); each dilation*(k-1)+1 must be <= the padded input dimension");

  p.Ho = (pH - ekH) / p.sH + 1;
  p.Wo = (pW - ekW) / p.sW + 1;
  return p;
}

}  // namespace conv
}  // namespace convkit
