// AVX2+FMA kernels of the small-channel direct convolution (contracts in smallc.h).
#include <immintrin.h>

#include <algorithm>
#include <utility>

#include "kernels/evens_avx2.h"
#include "kernels/lanes_avx2.h"
#include "kernels/smallc/smallc.h"
#include "kernels/smallc/wino1d.h"

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

// ---- 1-D Winograd rows ------------------------------------------------------------------------

namespace w1 = wino1d;

// x[j] lane t = d[4 t + j] for j < 4, t < 8: 8 tiles of 4 consecutive floats, transposed.
inline __attribute__((always_inline)) void deinterleave4(const float* d, __m256* x) {
  const __m256 l0 = _mm256_loadu_ps(d), l1 = _mm256_loadu_ps(d + 8);
  const __m256 l2 = _mm256_loadu_ps(d + 16), l3 = _mm256_loadu_ps(d + 24);
  const __m256 a = _mm256_permute2f128_ps(l0, l2, 0x20), b = _mm256_permute2f128_ps(l0, l2, 0x31);
  const __m256 c = _mm256_permute2f128_ps(l1, l3, 0x20), e = _mm256_permute2f128_ps(l1, l3, 0x31);
  const __m256 ab0 = _mm256_unpacklo_ps(a, b), cd0 = _mm256_unpacklo_ps(c, e);
  const __m256 ab1 = _mm256_unpackhi_ps(a, b), cd1 = _mm256_unpackhi_ps(c, e);
  x[0] = _mm256_shuffle_ps(ab0, cd0, 0x44);
  x[1] = _mm256_shuffle_ps(ab0, cd0, 0xEE);
  x[2] = _mm256_shuffle_ps(ab1, cd1, 0x44);
  x[3] = _mm256_shuffle_ps(ab1, cd1, 0xEE);
}

// sum_j c[j] x[j] for the compile-time row c (zero entries skipped, 1 and -1 as adds), in j order.
template <int N, typename Row>
inline __attribute__((always_inline)) __m256 combine(const __m256* x) {
  __m256 s = _mm256_setzero_ps();
  unroll<N>([&](auto j) {
    constexpr float c = static_cast<float>(Row::at(j));
    if constexpr (c == 1.f)
      s = _mm256_add_ps(s, x[j]);
    else if constexpr (c == -1.f)
      s = _mm256_sub_ps(s, x[j]);
    else if constexpr (c != 0.f)
      s = _mm256_fmadd_ps(_mm256_set1_ps(c), x[j], s);
  });
  return s;
}
// The matrices' rows as compile-time rows for combine: Bt<R>::Row<e> is BT's row e, At<R>::Row<i>
// AT's row i, AtT<R>::Row<e> AT's column e.
template <int R>
struct Bt {
  template <int E>
  struct Row {
    static constexpr double at(int j) { return w1::Mat<R>::BT[E][j]; }
  };
};
template <int R>
struct At {
  template <int I>
  struct Row {
    static constexpr double at(int e) { return w1::Mat<R>::AT[I][e]; }
  };
};
template <int R>
struct AtT {
  template <int E>
  struct Row {
    static constexpr double at(int i) { return w1::Mat<R>::AT[i][E]; }
  };
};

// v[e * es, + 8) = combine<N, Row<e>>(x) for e < E: a transform of 8 tiles. nonfinite: a lane
// turns NaN once some value stored from it is Inf or NaN (value * 0).
template <int E, int N, template <int> class Row>
inline __attribute__((always_inline)) void store_rows(const __m256* x, float* v, int64_t es,
                                                      __m256& nonfinite) {
  unroll<E>([&](auto e) {
    const __m256 s = combine<N, Row<e>>(x);
    _mm256_storeu_ps(v + e * es, s);
    nonfinite = _mm256_or_ps(nonfinite, _mm256_mul_ps(s, _mm256_setzero_ps()));
  });
}
inline bool all_finite(__m256 nonfinite) {
  return _mm256_movemask_ps(_mm256_cmp_ps(nonfinite, nonfinite, _CMP_UNORD_Q)) == 0;
}

template <int R>
bool input_rows(int64_t tiles, const float* d, float* v, int64_t es) {
  constexpr int A = w1::Mat<R>::A;
  __m256 nonfinite = _mm256_setzero_ps();
  for (int64_t t = 0; t < tiles; t += 8) {
    __m256 x[8];
    deinterleave4(d + 4 * t, x);
    deinterleave4(d + 4 * t + 4, x + 4);
    store_rows<A, A, Bt<R>::template Row>(x, v + t, es, nonfinite);
  }
  return all_finite(nonfinite);
}

