#include "kernels/pack/im2col_pack.h"

#include <algorithm>
#include <cstring>

#include "kernels/gemm/gemm.h"
#include "kernels/pack/im2col_pack_impl.h"

namespace convkit::kernels::pack {

using gemm::MR;
using gemm::NR;

Im2col im2col_view(const ConvParams& p, const float* x, int64_t n, int64_t g) {
  Im2col v;
  v.x = x + (n * p.C + g * p.Cg()) * p.H * p.W;
  v.image_stride = p.C * p.H * p.W;
  v.H = p.H, v.W = p.W, v.Ho = p.Ho, v.Wo = p.Wo, v.kH = p.kH, v.kW = p.kW;
  v.sH = p.sH, v.sW = p.sW, v.dH = p.dH, v.dW = p.dW, v.pad_t = p.pad_t, v.pad_l = p.pad_l;
  if (p.kH == 1 && p.kW == 1 && p.sH == 1 && p.sW == 1 && !p.has_padding()) {
    // 1x1, stride 1, unpadded: col is the planes themselves; one long row copies fastest.
    v.H = v.Ho = 1;
    v.W = v.Wo = p.H * p.W;
  }
  return v;
}

namespace {

// Copies len samples row[i * sW] (i < len) to d.
struct CopyRunPortable {
  void operator()(const float* row, int64_t sW, int64_t len, float* d) const {
    if (sW == 1) {
      for (int64_t i = 0; i < len; ++i) d[i] = row[i];
    } else {
      for (int64_t i = 0; i < len; ++i) d[i] = row[i * sW];
    }
  }
};

}  // namespace

void pack_im2col(const Im2col& g, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  pack_im2col_rows(g, k0, kc, j0, nc, dst, CopyRunPortable{});
}

void pack_im2col_t(const Im2col& g, int64_t q0, int64_t qc, int64_t k0, int64_t nc, float* dst) {
  float row[gemm::KC];  // qc <= KC
  for (int64_t kk = 0; kk < nc; ++kk) {
    gather_col_row_with(g, k0 + kk, q0, qc, row, CopyRunPortable{});
    float* col = dst + (kk / NR) * qc * NR + kk % NR;  // element (q, kk) at col[(q - q0) * NR]
    for (int64_t q = 0; q < qc; ++q) col[q * NR] = row[q];
  }
  const int64_t tail = nc % NR;
  if (tail)
    for (int64_t q = 0; q < qc; ++q)
      std::fill_n(dst + (nc / NR) * qc * NR + q * NR + tail, NR - tail, 0.f);
}

void pack_a_strided(const float* src, int64_t rs, int64_t cs, int64_t i0, int64_t mc, int64_t k0,
                    int64_t kc, float* dst) {
  for (int64_t r = 0; r < mc; r += MR) {
    const int64_t rows = std::min(MR, mc - r);
    for (int64_t k = 0; k < kc; ++k) {
      float* d = dst + r * kc + k * MR;
      const float* s = src + (i0 + r) * rs + (k0 + k) * cs;
      int64_t i = 0;
      for (; i < rows; ++i) d[i] = s[i * rs];
      for (; i < MR; ++i) d[i] = 0.f;
    }
  }
}

void pack_a_gy(const float* gy0, int64_t image_stride, int64_t P, int64_t i0, int64_t mc,
               int64_t q0, int64_t qc, float* dst) {
  for (int64_t r = 0; r < mc; r += MR) {
    const int64_t rows = std::min(MR, mc - r);
    float* d = dst + r * qc;
    int64_t q = q0;
    while (q < q0 + qc) {
      const int64_t n = q / P, j = q % P;
      const int64_t len = std::min(P - j, q0 + qc - q);
      const float* s = gy0 + n * image_stride + (i0 + r) * P + j;
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t e = 0; e < len; ++e) d[(q - q0 + e) * MR + i] = s[i * P + e];
      for (int64_t i = rows; i < MR; ++i)
        for (int64_t e = 0; e < len; ++e) d[(q - q0 + e) * MR + i] = 0.f;
      q += len;
    }
  }
}

