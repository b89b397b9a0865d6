// `convkit conv2d` and `convkit conv2d-backward`: convkit::conv2d / conv2d_backward on .npy files.
//
// The command-line contract (scripts call it; keep it stable):
//   convkit conv2d --input X.npy --weight W.npy [--bias B.npy] --output Y.npy
//       [--stride S|SH,SW] [--padding P|PH,PW|L,R,T,B|same|valid]
//       [--padding-mode zeros|reflect|replicate|circular|symmetric|constant] [--padding-value V]
//       [--dilation D|DH,DW] [--groups G]
//   convkit conv2d-backward <the same inputs and options> --grad-output GY.npy
//       [--grad-input GX.npy] [--grad-weight GW.npy] [--grad-bias GB.npy]
// Every result is computed before any file is written; outputs are first saved beside their
// targets under temporary names and renamed into place only when all of them were saved, so an
// error leaves no output file behind.
#include <convkit/convkit.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "commands.h"

namespace convkit::cli {

namespace {

namespace fs = std::filesystem;

// What both commands read from the command line. The number-list options are taken as text and
// converted here, so that each bad value gets a message naming its valid forms.
struct ConvArgs {
  std::string input, weight, bias;
  std::string stride = "1", padding = "0", padding_mode = "zeros", padding_value = "0",
              dilation = "1", groups = "1";
  CLI::Option* padding_value_option = nullptr;
};

const char* const kConvFooter =
    "Shapes: input (N, C, H, W) or unbatched (C, H, W); weight (O, C/groups, kH, kW); bias (O).\n"
    "The output is (N, O, Ho, Wo) (or (O, Ho, Wo)), exactly PyTorch's size:\n"
    "  Ho = floor((H + top + bottom - dilation_h * (kH - 1) - 1) / stride_h) + 1, Wo likewise.\n"
    "Padding 'same' is TensorFlow's rule at every stride and dilation: Ho = ceil(H / stride_h),\n"
    "  total = max((Ho - 1) * stride_h + dilation_h * (kH - 1) + 1 - H, 0), top = total / 2\n"
    "  (rounded down), bottom the rest; at stride 1 this is PyTorch's 'same'.\n"
    "Padding modes: zeros, reflect (each pad < that input size), replicate, circular and\n"
    "  symmetric (numpy's, the edge repeated; each pad <= that input size), constant (the value\n"
    "  of --padding-value).\n"
    "Files are numpy .npy (format 1.0-3.0; float16/32/64, integer and bool dtypes are read as\n"
    "  float32; C or Fortran order); outputs are float32 .npy written atomically. On any error\n"
    "  the message goes to stderr, the exit status is 2 and no output file is written.";

void add_conv_options(CLI::App* cmd, ConvArgs& a) {
  cmd->add_option("--input", a.input, "Input X (.npy): (N, C, H, W) or unbatched (C, H, W)")
      ->required();
  cmd->add_option("--weight", a.weight, "Weight W (.npy): (O, C/groups, kH, kW)")->required();
  cmd->add_option("--bias", a.bias, "Bias B (.npy): (O); none by default");
  cmd->add_option("--stride", a.stride, "Stride S or SH,SW (default 1)")->type_name("S|SH,SW");
  cmd->add_option("--padding", a.padding,
                  "Padding: P (all sides), PH,PW, L,R,T,B (left, right, top, bottom: the order of "
                  "torch.nn.functional.pad), 'same' or 'valid' (default 0)")
      ->type_name("P|PH,PW|L,R,T,B|same|valid");
  cmd->add_option("--padding-mode", a.padding_mode, "How padded samples are filled (default zeros)")
      ->check(
          CLI::IsMember({"zeros", "reflect", "replicate", "circular", "symmetric", "constant"}));
  a.padding_value_option =
      cmd->add_option("--padding-value", a.padding_value,
                      "The fill value of --padding-mode constant (default 0; only with that mode)")
          ->type_name("V");
  cmd->add_option("--dilation", a.dilation, "Dilation D or DH,DW (default 1)")
      ->type_name("D|DH,DW");
  cmd->add_option("--groups", a.groups,
                  "Groups G: a divisor of C and O; G = C is a depthwise convolution (default 1)")
      ->type_name("G");
  cmd->footer(kConvFooter);
}

// The comma-separated integers of `text`, each parsed strictly (an optional '-', digits, nothing
// else); `forms` (e.g. "S or SH,SW") goes into the message when that fails.
std::vector<int64_t> int_list(const char* option, const std::string& text, const char* forms) {
  std::vector<int64_t> out;
  size_t begin = 0;
  while (true) {
    const size_t comma = std::min(text.find(',', begin), text.size());
    const std::string item = text.substr(begin, comma - begin);
    int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size())
      throw CLI::ValidationError(
          option, "'" + item + "' in '" + text + "' is not an integer; give " + forms);
    out.push_back(v);
    if (comma == text.size()) break;
    begin = comma + 1;
  }
  return out;
}

// An (h, w) pair from "S" or "SH,SW".
Pair2 pair_option(const char* option, const std::string& text, const char* forms) {
  const std::vector<int64_t> v = int_list(option, text, forms);
  if (v.size() > 2)
    throw CLI::ValidationError(
        option, "'" + text + "' has " + std::to_string(v.size()) + " values; give " + forms);
  return v.size() == 1 ? Pair2(v[0]) : Pair2(v[0], v[1]);
}

Conv2dOptions options_of(const ConvArgs& a) {
  Conv2dOptions o;
  o.stride = pair_option("--stride", a.stride, "S or SH,SW (integers >= 1)");
  o.dilation = pair_option("--dilation", a.dilation, "D or DH,DW (integers >= 1)");
  const std::vector<int64_t> groups = int_list("--groups", a.groups, "G, an integer >= 1");
  if (groups.size() != 1)
    throw CLI::ValidationError("--groups", "'" + a.groups + "' is not one integer; give G >= 1");
  o.groups = groups[0];

  if (a.padding == "same" || a.padding == "valid") {
    o.padding = Padding(a.padding);
  } else {
    const char* forms = "P, PH,PW or L,R,T,B as integers >= 0, or 'same' or 'valid'";
    const std::vector<int64_t> p = int_list("--padding", a.padding, forms);
    for (int64_t v : p)
      if (v < 0)
        throw CLI::ValidationError("--padding",
                                   "'" + a.padding + "' has a negative pad; give " + forms);
    if (p.size() == 1) {
      o.padding = Padding(p[0]);
    } else if (p.size() == 2) {
      o.padding = Padding(p[0], p[1]);
    } else if (p.size() == 4) {
      o.padding = Padding(p[0], p[1], p[2], p[3]);
    } else {
      throw CLI::ValidationError(
          "--padding",
          "'" + a.padding + "' has " + std::to_string(p.size()) + " values; give " + forms);
    }
  }

  o.padding_mode = padding_mode_from_string(a.padding_mode);
  if (a.padding_value_option->count() > 0 && o.padding_mode != PaddingMode::Constant)
    throw CLI::ValidationError(
        "--padding-value",
        "applies only with --padding-mode constant (got '" + a.padding_mode + "')");
  const std::string& v = a.padding_value;
  const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), o.padding_value);
  if (v.empty() || ec != std::errc() || ptr != v.data() + v.size())
    throw CLI::ValidationError("--padding-value",
                               "'" + v + "' is not a number; give a float such as 0, -1 or 0.5");
  return o;
}

