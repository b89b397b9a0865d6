#include "kernels/direct/direct.h"

#include <algorithm>

namespace convkit::kernels::direct {

namespace {

void axpy(int64_t n, float a, const float* x, int64_t sx, float* y) {
  if (sx == 1)
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
  else
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i * sx];
}
void axpy_scatter(int64_t n, float a, const float* x, float* y, int64_t sy) {
  for (int64_t i = 0; i < n; ++i) y[i * sy] += a * x[i];
}
float dot(int64_t n, const float* g, const float* x, int64_t sx) {
  float lane[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  for (int64_t i = 0; i < n; ++i) lane[i & 7] += g[i] * x[i * sx];
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

void taps(int64_t n, int ntaps, const float* const* src, const int64_t* lo, const int64_t* hi,
          const float* w, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    float acc = y[i];
    for (int t = 0; t < ntaps; ++t)
      if (i >= lo[t] && i < hi[t]) acc += w[t] * src[t][i];
    y[i] = acc;
  }
}

// Taps gathered for one output row, flushed through RowOps::taps in batches of kMaxTaps.
struct TapList {
  static constexpr int kMaxTaps = 64;
  const float* src[kMaxTaps];
  int64_t lo[kMaxTaps], hi[kMaxTaps];
  float w[kMaxTaps];
  int count = 0;
  void add(const RowOps& ops, int64_t n, float* y, const float* s, int64_t l, int64_t h, float wt) {
    if (l >= h) return;
    src[count] = s, lo[count] = l, hi[count] = h, w[count] = wt;
    if (++count == kMaxTaps) flush(ops, n, y);
  }
  void flush(const RowOps& ops, int64_t n, float* y) {
    if (count) ops.taps(n, count, src, lo, hi, w, y);
    count = 0;
  }
};

}  // namespace

const RowOps rows_generic{axpy, axpy_scatter, dot, taps};

void fwd_rows(const RowOps& ops, const ConvParams& p, const float* x, const float* w,
              const float* b, float* y, int64_t n, int64_t o, int64_t oh0, int64_t oh1) {
  const int64_t Cg = p.Cg(), g = o / p.Og();
  const float* xg = x + (n * p.C + g * Cg) * p.H * p.W;  // (Cg, H, W)
  const float* wo = w + o * Cg * p.kH * p.kW;            // (Cg, kH, kW)
  float* yo = y + (n * p.O + o) * p.Ho * p.Wo;           // (Ho, Wo)
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    float* yr = yo + oh * p.Wo;
    std::fill(yr, yr + p.Wo, b ? b[o] : 0.f);
    if (p.sW == 1) {  // all taps of the row in one pass: y[ow] += w * x[ih][ow + off]
      TapList list;
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t kh = 0; kh < p.kH; ++kh) {
          const int64_t ih = oh * p.sH + kh * p.dH - p.pad_t;
          if (ih < 0 || ih >= p.H) continue;
          const float* xr = xg + (c * p.H + ih) * p.W;
          for (int64_t kw = 0; kw < p.kW; ++kw) {
            const int64_t off = kw * p.dW - p.pad_l;  // stride 1: 0 <= ow + off < W
            const int64_t lo = std::max<int64_t>(0, -off), hi = std::min(p.Wo, p.W - off);
            list.add(ops, p.Wo, yr, xr + off, lo, hi, wo[(c * p.kH + kh) * p.kW + kw]);
          }
        }
      list.flush(ops, p.Wo, yr);
      continue;
    }
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t kh = 0; kh < p.kH; ++kh) {
        const int64_t ih = oh * p.sH + kh * p.dH - p.pad_t;
        if (ih < 0 || ih >= p.H) continue;
        const float* xr = xg + (c * p.H + ih) * p.W;
        for (int64_t kw = 0; kw < p.kW; ++kw) {
          const int64_t off = kw * p.dW - p.pad_l;
          int64_t lo, hi;
          valid_range(off, p.sW, p.W, p.Wo, lo, hi);
          ops.axpy(hi - lo, wo[(c * p.kH + kh) * p.kW + kw], xr + lo * p.sW + off, p.sW, yr + lo);
        }
      }
  }
}

