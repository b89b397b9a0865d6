// `convkit learn IN TARGET`: the notebook's experiment (D2L 7.2.4) on pictures — learn the kernel
// that turns one picture into another with nn::Conv2d, the mean squared error and optim::SGD.
//
// Every channel is one sample of a batch, and one kernel is shared by all: input (C, 1, H, W),
// target (C, 1, H', W'). TARGET of the same size as IN means 'same' padding (replicate by default,
// as `convkit filter` pads); TARGET smaller by the kernel minus one means 'valid'.
//
// Conditioning. The loss is a quadratic in (weight, bias) with Hessian H = 2 E[p p^T] over the
// kH x kW patches p of the input (with a constant 1 for the bias). On raw pictures H is badly
// conditioned (kappa = L / mu of 1e3 .. 1e6: the mean brightness dominates, fine detail is faint),
// so plain SGD with any fixed lr crawls. Two remedies:
//  1. IN is standardised, z = (x - mean) / sd, and the model always has a bias:
//     conv(z, W) + b == conv(x, W / sd) + (b - mean * sum(W) / sd), the same family as a kernel
//     plus an offset, reported in the picture's units. This removes the brightness mode (kappa
//     drops to 4e2 .. 1e4 on photographs). With --bias the offset is printed as the bias; without,
//     it is mentioned only when not negligible (for a target made by a filter it is ~0).
//  2. lr and momentum come from the spectrum: L and mu are estimated from up to 20000 patches
//     (Jacobi eigenvalues of the small Gram matrix), then Polyak's heavy-ball parameters for a
//     quadratic: sqrt(momentum) = (sqrt(kappa) - 1) / (sqrt(kappa) + 1),
//     lr = (1 + sqrt(momentum))^2 / L' with L' = 1.25 L for sampling error. Every mode then shrinks
//     by about sqrt(momentum) per epoch: ~sqrt(kappa) epochs per e-fold instead of kappa.
#include <convkit/convkit.h>
#include <convkit/image.h>
#include <convkit/plot.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "pictures.h"

namespace convkit::cli {

namespace {

struct LearnArgs {
  std::string in, target, kernel_size;
  int64_t epochs = 300;
  double lr = 0;         // 0: automatic
  double momentum = -1;  // < 0: automatic
  bool momentum_given = false;
  uint64_t seed = 0;
  bool bias = false, gray = false;
  std::string padding_mode = "replicate";
  float padding_value = 0.f;
  std::string kernel_out, plot;
};

Pair2 parse_kernel_size(const std::string& text) {
  // "3x3", "1x2", or "5" for 5x5.
  const size_t x = pictures::lower(text).find('x');
  const auto h = pictures::parse_ints(text.substr(0, x), "--kernel-size", 1, 1024);
  const auto w = x == std::string::npos
                     ? h
                     : pictures::parse_ints(text.substr(x + 1), "--kernel-size", 1, 1024);
  check(h.size() == 1 && w.size() == 1, "--kernel-size '", text,
        "': expected KHxKW such as 3x3 or 1x2 (or one number for a square kernel)");
  return {h[0], w[0]};
}

// Eigenvalues of a symmetric n x n matrix (row-major), by cyclic Jacobi rotations.
std::vector<double> symmetric_eigenvalues(std::vector<double> a, int n) {
  for (int sweep = 0; sweep < 60; ++sweep) {
    double off = 0, diag = 0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) (i == j ? diag : off) += a[i * n + j] * a[i * n + j];
    if (off <= 1e-24 * diag) break;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) {
        const double apq = a[p * n + q];
        if (apq == 0) continue;
        const double theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const double t = (theta >= 0 ? 1 : -1) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), sn = t * c;
        for (int k = 0; k < n; ++k) {  // columns p, q
          const double akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - sn * akq;
          a[k * n + q] = sn * akp + c * akq;
        }
        for (int k = 0; k < n; ++k) {  // rows p, q
          const double apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - sn * aqk;
          a[q * n + k] = sn * apk + c * aqk;
        }
      }
  }
  std::vector<double> ev(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) ev[i] = a[i * n + i];
  return ev;
}

struct Spectrum {
  double L = 0, mu = 0;  // largest and smallest eigenvalue of the loss's Hessian
};

