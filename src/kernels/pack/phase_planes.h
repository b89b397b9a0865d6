// Forward B blocks from stride-phase planes: the pack of strided and large-kernel layers without
// per-row bookkeeping.
//
// Tap (kh, kw) of output (oh, ow) reads x[oh sH + eh][ow sW + ew], eh = kh dH - pad_t,
// ew = kw dW - pad_l. Writing eh = di sH + p and ew = dm sW + q (0 <= p < sH, 0 <= q < sW), that
// is plane (p, q) at row oh + di, column ow + dm, where plane(p, q)[r][m] = x[r sH + p][m sW + q]
// (0 outside x). A planes buffer holds, for channels c0 .. c1 and output rows oh0 .. oh0 + rows of
// one image, every plane some tap reads, with pitch Wo: its row r is plane row oh0 + di_min + r
// (Hz = rows + di_max - di_min rows; planes 8 floats apart). Block column j = (oh - oh0) Wo + ow of
// tap (c, kh, kw) is then buffer[c][plane][j + (di - di_min) Wo + dm]: every B row is ONE run along
// j, copied 16 floats at a time. Where ow + dm leaves [0, Wo) the run has wrapped into the next or
// previous row; there x is padding whenever Wo sW >= W (planes_fit), and the pack writes 0.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/conv_params.h"
#include "kernels/pack/im2col_pack.h"

namespace convkit::kernels::pack {

struct PhasePlanes {
  const float* x = nullptr;  // channel 0 of the image's group, (Cg, H, W)
  int64_t H = 0, W = 0, Ho = 0, Wo = 0, kH = 1, kW = 1, sH = 1, sW = 1;
  std::vector<int64_t> p, di, q, dm;  // per kh: phase row p, offset di; per kw: q, dm
  std::vector<int64_t> prow, pcol;    // buffer index of a used phase row p / column q, else -1
  std::vector<int64_t> used_p, used_q;
  int64_t di_min = 0, di_max = 0, dm_lo = 0, dm_hi = 0;  // dm_lo <= 0 <= dm_hi

  int64_t nplanes() const { return static_cast<int64_t>(used_p.size() * used_q.size()); }
  int64_t Hz(int64_t rows) const { return rows + di_max - di_min; }
  // Floats from one plane to the next: Hz Wo and a gap of 8 that the row copies may overrun.
  int64_t plane_stride(int64_t rows) const { return Hz(rows) * Wo + 8; }
  // Floats the runs may read before the first plane and after the last (never used: masked).
  int64_t guard() const;
  // Floats of a buffer of `channels` channels and `rows` output rows, guards included.
  int64_t floats(int64_t channels, int64_t rows) const;
};

// Whether the forward B blocks of p can come from phase planes (Wo sW >= W: every wrapped run
// column is padding); zero padding only.
bool planes_fit(const ConvParams& p);
// The geometry of p's planes for image n, group g of x (N, C, H, W).
PhasePlanes phase_planes(const ConvParams& p, const float* x, int64_t n, int64_t g);

// Fills buf (pp.floats(c1 - c0, rows) floats) with channels c0 .. c1, output rows oh0 .. oh0+rows.
void build_planes(const PhasePlanes& pp, int64_t c0, int64_t c1, int64_t oh0, int64_t rows,
                  float* buf);
// The forward B block col(k0 .. k0+kc, j) for block columns j = oh0 Wo + jc .. + nc of the image,
// in NR-column panels, from a buffer built for channels c0 .. (covering the block's k rows) and
// output rows oh0 .. oh0+rows. Equals pack_im2col bit for bit.
void pack_planes(const PhasePlanes& pp, const float* buf, int64_t c0, int64_t rows, int64_t k0,
                 int64_t kc, int64_t jc, int64_t nc, float* dst);

// The weight-gradient B block of pack_im2col_t (colT rows q0 .. q0+qc, columns k0 .. k0+nc <= KC,
// in NR-column panels) through phase planes, for a view g of image 0 whose geometry pp is (pp.x is
// overwritten): per image's run of q, the planes of the block's channels over the run's output
// rows are built into buf (planes_t_floats floats), and each panel's rows are transposed from
// their runs. Equals pack_im2col_t bit for bit, with every x sample copied once per block rather
// than gathered once per tap.
int64_t planes_t_floats(const PhasePlanes& pp, int64_t Cg);
void pack_col_t_planes(const Im2col& g, PhasePlanes& pp, int64_t q0, int64_t qc, int64_t k0,
                       int64_t nc, float* buf, float* dst);

// AVX2 versions (same contracts, same bits); call only when base::use_avx2().
void build_planes__avx2(const PhasePlanes& pp, int64_t c0, int64_t c1, int64_t oh0, int64_t rows,
                        float* buf);
void pack_planes__avx2(const PhasePlanes& pp, const float* buf, int64_t c0, int64_t rows,
                       int64_t k0, int64_t kc, int64_t jc, int64_t nc, float* dst);
void pack_col_t_planes__avx2(const Im2col& g, PhasePlanes& pp, int64_t q0, int64_t qc, int64_t k0,
                             int64_t nc, float* buf, float* dst);

}  // namespace convkit::kernels::pack
