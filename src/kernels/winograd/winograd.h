// Winograd F(4x4, 3x3): a 6x6 input tile d gives a 4x4 output tile Y = A^T [ (G g G^T) .* (B^T d B)
// ] A (Lavin & Gray 2015), 36 multiplies per output tile and channel instead of 144. Matrices:
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
//   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
// Position xi = 6 * row + column of the 6x6 transformed tile.
#pragma once
#include <cstdint>

namespace convkit::kernels::winograd {

// Filter transform u = G g G^T of up to 6 3x3 kernels at once (one MR-row panel): kernel i < n has
// tap t (= 3 kh + kw) at
// g[i * lane_stride + t * tap_stride]; writes u_i[xi] to dst[xi * xi_stride + i] for i < 6
// (zeros for i >= n).
void f32_wino_f4x3_ftrans6__avx2_fma(const float* g, int64_t lane_stride, int64_t tap_stride, int n,
                                     float* dst, int64_t xi_stride);

// Input transform of 8 horizontally adjacent tiles. rows[r] (r < 6) points at input row r of the
// tiles at tile 0's first column; tile t reads rows[r][4t .. 4t+6), and 40 floats of each row must
// be readable. Writes V[xi][t] to v[xi * vstride + t], t < 8.
void f32_wino_f4x3_itrans8__avx2_fma(const float* const rows[6], float* v, int64_t vstride);

// Output transform of 8 tiles: M[xi][t] = m[xi * mstride + t]. Writes out[i * ostride + 4t + j]
// = (A^T M A)[i][j] + bias for i, j < 4, t < 8 (4 rows of 32 floats).
void f32_wino_f4x3_otrans8__avx2_fma(const float* m, int64_t mstride, float bias, float* out,
                                     int64_t ostride);

}  // namespace convkit::kernels::winograd
