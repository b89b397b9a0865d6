// SVG line plots (include/convkit/plot.h).
#include <convkit/error.h>
#include <convkit/plot.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "io/atomic_file.h"
#include "io/image_codec.h"

namespace convkit {

namespace {

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters are not allowed in XML 1.0 (except tab, newline, CR).
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t' || c == '\n' || c == '\r') out += c;
    }
  return out;
}

std::string fmt(double v, const char* format = "%.2f") {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// A tick label: up to 4 significant digits, no trailing zeros, "-0" printed as "0".
std::string tick_label(double v) {
  if (v == 0) return "0";
  return fmt(v, "%.4g");
}

// An axis: the plotted range [lo, hi] and the tick values inside it.
struct Axis {
  double lo = 0, hi = 1;
  std::vector<double> ticks;
};

// Linear axis over [lo, hi] with about 5 ticks at 1, 2 or 5 times a power of ten; the range is
// widened to whole ticks.
Axis linear_axis(double lo, double hi) {
  if (hi - lo <= 0) {
    const double pad = lo == 0 ? 1.0 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1 : norm < 3.5 ? 2 : norm < 7.5 ? 5 : 10) * mag;
  Axis a;
  a.lo = std::floor(lo / step + 1e-9) * step;
  a.hi = std::ceil(hi / step - 1e-9) * step;
  for (double t = a.lo; t <= a.hi + step * 1e-6; t += step)
    a.ticks.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);
  return a;
}

// Log axis in log10 units, widened to whole decades, one tick per decade (every k-th decade when
// there are many).
Axis log_axis(double lo, double hi) {
  Axis a;
  a.lo = std::floor(std::log10(lo));
  a.hi = std::ceil(std::log10(hi));
  if (a.hi <= a.lo) a.hi = a.lo + 1;
  const int decades = static_cast<int>(a.hi - a.lo);
  const int every = std::max(1, (decades + 7) / 8);
  for (int d = 0; d <= decades; d += every) a.ticks.push_back(a.lo + d);
  return a;
}

}  // namespace

