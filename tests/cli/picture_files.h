// Test pictures and arrays for the filter/learn end-to-end tests, plus a naive cross-correlation
// (double loops, explicit replicate padding) used as their independent reference.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace convkit::testing {

// A (C, H, W) float picture, values in C order.
struct Picture {
  int64_t C = 1, H = 0, W = 0;
  std::vector<double> v;
  double at(int64_t c, int64_t y, int64_t x) const { return v[(c * H + y) * W + x]; }
};

// Smooth shapes plus noise in [0, 1]: a gradient, a disc, a bar, and uniform noise of `noise`.
inline Picture generated_picture(int64_t C, int64_t H, int64_t W, uint32_t seed,
                                 double noise = 0.2) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Picture p{C, H, W, std::vector<double>(static_cast<size_t>(C * H * W))};
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const double dx = x - W * 0.4, dy = y - H * 0.55;
        double val = 0.2 + 0.3 * x / W + 0.1 * c;
        if (dx * dx + dy * dy < H * W * 0.05) val += 0.3;
        if (y > H / 5 && y < H / 3) val -= 0.15;
        val = (1 - noise) * val + noise * u(rng);
        p.v[(c * H + y) * W + x] = std::min(1.0, std::max(0.0, val));
      }
  return p;
}

// Naive cross-correlation of each channel with k (kh, kw): 'valid' (Ho = H - kh + 1), or 'same'
// with replicate padding, TensorFlow's split (top = (kh - 1) / 2, bottom the rest).
inline Picture naive_filter(const Picture& p, const std::vector<double>& k, int64_t kh, int64_t kw,
                            bool same) {
  const int64_t Ho = same ? p.H : p.H - kh + 1, Wo = same ? p.W : p.W - kw + 1;
  const int64_t top = same ? (kh - 1) / 2 : 0, left = same ? (kw - 1) / 2 : 0;
  Picture out{p.C, Ho, Wo, std::vector<double>(static_cast<size_t>(p.C * Ho * Wo))};
  for (int64_t c = 0; c < p.C; ++c)
    for (int64_t y = 0; y < Ho; ++y)
      for (int64_t x = 0; x < Wo; ++x) {
        double s = 0;
        for (int64_t i = 0; i < kh; ++i)
          for (int64_t j = 0; j < kw; ++j) {
            const int64_t yy = std::min(std::max<int64_t>(y + i - top, 0), p.H - 1);
            const int64_t xx = std::min(std::max<int64_t>(x + j - left, 0), p.W - 1);
            s += k[i * kw + j] * p.at(c, yy, xx);
          }
        out.v[(c * Ho + y) * Wo + x] = s;
      }
  return out;
}

// Writes a .npy (format 1.0, '<f4', C order) by hand, independently of convkit's writer.
inline void write_npy(const std::filesystem::path& path, const std::vector<int64_t>& shape,
                      const std::vector<double>& values) {
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i) dims += std::to_string(shape[i]) + ",";
  if (shape.size() > 1) dims.pop_back();
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char len_bytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write(len_bytes, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (double v : values) {
    const float f = static_cast<float>(v);
    out.write(reinterpret_cast<const char*>(&f), 4);  // little-endian hosts only (x86-64, arm64)
  }
}

inline void write_npy(const std::filesystem::path& path, const Picture& p) {
  write_npy(path, {p.C, p.H, p.W}, p.v);
}

}  // namespace convkit::testing
