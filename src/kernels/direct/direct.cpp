#include "kernels/direct/direct.h"

#include <algorithm>

namespace convkit::kernels::direct {

void fwd(const ConvParams& p, const float* x, const float* w, const float* b, float* y) {
  const int64_t Cg = p.Cg(), Og = p.Og();
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t o = 0; o < p.O; ++o) {
      const int64_t g = o / Og;
      float* yo = y + (n * p.O + o) * p.Ho * p.Wo;  // (Ho, Wo)
      std::fill(yo, yo + p.Ho * p.Wo, b ? b[o] : 0.f);
      for (int64_t c = 0; c < Cg; ++c) {
        const float* xc = x + (n * p.C + g * Cg + c) * p.H * p.W;  // (H, W)
        const float* wc = w + (o * Cg + c) * p.kH * p.kW;          // (kH, kW)
        for (int64_t kh = 0; kh < p.kH; ++kh) {
          int64_t oh0, oh1;
          valid_range(kh * p.dH - p.pad_t, p.sH, p.H, p.Ho, oh0, oh1);
          for (int64_t kw = 0; kw < p.kW; ++kw) {
            const float wv = wc[kh * p.kW + kw];
            const int64_t off = kw * p.dW - p.pad_l;
            int64_t ow0, ow1;
            valid_range(off, p.sW, p.W, p.Wo, ow0, ow1);
            for (int64_t oh = oh0; oh < oh1; ++oh) {
              const float* xr = xc + (oh * p.sH + kh * p.dH - p.pad_t) * p.W + off;
              float* yr = yo + oh * p.Wo;
              if (p.sW == 1)
                for (int64_t ow = ow0; ow < ow1; ++ow) yr[ow] += wv * xr[ow];
              else
                for (int64_t ow = ow0; ow < ow1; ++ow) yr[ow] += wv * xr[ow * p.sW];
            }
          }
        }
      }
    }
}

void bwd_data(const ConvParams& p, const float* gy, const float* w, float* gx) {
  const int64_t Cg = p.Cg(), Og = p.Og();
  std::fill(gx, gx + p.N * p.C * p.H * p.W, 0.f);
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t ci = 0; ci < p.C; ++ci) {
      const int64_t g = ci / Cg, c = ci % Cg;
      float* gxc = gx + (n * p.C + ci) * p.H * p.W;
      for (int64_t o = g * Og; o < (g + 1) * Og; ++o) {
        const float* go = gy + (n * p.O + o) * p.Ho * p.Wo;
        const float* wc = w + (o * Cg + c) * p.kH * p.kW;
        for (int64_t kh = 0; kh < p.kH; ++kh) {
          int64_t oh0, oh1;
          valid_range(kh * p.dH - p.pad_t, p.sH, p.H, p.Ho, oh0, oh1);
          for (int64_t kw = 0; kw < p.kW; ++kw) {
            const float wv = wc[kh * p.kW + kw];
            const int64_t off = kw * p.dW - p.pad_l;
            int64_t ow0, ow1;
            valid_range(off, p.sW, p.W, p.Wo, ow0, ow1);
            for (int64_t oh = oh0; oh < oh1; ++oh) {
              float* xr = gxc + (oh * p.sH + kh * p.dH - p.pad_t) * p.W + off;
              const float* gr = go + oh * p.Wo;
              for (int64_t ow = ow0; ow < ow1; ++ow) xr[ow * p.sW] += wv * gr[ow];
            }
          }
        }
      }
    }
}

void bwd_weight(const ConvParams& p, const float* gy, const float* x, float* gw, float* gb) {
  const int64_t Cg = p.Cg(), Og = p.Og();
  if (gb)
    for (int64_t o = 0; o < p.O; ++o) {
      float acc = 0.f;
      for (int64_t n = 0; n < p.N; ++n) {
        const float* go = gy + (n * p.O + o) * p.Ho * p.Wo;
        for (int64_t i = 0; i < p.Ho * p.Wo; ++i) acc += go[i];
      }
      gb[o] = acc;
    }
  if (!gw) return;
  for (int64_t o = 0; o < p.O; ++o) {
    const int64_t g = o / Og;
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t kh = 0; kh < p.kH; ++kh) {
        int64_t oh0, oh1;
        valid_range(kh * p.dH - p.pad_t, p.sH, p.H, p.Ho, oh0, oh1);
        for (int64_t kw = 0; kw < p.kW; ++kw) {
          const int64_t off = kw * p.dW - p.pad_l;
          int64_t ow0, ow1;
          valid_range(off, p.sW, p.W, p.Wo, ow0, ow1);
          float acc = 0.f;
          for (int64_t n = 0; n < p.N; ++n) {
            const float* go = gy + (n * p.O + o) * p.Ho * p.Wo;
            const float* xc = x + (n * p.C + g * Cg + c) * p.H * p.W;
            for (int64_t oh = oh0; oh < oh1; ++oh) {
              const float* xr = xc + (oh * p.sH + kh * p.dH - p.pad_t) * p.W + off;
              const float* gr = go + oh * p.Wo;
              for (int64_t ow = ow0; ow < ow1; ++ow) acc += gr[ow] * xr[ow * p.sW];
            }
          }
          gw[((o * Cg + c) * p.kH + kh) * p.kW + kw] = acc;
        }
      }
  }
}

}  // namespace convkit::kernels::direct