// Hessian 2 E[p p^T] of the mean squared error over kh x kw patches p of input (C, 1, H, W) (plus
// a constant 1 with a bias), estimated from up to ~20000 valid patches on a regular grid.
Spectrum patch_spectrum(const Tensor& input, int64_t kh, int64_t kw, bool bias) {
  const Tensor x = input.contiguous();
  const float* px = x.data_ptr();
  const int64_t C = x.size(0), H = x.size(2), W = x.size(3);
  const int64_t Ho = H - kh + 1, Wo = W - kw + 1;
  const int n = static_cast<int>(kh * kw + (bias ? 1 : 0));
  const double total = static_cast<double>(C) * Ho * Wo;
  const auto step = static_cast<int64_t>(std::max(1.0, std::sqrt(total / 20000.0)));
  std::vector<double> gram(static_cast<size_t>(n) * n, 0.0), p(static_cast<size_t>(n), 1.0);
  double count = 0;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < Ho; y += step)
      for (int64_t xx = 0; xx < Wo; xx += step) {
        for (int64_t i = 0; i < kh; ++i)
          for (int64_t j = 0; j < kw; ++j) p[i * kw + j] = px[(c * H + y + i) * W + xx + j];
        for (int a = 0; a < n; ++a)
          for (int b = 0; b <= a; ++b) gram[a * n + b] += p[a] * p[b];
        ++count;
      }
  for (int a = 0; a < n; ++a)
    for (int b = 0; b <= a; ++b) gram[b * n + a] = gram[a * n + b] = 2 * gram[a * n + b] / count;
  const auto ev = symmetric_eigenvalues(gram, n);
  const auto [lo, hi] = std::minmax_element(ev.begin(), ev.end());
  return {*hi, std::max(*lo, 0.0)};
}

class Progress {
 public:
  explicit Progress(int64_t total) : total_(total), tty_(::isatty(::fileno(stdout)) != 0) {}

  void update(int64_t epoch, double loss) {
    if (tty_) {
      const auto now = std::chrono::steady_clock::now();
      if (epoch != total_ && epoch != 1 && now - last_ < std::chrono::milliseconds(50)) return;
      last_ = now;
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(kWidth * epoch / total_);
      std::printf("\r[%s%s] %lld/%lld  loss %.6g   ", std::string(filled, '#').c_str(),
                  std::string(kWidth - filled, '.').c_str(), static_cast<long long>(epoch),
                  static_cast<long long>(total_), loss);
      if (epoch == total_) std::printf("\n");
      std::fflush(stdout);
    } else {
      // About ten plain lines: the first epoch, every tenth of the run, and the last.
      const int64_t every = std::max<int64_t>(1, total_ / 10);
      if (epoch == 1 || epoch % every == 0 || epoch == total_)
        std::printf("epoch %lld/%lld, loss %.6g\n", static_cast<long long>(epoch),
                    static_cast<long long>(total_), loss);
    }
  }
  // Ends a partly drawn bar before an error message.
  void abort() {
    if (tty_) std::printf("\n");
  }

 private:
  int64_t total_;
  bool tty_;
  std::chrono::steady_clock::time_point last_{};
};

