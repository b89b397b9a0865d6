// AVX2+FMA row primitives of the direct kernels (contracts in rows.h).
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/direct/direct.h"
#include "kernels/direct/rows.h"
#include "kernels/lanes_avx2.h"

namespace convkit::kernels::direct {

namespace {

void axpy(int64_t n, float a, const float* x, int64_t sx, float* y) {
  int64_t i = 0;
  if (sx == 1) {
    const __m256 va = _mm256_set1_ps(a);
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  } else if (sx == 2) {
    const __m256 va = _mm256_set1_ps(a);
    for (; i + 8 <= n; i += 8) {
      // Even elements x[2i], ..., x[2i+14] without reading past the last one: lo = x[2i .. 2i+8),
      // hi = x[2i+7 .. 2i+15); per 128-bit lane take lo[0], lo[2], hi[1], hi[3] (offsets
      // {0,2,8,10 | 4,6,12,14}), then swap the middle 64-bit pairs. (Loading x[2i+8 .. 2i+16)
      // read one float past the row, past the tensor at its very end: ASan caught it.)
      const __m256 lo = _mm256_loadu_ps(x + 2 * i), hi = _mm256_loadu_ps(x + 2 * i + 7);
      const __m256 ev = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 2, 0));
      const __m256 xv = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xD8));
      _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, xv, _mm256_loadu_ps(y + i)));
    }
  }
  for (; i < n; ++i) y[i] = std::fma(a, x[i * sx], y[i]);
}

void axpy_scatter(int64_t n, float a, const float* x, float* y, int64_t sy) {
  int64_t i = 0;
  if (sy == 1) {
    const __m256 va = _mm256_set1_ps(a);
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i * sy] = std::fma(a, x[i], y[i * sy]);
}

float dot(int64_t n, const float* g, const float* x, int64_t sx) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  if (sx == 1)
    for (; i + 8 <= n; i += 8)
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(g + i), _mm256_loadu_ps(x + i), acc);
  alignas(32) float lane[8];
  _mm256_store_ps(lane, acc);
  for (int64_t j = 0; i < n; ++i, ++j) lane[j & 7] = std::fma(g[i], x[i * sx], lane[j & 7]);
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

void taps(int64_t n, int ntaps, const float* const* src, const int64_t* lo, const int64_t* hi,
          const float* w, float* y) {
  int64_t L = 0, H = n;  // outputs every tap reads inside its row
  for (int t = 0; t < ntaps; ++t) L = std::max(L, lo[t]), H = std::min(H, hi[t]);
  auto scalar = [&](int64_t i) {
    float acc = y[i];
    for (int t = 0; t < ntaps; ++t)
      if (i >= lo[t] && i < hi[t]) acc = std::fma(w[t], src[t][i], acc);
    y[i] = acc;
  };
  int64_t i = 0;
  if (L >= H) {
    for (; i < n; ++i) scalar(i);
    return;
  }
  for (; i < L; ++i) scalar(i);
  auto chunk8 = [&](int64_t at) {
    __m256 a0 = _mm256_loadu_ps(y + at);
    for (int t = 0; t < ntaps; ++t)
      a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + t), _mm256_loadu_ps(src[t] + at), a0);
    return a0;
  };
  // The last 8 interior outputs are computed first, from y as it was, and stored last: the main
  // loop may overlap them and computes the same values, so no scalar tail is needed.
  const bool has_last = H - L >= 8;
  const __m256 last = has_last ? chunk8(H - 8) : _mm256_setzero_ps();
  for (; i + 16 <= H; i += 16) {
    __m256 a0 = _mm256_loadu_ps(y + i), a1 = _mm256_loadu_ps(y + i + 8);
    for (int t = 0; t < ntaps; ++t) {
      const __m256 wt = _mm256_broadcast_ss(w + t);
      a0 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(src[t] + i), a0);
      a1 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(src[t] + i + 8), a1);
    }
    _mm256_storeu_ps(y + i, a0);
    _mm256_storeu_ps(y + i + 8, a1);
  }
  for (; i + 8 <= H; i += 8) _mm256_storeu_ps(y + i, chunk8(i));
  if (has_last) {
    _mm256_storeu_ps(y + H - 8, last);
    i = H;
  }
  for (; i < n; ++i) scalar(i);
}

}  // namespace

const RowOps rows_avx2{axpy, axpy_scatter, dot, taps};

void fwd_unpadded_s1__avx2(const ConvParams& p, const float* x, const float* w, const float* b,
                           float* y) {
  const int64_t Cg = p.Cg(), Og = p.Og(), Wo = p.Wo, HW = p.H * p.W;
  const int64_t full = Wo & ~int64_t{7};
  const __m256i tail = first_lanes(Wo - full);
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t o = 0; o < p.O; ++o) {
      const float* xg = x + (n * p.C + (o / Og) * Cg) * HW;
      const float* wo = w + o * Cg * p.kH * p.kW;
      float* yo = y + (n * p.O + o) * p.Ho * Wo;
      const __m256 bias = _mm256_set1_ps(b ? b[o] : 0.f);
      for (int64_t oh = 0; oh < p.Ho; ++oh)
        for (int64_t j = 0; j < Wo; j += 8) {
          const bool part = j == full;  // the masked last vector of the row
          __m256 acc = bias;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t kh = 0; kh < p.kH; ++kh) {
              const float* xr = xg + c * HW + (oh * p.sH + kh * p.dH) * p.W + j;
              const float* wr = wo + (c * p.kH + kh) * p.kW;
              for (int64_t kw = 0; kw < p.kW; ++kw) {
                const float* xs = xr + kw * p.dW;
                const __m256 xv = part ? _mm256_maskload_ps(xs, tail) : _mm256_loadu_ps(xs);
                __m256 prod = _mm256_mul_ps(_mm256_set1_ps(wr[kw]), xv);
                // A rounded product, then a rounded sum, as the portable loop does: the empty asm
                // keeps the compiler from fusing them into an FMA (-ffp-contract).
                asm("" : "+x"(prod));
                acc = _mm256_add_ps(acc, prod);
              }
            }
          if (part)
            _mm256_maskstore_ps(yo + oh * Wo + j, tail, acc);
          else
            _mm256_storeu_ps(yo + oh * Wo + j, acc);
        }
    }
}

}  // namespace convkit::kernels::direct
