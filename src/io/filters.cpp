// Preset kernels and the kernel-text parser (include/convkit/filters.h).
#include <convkit/error.h>
#include <convkit/filters.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace convkit::filters {

Tensor edge_x() {
  return tensor({{1.f, -1.f}});
}
Tensor edge_y() {
  return tensor({{1.f}, {-1.f}});
}
Tensor sobel_x() {
  return tensor({{-1.f, 0.f, 1.f}, {-2.f, 0.f, 2.f}, {-1.f, 0.f, 1.f}});
}
Tensor sobel_y() {
  return tensor({{-1.f, -2.f, -1.f}, {0.f, 0.f, 0.f}, {1.f, 2.f, 1.f}});
}
Tensor laplacian() {
  return tensor({{0.f, 1.f, 0.f}, {1.f, -4.f, 1.f}, {0.f, 1.f, 0.f}});
}
Tensor sharpen() {
  return tensor({{0.f, -1.f, 0.f}, {-1.f, 5.f, -1.f}, {0.f, -1.f, 0.f}});
}

Tensor box(int64_t n) {
  check(n >= 1 && n <= 1025, "filters::box: size ", n, " is out of range; use 1..1025");
  return full({n, n}, static_cast<float>(1.0 / (static_cast<double>(n) * n)));
}

Tensor gaussian(double sigma, int64_t size) {
  check(std::isfinite(sigma) && sigma > 0 && sigma <= 170, "filters::gaussian: sigma ", sigma,
        " is out of range; use a value in (0, 170]");
  if (size == 0) size = 2 * static_cast<int64_t>(std::ceil(3 * sigma)) + 1;
  check(size >= 1 && size <= 1025 && size % 2 == 1, "filters::gaussian: size ", size,
        " must be odd and in 1..1025 (0 picks 2 * ceil(3 sigma) + 1)");
  // Separable: g(x, y) = g1(x) g1(y); computed in double, normalised over the whole window.
  const int64_t r = size / 2;
  std::vector<double> g1(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) {
    const double x = static_cast<double>(i - r);
    g1[i] = std::exp(-x * x / (2 * sigma * sigma));
  }
  double total = 0;
  for (double a : g1)
    for (double b : g1) total += a * b;
  std::vector<float> values(static_cast<size_t>(size * size));
  for (int64_t i = 0; i < size; ++i)
    for (int64_t j = 0; j < size; ++j)
      values[i * size + j] = static_cast<float>(g1[i] * g1[j] / total);
  return from_vector(values, {size, size});
}

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = {"edge-x",    "edge-y",   "sobel-x", "sobel-y",
                                                 "laplacian", "gaussian", "box",     "sharpen"};
  return names;
}

namespace {
std::string joined_names() {
  std::string out;
  for (const auto& n : preset_names()) out += (out.empty() ? "" : ", ") + n;
  return out;
}
}  // namespace

Tensor preset(const std::string& name, double sigma, int64_t size) {
  if (name == "edge-x") return edge_x();
  if (name == "edge-y") return edge_y();
  if (name == "sobel-x") return sobel_x();
  if (name == "sobel-y") return sobel_y();
  if (name == "laplacian") return laplacian();
  if (name == "sharpen") return sharpen();
  if (name == "gaussian") return gaussian(sigma, size);
  if (name == "box") return box(size == 0 ? 3 : size);
  fail("filter preset '", name, "' is unknown; valid presets are ", joined_names());
}

ValueMap default_value_map(const std::string& preset_name) {
  if (preset_name == "gaussian" || preset_name == "box" || preset_name == "sharpen")
    return ValueMap::Clip;
  return ValueMap::Abs;
}

Tensor parse_kernel(const std::string& text) {
  // "a,b;c,d" -> rows of values; rows must agree in length.
  std::vector<std::vector<float>> rows(1);
  size_t i = 0;
  const auto bad = [&](const std::string& why) {
    fail("kernel \"", text, "\": ", why,
         "; write rows separated by ';' and values by ',', e.g. \"1,-1\" or \"0,1;2,3\"");
  };
  while (true) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    const char* start = text.c_str() + i;
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(start, &end);
    if (end == start) bad("expected a number at position " + std::to_string(i + 1));
    if (!std::isfinite(v) || errno == ERANGE || std::fabs(v) > 3.0e38)
      bad("value " + std::string(start, static_cast<size_t>(end - start)) +
          " is not a finite float");
    rows.back().push_back(static_cast<float>(v));
    i = static_cast<size_t>(end - text.c_str());
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i == text.size()) break;
    if (text[i] == ';') {
      rows.emplace_back();
    } else if (text[i] != ',') {
      bad(std::string("unexpected '") + text[i] + "' at position " + std::to_string(i + 1));
    }
    ++i;
  }
  const size_t kw = rows[0].size();
  for (size_t r = 0; r < rows.size(); ++r)
    if (rows[r].size() != kw)
      bad("row " + std::to_string(r + 1) + " has " + std::to_string(rows[r].size()) +
          " values but row 1 has " + std::to_string(kw));
  std::vector<float> values;
  for (const auto& row : rows) values.insert(values.end(), row.begin(), row.end());
  return from_vector(values, {static_cast<int64_t>(rows.size()), static_cast<int64_t>(kw)});
}

}  // namespace convkit::filters