// m[o * 16 + l] = sum over k < K, in order, of u[k * ld + o] * v[koff[k] + l], o < C, l < 16.
template <int C>
void products(int64_t K, const float* v, const int64_t* koff, const float* u, int64_t ld,
              float* m) {
  __m256 acc[C][2];
  unroll<C>([&](auto o) { acc[o][0] = acc[o][1] = _mm256_setzero_ps(); });
#pragma GCC unroll 4
  for (int64_t k = 0; k < K; ++k) {
    const float* p = v + koff[k];
    const __m256 x0 = _mm256_loadu_ps(p), x1 = _mm256_loadu_ps(p + 8);
    unroll<C>([&](auto o) {
      const __m256 w = _mm256_broadcast_ss(u + k * ld + o);
      acc[o][0] = _mm256_fmadd_ps(w, x0, acc[o][0]);
      acc[o][1] = _mm256_fmadd_ps(w, x1, acc[o][1]);
    });
  }
  unroll<C>([&](auto o) {
    _mm256_store_ps(m + o * 16, acc[o][0]);
    _mm256_store_ps(m + o * 16 + 8, acc[o][1]);
  });
}
using ProductsFn = void (*)(int64_t, const float*, const int64_t*, const float*, int64_t, float*);
constexpr ProductsFn kProducts[kMaxRowChannels] = {products<1>, products<2>, products<3>,
                                                   products<4>, products<5>, products<6>};

// y tiles of every channel o < cout from m[(e * cout + o) * 16 + l] (see f32_wino1d_tiles).
// off[l], n[l]: where tile l's outputs go (offset from y) and how many of its 4 columns exist.
template <int R>
void outputs(int64_t cout, const float* m, const float* bias, const int64_t* off, const int* n,
             float* y, int64_t y_cs) {
  constexpr int A = w1::Mat<R>::A;
  for (int64_t o = 0; o < cout; ++o) {
    const __m256 b = bias ? _mm256_broadcast_ss(bias + o) : _mm256_setzero_ps();
    float* yo = y + o * y_cs;
    for (int h = 0; h < 2; ++h) {
      __m256 mv[A];
      unroll<A>([&](auto e) { mv[e] = _mm256_load_ps(m + (e * cout + o) * 16 + 8 * h); });
      __m256 t[4];
      unroll<4>([&](auto i) {
        t[i] = _mm256_add_ps(combine<A, typename At<R>::template Row<i>>(mv), b);
      });
      // Lanes are tiles: transpose to tiles of 4 outputs, s[l] = [tile l | tile l + 4].
      const __m256 a0 = _mm256_unpacklo_ps(t[0], t[1]), a1 = _mm256_unpackhi_ps(t[0], t[1]);
      const __m256 c0 = _mm256_unpacklo_ps(t[2], t[3]), c1 = _mm256_unpackhi_ps(t[2], t[3]);
      const __m256 s[4] = {_mm256_shuffle_ps(a0, c0, 0x44), _mm256_shuffle_ps(a0, c0, 0xEE),
                           _mm256_shuffle_ps(a1, c1, 0x44), _mm256_shuffle_ps(a1, c1, 0xEE)};
      const int64_t* ho = off + 8 * h;
      const int* hn = n + 8 * h;
      if (hn[7] == 4 && ho[7] == ho[0] + 28) {  // 8 whole tiles in one row: 32 floats
        float* d = yo + ho[0];
        _mm256_storeu_ps(d, _mm256_permute2f128_ps(s[0], s[1], 0x20));
        _mm256_storeu_ps(d + 8, _mm256_permute2f128_ps(s[2], s[3], 0x20));
        _mm256_storeu_ps(d + 16, _mm256_permute2f128_ps(s[0], s[1], 0x31));
        _mm256_storeu_ps(d + 24, _mm256_permute2f128_ps(s[2], s[3], 0x31));
        continue;
      }
      for (int l = 0; l < 8; ++l) {
        if (hn[l] == 0) continue;
        const __m128 tile =
            l < 4 ? _mm256_castps256_ps128(s[l]) : _mm256_extractf128_ps(s[l - 4], 1);
        if (hn[l] == 4)
          _mm_storeu_ps(yo + ho[l], tile);
        else
          _mm_maskstore_ps(yo + ho[l], _mm256_castsi256_si128(first_lanes(hn[l])), tile);
      }
    }
  }
}

