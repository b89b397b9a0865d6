// `convkit learn IN TARGET`: the notebook's experiment (D2L 7.2.4) on pictures — learn the kernel
// that turns one picture into another with nn::Conv2d, the mean squared error and plain SGD.
//
// Every channel is one sample of a batch, and one kernel is shared by all: input (C, 1, H, W),
// target (C, 1, H', W'). TARGET of the same size as IN means 'same' padding (replicate by default,
// as `convkit filter` pads); TARGET smaller by the kernel minus one means 'valid'.
//
// Step size: with the loss a mean over pixels, its Hessian in the weights is 2 E[x x^T] over the
// kH x kW patches x, whose largest eigenvalue is at most its trace 2 kH kW E[x^2] (+ 2 with a
// bias). The automatic lr is 1 / (kH kW E[x^2] (+ 1)), i.e. lr * lambda_max <= 2, stable with
// momentum 0.9 (heavy ball needs lr * lambda < 2 (1 + momentum)); the momentum lets the slow,
// low-energy directions of natural pictures converge in hundreds of steps rather than thousands.
#include <convkit/convkit.h>
#include <convkit/image.h>
#include <convkit/plot.h>
#include <unistd.h>

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
  double lr = 0;  // 0: automatic
  double momentum = 0.9;
  uint64_t seed = 0;
  bool bias = false, gray = false;
  std::string padding_mode = "replicate";
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
  check(a.momentum >= 0 && a.momentum < 1, "learn: --momentum ", a.momentum, " must be in [0, 1)");
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
  const Tensor input = x.reshape({C, 1, H, W});
  const Tensor target = y.reshape({C, 1, y.size(1), y.size(2)});
  double mean_sq = 0;
  for (float v : input.to_vector()) mean_sq += static_cast<double>(v) * v;
  mean_sq /= static_cast<double>(input.numel());
  const double lr =
      a.lr > 0 ? a.lr : 1.0 / (static_cast<double>(ks.h * ks.w) * mean_sq + (a.bias ? 1.0 : 0.0));
  check(std::isfinite(lr) && lr > 0, "learn: IN '", a.in,
        "' is all zeros, so no kernel can be learned from it");

  manual_seed(a.seed);
  nn::Conv2dArgs args;
  args.padding = padding;
  args.bias = a.bias;
  args.padding_mode = padding_mode_from_string(a.padding_mode);
  nn::Conv2d conv(1, 1, ks, args);
  optim::SGD opt(conv.parameters(), optim::SGDOptions{.lr = lr, .momentum = a.momentum});

  std::printf(
      "learning a %lldx%lld kernel%s from %s %s to %s %s: %lld epochs, lr %.4g%s, "
      "momentum %.3g\n",
      static_cast<long long>(ks.h), static_cast<long long>(ks.w), a.bias ? " and a bias" : "",
      a.in.c_str(), x.shape_str().c_str(), a.target.c_str(), y.shape_str().c_str(),
      static_cast<long long>(a.epochs), lr, a.lr > 0 ? "" : " (automatic)", a.momentum);
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
      fail("learn: the loss became ", l, " at epoch ", epoch, " (lr ", lr,
           "); training diverged, give a smaller --lr");
    }
    losses.push_back(l);
    opt.step();
    progress.update(epoch, l);
  }
  const double seconds = pictures::seconds_since(start);
  double final_loss = 0;
  {
    NoGradGuard no_grad;
    final_loss = mse_loss(conv(input), target).item();
  }

  const Tensor kernel = conv.weight.detach().reshape({ks.h, ks.w});
  std::cout << "learned kernel (" << ks.h << "x" << ks.w << "):\n" << kernel << "\n";
  if (a.bias) std::cout << "bias: " << conv.bias.detach() << "\n";
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
      "learn",
      "Learn the kernel that turns picture IN into TARGET (D2L 7.2.4 on real data): nn::Conv2d,\n"
      "mean squared error, SGD with momentum; one kernel shared by all channels.\n"
      "IN and TARGET are PNG/JPEG pictures or .npy arrays (H, W) / (C, H, W); keep signed targets\n"
      "(edge filters) in .npy. TARGET as large as IN: 'same' padding (--padding-mode, default\n"
      "replicate, as `convkit filter` pads); smaller by the kernel minus one: 'valid'.\n"
      "Example:\n"
      "  convkit filter photo.png dx.npy --preset sobel-x --gray\n"
      "  convkit learn photo.png dx.npy --gray --kernel-size 3x3 --plot loss.svg");
  cmd->add_option("IN", a->in, "Input picture (PNG, JPEG or .npy)")->required();
  cmd->add_option("TARGET", a->target, "Target picture (PNG, JPEG or .npy)")->required();
  cmd->add_option("--kernel-size", a->kernel_size, "KHxKW, e.g. 3x3 or 1x2")->required();
  cmd->add_option("--epochs", a->epochs, "Full-batch SGD steps (default 300)");
  cmd->add_option("--lr", a->lr,
                  "Learning rate (default: automatic, 1 / (kH kW mean(IN^2)), stable for any "
                  "picture)");
  cmd->add_option("--momentum", a->momentum, "SGD momentum in [0, 1) (default 0.9)");
  cmd->add_option("--seed", a->seed, "Seed for the kernel's initial values (default 0)");
  cmd->add_flag("--bias", a->bias, "Learn a bias too");
  cmd->add_flag("--gray", a->gray, "Convert both pictures to gray (BT.601 luma) first");
  cmd->add_option("--padding-mode", a->padding_mode,
                  "Padding mode when TARGET is as large as IN (default replicate)");
  cmd->add_option("--kernel-out", a->kernel_out,
                  "Save the learned kernel (kH, kW) as .npy (usable by filter --kernel-file)");
  cmd->add_option("--plot", a->plot, "Save the loss curve as an SVG figure");
  cmd->callback([a] { run_learn(*a); });
});

}  // namespace

}  // namespace convkit::cli
