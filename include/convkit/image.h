// Pictures as tensors: PNG and JPEG in, PNG out, luma, and enlarged pictures of small arrays.
//
// Pixels are float (C, H, W) in [0, 1]: C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA. Sample values
// are taken as stored (no gamma or colour-profile conversion), divided by 255 or 65535.
#pragma once
#include <convkit/tensor.h>

#include <cstdint>
#include <string>

namespace convkit {

// Reads a PNG (1, 2, 4, 8 or 16 bits; gray, gray+alpha, RGB, RGBA or palette, interlaced or not) or
// a JPEG (8-bit gray, YCbCr or CMYK), recognised by its first bytes, not its name. Palettes become
// RGB (RGBA with transparency), PNG transparency chunks an alpha channel, CMYK RGB. Returns (C, H,
// W) in [0, 1]. An unreadable, truncated or unsupported file throws convkit::Error naming the file
// and the problem.
Tensor read_image(const std::string& path);

// Luma of a picture, ITU-R BT.601: Y = 0.299 R + 0.587 G + 0.114 B.
// (3, H, W) or (4, H, W) -> (1, H, W) (alpha dropped); (2, H, W) -> its gray channel (1, H, W);
// (1, H, W) -> a copy; (H, W) -> a copy. Not differentiable (pictures are data).
Tensor to_gray(const Tensor& image);

// Writes (C, H, W) with C in 1..4, or (H, W), as a PNG of 8 or 16 bits per sample. Values are
// clamped to [0, 1] and rounded to the nearest level (NaN -> 0). Atomic: the file appears whole or
// not at all.
void write_png(const std::string& path, const Tensor& image, int bit_depth = 8);

// How values of any range become pixel intensities in [0, 1].
enum class ValueMap {
  Abs,     // |v|, clipped to 1 (edge responses of either sign are bright)
  Clip,    // v clamped to [0, 1]
  MinMax,  // (v - min) / (max - min) over the whole tensor; a constant tensor becomes 0
};
ValueMap value_map_from_string(const std::string& name);  // "abs", "clip", "minmax"
const char* to_string(ValueMap map);
// Applies `map` elementwise (min/max over the whole tensor); NaN becomes 0. Same shape as `values`.
Tensor map_values(const Tensor& values, ValueMap map);

enum class ColorMap {
  Gray,       // minmax to black..white
  Diverging,  // symmetric about 0: blue (-max|v|) .. white (0) .. red (+max|v|)
};

// Writes a small 2-D array (H, W) as an 8-bit PNG with each value a scale x scale block, so single
// entries are visible (the notebook's 6x8 X at scale 32 is 256x192 pixels). Gray maps by minmax to
// a gray PNG, Diverging to an RGB PNG. Atomic like write_png.
void save_png_enlarged(const std::string& path, const Tensor& values, int64_t scale = 32,
                       ColorMap colormap = ColorMap::Gray);

}  // namespace convkit
