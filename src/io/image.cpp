// Tensor-facing image API (include/convkit/image.h): thin wrappers over io/image_codec.
#include <convkit/error.h>
#include <convkit/image.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "io/atomic_file.h"
#include "io/image_codec.h"

namespace convkit {

Tensor read_image(const std::string& path) {
  io::RawImage img = io::read_image_file(path);
  return from_vector(img.data, {img.channels, img.height, img.width});
}

Tensor to_gray(const Tensor& image) {
  check(image.defined(), "to_gray: the image is undefined");
  check(image.dim() == 2 || image.dim() == 3,
        "to_gray: expected a picture (C, H, W) or (H, W), got ", image.shape_str());
  if (image.dim() == 2) return image.detach().clone();
  const int64_t C = image.size(0), H = image.size(1), W = image.size(2), HW = H * W;
  check(C >= 1 && C <= 4, "to_gray: a picture has 1 to 4 channels (gray, gray+alpha, RGB, RGBA), ",
        "got shape ", image.shape_str());
  if (C <= 2) return image.detach().slice(0, 0, 1).clone();
  const Tensor src = image.detach().contiguous();
  const float* p = src.data_ptr();
  Tensor out = empty({1, H, W});
  float* dst = out.data_ptr();
  // (3|4, H, W) -> (1, H, W): ITU-R BT.601 luma weights.
  for (int64_t i = 0; i < HW; ++i)
    dst[i] = 0.299f * p[i] + 0.587f * p[HW + i] + 0.114f * p[2 * HW + i];
  return out;
}

void write_png(const std::string& path, const Tensor& image, int bit_depth) {
  check(image.defined(), "write_png: ", path, ": the image is undefined");
  check(image.dim() == 2 || image.dim() == 3, "write_png: ", path,
        ": expected (C, H, W) with C in 1..4 or (H, W), got ", image.shape_str());
  const Tensor src = image.detach().contiguous();
  const int64_t C = image.dim() == 3 ? image.size(0) : 1;
  const int64_t H = image.size(-2), W = image.size(-1);
  const std::vector<uint8_t> bytes = io::encode_png(src.data_ptr(), C, H, W, bit_depth, path);
  io::write_file_atomic(path, bytes.data(), bytes.size(), "write_png");
}

ValueMap value_map_from_string(const std::string& name) {
  if (name == "abs") return ValueMap::Abs;
  if (name == "clip") return ValueMap::Clip;
  if (name == "minmax") return ValueMap::MinMax;
  fail("value map '", name, "' is unknown; valid maps are abs, clip, minmax");
}

const char* to_string(ValueMap map) {
  switch (map) {
    case ValueMap::Abs:
      return "abs";
    case ValueMap::Clip:
      return "clip";
    case ValueMap::MinMax:
      return "minmax";
  }
  return "?";
}

namespace {

// min and max over the finite values of [p, p + n); {0, 0} when there are none.
std::pair<float, float> finite_range(const float* p, int64_t n) {
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (int64_t i = 0; i < n; ++i)
    if (std::isfinite(p[i])) {
      lo = std::min(lo, p[i]);
      hi = std::max(hi, p[i]);
    }
  if (lo > hi) return {0.f, 0.f};
  return {lo, hi};
}

}  // namespace

Tensor map_values(const Tensor& values, ValueMap map) {
  check(values.defined(), "map_values: the tensor is undefined");
  const Tensor src = values.detach().contiguous();
  const float* p = src.data_ptr();
  const int64_t n = src.numel();
  Tensor out = empty(src.shape());
  float* q = out.data_ptr();
  auto clamp01 = [](float v) { return v > 0.f ? std::min(v, 1.f) : 0.f; };  // NaN -> 0
  switch (map) {
    case ValueMap::Abs:
      for (int64_t i = 0; i < n; ++i) q[i] = clamp01(std::fabs(p[i]));
      break;
    case ValueMap::Clip:
      for (int64_t i = 0; i < n; ++i) q[i] = clamp01(p[i]);
      break;
    case ValueMap::MinMax: {
      // Infinities saturate; the range comes from the finite values.
      const auto [lo, hi] = finite_range(p, n);
      const float span = hi - lo;
      for (int64_t i = 0; i < n; ++i) q[i] = span > 0.f ? clamp01((p[i] - lo) / span) : 0.f;
      if (span > 0.f)
        for (int64_t i = 0; i < n; ++i)
          if (std::isinf(p[i])) q[i] = p[i] > 0.f ? 1.f : 0.f;
      break;
    }
  }
  return out;
}

void save_png_enlarged(const std::string& path, const Tensor& values, int64_t scale,
                       ColorMap colormap) {
  check(values.defined() && values.dim() == 2, "save_png_enlarged: ", path,
        ": expected a 2-D array (H, W), got ",
        values.defined() ? values.shape_str() : std::string("an undefined tensor"));
  check(scale >= 1 && scale <= 1024, "save_png_enlarged: scale ", scale,
        " is out of range; use 1..1024");
  const int64_t H = values.size(0), W = values.size(1);
  check(H >= 1 && W >= 1, "save_png_enlarged: ", path, ": the array ", values.shape_str(),
        " is empty");
  check(H * scale <= 65536 && W * scale <= 65536, "save_png_enlarged: ", path, ": ",
        values.shape_str(), " at scale ", scale, " exceeds 65536 pixels per side");
  const Tensor src = values.detach().contiguous();
  const float* p = src.data_ptr();
  // (H, W) -> per-entry colour (C, H, W), then nearest-neighbour enlargement.
  const int64_t C = colormap == ColorMap::Gray ? 1 : 3, HW = H * W;
  std::vector<float> small(static_cast<size_t>(C * HW));
  if (colormap == ColorMap::Gray) {
    const Tensor mapped = map_values(src, ValueMap::MinMax);
    std::copy(mapped.data_ptr(), mapped.data_ptr() + HW, small.begin());
  } else {
    const auto [lo, hi] = finite_range(p, HW);
    const float top = std::max(std::fabs(lo), std::fabs(hi));
    for (int64_t i = 0; i < HW; ++i) {
      float t = top > 0.f && !std::isnan(p[i]) ? p[i] / top : 0.f;
      t = std::clamp(t, -1.f, 1.f);
      // white at 0; toward red (1, 0, 0) for t > 0, toward blue (0, 0, 1) for t < 0
      small[i] = t < 0.f ? 1.f + t : 1.f;
      small[HW + i] = 1.f - std::fabs(t);
      small[2 * HW + i] = t > 0.f ? 1.f - t : 1.f;
    }
  }
  const int64_t OH = H * scale, OW = W * scale, OHW = OH * OW;
  std::vector<float> big(static_cast<size_t>(C * OHW));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < OH; ++y)
      for (int64_t x = 0; x < OW; ++x)
        big[c * OHW + y * OW + x] = small[c * HW + (y / scale) * W + x / scale];
  const std::vector<uint8_t> bytes = io::encode_png(big.data(), C, OH, OW, 8, path);
  io::write_file_atomic(path, bytes.data(), bytes.size(), "save_png_enlarged");
}

}  // namespace convkit