// load_npy with the option's name in front of any error.
Tensor load(const char* option, const std::string& path) {
  try {
    return load_npy(path);
  } catch (const Error& e) {
    throw Error(std::string(option) + ": " + e.what());
  }
}

// Checks a bias (O) against a weight (O, ...), as conv2d would.
void check_bias(const Tensor& bias, const Tensor& weight) {
  check(bias.dim() == 1 && weight.dim() >= 1 && bias.size(0) == weight.size(0),
        "--bias: bias of shape ", bias.shape_str(), " does not fit weight of shape ",
        weight.shape_str(), "; expected bias (",
        weight.dim() >= 1 ? std::to_string(weight.size(0)) : std::string("O"), ",)");
}

// One file a command writes: the option that named it, its path, and (once computed) its value.
struct Output {
  std::string option, path;
  Tensor value;
};

// Checks, before any computation, that the outputs name distinct files in existing directories.
void check_outputs(const std::vector<Output>& outputs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    const fs::path path(outputs[i].path);
    const std::string name = path.filename().string();
    check(!name.empty() && name != "." && name != "..", outputs[i].option, ": '", outputs[i].path,
          "' names a directory; give a file name such as out.npy");
    check(name.size() <= 255, outputs[i].option, ": the file name '", name.substr(0, 40),
          "...' is ", name.size(), " bytes long; file names may have at most 255");
    const fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
    check(fs::is_directory(dir), outputs[i].option, ": cannot write '", outputs[i].path,
          "': its directory '", dir.string(), "' does not exist");
    check(!fs::is_directory(path), outputs[i].option, ": cannot write '", outputs[i].path,
          "': it is a directory");
    for (size_t j = 0; j < i; ++j)
      check(
          fs::absolute(path).lexically_normal() != fs::absolute(outputs[j].path).lexically_normal(),
          outputs[j].option, " and ", outputs[i].option, " name the same file '", outputs[i].path,
          "'; give each output its own file");
  }
}

// Saves every output or none: each goes to a temporary file beside its target, and only when all
// were saved are they renamed into place.
void save_all(const std::vector<Output>& outputs) {
  check_outputs(outputs);
  std::vector<std::string> temps;
  const auto remove_temps = [&temps] {
    std::error_code ec;
    for (const auto& t : temps) fs::remove(t, ec);
  };
  try {
    for (const Output& out : outputs) {
      const fs::path path(out.path);
      const fs::path tmp = path.parent_path() / ("." + path.filename().string().substr(0, 180) +
                                                 ".convkit-" + std::to_string(::getpid()) + ".npy");
      temps.push_back(tmp.string());
      try {
        save_npy(tmp.string(), out.value);
      } catch (const Error& e) {
        throw Error(out.option + ": cannot write '" + out.path + "' (" + e.what() + ")");
      }
    }
    for (size_t i = 0; i < outputs.size(); ++i) {
      std::error_code ec;
      fs::rename(temps[i], outputs[i].path, ec);
      if (ec) fail(outputs[i].option, ": cannot write '", outputs[i].path, "': ", ec.message());
      temps[i].clear();
    }
  } catch (...) {
    remove_temps();
    throw;
  }
}

