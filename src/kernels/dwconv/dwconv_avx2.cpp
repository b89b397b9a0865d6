// AVX2+FMA depthwise kernels (contracts in dwconv.h).
//
// Fixed sizes (3x3, 5x5, 7x7; stride 1 or 2; no dilation): the filter sits in broadcast registers
// and each pass computes an 8-wide column vector of kFwdRows output rows, so every input vector
// loaded (a row and a kw offset; stride 2 takes the even lanes of 16) serves every output row it
// touches. Backward-weight keeps a band of kernel rows' accumulators in registers and walks gy two
// rows at a time. Vectors that would read padding, or write past the row end, take the same code
// with masked loads and stores and with the weight (or gy) masked to zero where a tap is padded;
// they run as columns after the interior, so their masks are built once per call.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/dwconv/dwconv.h"

namespace convkit::kernels::dwconv {

namespace {

constexpr int kFwdRows = 4;    // output rows per pass (fwd, and bwd_data through the flipped fwd)
constexpr int kWgradRows = 2;  // gy rows per pass (bwd_weight)

// Lanes j of 8 with 0 <= c + step * j < n (step 1 or 2), as all-ones / zero lanes.
[[gnu::always_inline]] inline __m256i lane_mask(int64_t c, int64_t step, int64_t n) {
  constexpr int64_t kBig = int64_t{1} << 30;  // clamped starts are as far outside as real ones
  const int32_t c32 = static_cast<int32_t>(std::clamp<int64_t>(c, -kBig, kBig));
  const int32_t n32 = static_cast<int32_t>(std::min<int64_t>(n, kBig));
  const __m256i ramp = step == 1 ? _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
                                 : _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(c32), ramp);
  return _mm256_and_si256(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(-1)),
                          _mm256_cmpgt_epi32(_mm256_set1_epi32(n32), idx));
}

[[gnu::always_inline]] inline __m256 mask_ps(__m256 v, __m256i m) {
  return _mm256_and_ps(v, _mm256_castsi256_ps(m));
}

// (lo[0], lo[2], lo[4], lo[6], hi[0], hi[2], hi[4], hi[6]) and the odd counterpart.
[[gnu::always_inline]] inline __m256 evens(__m256 lo, __m256 hi) {
  const __m256 e = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8));
}
[[gnu::always_inline]] inline __m256 odds(__m256 lo, __m256 hi) {
  const __m256 o = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8));
}

// p[0], p[S], ..., p[7 * S]: reads p[0 .. 8 * S).
template <int S>
[[gnu::always_inline]] inline __m256 load_x(const float* p) {
  if constexpr (S == 1) {
    return _mm256_loadu_ps(p);
  } else {
    return evens(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8));
  }
}
// As load_x, reading only the lanes j set in m (others are 0); p may point outside the plane where
// those lanes are clear (masked lanes never touch memory).
template <int S>
[[gnu::always_inline]] inline __m256 load_x_masked(const float* p, __m256i m) {
  if constexpr (S == 1) {
    return _mm256_maskload_ps(p, m);
  } else {
    const __m256i even = _mm256_setr_epi32(-1, 0, -1, 0, -1, 0, -1, 0);
    const __m256i lo = _mm256_and_si256(
        _mm256_permutevar8x32_epi32(m, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3)), even);
    const __m256i hi = _mm256_and_si256(
        _mm256_permutevar8x32_epi32(m, _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7)), even);
    return evens(_mm256_maskload_ps(p, lo), _mm256_maskload_ps(p + 8, hi));
  }
}

template <bool kEdge>
[[gnu::always_inline]] inline __m256 load_y(const float* p, __m256i m) {
  if constexpr (kEdge) {
    return _mm256_maskload_ps(p, m);
  } else {
    return _mm256_loadu_ps(p);
  }
}
template <bool kEdge>
[[gnu::always_inline]] inline void store_y(float* p, __m256 v, __m256i m) {
  if constexpr (kEdge) {
    _mm256_maskstore_ps(p, m, v);
  } else {
    _mm256_storeu_ps(p, v);
  }
}

// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
inline float hsum(__m256 v) {
  alignas(32) float l[8];
  _mm256_store_ps(l, v);
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

// Taps k in [k0, k1) of a side with 0 <= b + k * d < n.
inline void valid_taps(int64_t b, int64_t d, int64_t n, int64_t k, int64_t& k0, int64_t& k1) {
  k0 = b >= 0 ? 0 : (-b + d - 1) / d;
  k1 = n - b <= 0 ? 0 : std::min(k, (n - b - 1) / d + 1);
  k0 = std::min(k0, k1);
}

// ---- forward, fixed sizes ----------------------------------------------------------------------

// How a column vector reads: inside the plane or at a border (masked loads and a masked filter);
// *AllRows: every src row of the pass is inside the plane, and (fwd) all kFwdRows rows are stored
// and nothing is accumulated, all fixed at compile time (with run-time conditions the compiler
// computes the rows one after another instead of interleaving them).
enum class Cols { InnerAllRows, Inner, EdgeAllRows, Edge };

// Column vectors of a row sit at ow = 0, 8, 16, ...; those in [vi0, vi1) read inside the plane
// and write 8 outputs, the others ([0, left_end) and [max(vi1, left_end), Wo)) are edge vectors.
struct Columns {
  int64_t vi0, vi1, left_end;
};
inline int64_t floor_div(int64_t a, int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
// K: kernel width, S: column stride; a vector at ow reads src columns [ow*S - pad_l, ... + reach).
inline Columns columns(const Plane& g, int64_t K, int64_t S) {
  const int64_t reach = K - 1 + 8 * S;
  Columns c;
  c.vi0 = std::max<int64_t>(0, (g.pad_l + S - 1) / S + 7) / 8 * 8;  // ow * S >= pad_l
  const int64_t last = std::min(g.Wo - 8, floor_div(g.W + g.pad_l - reach, S));
  c.vi1 = last < c.vi0 ? c.vi0 : last / 8 * 8 + 8;
  c.left_end = std::min(c.vi0, g.Wo);
  return c;
}

// Source rows of the pass at ih0: [ilo, ihi) of kRowsIn lie inside the plane.
inline void rows_inside(int64_t ih0, int64_t H, int rows_in, int& ilo, int& ihi) {
  ilo = static_cast<int>(std::clamp<int64_t>(-ih0, 0, rows_in));
  ihi = static_cast<int>(std::clamp<int64_t>(H - ih0, 0, rows_in));
}

// One 8-wide column vector at ow of kFwdRows output rows (the first `rows` stored; all 8 lanes
// when kFull, else those below Wo). src rows ih0 + i for i in [ilo, ihi) are inside the plane;
// c0 = ow * S - pad_l. Edge vectors load tap kw's lanes in mk[kw] only, and wv is then the filter
// masked the same way: a padded tap adds 0 * 0, never w * 0 (Inf * 0 would be NaN).
template <int K, int S, Cols kCols, bool kFull>
[[gnu::always_inline]] inline void fwd_vec(const float* src, int64_t W, int64_t ih0, int ilo,
                                           int ihi, int64_t c0, const __m256* wv, const __m256i* mk,
                                           __m256 bias, bool accumulate, float* dst, int64_t Wo,
                                           int64_t ow, int rows) {
  constexpr int R = kFwdRows, kRowsIn = (R - 1) * S + K;
  constexpr bool kFast = kCols == Cols::InnerAllRows || kCols == Cols::EdgeAllRows;
  constexpr bool kEdge = kCols == Cols::Edge || kCols == Cols::EdgeAllRows;
  if constexpr (kFast) rows = R, accumulate = false;
  [[maybe_unused]] __m256i mout = _mm256_setzero_si256();
  if constexpr (!kFull) mout = lane_mask(ow, 1, Wo);
  __m256 acc[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    acc[r] = bias;
    if (accumulate && r < rows) acc[r] = load_y<!kFull>(dst + r * Wo + ow, mout);
  }
#pragma GCC unroll 16
  for (int i = 0; i < kRowsIn; ++i) {
    if (!kFast && (i < ilo || i >= ihi)) continue;
    const float* xi = src + (ih0 + i) * W + c0;
#pragma GCC unroll 8
    for (int kw = 0; kw < K; ++kw) {
      __m256 xv;
      if constexpr (kEdge) {
        xv = load_x_masked<S>(xi + kw, mk[kw]);
      } else {
        xv = load_x<S>(xi + kw);
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const int kh = i - r * S;
        if (kh >= 0 && kh < K) acc[r] = _mm256_fmadd_ps(wv[kh * K + kw], xv, acc[r]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    if (r < rows) store_y<!kFull>(dst + r * Wo + ow, acc[r], mout);
  }
}

// Prefetches n floats from `read` and, for writing, m floats at `write` (no fault past the end).
// A pass asks for the rows two passes ahead: with cold caches the plane streams from memory, and
// fetching output lines for ownership ahead of the stores saves about a fifth of the time there.
inline void prefetch_ahead(const float* read, int64_t n, float* write, int64_t m) {
  const char* r = reinterpret_cast<const char*>(read);
  for (int64_t b = 0; b < n * 4; b += 64) __builtin_prefetch(r + b, 0, 3);
  char* w = reinterpret_cast<char*>(write);
  for (int64_t b = 0; b < m * 4; b += 64) __builtin_prefetch(w + b, 1, 3);
}

// The interior vectors [vi0, vi1) of rows [oh0, oh1), a pass of kFwdRows rows at a time. The
// filter lives in a local array that no store can alias, so it stays in registers.
template <int K, int S>
void fwd_inner(const Plane& g, const Columns& c, const float* src, const float* w, float bias,
               bool accumulate, float* dst, int64_t oh0, int64_t oh1) {
  constexpr int R = kFwdRows, kRowsIn = (R - 1) * S + K;
  __m256 wv[K * K];
#pragma GCC unroll 64
  for (int t = 0; t < K * K; ++t) wv[t] = _mm256_broadcast_ss(w + t);
  const __m256 bv = _mm256_set1_ps(bias);
  for (int64_t oh = oh0; oh < oh1; oh += R) {
    const int rows = static_cast<int>(std::min<int64_t>(R, oh1 - oh));
    const int64_t ih0 = oh * S - g.pad_t;
    int ilo, ihi;
    rows_inside(ih0, g.H, kRowsIn, ilo, ihi);
    float* d = dst + oh * g.Wo;
    prefetch_ahead(src + (ih0 + kRowsIn + R * S) * g.W, R * S * g.W, d + 2 * R * g.Wo, R * g.Wo);
    if (ilo == 0 && ihi == kRowsIn && rows == R && !accumulate) {
      for (int64_t ow = c.vi0; ow < c.vi1; ow += 8)
        fwd_vec<K, S, Cols::InnerAllRows, true>(src, g.W, ih0, ilo, ihi, ow * S - g.pad_l, wv,
                                                nullptr, bv, accumulate, d, g.Wo, ow, rows);
    } else {
      for (int64_t ow = c.vi0; ow < c.vi1; ow += 8)
        fwd_vec<K, S, Cols::Inner, true>(src, g.W, ih0, ilo, ihi, ow * S - g.pad_l, wv, nullptr, bv,
                                         accumulate, d, g.Wo, ow, rows);
    }
  }
}

// The edge vector at ow down rows [oh0, oh1): its masks and masked filter are built once.
template <int K, int S, bool kFull>
void fwd_edge(const Plane& g, const float* src, const float* w, float bias, bool accumulate,
              float* dst, int64_t ow, int64_t oh0, int64_t oh1) {
  constexpr int R = kFwdRows, kRowsIn = (R - 1) * S + K;
  const int64_t c0 = ow * S - g.pad_l;
  __m256i mk[K];
  for (int kw = 0; kw < K; ++kw) mk[kw] = lane_mask(c0 + kw, S, g.W);
  __m256 wv[K * K];
  for (int t = 0; t < K * K; ++t) wv[t] = mask_ps(_mm256_broadcast_ss(w + t), mk[t % K]);
  const __m256 bv = _mm256_set1_ps(bias);
  for (int64_t oh = oh0; oh < oh1; oh += R) {
    const int rows = static_cast<int>(std::min<int64_t>(R, oh1 - oh));
    const int64_t ih0 = oh * S - g.pad_t;
    int ilo, ihi;
    rows_inside(ih0, g.H, kRowsIn, ilo, ihi);
    float* d = dst + oh * g.Wo;
    if (ilo == 0 && ihi == kRowsIn && rows == R && !accumulate)
      fwd_vec<K, S, Cols::EdgeAllRows, kFull>(src, g.W, ih0, ilo, ihi, c0, wv, mk, bv, false, d,
                                              g.Wo, ow, rows);
    else
      fwd_vec<K, S, Cols::Edge, kFull>(src, g.W, ih0, ilo, ihi, c0, wv, mk, bv, accumulate, d, g.Wo,
                                       ow, rows);
  }
}

template <int K, int S>
void fwd_fixed(const Plane& g, const float* src, const float* w, float bias, bool accumulate,
               float* dst, int64_t oh0, int64_t oh1) {
  const Columns c = columns(g, K, S);
  fwd_inner<K, S>(g, c, src, w, bias, accumulate, dst, oh0, oh1);
  // Edge columns, each down all the rows. The last vector of a row moves back to end at Wo (when
  // Wo >= 8): it recomputes a few outputs bit for bit and stores whole; not when accumulating
  // (dst would be read after it was written).
  const bool overlap = !accumulate && g.Wo >= 8;
  auto edge = [&](int64_t ow) {
    if (ow + 8 <= g.Wo)
      fwd_edge<K, S, true>(g, src, w, bias, accumulate, dst, ow, oh0, oh1);
    else if (overlap)
      fwd_edge<K, S, true>(g, src, w, bias, accumulate, dst, g.Wo - 8, oh0, oh1);
    else
      fwd_edge<K, S, false>(g, src, w, bias, accumulate, dst, ow, oh0, oh1);
  };
  for (int64_t ow = 0; ow < c.left_end; ow += 8) edge(ow);
  for (int64_t ow = std::max(c.vi1, c.left_end); ow < g.Wo; ow += 8) edge(ow);
}

// ---- forward, any size (column stride SW) ------------------------------------------------------

// acc0 / acc1 += the taps of one src row at even / odd kw (two chains hide the FMA latency).
template <int SW, bool kEdge>
[[gnu::always_inline]] inline void fwd_any_row(const float* xr, const float* wr, int64_t kW,
                                               int64_t dW, int64_t c0, int64_t W, __m256& a0,
                                               __m256& a1) {
  auto tap = [&](int64_t kw, __m256 a) {
    const __m256 wt = _mm256_broadcast_ss(wr + kw);
    if constexpr (kEdge) {
      const __m256i m = lane_mask(c0 + kw * dW, SW, W);
      return _mm256_fmadd_ps(mask_ps(wt, m), load_x_masked<SW>(xr + kw * dW, m), a);
    } else {
      return _mm256_fmadd_ps(wt, load_x<SW>(xr + kw * dW), a);
    }
  };
  int64_t kw = 0;
  for (; kw + 2 <= kW; kw += 2) {
    a0 = tap(kw, a0);
    a1 = tap(kw + 1, a1);
  }
  if (kw < kW) a0 = tap(kw, a0);
}

template <int SW>
void fwd_any(const Plane& g, const float* src, const float* w, float bias, bool accumulate,
             float* dst, int64_t oh0, int64_t oh1) {
  const int64_t reach = (g.kW - 1) * g.dW + 8 * SW;  // a vector reads src[c0, c0 + reach)
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    const int64_t ib = oh * g.sH - g.pad_t;
    int64_t kh0, kh1;
    valid_taps(ib, g.dH, g.H, g.kH, kh0, kh1);
    float* d = dst + oh * g.Wo;
    for (int64_t ow = 0; ow < g.Wo; ow += 8) {
      const int64_t c0 = ow * SW - g.pad_l;
      const bool inner = ow + 8 <= g.Wo && c0 >= 0 && c0 + reach <= g.W;
      const __m256i mout = lane_mask(ow, 1, g.Wo);  // all set when inner
      __m256 a0 = accumulate ? _mm256_maskload_ps(d + ow, mout) : _mm256_set1_ps(bias);
      __m256 a1 = _mm256_setzero_ps();
      for (int64_t kh = kh0; kh < kh1; ++kh) {
        const float* xr = src + (ib + kh * g.dH) * g.W + c0;
        if (inner)
          fwd_any_row<SW, false>(xr, w + kh * g.kW, g.kW, g.dW, c0, g.W, a0, a1);
        else
          fwd_any_row<SW, true>(xr, w + kh * g.kW, g.kW, g.dW, c0, g.W, a0, a1);
      }
      if (inner)
        _mm256_storeu_ps(d + ow, _mm256_add_ps(a0, a1));
      else
        _mm256_maskstore_ps(d + ow, mout, _mm256_add_ps(a0, a1));
    }
  }
}

// ---- backward-data, gather form (column stride SW) ---------------------------------------------

template <int SW>
void bwd_data_any(const Plane& g, const float* gy, const float* w, bool accumulate, float* gx,
                  int64_t ih0, int64_t ih1) {
  // Output lane iw = iw0 + ph + SW * j (iw0 a multiple of 8 * SW) takes tap kw from
  // gy[oh][iw0 / SW + co[kw] + j] when ph == ph[kw]; stride 1 splits kw by parity instead
  // (two chains). co decreases with kw.
  int acc_of[kMaxK];
  int64_t co[kMaxK];
  for (int64_t kw = 0; kw < g.kW; ++kw) {
    const int64_t t = g.pad_l - kw * g.dW;
    const int64_t ph = ((-t) % SW + SW) % SW;
    co[kw] = (ph + t) / SW;
    acc_of[kw] = SW == 1 ? static_cast<int>(kw & 1) : static_cast<int>(ph);
  }
  int64_t rows_oh[kMaxK], rows_kh[kMaxK];
  for (int64_t ih = ih0; ih < ih1; ++ih) {
    int nrows = 0;  // (oh, kh) pairs that write row ih, kh ascending
    for (int64_t kh = 0; kh < g.kH; ++kh) {
      const int64_t num = ih + g.pad_t - kh * g.dH;  // = oh * sH
      if (num < 0) break;
      if (num % g.sH != 0 || num / g.sH >= g.Ho) continue;
      rows_oh[nrows] = num / g.sH, rows_kh[nrows] = kh, ++nrows;
    }
    float* d = gx + ih * g.W;
    for (int64_t iw0 = 0; iw0 < g.W; iw0 += 8 * SW) {
      const int64_t q = iw0 / SW;
      const bool inner = iw0 + 8 * SW <= g.W && q + co[g.kW - 1] >= 0 && q + co[0] + 8 <= g.Wo;
      const __m256i m0 = lane_mask(iw0, 1, g.W), m1 = lane_mask(iw0 + 8, 1, g.W);
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      if (accumulate) {
        if constexpr (SW == 1) {
          a0 = _mm256_maskload_ps(d + iw0, m0);
        } else {
          const __m256 lo = _mm256_maskload_ps(d + iw0, m0),
                       hi = _mm256_maskload_ps(d + iw0 + 8, m1);
          a0 = evens(lo, hi), a1 = odds(lo, hi);
        }
      }
      for (int e = 0; e < nrows; ++e) {
        const float* gr = gy + rows_oh[e] * g.Wo + q;
        const float* wr = w + rows_kh[e] * g.kW;
        for (int64_t kw = 0; kw < g.kW; ++kw) {
          __m256 wt = _mm256_broadcast_ss(wr + kw), v;
          if (inner) {
            v = _mm256_loadu_ps(gr + co[kw]);
          } else {
            const __m256i m = lane_mask(q + co[kw], 1, g.Wo);
            v = _mm256_maskload_ps(gr + co[kw], m);
            wt = mask_ps(wt, m);
          }
          if (acc_of[kw] == 0)
            a0 = _mm256_fmadd_ps(wt, v, a0);
          else
            a1 = _mm256_fmadd_ps(wt, v, a1);
        }
      }
      if constexpr (SW == 1) {
        _mm256_maskstore_ps(d + iw0, m0, _mm256_add_ps(a0, a1));
      } else {
        const __m256 lo = _mm256_unpacklo_ps(a0, a1), hi = _mm256_unpackhi_ps(a0, a1);
        _mm256_maskstore_ps(d + iw0, m0, _mm256_permute2f128_ps(lo, hi, 0x20));
        _mm256_maskstore_ps(d + iw0 + 8, m1, _mm256_permute2f128_ps(lo, hi, 0x31));
      }
    }
  }
}

// ---- backward-data, fixed sizes, stride 2 -----------------------------------------------------

// One vector pair at iw0 (a multiple of 16) of gx row ih: lanes iw0 + 2j (a0) and iw0 + 1 + 2j
// (a1). Tap (kh, kw) feeds phase (kw - PL) & 1 from gy row rows[kh] (null: outside), columns
// q + co[kw] + j with q = iw0 / 2; kh = KP, KP + 2, ... only. Edge pairs load the gy lanes inside
// the row only, with the filter masked the same way (a padded tap adds 0 * 0), and store the
// lanes below W only.
template <int K, int PL, int KP, bool kEdge>
[[gnu::always_inline]] inline void bwd_s2_vec(const float* const* rows, const __m256* wv,
                                              const int64_t* co, int64_t Wo, int64_t W,
                                              bool accumulate, float* d, int64_t iw0) {
  const int64_t q = iw0 / 2;
  [[maybe_unused]] __m256i mk[K];
  if constexpr (kEdge)
    for (int kw = 0; kw < K; ++kw) mk[kw] = lane_mask(q + co[kw], 1, Wo);
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  [[maybe_unused]] __m256i m0 = _mm256_setzero_si256(), m1 = m0;
  if constexpr (kEdge) m0 = lane_mask(iw0, 1, W), m1 = lane_mask(iw0 + 8, 1, W);
  if (accumulate) {
    const __m256 lo = kEdge ? _mm256_maskload_ps(d + iw0, m0) : _mm256_loadu_ps(d + iw0);
    const __m256 hi = kEdge ? _mm256_maskload_ps(d + iw0 + 8, m1) : _mm256_loadu_ps(d + iw0 + 8);
    a0 = evens(lo, hi), a1 = odds(lo, hi);
  }
#pragma GCC unroll 8
  for (int kh = KP; kh < K; kh += 2) {
    if (!rows[kh]) continue;
    const float* gr = rows[kh] + q;
#pragma GCC unroll 8
    for (int kw = 0; kw < K; ++kw) {
      __m256 wt = wv[kh * K + kw], v;
      if constexpr (kEdge) {
        v = _mm256_maskload_ps(gr + co[kw], mk[kw]);
        wt = mask_ps(wt, mk[kw]);
      } else {
        v = _mm256_loadu_ps(gr + co[kw]);
      }
      if (((kw - PL) & 1) == 0)
        a0 = _mm256_fmadd_ps(wt, v, a0);
      else
        a1 = _mm256_fmadd_ps(wt, v, a1);
    }
  }
  const __m256 lo = _mm256_unpacklo_ps(a0, a1), hi = _mm256_unpackhi_ps(a0, a1);
  store_y<kEdge>(d + iw0, _mm256_permute2f128_ps(lo, hi, 0x20), m0);
  store_y<kEdge>(d + iw0 + 8, _mm256_permute2f128_ps(lo, hi, 0x31), m1);
}

template <int K, int PL>
void bwd_data_s2(const Plane& g, const float* gy, const float* w, bool accumulate, float* gx,
                 int64_t ih0, int64_t ih1) {
  __m256 wv[K * K];
  for (int t = 0; t < K * K; ++t) wv[t] = _mm256_broadcast_ss(w + t);
  int64_t co[K];  // gy column of lane 0 of tap kw's phase, relative to iw0 / 2
  for (int kw = 0; kw < K; ++kw) co[kw] = (((kw - PL) & 1) + g.pad_l - kw) / 2;
  // Pairs at iw0 in [0, v1) read gy inside the row and store 16 lanes; co decreases with kw.
  const int64_t v1 = std::min(g.W / 16, floor_div(g.Wo - 8 - co[0], 8) + 1) * 16;
  const int64_t v0 = std::max<int64_t>(0, -co[K - 1] + 7) / 8 * 16;
  for (int64_t ih = ih0; ih < ih1; ++ih) {
    const float* rows[K] = {};
    for (int kh = 0; kh < K; ++kh) {
      const int64_t num = ih + g.pad_t - kh;  // = oh * 2
      if (num >= 0 && num % 2 == 0 && num / 2 < g.Ho) rows[kh] = gy + (num / 2) * g.Wo;
    }
    float* d = gx + ih * g.W;
    auto row = [&]<int KP>() {
      int64_t iw0 = 0;
      for (; iw0 < std::min(v0, g.W); iw0 += 16)
        bwd_s2_vec<K, PL, KP, true>(rows, wv, co, g.Wo, g.W, accumulate, d, iw0);
      for (; iw0 < v1; iw0 += 16)
        bwd_s2_vec<K, PL, KP, false>(rows, wv, co, g.Wo, g.W, accumulate, d, iw0);
      for (; iw0 < g.W; iw0 += 16)
        bwd_s2_vec<K, PL, KP, true>(rows, wv, co, g.Wo, g.W, accumulate, d, iw0);
    };
    if ((ih + g.pad_t) % 2 == 0)
      row.template operator()<0>();
    else
      row.template operator()<1>();
  }
}

// ---- backward-weight, fixed sizes --------------------------------------------------------------

// One 8-wide column vector at ow of kWgradRows gy rows (the first `rows` real) against src rows
// ih0 + i, i in [ilo, ihi): acc[kb * K + kw] += gy * x for kernel rows kb of the band, and
// bacc += gy if bias. Edge vectors load tap kw's lanes in mk[kw] only (those below Wo included)
// and mask gy the same way: a padded tap adds 0 * 0, never gy * 0. InnerAllRows also means
// rows == kWgradRows.
template <int K, int S, int KB, Cols kCols>
[[gnu::always_inline]] inline void wgrad_vec(const float* xn, int64_t W, int64_t ih0, int ilo,
                                             int ihi, int64_t c0, const float* gr, int64_t Wo,
                                             int64_t ow, int rows, const __m256i* mk, __m256i mout,
                                             bool bias, __m256* acc, __m256& bacc) {
  constexpr int R = kWgradRows, kRowsIn = (R - 1) * S + KB;
  constexpr bool kEdge = kCols == Cols::Edge, kAll = kCols == Cols::InnerAllRows;
  __m256 gv[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    gv[r] = kAll || r < rows ? load_y<kEdge>(gr + r * Wo + ow, mout) : _mm256_setzero_ps();
    if (bias && (kAll || r < rows)) bacc = _mm256_add_ps(bacc, gv[r]);
  }
#pragma GCC unroll 16
  for (int i = 0; i < kRowsIn; ++i) {
    if (!kAll && (i < ilo || i >= ihi)) continue;
    const float* xi = xn + (ih0 + i) * W + c0;
#pragma GCC unroll 8
    for (int kw = 0; kw < K; ++kw) {
      __m256 xv;
      if constexpr (kEdge) {
        xv = load_x_masked<S>(xi + kw, mk[kw]);
      } else {
        xv = load_x<S>(xi + kw);
      }
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const int kb = i - r * S;
        if (kb < 0 || kb >= KB || (!kAll && r >= rows)) continue;
        __m256 gg = gv[r];
        if constexpr (kEdge) gg = mask_ps(gg, mk[kw]);
        acc[kb * K + kw] = _mm256_fmadd_ps(gg, xv, acc[kb * K + kw]);
      }
    }
  }
}

template <int K, int S>
void wgrad_fixed(const Plane& g, int64_t N, const float* x, int64_t x_step, const float* gy,
                 int64_t gy_step, int64_t oh0, int64_t oh1, float* gw, float* gb) {
  // A band of KB kernel rows per sweep keeps KB * K accumulators in registers. Per image: the
  // interior vectors a pass of kWgradRows gy rows at a time, then each edge column down all rows
  // (its masks built once).
  constexpr int KB = K == 3 ? 3 : 1, R = kWgradRows, kRowsIn = (R - 1) * S + KB;
  const Columns c = columns(g, K, S);
  __m256 bacc = _mm256_setzero_ps();
  for (int kh0 = 0; kh0 < K; kh0 += KB) {
    __m256 acc[KB * K];
    for (int t = 0; t < KB * K; ++t) acc[t] = _mm256_setzero_ps();
    const bool bias = gb && kh0 == 0;
    for (int64_t n = 0; n < N; ++n) {
      const float* xn = x + n * x_step;
      const float* gn = gy + n * gy_step;
      const __m256i ones = _mm256_set1_epi32(-1);
      for (int64_t oh = oh0; oh < oh1; oh += R) {
        const int rows = static_cast<int>(std::min<int64_t>(R, oh1 - oh));
        const int64_t ih0 = oh * S - g.pad_t + kh0;
        int ilo, ihi;
        rows_inside(ih0, g.H, kRowsIn, ilo, ihi);
        const float* gr = gn + oh * g.Wo;
        prefetch_ahead(xn + (ih0 + kRowsIn + R * S) * g.W, R * S * g.W, nullptr, 0);
        prefetch_ahead(gr + 2 * R * g.Wo, R * g.Wo, nullptr, 0);
        if (rows == R && ilo == 0 && ihi == kRowsIn) {
          for (int64_t ow = c.vi0; ow < c.vi1; ow += 8)
            wgrad_vec<K, S, KB, Cols::InnerAllRows>(xn, g.W, ih0, ilo, ihi, ow * S - g.pad_l, gr,
                                                    g.Wo, ow, rows, nullptr, ones, bias, acc, bacc);
        } else {
          for (int64_t ow = c.vi0; ow < c.vi1; ow += 8)
            wgrad_vec<K, S, KB, Cols::Inner>(xn, g.W, ih0, ilo, ihi, ow * S - g.pad_l, gr, g.Wo, ow,
                                             rows, nullptr, ones, bias, acc, bacc);
        }
      }
      auto edge = [&](int64_t ow) {
        const int64_t c0 = ow * S - g.pad_l;
        const __m256i mout = lane_mask(ow, 1, g.Wo);
        __m256i mk[K];
        for (int kw = 0; kw < K; ++kw) mk[kw] = _mm256_and_si256(lane_mask(c0 + kw, S, g.W), mout);
        for (int64_t oh = oh0; oh < oh1; oh += R) {
          const int rows = static_cast<int>(std::min<int64_t>(R, oh1 - oh));
          const int64_t ih0 = oh * S - g.pad_t + kh0;
          int ilo, ihi;
          rows_inside(ih0, g.H, kRowsIn, ilo, ihi);
          wgrad_vec<K, S, KB, Cols::Edge>(xn, g.W, ih0, ilo, ihi, c0, gn + oh * g.Wo, g.Wo, ow,
                                          rows, mk, mout, bias, acc, bacc);
        }
      };
      for (int64_t ow = 0; ow < c.left_end; ow += 8) edge(ow);
      for (int64_t ow = std::max(c.vi1, c.left_end); ow < g.Wo; ow += 8) edge(ow);
    }
    for (int t = 0; t < KB * K; ++t) gw[(kh0 + t / K) * K + t % K] = hsum(acc[t]);
  }
  if (gb) *gb = hsum(bacc);
}

// ---- backward-weight, any size (column stride SW) ----------------------------------------------

template <int SW>
void wgrad_any(const Plane& g, int64_t N, const float* x, int64_t x_step, const float* gy,
               int64_t gy_step, int64_t oh0, int64_t oh1, float* gw, float* gb) {
  for (int64_t kh = 0; kh < g.kH; ++kh)
    for (int64_t kw = 0; kw < g.kW; ++kw) {
      // Outputs ow in [lo, hi) read inside their row; up to `full`, 8 at a time read in bounds.
      const int64_t off = kw * g.dW - g.pad_l;
      int64_t lo, hi;
      valid_taps(off, SW, g.W, g.Wo, lo, hi);
      const int64_t full = hi > lo ? std::min(hi, (g.W - off) / SW) : lo;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      for (int64_t n = 0; n < N; ++n)
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          const int64_t ih = oh * g.sH - g.pad_t + kh * g.dH;
          if (ih < 0 || ih >= g.H) continue;
          const float* gr = gy + n * gy_step + oh * g.Wo;
          const float* xr = x + n * x_step + ih * g.W + off;  // x column of output ow: ow * SW
          int64_t ow = lo;
          for (; ow + 16 <= full; ow += 16) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(gr + ow), load_x<SW>(xr + ow * SW), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(gr + ow + 8), load_x<SW>(xr + (ow + 8) * SW), a1);
          }
          for (; ow + 8 <= full; ow += 8)
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(gr + ow), load_x<SW>(xr + ow * SW), a0);
          for (; ow < hi; ow += 8) {
            const __m256i m = lane_mask(ow, 1, hi);
            a1 = _mm256_fmadd_ps(_mm256_maskload_ps(gr + ow, m), load_x_masked<SW>(xr + ow * SW, m),
                                 a1);
          }
        }
      gw[kh * g.kW + kw] = hsum(_mm256_add_ps(a0, a1));
    }
  if (!gb) return;
  __m256 b = _mm256_setzero_ps();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      const float* gr = gy + n * gy_step + oh * g.Wo;
      for (int64_t ow = 0; ow < g.Wo; ow += 8)
        b = _mm256_add_ps(b, _mm256_maskload_ps(gr + ow, lane_mask(ow, 1, g.Wo)));
    }
  *gb = hsum(b);
}