void run_learn(const LearnArgs& a) {
  const Pair2 ks = parse_kernel_size(a.kernel_size);
  check(a.epochs >= 1 && a.epochs <= 1000000, "learn: --epochs ", a.epochs,
        " is out of range; use 1..1000000");
  check(a.lr >= 0 && std::isfinite(a.lr), "learn: --lr ", a.lr,
        " must be positive (or 0 for the automatic step size)");
  check(!a.momentum_given || (a.momentum >= 0 && a.momentum < 1), "learn: --momentum ", a.momentum,
        " must be in [0, 1)");
  for (const std::string* out : {&a.kernel_out, &a.plot})
    check(out->empty() || *out != a.in, "learn: an output would overwrite IN '", a.in, "'");
  check(a.kernel_out.empty() || pictures::ends_with(a.kernel_out, ".npy"), "learn: --kernel-out '",
        a.kernel_out, "' must end in .npy");
  check(a.plot.empty() || pictures::ends_with(a.plot, ".svg"), "learn: --plot '", a.plot,
        "' must end in .svg");

  const Tensor x = pictures::load_picture(a.in, a.gray);      // (C, H, W)
  const Tensor y = pictures::load_picture(a.target, a.gray);  // (C, H', W')
  const int64_t C = x.size(0), H = x.size(1), W = x.size(2);
  check(ks.h <= H && ks.w <= W, "learn: the kernel ", ks.h, "x", ks.w,
        " is larger than the picture '", a.in, "' (", H, "x", W, ")");
  check(y.size(0) == C, "learn: IN '", a.in, "' has ", C, " channel(s) but TARGET '", a.target,
        "' has ", y.size(0), "; give pictures with the same channels, or --gray for both");
  Padding padding;
  if (y.size(1) == H && y.size(2) == W) {
    padding = Padding::same();
  } else if (y.size(1) == H - ks.h + 1 && y.size(2) == W - ks.w + 1) {
    padding = Padding::valid();
  } else {
    fail("learn: the pictures have different sizes: IN '", a.in, "' is ", H, "x", W, ", TARGET '",
         a.target, "' is ", y.size(1), "x", y.size(2), "; TARGET must be ", H, "x", W,
         " (same padding) or ", H - ks.h + 1, "x", W - ks.w + 1, " (valid, for a ", ks.h, "x", ks.w,
         " kernel)");
  }

  // Each channel is a sample: (C, 1, H, W) -> (C, 1, H', W').
  const Tensor target = y.reshape({C, 1, y.size(1), y.size(2)});
  // Standardise IN: z = (x - m) / sd (see the top of this file). Padding commutes with it except
  // for constant values, which are standardised too (zeros pads x with 0, so z with -m / sd).
  double m = 0, sq = 0;
  for (float v : x.to_vector()) {
    m += v;
    sq += static_cast<double>(v) * v;
  }
  m /= static_cast<double>(x.numel());
  const double sd = std::sqrt(std::max(sq / static_cast<double>(x.numel()) - m * m, 0.0));
  check(sd > 1e-6, "learn: IN '", a.in, "' is constant (", m,
        " everywhere), so no kernel can be learned from it");
  const Tensor input = ((x - static_cast<float>(m)) / static_cast<float>(sd)).reshape({C, 1, H, W});
  nn::Conv2dArgs args;
  args.padding = padding;
  args.bias = true;  // the offset of the standardised model, always (see above)
  args.padding_mode = padding_mode_from_string(a.padding_mode);
  if (args.padding_mode == PaddingMode::Zeros || args.padding_mode == PaddingMode::Constant) {
    const double value = args.padding_mode == PaddingMode::Zeros ? 0.0 : a.padding_value;
    args.padding_mode = PaddingMode::Constant;
    args.padding_value = static_cast<float>((value - m) / sd);
  }

  // Automatic step size and momentum (see the top of this file); a given --lr or --momentum is
  // kept, and with a given --lr the momentum defaults to 0 (plain SGD, as in the notebook).
  double lr = a.lr, momentum = a.momentum;
  if (lr <= 0 || momentum < 0) {
    check(ks.h * ks.w <= 1024, "learn: choosing the step size for a ", ks.h, "x", ks.w,
          " kernel is too costly; give --lr and --momentum");
    const Spectrum s = patch_spectrum(input, ks.h, ks.w, true);
    const double L = 1.25 * s.L, kappa = std::min(L / std::max(s.mu, 1e-12 * L), 1e8);
    if (lr <= 0) {
      if (momentum < 0) {
        const double root = (std::sqrt(kappa) - 1) / (std::sqrt(kappa) + 1);
        momentum = root * root;
      }
      lr = (1 + std::sqrt(momentum)) * (1 + std::sqrt(momentum)) / L;
    } else {
      momentum = 0;
    }
  }
  manual_seed(a.seed);
  nn::Conv2d conv(1, 1, ks, args);
  optim::SGD opt(conv.parameters(), optim::SGDOptions{.lr = lr, .momentum = momentum});

  std::printf(
      "learning a %lldx%lld kernel%s from %s %s to %s %s: %lld epochs, lr %.4g%s, "
      "momentum %.3g%s\n",
      static_cast<long long>(ks.h), static_cast<long long>(ks.w), a.bias ? " and a bias" : "",
      a.in.c_str(), x.shape_str().c_str(), a.target.c_str(), y.shape_str().c_str(),
      static_cast<long long>(a.epochs), lr, a.lr > 0 ? "" : " (automatic)", momentum,
      a.momentum_given || a.lr > 0 ? "" : " (automatic)");
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  std::vector<double> losses;
  losses.reserve(static_cast<size_t>(a.epochs));
  Progress progress(a.epochs);
  for (int64_t epoch = 1; epoch <= a.epochs; ++epoch) {
    const Tensor loss = mse_loss(conv(input), target);
    opt.zero_grad();
    loss.backward();
    const double l = loss.item();
    if (!std::isfinite(l)) {
      progress.abort();
      fail("learn: the loss became ", l, " at epoch ", epoch, " (lr ", lr, ", momentum ", momentum,
           "); training diverged, give a smaller --lr");
    }
    losses.push_back(l);
    opt.step();
    progress.update(epoch, l);
  }
  const double seconds = pictures::seconds_since(start);
  double final_loss = 0, target_sq = 0;
  {
    NoGradGuard no_grad;
    final_loss = mse_loss(conv(input), target).item();
  }
  for (float v : target.to_vector()) target_sq += static_cast<double>(v) * v;
  const double target_rms = std::sqrt(target_sq / static_cast<double>(target.numel()));

  // Back to the picture's units: conv(z, W) + b = conv(x, W / sd) + (b - m sum(W) / sd).
  const Tensor kernel = (conv.weight.detach() / static_cast<float>(sd)).reshape({ks.h, ks.w});
  double kernel_sum = 0;
  for (float v : kernel.to_vector()) kernel_sum += v;
  const double offset = conv.bias.detach().item() - m * kernel_sum;
  std::cout << "learned kernel (" << ks.h << "x" << ks.w << "):\n" << kernel << "\n";
  if (a.bias) {
    std::cout << "bias: " << tensor({static_cast<float>(offset)}) << "\n";
  } else if (std::fabs(offset) > 1e-3 * std::max(target_rms, 1e-12)) {
    std::printf(
        "note: the best fit adds an offset of %.6g to every pixel (use --bias to keep it)\n",
        offset);
  }
  std::printf("final loss %.6g after %lld epochs (%.2f s)\n", final_loss,
              static_cast<long long>(a.epochs), seconds);

  if (!a.kernel_out.empty()) {
    save_npy(a.kernel_out, kernel.contiguous());
    std::printf("wrote the kernel to %s\n", a.kernel_out.c_str());
  }
  if (!a.plot.empty()) {
    LinePlotOptions po;
    po.title = "convkit learn: " + std::to_string(ks.h) + "x" + std::to_string(ks.w) +
               " kernel, loss per epoch";
    po.ylabel = "mean squared error";
    po.log_y = true;
    for (double l : losses) po.log_y = po.log_y && l > 0;
    save_line_plot_svg(a.plot, losses, po);
    std::printf("wrote the loss curve to %s\n", a.plot.c_str());
  }
}