void bwd_data_rows(const RowOps& ops, const ConvParams& p, const float* gy, const float* w,
                   float* gx, int64_t n, int64_t ci, int64_t ih0, int64_t ih1) {
  const int64_t Cg = p.Cg(), Og = p.Og(), g = ci / Cg, c = ci % Cg;
  float* gxc = gx + (n * p.C + ci) * p.H * p.W;  // (H, W)
  std::fill(gxc + ih0 * p.W, gxc + ih1 * p.W, 0.f);
  for (int64_t ih = ih0; ih < ih1; ++ih) {
    float* xr = gxc + ih * p.W;
    if (p.sW == 1) {  // gather form, one pass: gx[iw] += w * gy[oh][iw - off]
      TapList list;
      for (int64_t o = g * Og; o < (g + 1) * Og; ++o) {
        const float* go = gy + (n * p.O + o) * p.Ho * p.Wo;
        const float* wc = w + (o * Cg + c) * p.kH * p.kW;
        for (int64_t kh = 0; kh < p.kH; ++kh) {
          const int64_t num = ih + p.pad_t - kh * p.dH;  // = oh * sH
          if (num < 0 || num % p.sH != 0 || num / p.sH >= p.Ho) continue;
          const float* gr = go + (num / p.sH) * p.Wo;
          for (int64_t kw = 0; kw < p.kW; ++kw) {
            const int64_t off = kw * p.dW - p.pad_l;
            const int64_t lo = std::max<int64_t>(0, off), hi = std::min(p.W, p.Wo + off);
            list.add(ops, p.W, xr, gr - off, lo, std::max(lo, hi), wc[kh * p.kW + kw]);
          }
        }
      }
      list.flush(ops, p.W, xr);
      continue;
    }
    for (int64_t o = g * Og; o < (g + 1) * Og; ++o) {
      const float* go = gy + (n * p.O + o) * p.Ho * p.Wo;
      const float* wc = w + (o * Cg + c) * p.kH * p.kW;
      for (int64_t kh = 0; kh < p.kH; ++kh) {
        const int64_t num = ih + p.pad_t - kh * p.dH;  // = oh * sH
        if (num < 0 || num % p.sH != 0 || num / p.sH >= p.Ho) continue;
        const float* gr = go + (num / p.sH) * p.Wo;
        for (int64_t kw = 0; kw < p.kW; ++kw) {
          const int64_t off = kw * p.dW - p.pad_l;
          int64_t lo, hi;
          valid_range(off, p.sW, p.W, p.Wo, lo, hi);
          ops.axpy_scatter(hi - lo, wc[kh * p.kW + kw], gr + lo, xr + lo * p.sW + off, p.sW);
        }
      }
    }
  }
}

void bwd_weight_rows(const RowOps& ops, const ConvParams& p, const float* gy, const float* x,
                     int64_t o, int64_t r0, int64_t r1, float* acc) {
  const int64_t Cg = p.Cg(), g = o / p.Og();
  std::fill(acc, acc + Cg * p.kH * p.kW, 0.f);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / p.Ho, oh = r % p.Ho;
    const float* gr = gy + ((n * p.O + o) * p.Ho + oh) * p.Wo;
    const float* xg = x + (n * p.C + g * Cg) * p.H * p.W;
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t kh = 0; kh < p.kH; ++kh) {
        const int64_t ih = oh * p.sH + kh * p.dH - p.pad_t;
        if (ih < 0 || ih >= p.H) continue;
        const float* xr = xg + (c * p.H + ih) * p.W;
        for (int64_t kw = 0; kw < p.kW; ++kw) {
          const int64_t off = kw * p.dW - p.pad_l;
          int64_t lo, hi;
          valid_range(off, p.sW, p.W, p.Wo, lo, hi);
          acc[(c * p.kH + kh) * p.kW + kw] += ops.dot(hi - lo, gr + lo, xr + lo * p.sW + off, p.sW);
        }
      }
  }
}

void fwd(const ConvParams& p, const float* x, const float* w, const float* b, float* y) {
  if (p.has_padding()) {
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t o = 0; o < p.O; ++o) fwd_rows(rows_generic, p, x, w, b, y, n, o, 0, p.Ho);
    return;
  }
  // Unpadded (the notebook's case): every tap is inside, so each output row is a sum of whole-row
  // multiply-adds (independent across the row: no dependency chain), no bounds checks.
  const int64_t Cg = p.Cg(), Og = p.Og(), Wo = p.Wo;
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t o = 0; o < p.O; ++o) {
      const float* xg = x + (n * p.C + (o / Og) * Cg) * p.H * p.W;
      const float* wo = w + o * Cg * p.kH * p.kW;
      float* yo = y + (n * p.O + o) * p.Ho * Wo;
      for (int64_t oh = 0; oh < p.Ho; ++oh) {
        float* __restrict yr = yo + oh * Wo;  // y never aliases x or w
        const float bo = b ? b[o] : 0.f;
        for (int64_t ow = 0; ow < Wo; ++ow) yr[ow] = bo;
        for (int64_t c = 0; c < Cg; ++c)
          for (int64_t kh = 0; kh < p.kH; ++kh) {
            const float* xr = xg + (c * p.H + oh * p.sH + kh * p.dH) * p.W;
            const float* wr = wo + (c * p.kH + kh) * p.kW;
            for (int64_t kw = 0; kw < p.kW; ++kw) {
              const float wv = wr[kw];
              const float* __restrict xs = xr + kw * p.dW;
              if (p.sW == 1)
                for (int64_t ow = 0; ow < Wo; ++ow) yr[ow] += wv * xs[ow];
              else
                for (int64_t ow = 0; ow < Wo; ++ow) yr[ow] += wv * xs[ow * p.sW];
            }
          }
      }
    }
}

void bwd_data(const ConvParams& p, const float* gy, const float* w, float* gx) {
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t ci = 0; ci < p.C; ++ci) bwd_data_rows(rows_generic, p, gy, w, gx, n, ci, 0, p.H);
}

void bwd_weight(const ConvParams& p, const float* gy, const float* x, float* gw, float* gb) {
  if (gb)
    for (int64_t o = 0; o < p.O; ++o) {
      float acc = 0.f;
      for (int64_t n = 0; n < p.N; ++n) {
        const float* go = gy + (n * p.O + o) * p.Ho * p.Wo;
        for (int64_t i = 0; i < p.Ho * p.Wo; ++i) acc += go[i];
      }
      gb[o] = acc;
    }
  if (gw)
    for (int64_t o = 0; o < p.O; ++o)
      bwd_weight_rows(rows_generic, p, gy, x, o, 0, p.N * p.Ho, gw + o * p.Cg() * p.kH * p.kW);
}

}  // namespace convkit::kernels::direct