namespace {
int64_t floor_div(int64_t a, int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
}  // namespace

int64_t PhasePlanes::guard() const {
  return std::max(-dm_lo, dm_hi + NR);
}
int64_t PhasePlanes::floats(int64_t channels, int64_t rows) const {
  return channels * nplanes() * plane_stride(rows) + 2 * guard();
}

bool planes_fit(const ConvParams& p) {
  return p.Wo * p.sW >= p.W;
}

PhasePlanes phase_planes(const ConvParams& p, const float* x, int64_t n, int64_t g) {
  PhasePlanes pp;
  pp.x = x + (n * p.C + g * p.Cg()) * p.H * p.W;
  pp.H = p.H, pp.W = p.W, pp.Ho = p.Ho, pp.Wo = p.Wo, pp.kH = p.kH, pp.kW = p.kW;
  pp.sH = p.sH, pp.sW = p.sW;
  // One dimension: per tap the phase and offset, the used phases in order, their indices.
  auto split = [](int64_t k, int64_t s, int64_t d, int64_t pad, std::vector<int64_t>& ph,
                  std::vector<int64_t>& off, std::vector<int64_t>& index,
                  std::vector<int64_t>& used) {
    ph.resize(k), off.resize(k), index.assign(s, -1), used.clear();
    for (int64_t t = 0; t < k; ++t) {
      const int64_t e = t * d - pad;
      off[t] = floor_div(e, s), ph[t] = e - off[t] * s;
      index[ph[t]] = 0;
    }
    for (int64_t a = 0; a < s; ++a)
      if (index[a] == 0) index[a] = static_cast<int64_t>(used.size()), used.push_back(a);
  };
  split(p.kH, p.sH, p.dH, p.pad_t, pp.p, pp.di, pp.prow, pp.used_p);
  split(p.kW, p.sW, p.dW, p.pad_l, pp.q, pp.dm, pp.pcol, pp.used_q);
  pp.di_min = *std::min_element(pp.di.begin(), pp.di.end());
  pp.di_max = *std::max_element(pp.di.begin(), pp.di.end());
  pp.dm_lo = std::min<int64_t>(0, *std::min_element(pp.dm.begin(), pp.dm.end()));
  pp.dm_hi = std::max<int64_t>(0, *std::max_element(pp.dm.begin(), pp.dm.end()));
  return pp;
}

void build_planes(const PhasePlanes& pp, int64_t c0, int64_t c1, int64_t oh0, int64_t rows,
                  float* buf) {
  build_planes_with(pp, c0, c1, oh0, rows, buf, SplitByPhase<CopyRunPortable>{});
}

void pack_runs(int64_t kc, int64_t nc, int64_t col0, int64_t width, const float* const* run,
               const int64_t* shift, float* dst) {
  const int64_t ncr = gemm::round_up(nc, NR);
  for (int64_t kk = 0; kk < kc; ++kk)
    for (int64_t j = 0; j < ncr; ++j) {
      const int64_t m = (col0 + j) % width + shift[kk];
      dst[j / NR * kc * NR + kk * NR + j % NR] = j < nc && m >= 0 && m < width ? run[kk][j] : 0.f;
    }
}

void pack_planes(const PhasePlanes& pp, const float* buf, int64_t c0, int64_t rows, int64_t k0,
                 int64_t kc, int64_t jc, int64_t nc, float* dst) {
  const float* run[gemm::KC];
  int64_t shift[gemm::KC];
  plane_runs(pp, buf, c0, rows, k0, kc, jc, run, shift);
  pack_runs(kc, nc, jc, pp.Wo, run, shift, dst);
}

int64_t planes_t_floats(const PhasePlanes& pp, int64_t Cg) {
  const int64_t khw = pp.kH * pp.kW;
  const int64_t channels = std::min(Cg, (gemm::NC + khw - 2) / khw + 1);
  const int64_t rows = (gemm::KC + pp.Wo - 2) / pp.Wo + 1;  // a run of KC positions, any start
  return pp.floats(channels, rows);
}

void pack_col_t_planes(const Im2col& g, PhasePlanes& pp, int64_t q0, int64_t qc, int64_t k0,
                       int64_t nc, float* buf, float* dst) {
  pack_col_t_planes_with(g, pp, q0, qc, k0, nc, buf, dst, build_planes,
                         [](int64_t ntaps, int64_t len, int64_t col0, int64_t width,
                            const float* const* run, const int64_t* shift, float* d) {
                           for (int64_t i = 0; i < len; ++i)
                             for (int64_t kk = 0; kk < NR; ++kk) {
                               const int64_t m = kk < ntaps ? (col0 + i) % width + shift[kk] : -1;
                               d[i * NR + kk] = m >= 0 && m < width ? run[kk][i] : 0.f;
                             }
                         });
}

void col2im_add(const Im2col& g, const float* dcol, int64_t ld, int64_t k0, int64_t kc, int64_t j0,
                int64_t nc, float* gx) {
  col2im_add_with(g, dcol, ld, k0, kc, j0, nc, gx,
                  [](float* row, int64_t sW, int64_t len, const float* src) {
                    for (int64_t i = 0; i < len; ++i) row[i * sW] += src[i];
                  });
}

}  // namespace convkit::kernels::pack
