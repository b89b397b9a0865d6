// Channel-vectorised depthwise kernels for small planes (dwconv.h: f32_dwconv_c8_*): the lanes of a
// vector are 8 channels. Their planes are transposed (8 x 8 in registers) into a zero-padded,
// pixel-major scratch, scratch[r][q][lane], r and q the padded row and column; every tap of every
// output is then one full-vector FMA with no edge masks, and the outputs are transposed back as
// they are stored. Per output the sum is bias first, then the taps in (kh, kw) order.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/dwconv/dwconv.h"
#include "kernels/lanes_avx2.h"
#include "kernels/transpose_avx2.h"

namespace convkit::kernels::dwconv {

namespace {

struct Padded {
  int64_t Hp, Wp;  // the rows and columns read, from row -pad_t and column -pad_l
};

Padded padded(const Plane& g) {
  return {(g.Ho - 1) * g.sH + (g.kH - 1) * g.dH + 1, (g.Wo - 1) * g.sW + (g.kW - 1) * g.dW + 1};
}

// Blocks of 8 consecutive elements of an n-element plane (flat, rows one after another): the
// last block moves back to end at n (its first elements are visited again) when n >= 8; a plane
// under 8 elements is one block with n elements. f(first, count).
template <typename F>
inline void flat_blocks(int64_t n, F&& f) {
  if (n < 8) {
    f(int64_t{0}, n);
    return;
  }
  for (int64_t p = 0; p < n; p += 8) f(std::min(p, n - 8), int64_t{8});
}

// dst[r][q][l] = src plane l (channel stride cs; H x W) at row r - top, column q - left, for a
// rows x cols scratch (top, left >= 0); 0 elsewhere. The planes are read 8 flat elements at a time
// (whole vectors across row ends). Lanes l >= nch repeat lane nch - 1 (their results are never
// stored). With nonfinite, ORs each loaded vector's v - v into it (0 for finite floats, NaN
// otherwise).
void transpose_in(const float* src, int64_t cs, int64_t nch, int64_t H, int64_t W, int64_t top,
                  int64_t left, int64_t rows, int64_t cols, float* dst, __m256* nonfinite) {
  // Zeros where the plane does not land: whole rows above and below it, columns beside it.
  for (int64_t r = 0; r < rows; ++r) {
    float* d = dst + r * cols * 8;
    if (r < top || r >= top + H) {
      std::memset(d, 0, sizeof(float) * cols * 8);
      continue;
    }
    std::memset(d, 0, sizeof(float) * std::min(left, cols) * 8);
    if (left + W < cols) std::memset(d + (left + W) * 8, 0, sizeof(float) * (cols - left - W) * 8);
  }
  int64_t off[8];
  for (int64_t l = 0; l < 8; ++l) off[l] = std::min(l, nch - 1) * cs;
  __m256 nf = _mm256_setzero_ps();
  flat_blocks(H * W, [&](int64_t p0, int64_t n) {
    __m256 v[8], t[8];
    if (n == 8) {
#pragma GCC unroll 8
      for (int l = 0; l < 8; ++l) v[l] = _mm256_loadu_ps(src + off[l] + p0);
    } else {
      const __m256i m = first_lanes(n);
#pragma GCC unroll 8
      for (int l = 0; l < 8; ++l) v[l] = _mm256_maskload_ps(src + off[l] + p0, m);
    }
    if (nonfinite)
#pragma GCC unroll 8
      for (int l = 0; l < 8; ++l) nf = _mm256_or_ps(nf, _mm256_sub_ps(v[l], v[l]));
    transpose8(v, t);  // t[j] = element p0 + j, lanes the channels
    int64_t r = p0 / W, q = p0 % W;
    for (int64_t j = 0; j < n; ++j) {
      if (r + top < rows && q + left < cols)  // samples no output reads are dropped
        _mm256_storeu_ps(dst + ((r + top) * cols + q + left) * 8, t[j]);
      if (++q == W) q = 0, ++r;
    }
  });
  if (nonfinite) *nonfinite = _mm256_or_ps(*nonfinite, nf);
}

// The forward over flat blocks of 8 outputs (rows one after another); KH, KW fixed (0: g's, at
// run time). Each output's taps start at its own scratch offset; the 8 outputs of all lanes are
// transposed back into 8 consecutive floats of each channel's plane.
template <int KH, int KW>
void fwd_flat(const Plane& g, const Padded& pd, const float* xt, const __m256* wt, __m256 bv,
              int64_t nch, float* y) {
  const int64_t kH = KH ? KH : g.kH, kW = KW ? KW : g.kW, ys = g.Ho * g.Wo;
  flat_blocks(ys, [&](int64_t o0, int64_t n) {
    const float* base[8];
    int64_t oh = o0 / g.Wo, ow = o0 % g.Wo;
    for (int j = 0; j < 8; ++j) {
      base[j] = xt + (oh * g.sH * pd.Wp + ow * g.sW) * 8;
      if (j + 1 < n && ++ow == g.Wo) ow = 0, ++oh;  // past n: repeat the last output
    }
    __m256 acc[8], out[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) acc[j] = bv;
    for (int64_t kh = 0; kh < kH; ++kh) {
#pragma GCC unroll 7
      for (int64_t kw = 0; kw < kW; ++kw) {
        const __m256 wv = wt[kh * kW + kw];
        const int64_t off = (kh * g.dH * pd.Wp + kw * g.dW) * 8;
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j)
          acc[j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(base[j] + off), acc[j]);
      }
    }
    transpose8(acc, out);  // out[l] = channel l's outputs o0 .. o0 + 7
    if (n == 8) {
      for (int64_t l = 0; l < nch; ++l) _mm256_storeu_ps(y + l * ys + o0, out[l]);
    } else {
      const __m256i m = first_lanes(n);
      for (int64_t l = 0; l < nch; ++l) _mm256_maskstore_ps(y + l * ys + o0, m, out[l]);
    }
  });
}

// The weight gradient's sweep over one image: acc[t] += gy * x at tap t, bacc += gy, outputs in
// order. gt is gy pixel-major (Ho Wo x 8).
template <int KH, int KW>
void wgrad_image(const Plane& g, const Padded& pd, const float* xt, const float* gt, __m256* acc,
                 __m256& bacc) {
  const int64_t kH = KH ? KH : g.kH, kW = KW ? KW : g.kW;
  constexpr int kRegs = KH * KW;  // accumulators kept in registers when fixed
  __m256 a[kRegs > 0 ? kRegs : 1];
  if constexpr (kRegs > 0)
    for (int t = 0; t < kRegs; ++t) a[t] = acc[t];
  __m256 b = bacc;
  for (int64_t oh = 0; oh < g.Ho; ++oh) {
    const float* grow = gt + oh * g.Wo * 8;
    for (int64_t ow = 0; ow < g.Wo; ++ow) {
      const __m256 gv = _mm256_loadu_ps(grow + ow * 8);
      b = _mm256_add_ps(b, gv);
      const float* s0 = xt + (oh * g.sH * pd.Wp + ow * g.sW) * 8;
      for (int64_t kh = 0; kh < kH; ++kh) {
        const float* s = s0 + kh * g.dH * pd.Wp * 8;
#pragma GCC unroll 7
        for (int64_t kw = 0; kw < kW; ++kw) {
          const __m256 xv = _mm256_loadu_ps(s + kw * g.dW * 8);
          if constexpr (kRegs > 0)
            a[kh * KW + kw] = _mm256_fmadd_ps(gv, xv, a[kh * KW + kw]);
          else
            acc[kh * kW + kw] = _mm256_fmadd_ps(gv, xv, acc[kh * kW + kw]);
        }
      }
    }
  }
  if constexpr (kRegs > 0)
    for (int t = 0; t < kRegs; ++t) acc[t] = a[t];
  bacc = b;
}

}  // namespace

