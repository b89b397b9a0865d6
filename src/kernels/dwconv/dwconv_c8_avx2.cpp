// Channel-vectorised depthwise kernels for small planes (dwconv.h: f32_dwconv_c8_*): the lanes of a
// vector are 8 channels. Their planes are transposed (8 x 8 in registers) into a zero-padded,
// pixel-major scratch, scratch[r][q][lane], r and q the padded row and column; every tap of every
// output is then one full-vector FMA with no edge masks; the outputs, computed row by row into a
// pixel-major buffer, are transposed back as they are stored. The zero border is written once a
// call, and a call runs several images. Per output the sum is bias first, then the taps in
// (kh, kw) order.
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

// Zeros where a plane of H x W placed at (top, left) does not land in a rows x cols scratch
// (dst[r][q][8]): whole rows above and below it, columns beside it. Once per call: every image's
// transpose_rows then writes the same places.
void zero_border(int64_t H, int64_t W, int64_t top, int64_t left, int64_t rows, int64_t cols,
                 float* dst) {
  for (int64_t r = 0; r < rows; ++r) {
    float* d = dst + r * cols * 8;
    if (r < top || r >= top + H) {
      std::memset(d, 0, sizeof(float) * cols * 8);
      continue;
    }
    std::memset(d, 0, sizeof(float) * std::min(left, cols) * 8);
    if (left + W < cols) std::memset(d + (left + W) * 8, 0, sizeof(float) * (cols - left - W) * 8);
  }
}

// dst[r + top][q + left][l] = src plane l (channel stride cs; H x W) at row r, column q, for the
// r, q that land inside the rows x cols scratch (samples no output reads are dropped). Per plane
// row 8 columns at a time: 8 loads (whole vectors, reaching into the next row; masked only where
// they would pass the plane's end), one 8 x 8 transpose, the row's columns stored in a run. Lanes
// l >= nch repeat lane nch - 1 (their results are never stored). With nonfinite, ORs each loaded
// vector's v - v into it (0 for finite floats, NaN otherwise; the lanes past the row are other
// samples of the same plane).
void transpose_rows(const float* src, int64_t cs, int64_t nch, int64_t H, int64_t W, int64_t top,
                    int64_t left, int64_t rows, int64_t cols, float* dst, __m256* nonfinite) {
  int64_t off[8];
  for (int64_t l = 0; l < 8; ++l) off[l] = std::min(l, nch - 1) * cs;
  const int64_t r_end = std::min(H, rows - top), q_end = std::min(W, cols - left), n = H * W;
  __m256 nf = _mm256_setzero_ps();
  for (int64_t r = 0; r < r_end; ++r) {
    float* d = dst + ((r + top) * cols + left) * 8;
    for (int64_t q0 = 0; q0 < q_end; q0 += 8) {
      const int64_t p0 = r * W + q0, m = std::min<int64_t>(8, q_end - q0);
      __m256 v[8], t[8];
      if (p0 + 8 <= n) {
#pragma GCC unroll 8
        for (int l = 0; l < 8; ++l) v[l] = _mm256_loadu_ps(src + off[l] + p0);
      } else {
        const __m256i mask = first_lanes(n - p0);
#pragma GCC unroll 8
        for (int l = 0; l < 8; ++l) v[l] = _mm256_maskload_ps(src + off[l] + p0, mask);
      }
      if (nonfinite)
#pragma GCC unroll 8
        for (int l = 0; l < 8; ++l) nf = _mm256_or_ps(nf, _mm256_sub_ps(v[l], v[l]));
      transpose8(v, t);  // t[j] = column q0 + j, lanes the channels
      // Stores one by one (a loop up to m became a rep movsq of t through the stack: 30% of the
      // transpose).
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j)
        if (j < m) _mm256_storeu_ps(d + (q0 + j) * 8, t[j]);
    }
  }
  if (nonfinite) *nonfinite = _mm256_or_ps(*nonfinite, nf);
}