// Fixed-size kernels apply to square kernels of side 3, 5 or 7 with equal strides 1 or 2 and no
// dilation; 0 otherwise.
int fixed_side(const Plane& g) {
  if (g.kH != g.kW || g.sH != g.sW || g.dH != 1 || g.dW != 1 || g.sW > 2) return 0;
  return g.kH == 3 || g.kH == 5 || g.kH == 7 ? static_cast<int>(g.kH) : 0;
}

}  // namespace

void f32_dwconv2d_3x3s1__avx2_fma(const Plane& g, const float* src, const float* w, float bias,
                                  bool accumulate, float* dst, int64_t oh0, int64_t oh1) {
  fwd_fixed<3, 1>(g, src, w, bias, accumulate, dst, oh0, oh1);
}
void f32_dwconv2d_3x3s2__avx2_fma(const Plane& g, const float* src, const float* w, float bias,
                                  bool accumulate, float* dst, int64_t oh0, int64_t oh1) {
  fwd_fixed<3, 2>(g, src, w, bias, accumulate, dst, oh0, oh1);
}
void f32_dwconv2d_5x5s1__avx2_fma(const Plane& g, const float* src, const float* w, float bias,
                                  bool accumulate, float* dst, int64_t oh0, int64_t oh1) {
  fwd_fixed<5, 1>(g, src, w, bias, accumulate, dst, oh0, oh1);
}
void f32_dwconv2d_5x5s2__avx2_fma(const Plane& g, const float* src, const float* w, float bias,
                                  bool accumulate, float* dst, int64_t oh0, int64_t oh1) {
  fwd_fixed<5, 2>(g, src, w, bias, accumulate, dst, oh0, oh1);
}
void f32_dwconv2d_7x7s1__avx2_fma(const Plane& g, const float* src, const float* w, float bias,
                                  bool accumulate, float* dst, int64_t oh0, int64_t oh1) {
  fwd_fixed<7, 1>(g, src, w, bias, accumulate, dst, oh0, oh1);
}
void f32_dwconv2d_7x7s2__avx2_fma(const Plane& g, const float* src, const float* w, float bias,
                                  bool accumulate, float* dst, int64_t oh0, int64_t oh1) {
  fwd_fixed<7, 2>(g, src, w, bias, accumulate, dst, oh0, oh1);
}
void f32_dwconv2d_kxks1__avx2_fma(const Plane& g, const float* src, const float* w, float bias,
                                  bool accumulate, float* dst, int64_t oh0, int64_t oh1) {
  fwd_any<1>(g, src, w, bias, accumulate, dst, oh0, oh1);
}
void f32_dwconv2d_kxks2__avx2_fma(const Plane& g, const float* src, const float* w, float bias,
                                  bool accumulate, float* dst, int64_t oh0, int64_t oh1) {
  fwd_any<2>(g, src, w, bias, accumulate, dst, oh0, oh1);
}

