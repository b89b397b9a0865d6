// Printing in PyTorch's format (torch/_tensor_str.py, default print options: precision 4,
// threshold 1000, edgeitems 3, linewidth 80), so convkit output reads like the notebook's.
#include <convkit/autograd.h>
#include <convkit/tensor.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

#include "tensor/tensor_impl.h"

namespace convkit {

namespace {

constexpr int kPrecision = 4;
constexpr int64_t kThreshold = 1000;
constexpr int64_t kEdgeItems = 3;
constexpr int64_t kLineWidth = 80;

std::string printf_str(const char* fmt, int width, int precision, double v) {
  char buf[512];
  std::snprintf(buf, sizeof buf, fmt, width, precision, v);
  return buf;
}

// Python's str(float) for non-finite values.
bool nonfinite_str(double v, std::string& out) {
  if (std::isnan(v)) {
    out = "nan";
    return true;
  }
  if (std::isinf(v)) {
    out = v > 0 ? "inf" : "-inf";
    return true;
  }
  return false;
}

class Formatter {
 public:
  explicit Formatter(const std::vector<float>& values) {
    std::vector<double> nz;
    for (float v : values) {
      if (std::isfinite(v) && v != 0.f) nz.push_back(v);
    }
    if (nz.empty()) return;
    double lo = std::fabs(nz[0]), hi = lo;
    for (double v : nz) {
      lo = std::min(lo, std::fabs(v));
      hi = std::max(hi, std::fabs(v));
      if (v != std::ceil(v)) int_mode_ = false;
    }
    if (int_mode_) {
      if (hi / lo > 1000.0 || hi > 1e8) {
        sci_mode_ = true;
        for (double v : nz) width_ = std::max(width_, sci(v, 0).size());
      } else {
        for (double v : nz) width_ = std::max(width_, printf_str("%*.*f", 0, 0, v).size() + 1);
      }
    } else if (hi / lo > 1000.0 || hi > 1e8 || lo < 1e-4) {
      sci_mode_ = true;
      for (double v : nz) width_ = std::max(width_, sci(v, 0).size());
    } else {
      for (double v : nz) width_ = std::max(width_, printf_str("%*.*f", 0, kPrecision, v).size());
    }
  }

  size_t width() const { return width_; }

  std::string format(double v) const {
    std::string s;
    if (sci_mode_) {
      s = sci(v, static_cast<int>(width_));
    } else if (int_mode_) {
      if (!nonfinite_str(v, s)) s = printf_str("%*.*f", 0, 0, v) + ".";
    } else if (!nonfinite_str(v, s)) {
      s = printf_str("%*.*f", 0, kPrecision, v);
    }
    if (s.size() < width_) s = std::string(width_ - s.size(), ' ') + s;
    return s;
  }

 private:
  static std::string sci(double v, int width) {
    std::string s;
    if (nonfinite_str(v, s)) {
      return std::string(static_cast<size_t>(std::max(0, width - int(s.size()))), ' ') + s;
    }
    return printf_str("%*.*e", width, kPrecision, v);
  }
  bool int_mode_ = true;
  bool sci_mode_ = false;
  size_t width_ = 1;
};

// The elements PyTorch looks at when summarising (first and last kEdgeItems along each dim).
void summarized(const Tensor& t, std::vector<float>& out) {
  if (t.dim() == 0) {
    out.push_back(t.item());
    return;
  }
  const int64_t n = t.size(0);
  auto take = [&](int64_t i) {
    if (t.dim() == 1) {
      out.push_back(t.select(0, i).item());
    } else {
      summarized(t.select(0, i), out);
    }
  };
  if (n > 2 * kEdgeItems) {
    for (int64_t i = 0; i < kEdgeItems; ++i) take(i);
    for (int64_t i = n - kEdgeItems; i < n; ++i) take(i);
  } else {
    for (int64_t i = 0; i < n; ++i) take(i);
  }
}

std::string vector_str(const Tensor& t, int64_t indent, bool summarize, const Formatter& f) {
  const int64_t element_length = static_cast<int64_t>(f.width()) + 2;
  const int64_t per_line = std::max<int64_t>(1, (kLineWidth - indent) / element_length);
  std::vector<std::string> data;
  const int64_t n = t.size(0);
  if (summarize && n > 2 * kEdgeItems) {
    for (int64_t i = 0; i < kEdgeItems; ++i) data.push_back(f.format(t.select(0, i).item()));
    data.emplace_back(" ...");
    for (int64_t i = n - kEdgeItems; i < n; ++i) data.push_back(f.format(t.select(0, i).item()));
  } else {
    for (int64_t i = 0; i < n; ++i) data.push_back(f.format(t.select(0, i).item()));
  }
  std::string out = "[";
  for (size_t i = 0; i < data.size(); ++i) {
    if (i > 0) {
      if (static_cast<int64_t>(i) % per_line == 0) {
        out += ",\n" + std::string(static_cast<size_t>(indent + 1), ' ');
      } else {
        out += ", ";
      }
    }
    out += data[i];
  }
  return out + "]";
}

std::string tensor_str(const Tensor& t, int64_t indent, bool summarize, const Formatter& f) {
  if (t.dim() == 0) return f.format(t.item());
  if (t.dim() == 1) return vector_str(t, indent, summarize, f);
  std::vector<std::string> slices;
  const int64_t n = t.size(0);
  if (summarize && n > 2 * kEdgeItems) {
    for (int64_t i = 0; i < kEdgeItems; ++i)
      slices.push_back(tensor_str(t.select(0, i), indent + 1, summarize, f));
    slices.emplace_back("...");
    for (int64_t i = n - kEdgeItems; i < n; ++i)
      slices.push_back(tensor_str(t.select(0, i), indent + 1, summarize, f));
  } else {
    for (int64_t i = 0; i < n; ++i)
      slices.push_back(tensor_str(t.select(0, i), indent + 1, summarize, f));
  }
  std::string sep = ",";
  sep.append(static_cast<size_t>(t.dim() - 1), '\n');
  sep.append(static_cast<size_t>(indent + 1), ' ');
  std::string out = "[";
  for (size_t i = 0; i < slices.size(); ++i) {
    if (i) out += sep;
    out += slices[i];
  }
  out += "]";
  return out;
}

}  // namespace

std::string to_string(const Tensor& input) {
  if (!input.defined()) return "tensor(undefined)";
  NoGradGuard no_grad;
  const Tensor t = input.detach();
  const std::string prefix = "tensor(";
  const auto indent = static_cast<int64_t>(prefix.size());
  std::string body;
  std::vector<std::string> suffixes;
  if (t.numel() == 0) {
    body = "[]";
    if (t.dim() != 1) suffixes.push_back("size=" + shape_to_string(t.shape()));
  } else {
    const bool summarize = t.numel() > kThreshold;
    std::vector<float> values;
    if (summarize) {
      summarized(t, values);
    } else {
      values = t.to_vector();
    }
    body = tensor_str(t, indent, summarize, Formatter(values));
  }
  if (input.grad_fn()) {
    suffixes.push_back("grad_fn=<" + input.grad_fn()->name + ">");
  } else if (input.requires_grad()) {
    suffixes.push_back("requires_grad=True");
  }
  std::string out = prefix + body;
  for (const auto& s : suffixes) out += ", " + s;
  return out + ")";
}

std::ostream& operator<<(std::ostream& out, const Tensor& t) {
  return out << to_string(t);
}

}  // namespace convkit