int64_t c8_scratch_floats(const Plane& g) {
  const Padded pd = padded(g);
  return (pd.Hp * pd.Wp + g.Ho * g.Wo) * 8;
}

void f32_dwconv_c8_fwd__avx2_fma(const Plane& g, int64_t nch, const float* x, const float* w,
                                 const float* bias, float* y, float* scratch, bool rotate) {
  const Padded pd = padded(g);
  const int64_t kk = g.kH * g.kW;
  transpose_in(x, g.H * g.W, nch, g.H, g.W, g.pad_t, g.pad_l, pd.Hp, pd.Wp, scratch, nullptr);
  // The filters' taps and the biases, lanes the channels (lanes past nch repeat the last: their
  // outputs are not stored). Built in registers: 8 scalar stores read back as a vector stall.
  int64_t c[8];
  for (int64_t l = 0; l < 8; ++l) c[l] = std::min(l, nch - 1);
  __m256 wt[kMaxC8Taps];
  for (int64_t t = 0; t < kk; ++t) {
    const int64_t u = rotate ? kk - 1 - t : t;
    wt[t] = _mm256_setr_ps(w[c[0] * kk + u], w[c[1] * kk + u], w[c[2] * kk + u], w[c[3] * kk + u],
                           w[c[4] * kk + u], w[c[5] * kk + u], w[c[6] * kk + u], w[c[7] * kk + u]);
  }
  const __m256 bv = bias ? _mm256_setr_ps(bias[c[0]], bias[c[1]], bias[c[2]], bias[c[3]],
                                          bias[c[4]], bias[c[5]], bias[c[6]], bias[c[7]])
                         : _mm256_setzero_ps();
  if (g.kH == 3 && g.kW == 3)
    fwd_flat<3, 3>(g, pd, scratch, wt, bv, nch, y);
  else if (g.kH == 5 && g.kW == 5)
    fwd_flat<5, 5>(g, pd, scratch, wt, bv, nch, y);
  else
    fwd_flat<0, 0>(g, pd, scratch, wt, bv, nch, y);
}