const CommandRegistrar reg(41, [](CLI::App& app) {
  auto a = std::make_shared<LearnArgs>();
  auto* cmd = app.add_subcommand(
      "learn", "Learn the kernel that turns picture IN into TARGET (the notebook's experiment)");
  cmd->footer(
      "nn::Conv2d, mean squared error, optim::SGD with momentum; one kernel shared by all "
      "channels.\n"
      "IN and TARGET are PNG/JPEG pictures or .npy arrays (H, W) / (C, H, W); keep signed targets\n"
      "(edge filters) in .npy. TARGET as large as IN: 'same' padding (--padding-mode, default\n"
      "replicate, as `convkit filter` pads); smaller by the kernel minus one: 'valid'.\n"
      "IN is standardised and an offset is fitted with the kernel (reported with --bias); lr and\n"
      "momentum are chosen from the spectrum of IN's patches unless given.\n"
      "Example:\n"
      "  convkit filter photo.png dx.npy --preset sobel-x --gray\n"
      "  convkit learn photo.png dx.npy --gray --kernel-size 3x3 --plot loss.svg");
  cmd->add_option("IN", a->in, "Input picture (PNG, JPEG or .npy)")->required();
  cmd->add_option("TARGET", a->target, "Target picture (PNG, JPEG or .npy)")->required();
  cmd->add_option("--kernel-size", a->kernel_size, "KHxKW, e.g. 3x3 or 1x2")->required();
  cmd->add_option("--epochs", a->epochs, "Full-batch SGD steps (default 300)");
  cmd->add_option("--lr", a->lr,
                  "Learning rate (default: automatic, from the spectrum of IN's patches)");
  auto* momentum =
      cmd->add_option("--momentum", a->momentum,
                      "SGD momentum in [0, 1) (default: automatic with the automatic lr, 0 with a "
                      "given --lr)");
  cmd->add_option("--seed", a->seed, "Seed for the kernel's initial values (default 0)");
  cmd->add_flag("--bias", a->bias, "Report the learned offset as the bias");
  cmd->add_flag("--gray", a->gray, "Convert both pictures to gray (BT.601 luma) first");
  cmd->add_option("--padding-mode", a->padding_mode,
                  "Padding mode when TARGET is as large as IN (default replicate)");
  cmd->add_option("--padding-value", a->padding_value, "Value for --padding-mode constant");
  cmd->add_option("--kernel-out", a->kernel_out,
                  "Save the learned kernel (kH, kW) as .npy (usable by filter --kernel-file)");
  cmd->add_option("--plot", a->plot, "Save the loss curve as an SVG figure");
  cmd->callback([a, momentum] {
    a->momentum_given = momentum->count() > 0;
    run_learn(*a);
  });
});

}  // namespace

}  // namespace convkit::cli