void f32_dwconv2d_bwd_data_3x3s2__avx2_fma(const Plane& g, const float* gy, const float* w,
                                           bool accumulate, float* gx, int64_t ih0, int64_t ih1) {
  if (g.pad_l % 2 == 0)
    bwd_data_s2<3, 0>(g, gy, w, accumulate, gx, ih0, ih1);
  else
    bwd_data_s2<3, 1>(g, gy, w, accumulate, gx, ih0, ih1);
}
void f32_dwconv2d_bwd_data_5x5s2__avx2_fma(const Plane& g, const float* gy, const float* w,
                                           bool accumulate, float* gx, int64_t ih0, int64_t ih1) {
  if (g.pad_l % 2 == 0)
    bwd_data_s2<5, 0>(g, gy, w, accumulate, gx, ih0, ih1);
  else
    bwd_data_s2<5, 1>(g, gy, w, accumulate, gx, ih0, ih1);
}
void f32_dwconv2d_bwd_data_7x7s2__avx2_fma(const Plane& g, const float* gy, const float* w,
                                           bool accumulate, float* gx, int64_t ih0, int64_t ih1) {
  if (g.pad_l % 2 == 0)
    bwd_data_s2<7, 0>(g, gy, w, accumulate, gx, ih0, ih1);
  else
    bwd_data_s2<7, 1>(g, gy, w, accumulate, gx, ih0, ih1);
}
void f32_dwconv2d_bwd_data_kxks1__avx2_fma(const Plane& g, const float* gy, const float* w,
                                           bool accumulate, float* gx, int64_t ih0, int64_t ih1) {
  bwd_data_any<1>(g, gy, w, accumulate, gx, ih0, ih1);
}
void f32_dwconv2d_bwd_data_kxks2__avx2_fma(const Plane& g, const float* gy, const float* w,
                                           bool accumulate, float* gx, int64_t ih0, int64_t ih1) {
  bwd_data_any<2>(g, gy, w, accumulate, gx, ih0, ih1);
}

