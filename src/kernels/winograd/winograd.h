// Winograd F(4x4, 3x3): a 6x6 input tile d gives a 4x4 output tile Y = A^T [ (G g G^T) .* (B^T d B)
// ] A (Lavin & Gray 2015), 36 multiplies per output tile and channel instead of 144. Matrices:
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
//   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
// Position xi = 6 * row + column of the 6x6 transformed tile.
//
// The kernels that read data report whether everything they read was finite (a non-finite value
// would leak through the transforms into a whole tile: Inf - Inf = NaN), so the caller can fall
// back to a direct method without a separate pass over the data.
#pragma once
#include <cstdint>

namespace convkit::kernels::winograd {

// Filter transform u = G g G^T of one MR-row panel (6 kernels) over nc input channels: kernel
// i < n, channel c has tap t (= 3 kh + kw) at g[i * lane_stride + c * in_stride + t * tap_stride].
// Writes u_i,c[xi] to dst[xi * xi_stride + c * 6 + i] for i < 6 (zeros for i >= n), touching
// only dst[xi * xi_stride + 0 .. 6 nc). Returns false when a read tap was not finite.
bool f32_wino_f4x3_ftrans_panel__avx2_fma(const float* g, int64_t lane_stride, int64_t in_stride,
                                          int64_t tap_stride, int n, int64_t nc, float* dst,
                                          int64_t xi_stride);

// Zero-padded window of one input plane x (H x W): dst[r * ld + j] = x[ih0 + d r][iw0 + d j]
// where that lies inside the plane, else 0, for r < rows, j < cols (cols a multiple of 8, dst
// 32-byte aligned, ld a multiple of 8). Returns false when a copied value was not finite.
bool f32_wino_window__avx2(const float* x, int64_t H, int64_t W, int64_t ih0, int64_t iw0,
                           int64_t d, int64_t rows, int64_t cols, float* dst, int64_t ld);

// Input transform of 8 tiles anywhere: tile t's input (r, j) is tile[t][r * ld + j] for r, j < 6;
// 8 floats of each row must be readable. Writes V[xi][t] = (B^T d_t B)[xi] to
// v[xi * vstride + t], t < 8.
void f32_wino_f4x3_itrans8__avx2_fma(const float* const tile[8], int64_t ld, float* v,
                                     int64_t vstride);

// Output transform of 8 tiles: M[xi][t] = m[xi * mstride + t]. Writes dst[t][i * ld[t] + j * cs]
// = (A^T M A)[i][j] + bias for i, j < 4, t < 8.
void f32_wino_f4x3_otrans8__avx2_fma(const float* m, int64_t mstride, float bias,
                                     float* const dst[8], const int64_t ld[8], int64_t cs);

// Weight-gradient transforms (the adjoint of y = A^T [(G g G^T) .* V] A): the gradient of one
// kernel is G^T [sum over tiles of (A e A^T) .* V] G, e the 4x4 tile of the output gradient.
// Output-gradient transform of 8 tiles anywhere: tile t's element (r, j) is tile[t][r * ld + j]
// for r, j < 4 (exactly 4 floats of each row are read). Writes E[xi][t] = (A e_t A^T)[xi] to
// e[xi * estride + t], t < 8.
void f32_wino_f4x3_gtrans8__avx2_fma(const float* const tile[8], int64_t ld, float* e,
                                     int64_t estride);

// Transposes 36 (xi) blocks of 8 channels x 8 tiles into GEMM panel rows (tile-major): for xi <
// 36, t < 8, i < width, dst[xi * dst_xs + t * k_stride + i] = src[xi * src_xs + i * 8 + t].
// width 8 (half a 16-column B panel, dst 32-byte aligned) or 6 (an MR-row A panel; src rows 6
// and 7 are read but not stored).
void f32_wino_panel_rows__avx2(const float* src, int64_t src_xs, int width, float* dst,
                               int64_t dst_xs, int64_t k_stride);

// Kernel gradients of up to 8 (output, input) channel pairs: lane l < n of m[xi * m_xs + l] is
// position xi of pair l's transformed gradient dU; writes (G^T dU G)[t] to gw[l * 9 + t], t < 9.
void f32_wino_f4x3_wgrad8__avx2_fma(const float* m, int64_t m_xs, int64_t n, float* gw);

// The SGEMM micro-kernel's contract (kernels/gemm/gemm.h) for 6 rows x 8 columns, with the packed
// B panel of the 16-column format: for i < mr, j < 8, C(i, j) = (accumulate ? C(i, j) : 0) +
// sum_{k < kc} a[k * 6 + i] * b[k * 16 + j], the k sum in increasing order, one float FMA
// accumulator per element (the same bits as f32_gemm_6x16__avx2_fma's column j). b 32-byte
// aligned. For a task's last 8 tiles.
void f32_wino_gemm_6x8__avx2_fma(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                 int64_t mr, bool accumulate);
// The same for two MR-row panels a0 (rows 0..5) and a1 (rows 6..11), mr <= 12 rows of C.
void f32_wino_gemm_12x8__avx2_fma(int64_t kc, const float* a0, const float* a1, const float* b,
                                  float* c, int64_t ldc, int64_t mr, bool accumulate);

}  // namespace convkit::kernels::winograd