std::string line_plot_svg(const std::vector<double>& y, const LinePlotOptions& o) {
  check(o.x.empty() || o.x.size() == y.size(), "line_plot_svg: ", o.x.size(), " x values for ",
        y.size(), " y values; give one x per y, or none for 1..N");
  check(o.width >= 100 && o.width <= 10000 && o.height >= 100 && o.height <= 10000,
        "line_plot_svg: size ", o.width, "x", o.height, " is out of range; use 100..10000 pixels");
  // The points that can be drawn.
  std::vector<std::pair<double, double>> pts;
  for (size_t i = 0; i < y.size(); ++i) {
    const double xi = o.x.empty() ? static_cast<double>(i + 1) : o.x[i];
    const double yi = y[i];
    if (!std::isfinite(xi) || !std::isfinite(yi) || (o.log_y && yi <= 0)) continue;
    pts.emplace_back(xi, o.log_y ? std::log10(yi) : yi);
  }
  check(!pts.empty(), "line_plot_svg: none of the ", y.size(), " points is finite",
        o.log_y ? " and positive (the y axis is logarithmic)" : "", "; nothing to plot");
  double xmin = pts[0].first, xmax = xmin, ymin = pts[0].second, ymax = ymin;
  for (const auto& [px, py] : pts) {
    xmin = std::min(xmin, px);
    xmax = std::max(xmax, px);
    ymin = std::min(ymin, py);
    ymax = std::max(ymax, py);
  }
  check(std::isfinite(xmax - xmin) && std::isfinite(ymax - ymin) && std::fabs(xmax) < 1e300 &&
            std::fabs(ymax) < 1e300 && std::fabs(xmin) < 1e300 && std::fabs(ymin) < 1e300,
        "line_plot_svg: the values span more than a double can plot (x ", xmin, "..", xmax, ", y ",
        ymin, "..", ymax, ")");
  const Axis ax = linear_axis(xmin, xmax);
  const Axis ay =
      o.log_y ? log_axis(std::pow(10.0, ymin), std::pow(10.0, ymax)) : linear_axis(ymin, ymax);

  // Plot area inside margins for the title, tick labels and axis labels.
  const double left = 80, right = o.width - 24.0, top = 44, bottom = o.height - 56.0;
  auto sx = [&](double v) { return left + (v - ax.lo) / (ax.hi - ax.lo) * (right - left); };
  auto sy = [&](double v) { return bottom - (v - ay.lo) / (ay.hi - ay.lo) * (bottom - top); };

  std::ostringstream s;
  s << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << o.width << "\" height=\"" << o.height
    << "\" viewBox=\"0 0 " << o.width << " " << o.height
    << "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
    << "  <rect x=\"0\" y=\"0\" width=\"" << o.width << "\" height=\"" << o.height
    << "\" fill=\"white\"/>\n";
  if (!o.title.empty())
    s << "  <text x=\"" << fmt((left + right) / 2) << "\" y=\"26\" text-anchor=\"middle\" "
      << "font-size=\"15\">" << xml_escape(o.title) << "</text>\n";
  // Grid and ticks.
  s << "  <g stroke=\"#e0e0e0\" stroke-width=\"1\">\n";
  for (double t : ax.ticks)
    s << "    <line x1=\"" << fmt(sx(t)) << "\" y1=\"" << fmt(top) << "\" x2=\"" << fmt(sx(t))
      << "\" y2=\"" << fmt(bottom) << "\"/>\n";
  for (double t : ay.ticks)
    s << "    <line x1=\"" << fmt(left) << "\" y1=\"" << fmt(sy(t)) << "\" x2=\"" << fmt(right)
      << "\" y2=\"" << fmt(sy(t)) << "\"/>\n";
  s << "  </g>\n  <g stroke=\"black\" stroke-width=\"1\">\n";
  s << "    <line x1=\"" << fmt(left) << "\" y1=\"" << fmt(bottom) << "\" x2=\"" << fmt(right)
    << "\" y2=\"" << fmt(bottom) << "\"/>\n";
  s << "    <line x1=\"" << fmt(left) << "\" y1=\"" << fmt(top) << "\" x2=\"" << fmt(left)
    << "\" y2=\"" << fmt(bottom) << "\"/>\n";
  for (double t : ax.ticks)
    s << "    <line x1=\"" << fmt(sx(t)) << "\" y1=\"" << fmt(bottom) << "\" x2=\"" << fmt(sx(t))
      << "\" y2=\"" << fmt(bottom + 5) << "\"/>\n";
  for (double t : ay.ticks)
    s << "    <line x1=\"" << fmt(left - 5) << "\" y1=\"" << fmt(sy(t)) << "\" x2=\"" << fmt(left)
      << "\" y2=\"" << fmt(sy(t)) << "\"/>\n";
  s << "  </g>\n  <g fill=\"black\">\n";
  for (double t : ax.ticks)
    s << "    <text x=\"" << fmt(sx(t)) << "\" y=\"" << fmt(bottom + 19)
      << "\" text-anchor=\"middle\">" << tick_label(t) << "</text>\n";
  for (double t : ay.ticks)
    s << "    <text x=\"" << fmt(left - 8) << "\" y=\"" << fmt(sy(t) + 4)
      << "\" text-anchor=\"end\">" << (o.log_y ? tick_label(std::pow(10.0, t)) : tick_label(t))
      << "</text>\n";
  s << "  </g>\n";
  s << "  <text x=\"" << fmt((left + right) / 2) << "\" y=\"" << fmt(o.height - 14.0)
    << "\" text-anchor=\"middle\">" << xml_escape(o.xlabel) << "</text>\n";
  s << "  <text transform=\"translate(18 " << fmt((top + bottom) / 2)
    << ") rotate(-90)\" text-anchor=\"middle\">" << xml_escape(o.ylabel)
    << (o.log_y ? " (log scale)" : "") << "</text>\n";
  // The curve.
  s << "  <polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" "
       "stroke-linejoin=\"round\" points=\"";
  for (size_t i = 0; i < pts.size(); ++i)
    s << (i ? " " : "") << fmt(sx(pts[i].first)) << "," << fmt(sy(pts[i].second));
  s << "\"/>\n</svg>\n";
  return s.str();
}

void save_line_plot_svg(const std::string& path, const std::vector<double>& y,
                        const LinePlotOptions& options) {
  const std::string text = line_plot_svg(y, options);
  io::write_file_atomic(path, text.data(), text.size(), "save_line_plot_svg");
}

}  // namespace convkit
