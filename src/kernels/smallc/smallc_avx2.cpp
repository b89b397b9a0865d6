// AVX2+FMA kernels of the small-channel direct convolution (contracts in smallc.h).
#include <immintrin.h>

#include <utility>

#include "kernels/evens_avx2.h"
#include "kernels/lanes_avx2.h"
#include "kernels/smallc/smallc.h"

namespace convkit::kernels::smallc {

namespace {

// f(integral_constant<int, 0>) ... f(integral_constant<int, N - 1>) in order. Register blocks index
// their accumulator arrays with these constants: GCC keeps such arrays in registers, whereas plain
// loops over them (even fully unrolled) left every accumulator stored to the stack once per tap.
template <int N, typename F>
inline __attribute__((always_inline)) void unroll(F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) {
    (f(std::integral_constant<int, I>{}), ...);
  }
  (std::make_integer_sequence<int, N>{});
}

// ---- forward-style rows -----------------------------------------------------------------------

// Where a row's taps read: each(src, w, f) calls f(input run, its C weights) for every tap in
// order. Any taps: one offset per tap (a load and an add per tap).
struct ListedTaps {
  int64_t ntaps;
  const int64_t* off;
  template <int C, typename F>
  inline __attribute__((always_inline)) void each(const float* src, const float* w, F&& f) const {
    for (int64_t t = 0; t < ntaps; ++t) f(src + off[t], w + t * C);
  }
};
// Taps in rows of KW (stride SW, no dilation): one offset per row, the KW taps at constant
// displacements from it (phase kw % SW, column kw / SW) — no per-tap bookkeeping in the loop.
template <int KW, int SW>
struct RowTaps {
  int64_t nrows;
  const int64_t* roff;
  int64_t wq;
  template <int C, typename F>
  inline __attribute__((always_inline)) void each(const float* src, const float* w, F&& f) const {
    for (int64_t i = 0; i < nrows; ++i) {
      const float* p0 = src + roff[i];
      const float* p1 = p0 + (SW > 1 ? wq : 0);
      const float* wr = w + i * KW * C;
      unroll<KW>([&](auto kw) { f((kw % SW == 0 ? p0 : p1) + kw / SW, wr + kw * C); });
    }
  }
};

// Columns [j0, j0 + 8V) of one output row for C channels: C x V accumulators, every input vector
// loaded once per tap and used by all C channels (broadcast weights).
template <int C, int V, typename Taps>
inline void row_block(int64_t j0, int64_t wo, const Taps& taps, const float* in, const float* w,
                      const float* bias, float* y, int64_t y_cs) {
  __m256 acc[C][V];
  unroll<C>([&](auto o) {
    const __m256 b = bias ? _mm256_broadcast_ss(bias + o) : _mm256_setzero_ps();
    unroll<V>([&](auto v) { acc[o][v] = b; });
    // The block's output lines, fetched while the taps run rather than when the stores need them
    // (a large output is written once: its lines are not in cache).
    _mm_prefetch(reinterpret_cast<const char*>(y + o * y_cs + j0), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(y + o * y_cs + j0 + 8 * V - 1), _MM_HINT_T0);
  });
  taps.template each<C>(in + j0, w, [&](const float* s, const float* wt) {
    if constexpr (C < V) {  // C weights live, input vectors streamed (3 x 4: 12 + 3 + 1 ymm)
      __m256 wv[C];
      unroll<C>([&](auto o) { wv[o] = _mm256_broadcast_ss(wt + o); });
      unroll<V>([&](auto v) {
        const __m256 xv = _mm256_loadu_ps(s + 8 * v);
        unroll<C>([&](auto o) { acc[o][v] = _mm256_fmadd_ps(wv[o], xv, acc[o][v]); });
      });
    } else {  // V input vectors live, weights streamed (6 x 2: 12 + 2 + 1 ymm)
      __m256 xv[V];
      unroll<V>([&](auto v) { xv[v] = _mm256_loadu_ps(s + 8 * v); });
      unroll<C>([&](auto o) {
        const __m256 wv = _mm256_broadcast_ss(wt + o);
        unroll<V>([&](auto v) { acc[o][v] = _mm256_fmadd_ps(wv, xv[v], acc[o][v]); });
      });
    }
  });
  unroll<V>([&](auto v) {
    const int64_t j = j0 + 8 * v;
    if (j + 8 <= wo) {
      unroll<C>([&](auto o) { _mm256_storeu_ps(y + o * y_cs + j, acc[o][v]); });
    } else {
      const __m256i m = first_lanes(wo - j);
      unroll<C>([&](auto o) { _mm256_maskstore_ps(y + o * y_cs + j, m, acc[o][v]); });
    }
  });
}

template <int C, typename Taps>
void row(int64_t wo, const Taps& taps, const float* in, const float* w, const float* bias, float* y,
         int64_t y_cs) {
  // About 12 accumulators: 6 x 2, 4 x 3, 3 x 4, 2 x 4, 1 x 4.
  constexpr int V = C >= 5 ? 2 : C == 4 ? 3 : 4;
  const int64_t nv = (wo + 7) / 8;
  int64_t v = 0;
  for (; v + V <= nv; v += V) row_block<C, V>(8 * v, wo, taps, in, w, bias, y, y_cs);
  const int64_t rest = nv - v;  // < V
  if constexpr (V > 3)
    if (rest == 3) return row_block<C, 3>(8 * v, wo, taps, in, w, bias, y, y_cs);
  if constexpr (V > 2)
    if (rest == 2) return row_block<C, 2>(8 * v, wo, taps, in, w, bias, y, y_cs);
  if (rest == 1) row_block<C, 1>(8 * v, wo, taps, in, w, bias, y, y_cs);
}

template <typename Taps>
void rows_any_c(int64_t wo, const Taps& taps, const float* in, const float* w, const float* bias,
                int64_t nc, float* y, int64_t y_cs) {
  switch (nc) {
    case 1:
      return row<1>(wo, taps, in, w, bias, y, y_cs);
    case 2:
      return row<2>(wo, taps, in, w, bias, y, y_cs);
    case 3:
      return row<3>(wo, taps, in, w, bias, y, y_cs);
    case 4:
      return row<4>(wo, taps, in, w, bias, y, y_cs);
    case 5:
      return row<5>(wo, taps, in, w, bias, y, y_cs);
    default:
      return row<6>(wo, taps, in, w, bias, y, y_cs);
  }
}

template <int KW, int SW>
void rows_k(int64_t wo, int64_t nrows, const float* in, const int64_t* roff, int64_t wq,
            const float* w, const float* bias, int64_t nc, float* y, int64_t y_cs) {
  rows_any_c(wo, RowTaps<KW, SW>{nrows, roff, wq}, in, w, bias, nc, y, y_cs);
}

// ---- backward-weight --------------------------------------------------------------------------

// C output channels x T taps of accumulators (3 x 4 = 12 ymm, plus C gy vectors and one input).
template <int C, int T>
void gw_block(int64_t wo, int64_t nrows, const float* gy, int64_t gy_cs, const float* in,
              int64_t in_rs, const int64_t* off, int64_t ntaps, float* acc) {
  __m256 a[C][T];
  unroll<C>([&](auto o) { unroll<T>([&](auto t) { a[o][t] = _mm256_setzero_ps(); }); });
  const int64_t full = wo & ~int64_t{7};
  const __m256i tail = first_lanes(wo - full == 0 ? 8 : wo - full);
  for (int64_t r = 0; r < nrows; ++r) {
    const float* g = gy + r * wo;
    const float* xs[T];
    unroll<T>([&](auto t) { xs[t] = in + r * in_rs + off[t]; });
    auto step = [&](int64_t j, const __m256(&gv)[C]) {
      unroll<T>([&](auto t) {
        const __m256 xv = _mm256_loadu_ps(xs[t] + j);
        unroll<C>([&](auto o) { a[o][t] = _mm256_fmadd_ps(gv[o], xv, a[o][t]); });
      });
    };
    for (int64_t j = 0; j < full; j += 8) {
      __m256 gv[C];
      unroll<C>([&](auto o) { gv[o] = _mm256_loadu_ps(g + o * gy_cs + j); });
      step(j, gv);
    }
    if (full < wo) {
      __m256 gv[C];
      unroll<C>([&](auto o) { gv[o] = _mm256_maskload_ps(g + o * gy_cs + full, tail); });
      step(full, gv);
    }
  }
  unroll<C>([&](auto o) {
    unroll<T>([&](auto t) {
      float* p = acc + (o * ntaps + t) * 8;
      _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), a[o][t]));
    });
  });
}