void f32_dwconv2d_wgrad_3x3s1__avx2_fma(const Plane& g, int64_t N, const float* x, int64_t x_step,
                                        const float* gy, int64_t gy_step, int64_t oh0, int64_t oh1,
                                        float* gw, float* gb) {
  wgrad_fixed<3, 1>(g, N, x, x_step, gy, gy_step, oh0, oh1, gw, gb);
}
void f32_dwconv2d_wgrad_3x3s2__avx2_fma(const Plane& g, int64_t N, const float* x, int64_t x_step,
                                        const float* gy, int64_t gy_step, int64_t oh0, int64_t oh1,
                                        float* gw, float* gb) {
  wgrad_fixed<3, 2>(g, N, x, x_step, gy, gy_step, oh0, oh1, gw, gb);
}
void f32_dwconv2d_wgrad_5x5s1__avx2_fma(const Plane& g, int64_t N, const float* x, int64_t x_step,
                                        const float* gy, int64_t gy_step, int64_t oh0, int64_t oh1,
                                        float* gw, float* gb) {
  wgrad_fixed<5, 1>(g, N, x, x_step, gy, gy_step, oh0, oh1, gw, gb);
}
void f32_dwconv2d_wgrad_5x5s2__avx2_fma(const Plane& g, int64_t N, const float* x, int64_t x_step,
                                        const float* gy, int64_t gy_step, int64_t oh0, int64_t oh1,
                                        float* gw, float* gb) {
  wgrad_fixed<5, 2>(g, N, x, x_step, gy, gy_step, oh0, oh1, gw, gb);
}
void f32_dwconv2d_wgrad_7x7s1__avx2_fma(const Plane& g, int64_t N, const float* x, int64_t x_step,
                                        const float* gy, int64_t gy_step, int64_t oh0, int64_t oh1,
                                        float* gw, float* gb) {
  wgrad_fixed<7, 1>(g, N, x, x_step, gy, gy_step, oh0, oh1, gw, gb);
}
void f32_dwconv2d_wgrad_7x7s2__avx2_fma(const Plane& g, int64_t N, const float* x, int64_t x_step,
                                        const float* gy, int64_t gy_step, int64_t oh0, int64_t oh1,
                                        float* gw, float* gb) {
  wgrad_fixed<7, 2>(g, N, x, x_step, gy, gy_step, oh0, oh1, gw, gb);
}
void f32_dwconv2d_wgrad_kxks1__avx2_fma(const Plane& g, int64_t N, const float* x, int64_t x_step,
                                        const float* gy, int64_t gy_step, int64_t oh0, int64_t oh1,
                                        float* gw, float* gb) {
  wgrad_any<1>(g, N, x, x_step, gy, gy_step, oh0, oh1, gw, gb);
}
void f32_dwconv2d_wgrad_kxks2__avx2_fma(const Plane& g, int64_t N, const float* x, int64_t x_step,
                                        const float* gy, int64_t gy_step, int64_t oh0, int64_t oh1,
                                        float* gw, float* gb) {
  wgrad_any<2>(g, N, x, x_step, gy, gy_step, oh0, oh1, gw, gb);
}

