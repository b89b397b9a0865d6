// Internal to src/kernels/pack: the loops shared by the portable packs (im2col_pack.cpp) and the
// AVX2 ones (im2col_pack_avx2.cpp), parameterised by how one run of samples is copied. Everything
// here has internal linkage, so each file compiles its own copy with its own ISA flags and the
// linker can never put an AVX2 body on the portable path.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/gemm/gemm.h"
#include "kernels/pack/im2col_pack.h"
#include "kernels/pack/phase_planes.h"

namespace convkit::kernels::pack {
namespace {

// Decoded row k of col: the plane it reads and the tap offsets.
struct Tap {
  const float* plane;
  int64_t off_h, off_w, ow_lo, ow_hi;  // valid output columns [ow_lo, ow_hi) for this tap
};
inline Tap tap(const Im2col& g, int64_t k) {
  const int64_t khw = g.kH * g.kW;
  const int64_t c = k / khw, r = k % khw, kh = r / g.kW, kw = r % g.kW;
  Tap t;
  t.plane = g.x + c * g.H * g.W;
  t.off_h = kh * g.dH - g.pad_t;
  t.off_w = kw * g.dW - g.pad_l;
  // Output columns ow with 0 <= ow * sW + off_w < W.
  t.ow_lo = t.off_w >= 0 ? 0 : (-t.off_w + g.sW - 1) / g.sW;
  t.ow_hi = g.W - t.off_w <= 0 ? 0 : (g.W - t.off_w - 1) / g.sW + 1;
  if (t.ow_hi > g.Wo) t.ow_hi = g.Wo;
  if (t.ow_lo > t.ow_hi) t.ow_lo = t.ow_hi;
  return t;
}

inline void zero_run(float* d, int64_t len) {
  for (int64_t i = 0; i < len; ++i) d[i] = 0.f;
}

// Row k of colT (see pack_im2col_t) over q0 .. q0+qc into dst[q - q0], with copy(row, sW, len,
// d) as below.
template <typename CopyRun>
void gather_col_row_with(const Im2col& g, int64_t k, int64_t q0, int64_t qc, float* dst,
                         CopyRun copy) {
  const int64_t P = g.Ho * g.Wo;
  const Tap t = tap(g, k);
  int64_t q = q0, n = q / P, j = q % P, oh = j / g.Wo, ow = j % g.Wo;
  while (q < q0 + qc) {
    const int64_t len = std::min(g.Wo - ow, q0 + qc - q);  // a run inside output row oh
    float* d = dst + (q - q0);
    const int64_t ih = oh * g.sH + t.off_h;
    if (ih < 0 || ih >= g.H) {
      zero_run(d, len);
    } else {
      const float* row = t.plane + n * g.image_stride + ih * g.W + t.off_w;
      const int64_t a = std::clamp(t.ow_lo - ow, int64_t{0}, len);
      const int64_t b = std::clamp(t.ow_hi - ow, a, len);
      zero_run(d, a);
      const float* src = row + (ow + a) * g.sW;
      copy(src, g.sW, b - a, d + a);
      zero_run(d + b, len - b);
      // What the next block will read of this row follows on: a block reads kc rows, too many
      // streams for the hardware prefetchers when x comes from memory (1x1 layers).
      for (int64_t f = (b - a) * g.sW; f < 2 * (b - a) * g.sW; f += 16) __builtin_prefetch(src + f);
    }
    q += len;
    ow += len;
    if (ow == g.Wo) {
      ow = 0;
      if (++oh == g.Ho) oh = 0, ++n;
    }
  }
}

// col2im_add (contract in im2col_pack.h) with add(row, sW, len, src): row[i * sW] += src[i], i <
// len.
template <typename AddRun>
void col2im_add_with(const Im2col& g, const float* dcol, int64_t ld, int64_t k0, int64_t kc,
                     int64_t j0, int64_t nc, float* gx, AddRun add) {
  for (int64_t kk = 0; kk < kc; ++kk) {
    const Tap t = tap(g, k0 + kk);
    float* plane = gx + (t.plane - g.x);
    const float* src = dcol + kk * ld;
    int64_t j = j0, oh = j / g.Wo, ow = j % g.Wo;
    while (j < j0 + nc) {
      const int64_t len = std::min(g.Wo - ow, j0 + nc - j);
      const int64_t ih = oh * g.sH + t.off_h;
      if (ih >= 0 && ih < g.H) {
        const int64_t a = std::max(t.ow_lo, ow), b = std::min(t.ow_hi, ow + len);
        if (a < b)
          add(plane + ih * g.W + t.off_w + a * g.sW, g.sW, b - a, src + (j - j0) + (a - ow));
      }
      j += len;
      ow += len;
      if (ow == g.Wo) ow = 0, ++oh;
    }
  }
}

// One x row into all its column-phase planes, with copy(row, sW, len, d) (which may write up to 7
// floats past d[len - 1]): split(pp, row, d, stride) fills row r of each used column phase, the
// first at d, the next stride floats on; row is null where the plane row lies outside x (zeros).
template <typename CopyRun>
struct SplitByPhase {
  CopyRun copy;
  void operator()(const PhasePlanes& pp, const float* row, float* d, int64_t stride) const {
    for (const int64_t q : pp.used_q) {
      // columns m with m sW + q inside the row
      const int64_t mv = !row || q >= pp.W ? 0 : std::min(pp.Wo, (pp.W - q + pp.sW - 1) / pp.sW);
      if (mv > 0) copy(row + q, pp.sW, mv, d);
      std::fill(d + mv, d + pp.Wo, 0.f);
      d += stride;
    }
  }
};

// build_planes (contract in phase_planes.h) with a row splitter as SplitByPhase. Its writes past a
// row's end land in the next row (written later) or the 8-float gap after a plane (zeroed at the
// end). The x rows are visited in memory order, each once for all its column phases, so the
// hardware prefetchers follow them.
template <typename Split>
void build_planes_with(const PhasePlanes& pp, int64_t c0, int64_t c1, int64_t oh0, int64_t rows,
                       float* buf, Split split) {
  const int64_t Hz = pp.Hz(rows), stride = pp.plane_stride(rows), G = pp.guard();
  const int64_t np = static_cast<int64_t>(pp.used_p.size());
  const int64_t nq = static_cast<int64_t>(pp.used_q.size());
  std::fill(buf, buf + G, 0.f);
  float* b = buf + G;
  for (int64_t c = c0; c < c1; ++c) {
    const float* xc = pp.x + c * pp.H * pp.W;
    for (int64_t r = 0; r < Hz; ++r)
      for (int64_t ip = 0; ip < np; ++ip) {
        const int64_t xr = (oh0 + pp.di_min + r) * pp.sH + pp.used_p[ip];
        split(pp, xr >= 0 && xr < pp.H ? xc + xr * pp.W : nullptr,
              b + ((c - c0) * np + ip) * nq * stride + r * pp.Wo, stride);
      }
    for (int64_t i = 0; i < np * nq; ++i) {  // the gaps: zeros, so the buffer is fully defined
      float* gap = b + ((c - c0) * np * nq + i) * stride + Hz * pp.Wo;
      std::fill(gap, gap + 8, 0.f);
    }
  }
  float* end = b + (c1 - c0) * np * nq * stride;
  std::fill(end, end + G, 0.f);
}

// The runs of the k rows k0 .. k0+kc (kc <= KC) of a planes buffer, for pack_runs: run[kk] is the
// row's B values from block column jc, shift[kk] the tap's column offset dm.
inline void plane_runs(const PhasePlanes& pp, const float* buf, int64_t c0, int64_t rows,
                       int64_t k0, int64_t kc, int64_t jc, const float** run, int64_t* shift) {
  const int64_t plane = pp.plane_stride(rows), khw = pp.kH * pp.kW;
  const int64_t nq = static_cast<int64_t>(pp.used_q.size());
  const int64_t np = static_cast<int64_t>(pp.used_p.size());
  const float* b = buf + pp.guard() + jc;
  int64_t c = k0 / khw, kh = k0 % khw / pp.kW, kw = k0 % pp.kW;
  for (int64_t kk = 0; kk < kc; ++kk) {
    const int64_t ph = (c - c0) * np + pp.prow[pp.p[kh]];
    run[kk] =
        b + (ph * nq + pp.pcol[pp.q[kw]]) * plane + (pp.di[kh] - pp.di_min) * pp.Wo + pp.dm[kw];
    shift[kk] = pp.dm[kw];
    if (++kw == pp.kW) {
      kw = 0;
      if (++kh == pp.kH) kh = 0, ++c;
    }
  }
}

// pack_col_t_planes (contract in phase_planes.h) with build(pp, c0, c1, oh0, rows, buf) and
// pack_t(ntaps, len, col0, width, run, shift, dst): for i < len, kk < NR,
//   dst[i * NR + kk] = run[kk][i] where kk < ntaps and 0 <= (col0 + i) % width + shift[kk] < width,
//   else 0 (pack_runs' rule, transposed; runs may be read up to the next NR boundary past len).
template <typename Build, typename PackT>
void pack_col_t_planes_with(const Im2col& g, PhasePlanes& pp, int64_t q0, int64_t qc, int64_t k0,
                            int64_t nc, float* buf, float* dst, Build build, PackT pack_t) {
  using gemm::NR;
  const int64_t P = g.Ho * g.Wo, khw = g.kH * g.kW;
  const int64_t c0 = k0 / khw, c1 = (k0 + nc - 1) / khw + 1;
  const float* run[gemm::KC];
  int64_t shift[gemm::KC];
  for (int64_t q = q0; q < q0 + qc;) {  // one image's run of positions at a time
    const int64_t n = q / P, j = q % P, len = std::min(P - j, q0 + qc - q);
    const int64_t oh0 = j / g.Wo, rows = (j + len - 1) / g.Wo - oh0 + 1, jc = j - oh0 * g.Wo;
    pp.x = g.x + n * g.image_stride;
    build(pp, c0, c1, oh0, rows, buf);
    plane_runs(pp, buf, c0, rows, k0, nc, jc, run, shift);
    for (int64_t s = 0; s < nc; s += NR)
      pack_t(std::min(NR, nc - s), len, jc, g.Wo, run + s, shift + s,
             dst + s / NR * qc * NR + (q - q0) * NR);
    q += len;
  }
}

// One run of a B block's columns inside one output row: output columns ow .. ow+len of row oh,
// block columns at .. at+len.
struct Segment {
  int64_t at, oh, ow, len;
};

// pack_im2col (contract in im2col_pack.h) with copy(row, sW, len, d): d[i] = row[i * sW], i < len;
// copy may also write up to 7 floats past d[len - 1]: runs are written in increasing order (what
// one run writes past its end, the next one overwrites), the row buffer has 8 floats of slack
// and a panel row's tail run ends inside its NR slot, whose rest is zeroed after it.
// Each k row of the block is gathered whole into a row buffer (one contiguous copy per output-row
// run, the padding as zeros), then cut into its NR-lane panel rows: per element that is two
// vectorised copies, where gathering straight into the panels paid a run's bookkeeping for every
// 16 or fewer floats.
template <typename CopyRun>
void pack_im2col_rows(const Im2col& g, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst,
                      CopyRun copy) {
  using gemm::NR;
  if (is_plain(g)) {
    gemm::pack_b_rows(g.x, g.W, k0, kc, j0, nc, dst);  // 1x1 stride 1: col is x itself
    return;
  }
  // The segments depend only on the columns, so they are found once for every k row; a block
  // (nc <= NC) has at most nc / Wo + 2 of them.
  constexpr int64_t kMaxSegments = gemm::NC + 2;
  Segment segs[kMaxSegments];
  int64_t ns = 0;
  for (int64_t j = j0, oh = j / g.Wo, ow = j % g.Wo; j < j0 + nc && ns < kMaxSegments;) {
    const int64_t len = std::min(g.Wo - ow, j0 + nc - j);
    segs[ns++] = {j - j0, oh, ow, len};
    j += len, ow = 0, ++oh;
  }
  alignas(64) float row[gemm::NC + 8];
  const int64_t full = nc / NR, tail = nc % NR;
  for (int64_t kk = 0; kk < kc; ++kk) {
    const Tap t = tap(g, k0 + kk);
    for (int64_t i = 0; i < ns; ++i) {
      const Segment& sg = segs[i];
      float* d = row + sg.at;
      const int64_t ih = sg.oh * g.sH + t.off_h;
      if (ih < 0 || ih >= g.H) {
        zero_run(d, sg.len);
        continue;
      }
      const float* src = t.plane + ih * g.W + t.off_w;
      const int64_t a = std::clamp(t.ow_lo - sg.ow, int64_t{0}, sg.len);
      const int64_t b = std::clamp(t.ow_hi - sg.ow, a, sg.len);
      zero_run(d, a);
      copy(src + (sg.ow + a) * g.sW, g.sW, b - a, d + a);
      zero_run(d + b, sg.len - b);
    }
    float* dk = dst + kk * NR;
    for (int64_t s = 0; s < full; ++s) copy(row + s * NR, 1, NR, dk + s * kc * NR);
    if (tail) {
      float* dt = dk + full * kc * NR;
      copy(row + full * NR, 1, tail, dt);
      zero_run(dt + tail, NR - tail);
    }
  }
}

}  // namespace
}  // namespace convkit::kernels::pack