using GwFn = void (*)(int64_t, int64_t, const float*, int64_t, const float*, int64_t,
                      const int64_t*, int64_t, float*);
constexpr int kGwC = 3, kGwT = 4;
constexpr GwFn kGw[kGwC][kGwT] = {
    {gw_block<1, 1>, gw_block<1, 2>, gw_block<1, 3>, gw_block<1, 4>},
    {gw_block<2, 1>, gw_block<2, 2>, gw_block<2, 3>, gw_block<2, 4>},
    {gw_block<3, 1>, gw_block<3, 2>, gw_block<3, 3>, gw_block<3, 4>},
};

}  // namespace

void f32_gather_stride2__avx2(int64_t n, const float* s, float* d) {
  for (int64_t j = copy_evens_blocks(s, n, d); j < n; ++j) d[j] = s[2 * j];
}

void f32_conv2d_smallc_row__avx2_fma(int64_t wo, int64_t ntaps, const float* in, const int64_t* off,
                                     const float* w, const float* bias, int64_t nc, float* y,
                                     int64_t y_cs) {
  rows_any_c(wo, ListedTaps{ntaps, off}, in, w, bias, nc, y, y_cs);
}

void f32_conv2d_smallc_rowk__avx2_fma(int64_t kw, int64_t sw, int64_t wo, int64_t nrows,
                                      const float* in, const int64_t* roff, int64_t wq,
                                      const float* w, const float* bias, int64_t nc, float* y,
                                      int64_t y_cs) {
  using Fn = void (*)(int64_t, int64_t, const float*, const int64_t*, int64_t, const float*,
                      const float*, int64_t, float*, int64_t);
  // [kw / 2 - 1][sw - 1] for kw = 3, 5, 7 and sw = 1, 2 (smallc.h: has_rowk).
  constexpr Fn kRows[3][2] = {
      {rows_k<3, 1>, rows_k<3, 2>}, {rows_k<5, 1>, rows_k<5, 2>}, {rows_k<7, 1>, rows_k<7, 2>}};
  kRows[kw / 2 - 1][sw - 1](wo, nrows, in, roff, wq, w, bias, nc, y, y_cs);
}

void f32_conv2d_smallc_gw__avx2_fma(int64_t wo, int64_t nrows, const float* gy, int64_t gy_cs,
                                    const float* in, int64_t in_rs, const int64_t* off,
                                    int64_t ntaps, int64_t nc, float* acc) {
  for (int64_t o = 0; o < nc; o += kGwC) {
    const int64_t c = nc - o < kGwC ? nc - o : kGwC;
    for (int64_t t = 0; t < ntaps; t += kGwT) {
      const int64_t k = ntaps - t < kGwT ? ntaps - t : kGwT;
      kGw[c - 1][k - 1](wo, nrows, gy + o * gy_cs, gy_cs, in, in_rs, off + t, ntaps,
                        acc + (o * ntaps + t) * 8);
    }
  }
}

}  // namespace convkit::kernels::smallc
