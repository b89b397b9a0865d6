// `convkit demo`: replays the notebook "Convolutions for Images" (D2L 7.2) cell by cell, printing
// each cell's C++ equivalent and the values the notebook prints.
#include <convkit/convkit.h>
#include <convkit/image.h>
#include <convkit/plot.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>
#include <vector>

#include "commands.h"

namespace convkit::cli {

namespace {

// The seed under which `convkit demo` runs by default.
constexpr uint64_t kDefaultSeed = 0;

void cell(int number, const char* code) {
  std::cout << "In [" << number << "]:\n" << code << "\n";
}

void output(const Tensor& t) {
  std::cout << "\n" << t << "\n\n";
}

// With --save DIR: the notebook's arrays as enlarged pictures and the loss curve as SVG.
class Pictures {
 public:
  explicit Pictures(std::string dir) : dir_(std::move(dir)) {
    if (dir_.empty()) return;
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    check(!ec && std::filesystem::is_directory(dir_), "demo --save: cannot create directory '",
          dir_, "': ", ec ? ec.message() : std::string("not a directory"));
  }
  void save(const std::string& name, const Tensor& values, ColorMap colors) {
    if (dir_.empty()) return;
    const std::string path = (std::filesystem::path(dir_) / name).string();
    save_png_enlarged(path, values, 32, colors);
    saved_.push_back(path);
  }
  void plot(const std::string& name, const std::vector<double>& losses) {
    if (dir_.empty()) return;
    const std::string path = (std::filesystem::path(dir_) / name).string();
    LinePlotOptions o;
    o.title = "Learning the edge kernel [1, -1] with LazyConv2d (lr 3e-2)";
    o.ylabel = "summed squared loss";
    save_line_plot_svg(path, losses, o);
    saved_.push_back(path);
  }
  void report() const {
    if (dir_.empty()) return;
    std::cout << "Saved " << saved_.size() << " files:\n";
    for (const auto& p : saved_) std::cout << "  " << p << "\n";
  }