FwdFn fwd_kernel(const Plane& g) {
  const bool s1 = g.sW == 1;
  switch (fixed_side(g)) {
    case 3:
      return s1 ? f32_dwconv2d_3x3s1__avx2_fma : f32_dwconv2d_3x3s2__avx2_fma;
    case 5:
      return s1 ? f32_dwconv2d_5x5s1__avx2_fma : f32_dwconv2d_5x5s2__avx2_fma;
    case 7:
      return s1 ? f32_dwconv2d_7x7s1__avx2_fma : f32_dwconv2d_7x7s2__avx2_fma;
    default:
      return s1 ? f32_dwconv2d_kxks1__avx2_fma : f32_dwconv2d_kxks2__avx2_fma;
  }
}

WgradFn wgrad_kernel(const Plane& g) {
  const bool s1 = g.sW == 1;
  switch (fixed_side(g)) {
    case 3:
      return s1 ? f32_dwconv2d_wgrad_3x3s1__avx2_fma : f32_dwconv2d_wgrad_3x3s2__avx2_fma;
    case 5:
      return s1 ? f32_dwconv2d_wgrad_5x5s1__avx2_fma : f32_dwconv2d_wgrad_5x5s2__avx2_fma;
    case 7:
      return s1 ? f32_dwconv2d_wgrad_7x7s1__avx2_fma : f32_dwconv2d_wgrad_7x7s2__avx2_fma;
    default:
      return s1 ? f32_dwconv2d_wgrad_kxks1__avx2_fma : f32_dwconv2d_wgrad_kxks2__avx2_fma;
  }
}

