// Preset image kernels as 2-D tensors (kH, kW), for conv2d (a cross-correlation, as in PyTorch).
//
// Signs follow cross-correlation: sobel_x responds positively where intensity grows to the right
// (OpenCV's Sobel dx=1), edge_x is the notebook's [[1, -1]] (positive where intensity falls to the
// right). To filter a (C, H, W) picture with one of them, use it as a depthwise weight:
//   conv2d(image, K.reshape({1, 1, kH, kW}).expand({C, 1, kH, kW}).contiguous(), {}, {.groups =
//   C}).
#pragma once
#include <convkit/image.h>
#include <convkit/tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace convkit::filters {

Tensor edge_x();     // [[1, -1]]                      (1, 2): the notebook's vertical-edge detector
Tensor edge_y();     // [[1], [-1]]                    (2, 1): horizontal edges
Tensor sobel_x();    // [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]  d/dx
Tensor sobel_y();    // sobel_x transposed                     d/dy
Tensor laplacian();  // [[0, 1, 0], [1, -4, 1], [0, 1, 0]]    4-neighbour Laplacian
Tensor sharpen();    // [[0, -1, 0], [-1, 5, -1], [0, -1, 0]] identity minus Laplacian
Tensor box(int64_t n);  // (n, n) of 1 / n^2
// (size, size) samples of exp(-(x^2 + y^2) / (2 sigma^2)) at integer offsets from the centre,
// normalised to sum 1. size 0 means 2 * ceil(3 sigma) + 1; otherwise an odd size >= 1.
Tensor gaussian(double sigma, int64_t size = 0);

// The names preset() knows: edge-x, edge-y, sobel-x, sobel-y, laplacian, gaussian, box, sharpen.
const std::vector<std::string>& preset_names();
// A preset by name. gaussian uses sigma (and size, 0 = from sigma); box uses size (0 = 3).
Tensor preset(const std::string& name, double sigma = 1.0, int64_t size = 0);
// How a preset's output is best shown: Abs for the derivative kernels (edges of either sign),
// Clip for the smoothing and sharpening ones (their outputs stay near the input's range).
ValueMap default_value_map(const std::string& preset_name);

// Parses a kernel written as rows separated by ';' and values by ',': "1,-1" is (1, 2),
// "0,1;2,3" is (2, 2), "1;-1" is (2, 1). Rows must have equal length; whitespace is ignored.
Tensor parse_kernel(const std::string& text);

}  // namespace convkit::filters
