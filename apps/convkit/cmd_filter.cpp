// `convkit filter IN OUT`: applies one 2-D kernel to every channel of a picture (a depthwise
// conv2d, groups = C) and writes the result as a PNG (values mapped to [0, 1]) or as a .npy (raw
// values).
#include <convkit/convkit.h>
#include <convkit/filters.h>
#include <convkit/image.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "commands.h"
#include "pictures.h"

namespace convkit::cli {

namespace {

struct FilterArgs {
  std::string in, out;
  std::string kernel_text, kernel_file, preset;
  double sigma = 1.0;
  int64_t size = 0;
  bool gray = false;
  std::string stride = "1", padding = "same", padding_mode = "replicate", dilation = "1";
  float padding_value = 0.f;
  std::string map;  // empty: chosen from the kernel
  int depth = 8;
  bool verbose = false;
  bool sigma_given = false, size_given = false;
};

// The kernel as a depthwise weight (C, 1, kH, kW) for a picture with C channels.
Tensor kernel_weight(const FilterArgs& a, int64_t C, Tensor* kernel2d) {
  Tensor k;
  if (!a.preset.empty()) {
    k = filters::preset(a.preset, a.sigma, a.size);
  } else if (!a.kernel_text.empty()) {
    k = filters::parse_kernel(a.kernel_text);
  } else {
    k = load_npy(a.kernel_file);
    // (kH, kW), (1, kH, kW), (1, 1, kH, kW), or one kernel per channel (C, 1, kH, kW).
    const Shape& s = k.shape();
    const bool per_channel = k.dim() == 4 && s[0] == C && s[1] == 1;
    const bool single =
        k.dim() == 2 || (k.dim() == 3 && s[0] == 1) || (k.dim() == 4 && s[0] == 1 && s[1] == 1);
    check(single || per_channel, "--kernel-file '", a.kernel_file, "' holds shape ", k.shape_str(),
          "; expected (kH, kW), (1, kH, kW), (1, 1, kH, kW) or one kernel per channel (", C,
          ", 1, kH, kW)");
    check(k.numel() > 0, "--kernel-file '", a.kernel_file, "' holds an empty kernel ",
          k.shape_str());
    if (per_channel) {
      *kernel2d = Tensor();
      return k.contiguous();
    }
  }
  k = k.reshape({k.size(-2), k.size(-1)});
  *kernel2d = k;
  return k.reshape({1, 1, k.size(0), k.size(1)}).expand({C, 1, k.size(0), k.size(1)}).contiguous();
}

// The value map that fits a kernel: a derivative (sum ~ 0) -> abs; a smoothing or sharpening kernel
// (sum ~ 1, brightness kept) -> clip; anything else -> minmax.
ValueMap fitting_map(const FilterArgs& a, const Tensor& weight) {
  if (!a.map.empty()) return value_map_from_string(a.map);
  if (!a.preset.empty()) return filters::default_value_map(a.preset);
  const Tensor k = weight.select(0, 0);
  double sum = 0, mag = 0;
  for (float v : k.to_vector()) {
    sum += v;
    mag += std::fabs(v);
  }
  if (std::fabs(sum) <= 1e-3 * mag) return ValueMap::Abs;
  if (std::fabs(sum - 1.0) <= 1e-3 * mag) return ValueMap::Clip;
  return ValueMap::MinMax;
}

void run_filter(const FilterArgs& a) {
  using clock = std::chrono::steady_clock;
  const int sources = !a.preset.empty() + !a.kernel_text.empty() + !a.kernel_file.empty();
  check(sources == 1, "filter: give exactly one of --kernel, --kernel-file and --preset (got ",
        sources, ")");
  check(a.preset == "gaussian" || a.preset == "box" || !a.size_given,
        "filter: --size applies to --preset gaussian and box only");
  check(a.preset == "gaussian" || !a.sigma_given,
        "filter: --sigma applies to --preset gaussian only");
  const bool to_npy = pictures::ends_with(a.out, ".npy");
  check(to_npy || pictures::ends_with(a.out, ".png"), "filter: OUT '", a.out,
        "' must end in .png (a picture) or .npy (the raw filtered values)");

  auto t0 = clock::now();
  const Tensor picture = pictures::load_picture(a.in, a.gray);  // (C_all, H, W)
  const double t_read = pictures::seconds_since(t0);
  // The alpha channel of a gray+alpha or RGBA image file is not filtered (its edges would make
  // the picture transparent): it is kept as it is when the output has the input's size.
  const bool has_alpha =
      !pictures::is_npy_file(a.in) && (picture.size(0) == 2 || picture.size(0) == 4);
  const Tensor image = has_alpha ? picture.slice(0, 0, picture.size(0) - 1) : picture;
  const int64_t C = image.size(0), H = image.size(1), W = image.size(2);

  Conv2dOptions opt;
  opt.stride = pictures::parse_pair(a.stride, "--stride");
  opt.dilation = pictures::parse_pair(a.dilation, "--dilation");
  opt.padding = pictures::parse_padding(a.padding);
  opt.padding_mode = padding_mode_from_string(a.padding_mode);
  opt.padding_value = a.padding_value;
  opt.groups = C;
  Tensor kernel2d;
  const Tensor weight = kernel_weight(a, C, &kernel2d);  // (C, 1, kH, kW)
  const int64_t kH = weight.size(2), kW = weight.size(3);
  const int64_t span_h = opt.dilation.h * (kH - 1) + 1, span_w = opt.dilation.w * (kW - 1) + 1;
  check(span_h <= H && span_w <= W, "filter: the kernel (", kH, ", ", kW, ")",
        (opt.dilation == Pair2(1) ? "" : " dilated"), " spans ", span_h, "x", span_w,
        " pixels, more than the image '", a.in, "' (", H, "x", W,
        "); use a kernel no larger than the image");
  const ValueMap map = fitting_map(a, weight);

  t0 = clock::now();
  Tensor out;
  {
    NoGradGuard no_grad;
    out = conv2d(image, weight, Tensor(), opt);  // (C, Ho, Wo)
  }
  const double t_conv = pictures::seconds_since(t0);

  t0 = clock::now();
  Tensor result = to_npy ? out : map_values(out, map);  // (C, Ho, Wo)
  const bool keep_alpha = has_alpha && out.size(1) == H && out.size(2) == W;
  if (keep_alpha) {
    Tensor with_alpha = empty({C + 1, H, W});  // colour channels, then the original alpha
    with_alpha.slice(0, 0, C).copy_(result);
    with_alpha.slice(0, C, C + 1).copy_(picture.slice(0, C, C + 1));
    result = with_alpha;
  }
  if (to_npy) {
    save_npy(a.out, result);
  } else {
    write_png(a.out, result, a.depth);
  }
  const double t_write = pictures::seconds_since(t0);

  if (a.verbose) {
    if (has_alpha)
      std::printf("alpha channel %s\n",
                  keep_alpha ? "kept unfiltered" : "dropped (the size changed)");
    std::printf("filter: %s %s -> %s %s\n", a.in.c_str(), picture.shape_str().c_str(),
                a.out.c_str(), result.shape_str().c_str());
    if (kernel2d.defined())
      std::cout << "kernel " << kernel2d.shape_str() << ":\n" << kernel2d << "\n";
    std::printf("conv2d: weight %s, groups %lld, stride (%lld, %lld), padding %s, mode %s\n",
                weight.shape_str().c_str(), static_cast<long long>(C),
                static_cast<long long>(opt.stride.h), static_cast<long long>(opt.stride.w),
                a.padding.c_str(), to_string(opt.padding_mode));
    if (!to_npy) std::printf("values mapped to pixels by: %s\n", to_string(map));
    std::printf("time: read %.1f ms, conv2d %.2f ms, write %.1f ms\n", t_read * 1e3, t_conv * 1e3,
                t_write * 1e3);
  }
}

const CommandRegistrar reg(40, [](CLI::App& app) {
  auto a = std::make_shared<FilterArgs>();
  auto* cmd = app.add_subcommand(
      "filter", "Apply a 2-D kernel to every channel of a picture (PNG/JPEG in, PNG or .npy out)");
  cmd->footer(
      "IN is a PNG or JPEG (or a .npy (H, W) / (C, H, W) array). The kernel is applied to every\n"
      "channel (depthwise conv2d, groups = C). OUT is a .png (values mapped to pixels by --map) or "
      "a\n"
      ".npy (the raw filtered values, signs kept).\n"
      "Examples:\n"
      "  convkit filter photo.jpg edges.png --preset sobel-x --gray\n"
      "  convkit filter photo.jpg blur.png --preset gaussian --sigma 2\n"
      "  convkit filter photo.jpg edge.png --kernel \"1,-1\"\n"
      "  convkit filter photo.jpg dx.npy --preset sobel-x\n"
      "  convkit learn photo.jpg dx.npy --kernel-size 3x3       (recovers the Sobel kernel)");
  cmd->add_option("IN", a->in, "Input picture (PNG, JPEG, or .npy)")->required();
  cmd->add_option("OUT", a->out, "Output: .png picture or .npy array")->required();
  auto* kernel = cmd->add_option("--kernel", a->kernel_text,
                                 "Kernel values: rows separated by ';', values by ',' (\"1,-1\", "
                                 "\"0,1;2,3\")");
  auto* kfile = cmd->add_option(
      "--kernel-file", a->kernel_file,
      "Kernel from a .npy: (kH, kW), (1, 1, kH, kW), or per channel (C, 1, kH, kW)");
  auto* preset =
      cmd->add_option("--preset", a->preset,
                      "edge-x ([[1, -1]]), edge-y, sobel-x, sobel-y, laplacian, gaussian, "
                      "box, sharpen")
          ->check(CLI::IsMember(filters::preset_names()));
  kernel->excludes(kfile)->excludes(preset);
  kfile->excludes(preset);
  auto* sigma =
      cmd->add_option("--sigma", a->sigma, "Gaussian standard deviation in pixels (default 1)");
  auto* size = cmd->add_option(
      "--size", a->size,
      "Kernel size for gaussian (odd; default 2*ceil(3 sigma)+1) and box (default 3)");
  cmd->add_flag("--gray", a->gray, "Convert the picture to gray (BT.601 luma) first");
  cmd->add_option("--stride", a->stride, "S or SH,SW (default 1)");
  cmd->add_option("--padding", a->padding, "P, PH,PW, L,R,T,B, same or valid (default same)");
  cmd->add_option("--padding-mode", a->padding_mode,
                  "zeros, reflect, replicate, circular, symmetric or constant (default replicate)");
  cmd->add_option("--padding-value", a->padding_value, "Value for --padding-mode constant");
  cmd->add_option("--dilation", a->dilation, "D or DH,DW (default 1)");
  cmd->add_option(
         "--map", a->map,
         "Values to pixels: abs, clip or minmax (default: abs for derivative kernels, clip "
         "for blur/sharpen, minmax otherwise)")
      ->check(CLI::IsMember({"abs", "clip", "minmax"}));
  cmd->add_option("--depth", a->depth, "PNG bits per sample: 8 or 16 (default 8)")
      ->check(CLI::IsMember({8, 16}));
  cmd->add_flag("--verbose", a->verbose, "Print shapes, the kernel and the time of each step");
  cmd->callback([a, sigma, size] {
    a->sigma_given = sigma->count() > 0;
    a->size_given = size->count() > 0;
    run_filter(*a);
  });
});

}  // namespace

}  // namespace convkit::cli
