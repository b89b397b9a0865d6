// Packing convolution operands straight into the SGEMM core's panel formats (kernels/gemm/gemm.h),
// so no im2col matrix is ever materialised: each KC x NC block is gathered from the input when
// the GEMM loops need it. Zero padding only (taps outside the input read 0).
#pragma once
#include <cstdint>

#include "kernels/conv_params.h"

namespace convkit::kernels::pack {

// One image's group of input channels seen as the im2col matrix col (K x P):
//   col(k, j) = x[c][oh * sH - pad_t + kh * dH][ow * sW - pad_l + kw * dW]  (0 outside)
//   k = (c * kH + kh) * kW + kw  (K = Cg * kH * kW),   j = oh * Wo + ow  (P = Ho * Wo)
struct Im2col {
  const float* x = nullptr;  // (Cg, H, W) planes of one image and group
  int64_t image_stride = 0;  // floats from one image's planes to the next's (C * H * W)
  int64_t H = 0, W = 0, Ho = 0, Wo = 0, kH = 1, kW = 1;
  int64_t sH = 1, sW = 1, dH = 1, dW = 1, pad_t = 0, pad_l = 0;
};
// Whether col is the planes themselves, col(k, j) = x[k * W + j] (a 1x1, stride 1, unpadded
// convolution, whose view im2col_view flattens to one row of H * W per plane).
inline bool is_plain(const Im2col& g) {
  return g.kH == 1 && g.kW == 1 && g.H == 1 && g.Ho == 1 && g.sW == 1 && g.pad_l == 0;
}
// The im2col view of image n, group g of a convolution (x is the whole (N, C, H, W) input).
Im2col im2col_view(const ConvParams& p, const float* x, int64_t n, int64_t g);

// B block for the forward GEMM: col(k0 .. k0+kc, j0 .. j0+nc) in NR-column panels.
void pack_im2col(const Im2col& g, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst);

// B block for the weight-gradient GEMM: colT(q, k) = col_n(k, j) over the stacked column index
// q = n * P + j of every image n (g.x is image 0); rows q0 .. q0+qc, columns k0 .. k0+nc, in
// NR-column panels.
void pack_im2col_t(const Im2col& g, int64_t q0, int64_t qc, int64_t k0, int64_t nc, float* dst);

// AVX2 versions of pack_im2col, pack_im2col_t, pack_a_gy and col2im_add (same contracts, same
// results bit for bit: the packs only move floats, and col2im adds into each element in the same
// order as the portable one); call only when base::use_avx2(). qc <= gemm::KC.
void pack_im2col__avx2(const Im2col& g, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst);
void pack_im2col_t__avx2(const Im2col& g, int64_t q0, int64_t qc, int64_t k0, int64_t nc,
                         float* dst);
void col2im_add__avx2(const Im2col& g, const float* dcol, int64_t ld, int64_t k0, int64_t kc,
                      int64_t j0, int64_t nc, float* gx);
void col2im_add__avx2(const Im2col& g, const float* dcol, int64_t ld, int64_t k0, int64_t kc,
                      int64_t j0, int64_t nc, float* gx);
void pack_a_gy__avx2(const float* gy0, int64_t image_stride, int64_t P, int64_t i0, int64_t mc,
                     int64_t q0, int64_t qc, float* dst);

// B block (kc x nc, NR-column panels) whose row kk is a run of floats wrapped at a row width:
//   B(kk, j) = run[kk][j] where 0 <= (col0 + j) % width + shift[kk] < width, else 0
// (block column j sits at column (col0 + j) % width of a row of that width; a run shifted by
// shift[kk] has wrapped into the neighbouring row there). Each run may be read up to the next NR
// boundary past nc (and those floats must exist). The forward's phase planes and the strided
// backward-data phases build their B blocks this way.
void pack_runs(int64_t kc, int64_t nc, int64_t col0, int64_t width, const float* const* run,
               const int64_t* shift, float* dst);
void pack_runs__avx2(int64_t kc, int64_t nc, int64_t col0, int64_t width, const float* const* run,
                     const int64_t* shift, float* dst);

// A block from a strided matrix: A(i, k) = src[i * rs + k * cs], rows i0 .. i0+mc, k0 .. k0+kc,
// in MR-row panels (zero rows past mc).
void pack_a_strided(const float* src, int64_t rs, int64_t cs, int64_t i0, int64_t mc, int64_t k0,
                    int64_t kc, float* dst);

// A block of the weight-gradient GEMM: A(o, q) = gy[n][o][j] over q = n * P + j, for the rows of
// one group (gy0 = gy + g * Og * P of image 0, image stride O * P).
void pack_a_gy(const float* gy0, int64_t image_stride, int64_t P, int64_t i0, int64_t mc,
               int64_t q0, int64_t qc, float* dst);

// col2im: gx planes (Cg, H, W) of one image += the columns j0 .. j0+nc of rows k0 .. k0+kc of a
// (kc x nc) column block dcol (row-major, leading dimension ld), scattered where col reads them.
void col2im_add(const Im2col& g, const float* dcol, int64_t ld, int64_t k0, int64_t kc, int64_t j0,
                int64_t nc, float* gx);

}  // namespace convkit::kernels::pack