 private:
  std::string dir_;
  std::vector<std::string> saved_;
};

void run_demo(uint64_t seed, const std::string& save_dir) {
  Pictures pictures(save_dir);
  manual_seed(seed);
  cell(1, "#include <convkit/convkit.h>\nusing namespace convkit;");
  std::cout << "\n";
  cell(2, "// corr2d(X, K): 2-D cross-correlation, built into convkit (convkit::corr2d)");
  std::cout << "\n";

  cell(3,
       "auto X = tensor({{0.0, 1.0, 2.0}, {3.0, 4.0, 5.0}, {6.0, 7.0, 8.0}});\n"
       "auto K = tensor({{0.0, 1.0}, {2.0, 3.0}});\n"
       "corr2d(X, K)");
  Tensor X = tensor({{0.0, 1.0, 2.0}, {3.0, 4.0, 5.0}, {6.0, 7.0, 8.0}});
  Tensor K = tensor({{0.0, 1.0}, {2.0, 3.0}});
  output(corr2d(X, K));

  cell(4,
       "struct Conv2D : nn::Module {\n"
       "  explicit Conv2D(Pair2 kernel_size) {\n"
       "    register_parameter(\"weight\", weight, rand({kernel_size.h, kernel_size.w}));\n"
       "    register_parameter(\"bias\", bias, zeros({1}));\n"
       "  }\n"
       "  Tensor forward(const Tensor& x) override { return corr2d(x, weight) + bias; }\n"
       "  Tensor weight, bias;\n"
       "};");
  std::cout << "\n";

  for (int number : {5, 6}) {
    cell(number,
         "X = ones({6, 8});\n"
         "X.index({Slice(), Slice(2, 6)}) = 0;\n"
         "X");
    X = ones({6, 8});
    X.index({Slice(), Slice(2, 6)}) = 0;
    output(X);
  }
  pictures.save("X.png", X, ColorMap::Gray);

  cell(7, "auto Y = corr2d(X, K);\nY");
  Tensor Y = corr2d(X, K);
  output(Y);
  pictures.save("Y.png", Y, ColorMap::Diverging);

  cell(8, "corr2d(X.t(), K)");
  const Tensor Yt = corr2d(X.t(), K);
  output(Yt);
  pictures.save("Xt.png", X.t(), ColorMap::Gray);
  pictures.save("Yt.png", Yt, ColorMap::Diverging);

  cell(18,
       "// 1) Build X with a vertical edge (6x8), per D2L\n"
       "auto X2d = ones({6, 8});\n"
       "X2d.index({Slice(), Slice(2)}) = 0;  // left side 1s, right side 0s\n"
       "// 2) 1x2 kernel (detects horizontal differences)\n"
       "K = tensor({{1., -1.}});\n"
       "// 3) Target Y via cross-correlation (6x7)\n"
       "auto Y2d = corr2d(X2d, K);\n"
       "// 4) Reshape to NCHW for Conv2d\n"
       "X = X2d.reshape({1, 1, 6, 8});\n"
       "Y = Y2d.reshape({1, 1, 6, 7});\n"
       "// 5) Lazy conv layer: 1 out channel, kernel (1, 2), no bias\n"
       "nn::LazyConv2d conv2d(1, {1, 2}, {.bias = false});\n"
       "float lr = 3e-2f;\n"
       "for (int i = 0; i < 10; ++i) {\n"
       "  auto Y_hat = conv2d(X);\n"
       "  auto l = (Y_hat - Y).pow(2);\n"
       "  conv2d.zero_grad();\n"
       "  l.sum().backward();\n"
       "  // gradient descent on the kernel elements (weights)\n"
       "  conv2d.weight.data() -= lr * conv2d.weight.grad();\n"
       "  if ((i + 1) % 2 == 0)\n"
       "    std::printf(\"epoch %d, loss %.3f\\n\", i + 1, l.sum().item());\n"
       "}");
  std::cout << "\n";
  Tensor X2d = ones({6, 8});
  X2d.index({Slice(), Slice(2)}) = 0;
  K = tensor({{1., -1.}});
  Tensor Y2d = corr2d(X2d, K);
  X = X2d.reshape({1, 1, 6, 8});
  Y = Y2d.reshape({1, 1, 6, 7});
  nn::LazyConv2d conv2d(1, {1, 2}, {.bias = false});
  const float lr = 3e-2f;
  std::vector<double> losses;
  for (int i = 0; i < 10; ++i) {
    Tensor Y_hat = conv2d(X);
    Tensor l = (Y_hat - Y).pow(2);
    conv2d.zero_grad();
    l.sum().backward();
    conv2d.weight.data() -= lr * conv2d.weight.grad();
    losses.push_back(l.sum().item());
    if ((i + 1) % 2 == 0) std::printf("epoch %d, loss %.3f\n", i + 1, losses.back());
  }
  std::fflush(stdout);
  std::cout << "\n";

  cell(19, "conv2d.weight.data().reshape({1, 2})");
  output(conv2d.weight.data().reshape({1, 2}));

  pictures.save("X2d.png", X2d, ColorMap::Gray);
  pictures.save("Y2d_target.png", Y2d, ColorMap::Diverging);
  {
    NoGradGuard no_grad;
    pictures.save("Y2d_learned.png", conv2d(X).reshape({6, 7}), ColorMap::Diverging);
  }
  pictures.save("kernel_learned.png", conv2d.weight.data().reshape({1, 2}), ColorMap::Diverging);
  pictures.plot("loss.svg", losses);
  pictures.report();
}

const CommandRegistrar reg(10, [](CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "demo",
      "Replay the notebook 'Convolutions for Images' (D2L 7.2) cell by cell: corr2d, edge "
      "detection, and learning the kernel [1, -1] back with LazyConv2d and gradient descent.");
  static uint64_t seed = kDefaultSeed;
  cmd->add_option("--seed", seed,
                  "Seed for the random generator (as torch.manual_seed): the printed losses and "
                  "kernel equal what the notebook's code prints under the same seed")
      ->capture_default_str();
  static std::string save_dir;
  cmd->add_option("--save", save_dir,
                  "Also write the notebook's arrays as enlarged PNG pictures (X, Y, the transposed "
                  "case, the learned kernel and its output) and the training loss curve as SVG "
                  "into this directory (created if missing)");
  cmd->callback([] { run_demo(seed, save_dir); });
});

}  // namespace

}  // namespace convkit::cli
