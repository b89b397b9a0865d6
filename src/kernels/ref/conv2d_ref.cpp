// Reference convolution: the plainest loops that implement every option, accumulating in double
// and rounding to float once per output element. Speed is not a goal; being obviously right is.
//
// Coordinates: output (oh, ow) with tap (kh, kw) reads the padded input at
//   ih = oh * sH - pad_t + kh * dH,   iw = ow * sW - pad_l + kw * dW   (source frame, may be < 0)
// and pad_index maps (ih, iw) to a source sample or to the padding value.
#include "kernels/ref/conv2d_ref.h"

#include "kernels/ref/pad_index.h"

namespace convkit::kernels::ref {

namespace {

// Row-major offsets into the fixed layouts of conv_params.h.
inline int64_t at4(int64_t d1, int64_t d2, int64_t d3, int64_t i0, int64_t i1, int64_t i2,
                   int64_t i3) {
  return ((i0 * d1 + i1) * d2 + i2) * d3 + i3;
}

// The output index t that a padded coordinate `padded` (source frame, offset by the leading pad
// `pad0`) receives from tap k, or -1 when no output reads it there: padded = t * s - pad0 + k * d.
inline int64_t output_for_tap(int64_t padded, int64_t pad0, int64_t k, int64_t s, int64_t d,
                              int64_t out_size) {
  const int64_t num = padded + pad0 - k * d;
  if (num < 0 || num % s != 0) return -1;
  const int64_t t = num / s;
  return t < out_size ? t : -1;
}

}  // namespace

void conv2d_fwd(const ConvParams& p, const float* x, const float* w, const float* b, float* y) {
  const int64_t Cg = p.Cg(), Og = p.Og();
  const bool constant = p.mode == PadMode::Constant;
  for (int64_t n = 0; n < p.N; ++n) {
    for (int64_t o = 0; o < p.O; ++o) {
      const int64_t c0 = (o / Og) * Cg;  // first input channel of o's group
      for (int64_t oh = 0; oh < p.Ho; ++oh) {
        for (int64_t ow = 0; ow < p.Wo; ++ow) {
          double acc = b ? double(b[o]) : 0.0;
          for (int64_t ci = 0; ci < Cg; ++ci) {
            for (int64_t kh = 0; kh < p.kH; ++kh) {
              const int64_t sh = pad_index(oh * p.sH - p.pad_t + kh * p.dH, p.H, p.mode);
              for (int64_t kw = 0; kw < p.kW; ++kw) {
                const int64_t sw = pad_index(ow * p.sW - p.pad_l + kw * p.dW, p.W, p.mode);
                const double wv = w[at4(Cg, p.kH, p.kW, o, ci, kh, kw)];
                if (sh == kPadConstant || sw == kPadConstant) {
                  // Zero padding contributes nothing (the tap is skipped, so an Inf weight over
                  // zero padding does not turn into NaN); a constant contributes value * w.
                  if (constant) acc += double(p.pad_value) * wv;
                } else {
                  acc += double(x[at4(p.C, p.H, p.W, n, c0 + ci, sh, sw)]) * wv;
                }
              }
            }
          }
          y[at4(p.O, p.Ho, p.Wo, n, o, oh, ow)] = float(acc);
        }
      }
    }
  }
}

// Gather form: each source sample (ih, iw) sums over every padded position (ph, pw) that maps to
// it — itself, plus the mirrored / wrapped / clamped slots in the padding for the non-constant
// modes — and over every (o, kh, kw) whose output reads that padded position. No scratch, one
// double accumulator per gx element.
void conv2d_bwd_data(const ConvParams& p, const float* gy, const float* w, float* gx) {
  const int64_t Cg = p.Cg(), Og = p.Og();
  const bool folds = p.mode != PadMode::Zeros && p.mode != PadMode::Constant;
  // Padded coordinates that may map onto source coordinate `i` of a dimension of size n with pads
  // (lead, trail): i itself, then (when the mode folds) every slot of both pads.
  auto for_each_padded = [&](int64_t i, int64_t n, int64_t lead, int64_t trail, auto&& body) {
    body(i);
    if (!folds) return;
    for (int64_t q = -lead; q < 0; ++q)
      if (pad_index(q, n, p.mode) == i) body(q);
    for (int64_t q = n; q < n + trail; ++q)
      if (pad_index(q, n, p.mode) == i) body(q);
  };
  for (int64_t n = 0; n < p.N; ++n) {
    for (int64_t c = 0; c < p.C; ++c) {
      const int64_t g = c / Cg, ci = c % Cg;
      for (int64_t ih = 0; ih < p.H; ++ih) {
        for (int64_t iw = 0; iw < p.W; ++iw) {
          double acc = 0.0;
          for_each_padded(ih, p.H, p.pad_t, p.pad_b, [&](int64_t ph) {
            for_each_padded(iw, p.W, p.pad_l, p.pad_r, [&](int64_t pw) {
              for (int64_t kh = 0; kh < p.kH; ++kh) {
                const int64_t oh = output_for_tap(ph, p.pad_t, kh, p.sH, p.dH, p.Ho);
                if (oh < 0) continue;
                for (int64_t kw = 0; kw < p.kW; ++kw) {
                  const int64_t ow = output_for_tap(pw, p.pad_l, kw, p.sW, p.dW, p.Wo);
                  if (ow < 0) continue;
                  for (int64_t og = 0; og < Og; ++og) {
                    const int64_t o = g * Og + og;
                    acc += double(gy[at4(p.O, p.Ho, p.Wo, n, o, oh, ow)]) *
                           double(w[at4(Cg, p.kH, p.kW, o, ci, kh, kw)]);
                  }
                }
              }
            });
          });
          gx[at4(p.C, p.H, p.W, n, c, ih, iw)] = float(acc);
        }
      }
    }
  }
}

void conv2d_bwd_weight(const ConvParams& p, const float* gy, const float* x, float* gw, float* gb) {
  const int64_t Cg = p.Cg(), Og = p.Og();
  const bool constant = p.mode == PadMode::Constant;
  if (gw) {
    for (int64_t o = 0; o < p.O; ++o) {
      const int64_t c0 = (o / Og) * Cg;
      for (int64_t ci = 0; ci < Cg; ++ci) {
        for (int64_t kh = 0; kh < p.kH; ++kh) {
          for (int64_t kw = 0; kw < p.kW; ++kw) {
            double acc = 0.0;
            for (int64_t n = 0; n < p.N; ++n) {
              for (int64_t oh = 0; oh < p.Ho; ++oh) {
                const int64_t sh = pad_index(oh * p.sH - p.pad_t + kh * p.dH, p.H, p.mode);
                for (int64_t ow = 0; ow < p.Wo; ++ow) {
                  const int64_t sw = pad_index(ow * p.sW - p.pad_l + kw * p.dW, p.W, p.mode);
                  const double g = gy[at4(p.O, p.Ho, p.Wo, n, o, oh, ow)];
                  if (sh == kPadConstant || sw == kPadConstant) {
                    if (constant) acc += g * double(p.pad_value);
                  } else {
                    acc += g * double(x[at4(p.C, p.H, p.W, n, c0 + ci, sh, sw)]);
                  }
                }
              }
            }
            gw[at4(Cg, p.kH, p.kW, o, ci, kh, kw)] = float(acc);
          }
        }
      }
    }
  }
  if (gb) {
    for (int64_t o = 0; o < p.O; ++o) {
      double acc = 0.0;
      for (int64_t n = 0; n < p.N; ++n)
        for (int64_t i = 0; i < p.Ho * p.Wo; ++i) acc += gy[(n * p.O + o) * p.Ho * p.Wo + i];
      gb[o] = float(acc);
    }
  }
}

}  // namespace convkit::kernels::ref
