// Line plots (a training loss curve) as SVG figures: axes, ticks, labels, a title, one <polyline>.
#pragma once
#include <string>
#include <vector>

namespace convkit {

struct LinePlotOptions {
  std::string title;
  std::string xlabel = "epoch";
  std::string ylabel = "loss";
  std::vector<double> x;          // x of each point; empty means 1, 2, ..., N
  bool log_y = false;             // logarithmic y axis (a loss falling over decades)
  int width = 640, height = 400;  // pixels
};

// The SVG text of a line through (x[i], y[i]). Non-finite points, and with log_y non-positive ones,
// are left out of the polyline; at least one point must remain. Throws convkit::Error otherwise, or
// when options.x is given with a different length than y.
std::string line_plot_svg(const std::vector<double>& y, const LinePlotOptions& options = {});

// Writes line_plot_svg(y, options) to `path` atomically (a temporary file, then rename).
void save_line_plot_svg(const std::string& path, const std::vector<double>& y,
                        const LinePlotOptions& options = {});

}  // namespace convkit