void bwd_data(const Plane& g, const float* gy, const float* w, bool accumulate, float* gx,
              int64_t ih0, int64_t ih1) {
  if (fixed_side(g) && g.sW == 1) {
    // gx (H, W) = correlation of gy (Ho, Wo) with w rotated by 180 degrees, gy padded by
    // k - 1 - pad (negative: cropped).
    Plane f = g;
    f.H = g.Ho, f.W = g.Wo, f.Ho = g.H, f.Wo = g.W;
    f.pad_t = g.kH - 1 - g.pad_t, f.pad_l = g.kW - 1 - g.pad_l;
    const int64_t kk = g.kH * g.kW;
    float rot[7 * 7];
    for (int64_t t = 0; t < kk; ++t) rot[t] = w[kk - 1 - t];
    fwd_kernel(f)(f, gy, rot, 0.f, accumulate, gx, ih0, ih1);
    return;
  }
  switch (g.sW == 2 ? fixed_side(g) : 0) {
    case 3:
      return f32_dwconv2d_bwd_data_3x3s2__avx2_fma(g, gy, w, accumulate, gx, ih0, ih1);
    case 5:
      return f32_dwconv2d_bwd_data_5x5s2__avx2_fma(g, gy, w, accumulate, gx, ih0, ih1);
    case 7:
      return f32_dwconv2d_bwd_data_7x7s2__avx2_fma(g, gy, w, accumulate, gx, ih0, ih1);
  }
  if (g.sW == 1)
    f32_dwconv2d_bwd_data_kxks1__avx2_fma(g, gy, w, accumulate, gx, ih0, ih1);
  else
    f32_dwconv2d_bwd_data_kxks2__avx2_fma(g, gy, w, accumulate, gx, ih0, ih1);
}

}  // namespace convkit::kernels::dwconv