void run_forward(const ConvArgs& a, const std::string& output) {
  const Conv2dOptions options = options_of(a);
  std::vector<Output> outputs = {{"--output", output, Tensor()}};
  check_outputs(outputs);
  const Tensor x = load("--input", a.input);
  const Tensor w = load("--weight", a.weight);
  Tensor b;
  if (!a.bias.empty()) {
    b = load("--bias", a.bias);
    check_bias(b, w);
  }
  outputs[0].value = conv2d(x, w, b, options);
  save_all(outputs);
}

struct GradPaths {
  std::string grad_output, grad_input, grad_weight, grad_bias;
};

void run_backward(const ConvArgs& a, const GradPaths& g) {
  if (g.grad_input.empty() && g.grad_weight.empty() && g.grad_bias.empty())
    throw CLI::ValidationError("conv2d-backward",
                               "nothing to compute; give at least one of --grad-input, "
                               "--grad-weight and --grad-bias");
  const Conv2dOptions options = options_of(a);
  std::vector<Output> outputs;
  if (!g.grad_input.empty()) outputs.push_back({"--grad-input", g.grad_input, Tensor()});
  if (!g.grad_weight.empty()) outputs.push_back({"--grad-weight", g.grad_weight, Tensor()});
  if (!g.grad_bias.empty()) outputs.push_back({"--grad-bias", g.grad_bias, Tensor()});
  check_outputs(outputs);
  const Tensor x = load("--input", a.input);
  const Tensor w = load("--weight", a.weight);
  if (!a.bias.empty()) check_bias(load("--bias", a.bias), w);
  const Tensor gy = load("--grad-output", g.grad_output);
  // The bias gradient needs no bias values: it is grad_output summed over N, Ho and Wo.
  const Conv2dGrads grads =
      conv2d_backward(gy, x, w, /*has_bias=*/true, options, !g.grad_input.empty(),
                      !g.grad_weight.empty(), !g.grad_bias.empty());
  for (Output& out : outputs)
    out.value = out.option == "--grad-input"    ? grads.input
                : out.option == "--grad-weight" ? grads.weight
                                                : grads.bias;
  save_all(outputs);
}

const CommandRegistrar reg(20, [](CLI::App& app) {
  auto* fwd = app.add_subcommand(
      "conv2d",
      "2-D convolution (cross-correlation, as torch.nn.functional.conv2d) of .npy files: every "
      "PyTorch option plus strided 'same', four-sided padding and more padding modes.\n"
      "  convkit conv2d --input X.npy --weight W.npy [--bias B.npy] --output Y.npy\n"
      "      [--stride S|SH,SW] [--padding P|PH,PW|L,R,T,B|same|valid]\n"
      "      [--padding-mode zeros|reflect|replicate|circular|symmetric|constant]\n"
      "      [--padding-value V] [--dilation D|DH,DW] [--groups G]");
  auto fwd_args = std::make_shared<ConvArgs>();
  auto output = std::make_shared<std::string>();
  add_conv_options(fwd, *fwd_args);
  fwd->add_option("--output", *output, "Where to write Y (.npy, float32)")->required();
  fwd->callback([fwd_args, output] { run_forward(*fwd_args, *output); });

  auto* bwd = app.add_subcommand(
      "conv2d-backward",
      "Gradients of conv2d for a given dL/dY: dL/dX, dL/dW and dL/dB (at least one), with the "
      "same inputs and options as conv2d.\n"
      "  convkit conv2d-backward <the inputs and options of conv2d> --grad-output GY.npy\n"
      "      [--grad-input GX.npy] [--grad-weight GW.npy] [--grad-bias GB.npy]");
  auto bwd_args = std::make_shared<ConvArgs>();
  auto grads = std::make_shared<GradPaths>();
  add_conv_options(bwd, *bwd_args);
  bwd->add_option("--grad-output", grads->grad_output,
                  "dL/dY (.npy): the shape conv2d's output would have")
      ->required();
  bwd->add_option("--grad-input", grads->grad_input, "Where to write dL/dX (.npy), X's shape");
  bwd->add_option("--grad-weight", grads->grad_weight, "Where to write dL/dW (.npy), W's shape");
  bwd->add_option("--grad-bias", grads->grad_bias,
                  "Where to write dL/dB (.npy), (O): dL/dY summed over N, Ho and Wo");
  bwd->callback([bwd_args, grads] { run_backward(*bwd_args, *grads); });
});

}  // namespace

}  // namespace convkit::cli