// ---- 1-D Winograd rows: weight gradient -----------------------------------------------------

template <int R>
bool grad_output_row(int64_t wo, const float* gy, float* g, int64_t es) {
  constexpr int A = w1::Mat<R>::A;
  const int64_t tiles = (wo + 31) / 32 * 8;  // 8-tile groups of 32 outputs
  __m256 nonfinite = _mm256_setzero_ps();
  alignas(32) float tail[32];
  for (int64_t t = 0; t < tiles; t += 8) {
    const float* src = gy + 4 * t;
    if (4 * t + 32 > wo) {  // the row's end: the outputs past wo read as 0
      for (int64_t i = 0; i < 32; ++i) tail[i] = 4 * t + i < wo ? src[i] : 0.f;
      src = tail;
    }
    __m256 x[4];
    deinterleave4(src, x);
    store_rows<A, 4, AtT<R>::template Row>(x, g + t, es, nonfinite);
  }
  return all_finite(nonfinite);
}

// C output channels x KB (1 or 2) rows of the sum: s[o * K + k] += the lanes of the sum over q
// vectors of g[o * gs + q] * v[koff[k] + q], added as ((l0 + l1) + (l4 + l5)) + ((l2 + l3) +
// (l6 + l7)).
template <int C, int KB>
void gw_tiles_block(int64_t K, int64_t nq, const float* g, int64_t gs, const float* v,
                    const int64_t* koff, float* s) {
  __m256 acc[C][2];
  unroll<C>([&](auto o) { acc[o][0] = acc[o][1] = _mm256_setzero_ps(); });
  const float* vk[KB];
  unroll<KB>([&](auto k) { vk[k] = v + koff[k]; });
#pragma GCC unroll 4
  for (int64_t q = 0; q < 8 * nq; q += 8) {
    __m256 xv[KB];
    unroll<KB>([&](auto k) { xv[k] = _mm256_loadu_ps(vk[k] + q); });
    unroll<C>([&](auto o) {
      __m256 gv = _mm256_loadu_ps(g + o * gs + q);
      asm("" : "+x"(gv));  // one load for both rows (folded into each FMA, it was loaded twice)
      unroll<KB>([&](auto k) { acc[o][k] = _mm256_fmadd_ps(gv, xv[k], acc[o][k]); });
    });
  }
  unroll<C>([&](auto o) {
    // [a0+a1, a2+a3, b0+b1, b2+b3 | a4+a5, a6+a7, b4+b5, b6+b7] -> [a, b, a, b] (pairs of lanes)
    const __m256 h = _mm256_hadd_ps(acc[o][0], acc[o][1]);
    const __m128 q4 = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    const __m128 sums = _mm_hadd_ps(q4, q4);
    if constexpr (KB == 2) {  // two adjacent floats (8 bytes, any alignment: the _epi64 forms)
      __m128i* d = reinterpret_cast<__m128i*>(s + o * K);
      const __m128 old = _mm_castsi128_ps(_mm_loadl_epi64(d));
      _mm_storel_epi64(d, _mm_castps_si128(_mm_add_ps(old, sums)));
    } else {
      s[o * K] += _mm_cvtss_f32(sums);
    }
  });
}
using GwTilesFn = void (*)(int64_t, int64_t, const float*, int64_t, const float*, const int64_t*,
                           float*);
constexpr GwTilesFn kGwTiles[kMaxRowChannels][2] = {
    {gw_tiles_block<1, 1>, gw_tiles_block<1, 2>}, {gw_tiles_block<2, 1>, gw_tiles_block<2, 2>},
    {gw_tiles_block<3, 1>, gw_tiles_block<3, 2>}, {gw_tiles_block<4, 1>, gw_tiles_block<4, 2>},
    {gw_tiles_block<5, 1>, gw_tiles_block<5, 2>}, {gw_tiles_block<6, 1>, gw_tiles_block<6, 2>}};

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

bool f32_wino1d_input__avx2_fma(int64_t r, int64_t tiles, const float* d, float* v, int64_t es) {
  return r == 2   ? input_rows<2>(tiles, d, v, es)
         : r == 3 ? input_rows<3>(tiles, d, v, es)
                  : input_rows<4>(tiles, d, v, es);
}