bool f32_dwconv_c8_wgrad__avx2_fma(const Plane& g, int64_t nch, int64_t N, const float* x,
                                   int64_t x_ns, const float* gy, int64_t gy_ns, float* gw,
                                   float* gb, float* scratch) {
  const Padded pd = padded(g);
  const int64_t kk = g.kH * g.kW, ys = g.Ho * g.Wo;
  float* xt = scratch;                      // (Hp, Wp, 8)
  float* gt = scratch + pd.Hp * pd.Wp * 8;  // (Ho, Wo, 8)
  __m256 acc[kMaxC8Taps];
  for (int64_t t = 0; t < kk; ++t) acc[t] = _mm256_setzero_ps();
  __m256 bacc = _mm256_setzero_ps(), nonfinite = _mm256_setzero_ps();
  for (int64_t n = 0; n < N; ++n) {
    transpose_in(x + n * x_ns, g.H * g.W, nch, g.H, g.W, g.pad_t, g.pad_l, pd.Hp, pd.Wp, xt,
                 nullptr);
    transpose_in(gy + n * gy_ns, ys, nch, g.Ho, g.Wo, 0, 0, g.Ho, g.Wo, gt, &nonfinite);
    if (g.kH == 3 && g.kW == 3)
      wgrad_image<3, 3>(g, pd, xt, gt, acc, bacc);
    else
      wgrad_image<0, 0>(g, pd, xt, gt, acc, bacc);
  }
  alignas(32) float lane[8];
  for (int64_t t = 0; t < kk; ++t) {
    _mm256_store_ps(lane, acc[t]);
    for (int64_t l = 0; l < nch; ++l) gw[l * kk + t] = lane[l];
  }
  if (gb) {
    _mm256_store_ps(lane, bacc);
    for (int64_t l = 0; l < nch; ++l) gb[l] = lane[l];
  }
  return _mm256_testz_si256(_mm256_castps_si256(nonfinite), _mm256_castps_si256(nonfinite));
}

}  // namespace convkit::kernels::dwconv
