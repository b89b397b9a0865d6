// Image codecs on raw buffers (no Tensor): PNG through libpng, JPEG through libjpeg-turbo.
//
// The Tensor-facing API in include/convkit/image.h is a thin layer over these. Every failure,
// including the ones libpng and libjpeg report through longjmp, becomes a convkit::Error that names
// the file and the problem; no libpng or libjpeg state outlives a call.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace convkit::io {

enum class ImageFormat { Png, Jpeg };

// Decoded pixels, planar (C, H, W), each sample divided by its format's maximum (255 or 65535),
// so in [0, 1]. C is 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA); palettes are expanded to RGB
// or RGBA (RGBA when the palette has transparency), gray below 8 bits to 8 bits.
struct RawImage {
  int64_t channels = 0, height = 0, width = 0;
  int bit_depth = 0;  // of the decoded samples: 8 or 16
  ImageFormat format = ImageFormat::Png;
  std::vector<float> data;  // (C, H, W)
};

// The largest image accepted, in samples (C * H * W), so a forged header cannot ask for a huge
// allocation: 2^28 floats is 1 GiB, far above a 8K RGBA photograph (1.3e8 samples).
constexpr int64_t kMaxImageSamples = int64_t{1} << 28;

// Decodes a PNG or JPEG held in memory; the format comes from the magic bytes. `name` is used in
// error messages (the file's path).
RawImage decode_image(const uint8_t* bytes, size_t size, const std::string& name);
// Reads the whole file and decodes it.
RawImage read_image_file(const std::string& path);

// Encodes planar (C, H, W) floats as PNG: C in 1..4 (gray, gray+alpha, RGB, RGBA), bit_depth 8
// or 16. Values are clamped to [0, 1] and rounded to the nearest level; NaN becomes 0.
std::vector<uint8_t> encode_png(const float* chw, int64_t channels, int64_t height, int64_t width,
                                int bit_depth, const std::string& name);

}  // namespace convkit::io