// B outputs of one row into the pixel-major yt (yt[j * 8], j < B): each output's window starts
// SW columns after the previous one's (SW 0: g.sW, at run time). The B accumulators stay in
// registers with the tap's weight; the window loads are the FMAs' memory operands at offsets
// fixed for the kernel (a per-output pointer each spilled: the flat blocks this replaced ran at a
// quarter of the FMA rate).
template <int KH, int KW, int SW, int B>
inline __attribute__((always_inline)) void fwd_block(const Plane& g, const Padded& pd,
                                                     const float* s, const __m256* wt, __m256 bv,
                                                     float* yt) {
  const int64_t kH = KH ? KH : g.kH, kW = KW ? KW : g.kW;
  const int64_t step = (SW ? SW : g.sW) * 8, row = g.dH * pd.Wp * 8, col = g.dW * 8;
  __m256 acc[B];
#pragma GCC unroll 8
  for (int j = 0; j < B; ++j) acc[j] = bv;
  for (int64_t kh = 0; kh < kH; ++kh, s += row) {
    const float* sk = s;
#pragma GCC unroll 7
    for (int64_t kw = 0; kw < kW; ++kw, sk += col) {
      const __m256 wv = wt[kh * kW + kw];
#pragma GCC unroll 8
      for (int j = 0; j < B; ++j)
        acc[j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(sk + j * step), acc[j]);
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < B; ++j) _mm256_storeu_ps(yt + j * 8, acc[j]);
}

// The forward, row by row into yt (Ho Wo x 8, pixel-major), in blocks of 8 outputs and a last
// block of 4 where 4 or fewer remain. A block may run past the row's end: its extra outputs read
// the next rows (or the scratch's slack after the last) and land in the next row's places, which
// that row overwrites, or in yt's slack. Then yt goes back to the channels' planes, 8 flat
// outputs at a time, transposed.
template <int KH, int KW, int SW>
void fwd_rows(const Plane& g, const Padded& pd, const float* xt, const __m256* wt, __m256 bv,
              float* yt, int64_t nch, float* y) {
  const int64_t step = g.sW * 8, ys = g.Ho * g.Wo;
  for (int64_t oh = 0; oh < g.Ho; ++oh) {
    const float* s = xt + oh * g.sH * pd.Wp * 8;
    float* yr = yt + oh * g.Wo * 8;
    for (int64_t ow = 0; ow < g.Wo;) {
      if (g.Wo - ow > 4) {
        fwd_block<KH, KW, SW, 8>(g, pd, s + ow * step, wt, bv, yr + ow * 8);
        ow += 8;
      } else {
        fwd_block<KH, KW, SW, 4>(g, pd, s + ow * step, wt, bv, yr + ow * 8);
        ow += 4;
      }
    }
  }
  flat_blocks(ys, [&](int64_t o0, int64_t n) {
    __m256 v[8], out[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) v[j] = _mm256_loadu_ps(yt + (o0 + std::min<int64_t>(j, n - 1)) * 8);
    transpose8(v, out);  // out[l] = channel l's outputs o0 .. o0 + 7
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

// The scratch: the padded source (Hp Wp x 8) and the slack that the forward's last block reads
// past it (7 windows on), then the outputs or gy (Ho Wo x 8) and the slack of the last block's
// stores.
static int64_t c8_out_offset(const Plane& g) {
  const Padded pd = padded(g);
  return (pd.Hp * pd.Wp + 7 * g.sW) * 8;
}
int64_t c8_scratch_floats(const Plane& g) {
  return c8_out_offset(g) + (g.Ho * g.Wo + 7) * 8;
}

void f32_dwconv_c8_fwd__avx2_fma(const Plane& g, int64_t nch, int64_t N, const float* x,
                                 int64_t x_ns, const float* w, const float* bias, float* y,
                                 int64_t y_ns, float* scratch, bool rotate) {
  const Padded pd = padded(g);
  const int64_t kk = g.kH * g.kW;
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
  float* yt = scratch + c8_out_offset(g);
  zero_border(g.H, g.W, g.pad_t, g.pad_l, pd.Hp, pd.Wp, scratch);
  std::memset(scratch + pd.Hp * pd.Wp * 8, 0, sizeof(float) * 7 * g.sW * 8);  // the read slack
  using Rows = void (*)(const Plane&, const Padded&, const float*, const __m256*, __m256, float*,
                        int64_t, float*);
  const Rows rows = g.kH == 3 && g.kW == 3 && g.sW == 1   ? fwd_rows<3, 3, 1>
                    : g.kH == 3 && g.kW == 3 && g.sW == 2 ? fwd_rows<3, 3, 2>
                    : g.kH == 5 && g.kW == 5 && g.sW == 1 ? fwd_rows<5, 5, 1>
                                                          : fwd_rows<0, 0, 0>;
  for (int64_t n = 0; n < N; ++n) {
    transpose_rows(x + n * x_ns, g.H * g.W, nch, g.H, g.W, g.pad_t, g.pad_l, pd.Hp, pd.Wp, scratch,
                   nullptr);
    rows(g, pd, scratch, wt, bv, yt, nch, y + n * y_ns);
  }
}

bool f32_dwconv_c8_wgrad__avx2_fma(const Plane& g, int64_t nch, int64_t N, const float* x,
                                   int64_t x_ns, const float* gy, int64_t gy_ns, float* gw,
                                   float* gb, float* scratch) {
  const Padded pd = padded(g);
  const int64_t kk = g.kH * g.kW, ys = g.Ho * g.Wo;
  float* xt = scratch;                     // (Hp, Wp, 8)
  float* gt = scratch + c8_out_offset(g);  // (Ho, Wo, 8)
  __m256 acc[kMaxC8Taps];
  for (int64_t t = 0; t < kk; ++t) acc[t] = _mm256_setzero_ps();
  __m256 bacc = _mm256_setzero_ps(), nonfinite = _mm256_setzero_ps();
  zero_border(g.H, g.W, g.pad_t, g.pad_l, pd.Hp, pd.Wp, xt);
  for (int64_t n = 0; n < N; ++n) {
    transpose_rows(x + n * x_ns, g.H * g.W, nch, g.H, g.W, g.pad_t, g.pad_l, pd.Hp, pd.Wp, xt,
                   nullptr);
    transpose_rows(gy + n * gy_ns, ys, nch, g.Ho, g.Wo, 0, 0, g.Ho, g.Wo, gt, &nonfinite);
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
