// Helpers shared by `convkit filter` and `convkit learn`: loading a picture or an array, parsing
// the conv2d option strings, and naming output kinds by extension.
#pragma once
#include <convkit/convkit.h>
#include <convkit/image.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace convkit::cli::pictures {

inline std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

inline bool ends_with(const std::string& s, const std::string& suffix) {
  const std::string l = lower(s);
  return l.size() >= suffix.size() &&
         l.compare(l.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// True when the file starts with numpy's magic "\x93NUMPY".
inline bool is_npy_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char magic[6] = {};
  const size_t n = std::fread(magic, 1, 6, f);
  std::fclose(f);
  return n == 6 && std::string(magic, 6) == std::string("\x93NUMPY", 6);
}

// A picture (C, H, W): an image file (PNG/JPEG, values in [0, 1]) or a .npy array (H, W) or
// (C, H, W) of any values (how filtered outputs keep their sign). With `gray`, RGB(A) becomes luma.
inline Tensor load_picture(const std::string& path, bool gray) {
  Tensor t;
  if (is_npy_file(path)) {
    t = load_npy(path);
    check(t.dim() == 2 || t.dim() == 3, "'", path, "' holds an array of shape ", t.shape_str(),
          "; a picture array is (H, W) or (C, H, W)");
    if (t.dim() == 2) t = t.unsqueeze(0);
  } else {
    t = read_image(path);
  }
  check(t.numel() > 0, "'", path, "' holds an empty picture ", t.shape_str());
  return gray && t.size(0) > 1 ? to_gray(t) : t;
}

// "3" -> {3}; "3,4" -> {3, 4}: comma-separated integers, each within [lo, hi].
inline std::vector<int64_t> parse_ints(const std::string& text, const char* option, int64_t lo,
                                       int64_t hi) {
  std::vector<int64_t> out;
  size_t i = 0;
  while (true) {
    const char* start = text.c_str() + i;
    char* end = nullptr;
    const long long v = std::strtoll(start, &end, 10);
    check(end != start, option, " '", text, "': expected comma-separated integers");
    check(v >= lo && v <= hi, option, " '", text, "': ", v, " is out of range [", lo, ", ", hi,
          "]");
    out.push_back(v);
    i = static_cast<size_t>(end - text.c_str());
    if (i == text.size()) break;
    check(text[i] == ',', option, " '", text, "': expected ',' at position ", i + 1);
    ++i;
  }
  return out;
}

// S or SH,SW (stride, dilation).
inline Pair2 parse_pair(const std::string& text, const char* option) {
  const auto v = parse_ints(text, option, 1, 1 << 20);
  check(v.size() <= 2, option, " '", text, "': give one value or two (h,w)");
  return v.size() == 1 ? Pair2(v[0]) : Pair2(v[0], v[1]);
}

// P | PH,PW | L,R,T,B | same | valid.
inline Padding parse_padding(const std::string& text) {
  if (text == "same" || text == "valid") return Padding(text);
  const auto v = parse_ints(text, "--padding", 0, 1 << 20);
  check(v.size() == 1 || v.size() == 2 || v.size() == 4, "--padding '", text,
        "': give P, PH,PW, L,R,T,B (four-sided), same or valid");
  if (v.size() == 1) return Padding(v[0]);
  if (v.size() == 2) return Padding(v[0], v[1]);
  return Padding(v[0], v[1], v[2], v[3]);
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace convkit::cli::pictures