void f32_wino1d_tiles__avx2_fma(int64_t r, int64_t K, const float* v, const int64_t* koff,
                                int64_t es, const float* u, const float* bias, int64_t cout,
                                int64_t q0, int64_t q_end, int64_t tw, int64_t wo, float* y,
                                int64_t y_cs, float* m) {
  // Per element e, every channel block's products: the block's 16 tiles of V at e (a few KiB)
  // and U at e stay in L1 while all blocks read them.
  // Where tile l's outputs go (offset from y) and how many of its 4 columns exist; the same for
  // the next block's tiles, whose output lines are prefetched a few per products call: y is
  // written once, its lines are not in cache, and the inverse transforms' stores stalled on them.
  int64_t off[32];
  int n[32];
  for (int64_t l = 0, row = q0 / tw, t = q0 % tw; l < 32; ++l) {
    n[l] = q0 + l < q_end ? static_cast<int>(std::min<int64_t>(4, wo - 4 * t)) : 0;
    off[l] = row * wo + 4 * t;
    if (++t == tw) t = 0, ++row;
  }
  const int64_t A = r + 3, blocks = (cout + kMaxRowChannels - 1) / kMaxRowChannels;
  const int64_t ahead = 4 * cout, per_call = (ahead + A * blocks - 1) / (A * blocks);
  int64_t next = 0;  // the next line to prefetch: channel next / 4, tile 16 + 4 (next % 4)
  for (int64_t e = 0; e < A; ++e)
    for (int64_t i = 0, o0 = 0; i < blocks; ++i) {
      const int64_t nb = cout / blocks + (i < cout % blocks ? 1 : 0);
      for (int64_t j = 0; j < per_call && next < ahead; ++j, ++next) {
        const int64_t l = 16 + 4 * (next % 4);
        if (n[l])
          _mm_prefetch(reinterpret_cast<const char*>(y + next / 4 * y_cs + off[l]), _MM_HINT_T0);
      }
      kProducts[nb - 1](K, v + q0 + e * es, koff, u + e * K * cout + o0, cout,
                        m + (e * cout + o0) * 16);
      o0 += nb;
    }
  if (r == 2)
    outputs<2>(cout, m, bias, off, n, y, y_cs);
  else if (r == 3)
    outputs<3>(cout, m, bias, off, n, y, y_cs);
  else
    outputs<4>(cout, m, bias, off, n, y, y_cs);
}

bool f32_wino1d_grad_output__avx2_fma(int64_t r, int64_t wo, const float* gy, float* g,
                                      int64_t es) {
  return r == 2   ? grad_output_row<2>(wo, gy, g, es)
         : r == 3 ? grad_output_row<3>(wo, gy, g, es)
                  : grad_output_row<4>(wo, gy, g, es);
}

void f32_wino1d_gw__avx2_fma(int64_t r, int64_t K, int64_t cout, int64_t nq, const float* g,
                             int64_t gs, const float* v, const int64_t* koff, int64_t es, float* s,
                             int64_t s_es, const Ahead& ahead) {
  // Per element: blocks of 6 channels x 2 rows of the sum; a block's g rows stay in L1 while the
  // K rows of v at e (a few KiB) stream past them. The lines in `ahead` go out spread over the
  // blocks.
  const int64_t A = r + 3;
  const int64_t calls = A * ((cout + kMaxRowChannels - 1) / kMaxRowChannels) * ((K + 1) / 2);
  const int64_t per_call = (ahead.runs * ahead.lines + calls - 1) / calls;
  int64_t run = 0, line = 0;
  for (int64_t e = 0; e < A; ++e)
    for (int64_t o = 0; o < cout; o += kMaxRowChannels) {
      const int64_t c = std::min<int64_t>(kMaxRowChannels, cout - o);
      for (int64_t k = 0; k < K; k += 2) {
        for (int64_t i = 0; i < per_call && run < ahead.runs; ++i) {
          _mm_prefetch(reinterpret_cast<const char*>(ahead.first + run * ahead.stride + 16 * line),
                       _MM_HINT_T0);
          if (++line == ahead.lines) line = 0, ++run;
        }
        kGwTiles[c - 1][std::min<int64_t>(2, K - k) - 1](
            K, nq, g + (e * cout + o) * gs, gs, v + e * es, koff + k, s + e * s_es + o * K + k);
      }
    }
}

}  // namespace convkit::kernels::smallc
