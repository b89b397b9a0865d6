// Winograd F(4x4, 3x3) filter, input and output transforms (8 tiles or 6 kernels per call in
// the lanes of a ymm) and the zero-padded input windows the input transform reads.
#include <immintrin.h>

#include <algorithm>

#include "kernels/evens_avx2.h"
#include "kernels/transpose_avx2.h"
#include "kernels/winograd/winograd.h"

namespace convkit::kernels::winograd {

namespace {

// d (6 vectors) -> B^T d (6 vectors), lane-wise.
inline void bt6(const __m256 d[6], __m256 r[6]) {
  const __m256 four = _mm256_set1_ps(4.f), five = _mm256_set1_ps(5.f), two = _mm256_set1_ps(2.f);
  // r0 = 4 d0 - 5 d2 + d4
  r[0] = _mm256_fmadd_ps(four, d[0], _mm256_fnmadd_ps(five, d[2], d[4]));
  // r1 = -4 (d1 + d2) + d3 + d4 ;  r2 = 4 (d1 - d2) - d3 + d4
  const __m256 d34 = _mm256_add_ps(d[3], d[4]), d4m3 = _mm256_sub_ps(d[4], d[3]);
  r[1] = _mm256_fnmadd_ps(four, _mm256_add_ps(d[1], d[2]), d34);
  r[2] = _mm256_fmadd_ps(four, _mm256_sub_ps(d[1], d[2]), d4m3);
  // r3 = 2 (d3 - d1) - d2 + d4 ;  r4 = 2 (d1 - d3) - d2 + d4
  const __m256 d4m2 = _mm256_sub_ps(d[4], d[2]), d31 = _mm256_sub_ps(d[3], d[1]);
  r[3] = _mm256_fmadd_ps(two, d31, d4m2);
  r[4] = _mm256_fnmadd_ps(two, d31, d4m2);
  // r5 = 4 d1 - 5 d3 + d5
  r[5] = _mm256_fmadd_ps(four, d[1], _mm256_fnmadd_ps(five, d[3], d[5]));
}

// m (6 vectors) -> A^T m (4 vectors), lane-wise.
inline void at4(const __m256 m[6], __m256 o[4]) {
  const __m256 s12 = _mm256_add_ps(m[1], m[2]), d12 = _mm256_sub_ps(m[1], m[2]);
  const __m256 s34 = _mm256_add_ps(m[3], m[4]), d34 = _mm256_sub_ps(m[3], m[4]);
  o[0] = _mm256_add_ps(_mm256_add_ps(m[0], s12), s34);
  o[1] = _mm256_fmadd_ps(_mm256_set1_ps(2.f), d34, d12);
  o[2] = _mm256_fmadd_ps(_mm256_set1_ps(4.f), s34, s12);
  o[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.f), d34, d12), m[5]);
}

// g (4 vectors) -> A g (6 vectors), lane-wise: the rows of A are the columns of A^T.
inline void a6(const __m256 g[4], __m256 r[6]) {
  const __m256 s02 = _mm256_add_ps(g[0], g[2]), s13 = _mm256_add_ps(g[1], g[3]);
  // t02 = g0 + 4 g2, t13 = 2 g1 + 8 g3
  const __m256 t02 = _mm256_fmadd_ps(_mm256_set1_ps(4.f), g[2], g[0]);
  const __m256 t13 =
      _mm256_mul_ps(_mm256_set1_ps(2.f), _mm256_fmadd_ps(_mm256_set1_ps(4.f), g[3], g[1]));
  r[0] = g[0];
  r[1] = _mm256_add_ps(s02, s13);
  r[2] = _mm256_sub_ps(s02, s13);
  r[3] = _mm256_add_ps(t02, t13);
  r[4] = _mm256_sub_ps(t02, t13);
  r[5] = g[3];
}

// Four columns of one row of 8 tiles: lo[k] holds 4 floats of tile k | 4 of tile k + 4; a 4x4
// transpose inside each 128-bit half gives q[c] lane t = column c of tile t.
inline void columns4(const __m256 lo[4], __m256 q[4]) {
  const __m256 a01 = _mm256_unpacklo_ps(lo[0], lo[1]), b01 = _mm256_unpackhi_ps(lo[0], lo[1]);
  const __m256 a23 = _mm256_unpacklo_ps(lo[2], lo[3]), b23 = _mm256_unpackhi_ps(lo[2], lo[3]);
  q[0] = _mm256_shuffle_ps(a01, a23, 0x44);
  q[1] = _mm256_shuffle_ps(a01, a23, 0xEE);
  q[2] = _mm256_shuffle_ps(b01, b23, 0x44);
  q[3] = _mm256_shuffle_ps(b01, b23, 0xEE);
}

// dst[t][j] = o[j][t], j < 4, t < 8 (one row of each of 8 tiles).
inline void store_rows(const __m256 o[4], float* const dst[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(o[0], o[1]), t1 = _mm256_unpackhi_ps(o[0], o[1]);
  const __m256 t2 = _mm256_unpacklo_ps(o[2], o[3]), t3 = _mm256_unpackhi_ps(o[2], o[3]);
  const __m256 a = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
  const __m256 b = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
  const __m256 c = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
  const __m256 d = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
  // a = tile0 | tile4, b = tile1 | tile5, c = tile2 | tile6, d = tile3 | tile7 (4 floats each).
  _mm_storeu_ps(dst[0], _mm256_castps256_ps128(a));
  _mm_storeu_ps(dst[1], _mm256_castps256_ps128(b));
  _mm_storeu_ps(dst[2], _mm256_castps256_ps128(c));
  _mm_storeu_ps(dst[3], _mm256_castps256_ps128(d));
  _mm_storeu_ps(dst[4], _mm256_extractf128_ps(a, 1));
  _mm_storeu_ps(dst[5], _mm256_extractf128_ps(b, 1));
  _mm_storeu_ps(dst[6], _mm256_extractf128_ps(c, 1));
  _mm_storeu_ps(dst[7], _mm256_extractf128_ps(d, 1));
}

}  // namespace

bool f32_wino_f4x3_ftrans_panel__avx2_fma(const float* g, int64_t lane_stride, int64_t in_stride,
                                          int64_t tap_stride, int n, int64_t nc, float* dst,
                                          int64_t xi_stride) {
  // Lanes i >= n read kernel 0 (valid memory) and are zeroed before the transform.
  int64_t lane[6];
  for (int i = 0; i < 6; ++i) lane[i] = (i < n ? i : 0) * lane_stride;
  const __m256 keep = _mm256_castsi256_ps(
      _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
  const __m256 q = _mm256_set1_ps(0.25f), m6 = _mm256_set1_ps(-1.f / 6.f);
  const __m256 c24 = _mm256_set1_ps(1.f / 24.f), c12 = _mm256_set1_ps(1.f / 12.f),
               c6 = _mm256_set1_ps(1.f / 6.f);
  __m256 acc = _mm256_setzero_ps();  // NaN once a tap is not finite (acc |= tap * 0)
  // s (6) = G (a, b, c)^T, lane-wise.
  auto gt = [&](__m256 a, __m256 b, __m256 c, __m256* s) {
    s[0] = _mm256_mul_ps(a, q);
    s[1] = _mm256_mul_ps(_mm256_add_ps(_mm256_add_ps(a, b), c), m6);
    s[2] = _mm256_mul_ps(_mm256_add_ps(_mm256_sub_ps(a, b), c), m6);
    s[3] = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(a, c24), _mm256_mul_ps(b, c12)),
                         _mm256_mul_ps(c, c6));
    s[4] = _mm256_add_ps(_mm256_sub_ps(_mm256_mul_ps(a, c24), _mm256_mul_ps(b, c12)),
                         _mm256_mul_ps(c, c6));
    s[5] = c;
  };
  const __m256i rev = _mm256_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0);
  for (int64_t c = 0; c < nc; ++c) {
    const float* gc = g + c * in_stride;
    __m256 gv[9];  // gv[t] lane i = tap t of kernel i
    if (tap_stride == 1 || tap_stride == -1) {
      // Each kernel's 9 taps are contiguous: taps 0..7 in one load, then an 8x8 transpose.
      __m256 k8[8];
      float t8[6];
      for (int i = 0; i < 6; ++i) {
        const float* gi = gc + lane[i];
        if (tap_stride == 1) {
          k8[i] = _mm256_loadu_ps(gi);
        } else {
          k8[i] = _mm256_permutevar8x32_ps(_mm256_loadu_ps(gi - 7), rev);
        }
        t8[i] = gi[8 * tap_stride];
      }
      k8[6] = k8[7] = _mm256_setzero_ps();
      transpose8(k8, gv);
      gv[8] = _mm256_setr_ps(t8[0], t8[1], t8[2], t8[3], t8[4], t8[5], 0.f, 0.f);
    } else {
      for (int t = 0; t < 9; ++t) {
        const float* gt0 = gc + t * tap_stride;
        gv[t] = _mm256_setr_ps(gt0[lane[0]], gt0[lane[1]], gt0[lane[2]], gt0[lane[3]], gt0[lane[4]],
                               gt0[lane[5]], 0.f, 0.f);
      }
    }
    for (int t = 0; t < 9; ++t) {
      acc = _mm256_or_ps(acc, _mm256_mul_ps(gv[t], _mm256_setzero_ps()));
      if (n < 6) gv[t] = _mm256_and_ps(gv[t], keep);  // the transform of 0 is 0
    }
    __m256 t6[6][3];  // G g
    for (int j = 0; j < 3; ++j) {
      __m256 s6[6];
      gt(gv[j], gv[3 + j], gv[6 + j], s6);
      for (int i = 0; i < 6; ++i) t6[i][j] = s6[i];
    }
    float* dc = dst + c * 6;
    const bool last = c + 1 == nc;
    for (int i = 0; i < 6; ++i) {
      __m256 u[6];
      gt(t6[i][0], t6[i][1], t6[i][2], u);
      for (int k = 0; k < 6; ++k) {
        const __m256 v = u[k];
        float* o = dc + (6 * i + k) * xi_stride;
        if (!last) {
          _mm256_storeu_ps(o, v);  // lanes 6, 7 land on channel c + 1, written next
        } else {
          _mm_storeu_ps(o, _mm256_castps256_ps128(v));
          _mm_storel_pi(reinterpret_cast<__m64*>(o + 4), _mm256_extractf128_ps(v, 1));
        }
      }
    }
  }
  return _mm256_movemask_ps(_mm256_cmp_ps(acc, acc, _CMP_UNORD_Q)) == 0;
}

namespace {

// The rows of a window: zero chunks, at most one partial chunk (lanes in [j0, j1) only), full
// chunks, a partial chunk, zero chunks. full(iw) and part(iw, mask) load 8 window columns whose
// first reads input column iw. Non-finite values turn `acc` into NaN (acc |= v * 0: the bits of
// +-0 or of a NaN).
template <typename Full, typename Part>
__m256 window_rows(const float* x, int64_t H, int64_t W, int64_t ih0, int64_t iw0, int64_t d,
                   int64_t rows, int64_t cols, float* dst, int64_t ld, int64_t j0, int64_t j1,
                   Full full, Part part) {
  const __m256 zero = _mm256_setzero_ps();
  __m256 acc = zero;
  const int64_t kz0 = j0 / 8, kf0 = (j0 + 7) / 8, kf1 = std::max(kf0, j1 / 8);
  const int64_t ke = (j1 + 7) / 8, kn = cols / 8;
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  auto mask = [&](int64_t k) {  // lanes of chunk k inside [j0, j1)
    const __m256i jj = _mm256_add_epi32(lanes, _mm256_set1_epi32(static_cast<int>(8 * k)));
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(j0)), jj),
                               _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(j1)), jj));
  };
  const __m256i ml = mask(kz0), mr = mask(kf1);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t ih = ih0 + d * r;
    float* o = dst + r * ld;
    if (ih < 0 || ih >= H || j0 == j1) {
      for (int64_t k = 0; k < kn; ++k) _mm256_store_ps(o + 8 * k, zero);
      continue;
    }
    const float* row = x + ih * W;
    int64_t k = 0;
    for (; k < kz0; ++k) _mm256_store_ps(o + 8 * k, zero);
    for (; k < kf0; ++k) {
      const __m256 v = part(row, iw0 + d * 8 * k, ml);
      acc = _mm256_or_ps(acc, _mm256_mul_ps(v, zero));
      _mm256_store_ps(o + 8 * k, v);
    }
    for (; k < kf1; ++k) {
      const __m256 v = full(row, iw0 + d * 8 * k);
      acc = _mm256_or_ps(acc, _mm256_mul_ps(v, zero));
      _mm256_store_ps(o + 8 * k, v);
    }
    for (; k < ke; ++k) {
      const __m256 v = part(row, iw0 + d * 8 * k, mr);
      acc = _mm256_or_ps(acc, _mm256_mul_ps(v, zero));
      _mm256_store_ps(o + 8 * k, v);
    }
    for (; k < kn; ++k) _mm256_store_ps(o + 8 * k, zero);
  }
  return acc;
}

}  // namespace

bool f32_wino_window__avx2(const float* x, int64_t H, int64_t W, int64_t ih0, int64_t iw0,
                           int64_t d, int64_t rows, int64_t cols, float* dst, int64_t ld) {
  // Columns j0 <= j < j1 read inside the row: 0 <= iw0 + d j < W.
  // (Divisions only where d > 1: this runs for every task, channel and row run.)
  auto ceil_div = [d](int64_t v) { return d == 1 ? v : (v + d - 1) / d; };
  const int64_t j0 = std::min(cols, iw0 >= 0 ? 0 : ceil_div(-iw0));
  const int64_t j1 = std::clamp<int64_t>(W - iw0 <= 0 ? 0 : ceil_div(W - iw0), j0, cols);
  const __m256i step = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                          _mm256_set1_epi32(static_cast<int>(d)));
  // Masked-off lanes are never read (maskload, masked gather).
  auto gather_part = [&](const float* row, int64_t iw, __m256i m) {
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), row + iw, step, _mm256_castsi256_ps(m), 4);
  };
  __m256 acc;
  if (d == 1) {
    acc = window_rows(
        x, H, W, ih0, iw0, d, rows, cols, dst, ld, j0, j1,
        [](const float* row, int64_t iw) { return _mm256_loadu_ps(row + iw); },
        [](const float* row, int64_t iw, __m256i m) { return _mm256_maskload_ps(row + iw, m); });
  } else if (d == 2) {
    // The even floats of row[iw .. iw + 15) (evens_avx2.h), through masked loads where a chunk
    // reaches past the row (a gather is several times slower). Sample j of a chunk is float 2 j:
    // lanes 0, 2, 4, 6 of the load at iw (samples 0..3) and 1, 3, 5, 7 of the load at iw + 7
    // (samples 4..7); the other lanes are never read.
    const __m256i lo_idx = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    const __m256i hi_idx = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
    const __m256i even = _mm256_setr_epi32(-1, 0, -1, 0, -1, 0, -1, 0);
    const __m256i odd = _mm256_setr_epi32(0, -1, 0, -1, 0, -1, 0, -1);
    auto masked = [&](const float* row, int64_t iw, __m256i m) {  // m: the chunk's valid samples
      const __m256i lo = _mm256_and_si256(_mm256_permutevar8x32_epi32(m, lo_idx), even);
      const __m256i hi = _mm256_and_si256(_mm256_permutevar8x32_epi32(m, hi_idx), odd);
      return evens(_mm256_maskload_ps(row + iw, lo), _mm256_maskload_ps(row + iw + 7, hi));
    };
    const __m256i all = _mm256_set1_epi32(-1);
    acc = window_rows(
        x, H, W, ih0, iw0, d, rows, cols, dst, ld, j0, j1,
        [&](const float* row, int64_t iw) {
          if (iw + 15 > W) return masked(row, iw, all);  // its last sample is the row's last
          return evens(_mm256_loadu_ps(row + iw), _mm256_loadu_ps(row + iw + 7));
        },
        masked);
  } else {
    acc = window_rows(
        x, H, W, ih0, iw0, d, rows, cols, dst, ld, j0, j1,
        [&](const float* row, int64_t iw) { return _mm256_i32gather_ps(row + iw, step, 4); },
        gather_part);
  }
  return _mm256_movemask_ps(_mm256_cmp_ps(acc, acc, _CMP_UNORD_Q)) == 0;
}

void f32_wino_f4x3_itrans8__avx2_fma(const float* const tile[8], int64_t ld, float* v,
                                     int64_t vstride) {
  __m256 t[6][6];  // t[r][xc]: row r after the column transform
  for (int r = 0; r < 6; ++r) {
    const int64_t off = r * ld;
    // lo[k] = tile k's columns 0..3 | tile k+4's; hi[k] the same for columns 4..7.
    __m256 lo[4], hi[4];
    for (int k = 0; k < 4; ++k) {
      const float* a = tile[k] + off;
      const float* b = tile[k + 4] + off;
      lo[k] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(a)), _mm_loadu_ps(b), 1);
      hi[k] =
          _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(a + 4)), _mm_loadu_ps(b + 4), 1);
    }
    // q[c] lane t = column c of tile t (columns 4, 5 from the second halves' 4x4 transposes).
    __m256 q[6];
    columns4(lo, q);
    const __m256 e01 = _mm256_unpacklo_ps(hi[0], hi[1]), e23 = _mm256_unpacklo_ps(hi[2], hi[3]);
    q[4] = _mm256_shuffle_ps(e01, e23, 0x44);
    q[5] = _mm256_shuffle_ps(e01, e23, 0xEE);
    bt6(q, t[r]);
  }
  for (int c = 0; c < 6; ++c) {
    const __m256 col[6] = {t[0][c], t[1][c], t[2][c], t[3][c], t[4][c], t[5][c]};
    __m256 r[6];
    bt6(col, r);
    for (int i = 0; i < 6; ++i) _mm256_storeu_ps(v + (6 * i + c) * vstride, r[i]);
  }
}

void f32_wino_f4x3_gtrans8__avx2_fma(const float* const tile[8], int64_t ld, float* e,
                                     int64_t estride) {
  __m256 h[4][6];  // h[r][xc]: row r after the column transform
  for (int r = 0; r < 4; ++r) {
    const int64_t off = r * ld;
    __m256 lo[4];  // tile k's row r | tile k+4's
    for (int k = 0; k < 4; ++k)
      lo[k] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(tile[k] + off)),
                                   _mm_loadu_ps(tile[k + 4] + off), 1);
    __m256 q[4];  // q[c] lane t = column c of tile t
    columns4(lo, q);
    a6(q, h[r]);
  }
  for (int c = 0; c < 6; ++c) {
    const __m256 col[4] = {h[0][c], h[1][c], h[2][c], h[3][c]};
    __m256 r[6];
    a6(col, r);
    for (int i = 0; i < 6; ++i) _mm256_storeu_ps(e + (6 * i + c) * estride, r[i]);
  }
}

void f32_wino_panel_rows__avx2(const float* src, int64_t src_xs, int width, float* dst,
                               int64_t dst_xs, int64_t k_stride) {
  for (int xi = 0; xi < 36; ++xi) {
    const float* s = src + xi * src_xs;
    float* d = dst + xi * dst_xs;
    __m256 in[8], out[8];
    for (int i = 0; i < 8; ++i) in[i] = _mm256_loadu_ps(s + 8 * i);
    transpose8(in, out);
    if (width == 8) {
      for (int t = 0; t < 8; ++t) _mm256_store_ps(d + t * k_stride, out[t]);
    } else {
      for (int t = 0; t < 8; ++t) {
        float* o = d + t * k_stride;
        _mm_storeu_ps(o, _mm256_castps256_ps128(out[t]));
        _mm_storel_pi(reinterpret_cast<__m64*>(o + 4), _mm256_extractf128_ps(out[t], 1));
      }
    }
  }
}

void f32_wino_f4x3_wgrad8__avx2_fma(const float* m, int64_t m_xs, int64_t n, float* gw) {
  const __m256 q = _mm256_set1_ps(0.25f), c6 = _mm256_set1_ps(1.f / 6.f),
               c12 = _mm256_set1_ps(1.f / 12.f), c24 = _mm256_set1_ps(1.f / 24.f);
  // r (3) = G^T (v0 .. v5), lane-wise; G^T's rows: (1/4 -1/6 -1/6 1/24 1/24 0),
  // (0 -1/6 1/6 1/12 -1/12 0), (0 -1/6 -1/6 1/6 1/6 1).
  auto gt = [&](const __m256 v[6], __m256 r[3]) {
    const __m256 s12 = _mm256_add_ps(v[1], v[2]), d21 = _mm256_sub_ps(v[2], v[1]);
    const __m256 s34 = _mm256_add_ps(v[3], v[4]), d34 = _mm256_sub_ps(v[3], v[4]);
    r[0] = _mm256_fmadd_ps(v[0], q, _mm256_fmsub_ps(s34, c24, _mm256_mul_ps(s12, c6)));
    r[1] = _mm256_fmadd_ps(d21, c6, _mm256_mul_ps(d34, c12));
    r[2] = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(s34, s12), c6), v[5]);
  };
  __m256 t[3][6];  // G^T M: t[k][s]
  for (int s = 0; s < 6; ++s) {
    __m256 col[6], r[3];
    for (int r6 = 0; r6 < 6; ++r6) col[r6] = _mm256_loadu_ps(m + (6 * r6 + s) * m_xs);
    gt(col, r);
    for (int k = 0; k < 3; ++k) t[k][s] = r[k];
  }
  alignas(32) float out[9][8];
  for (int k = 0; k < 3; ++k) {
    __m256 r[3];
    gt(t[k], r);
    for (int l = 0; l < 3; ++l) _mm256_store_ps(out[3 * k + l], r[l]);
  }
  for (int64_t l = 0; l < n; ++l)
    for (int i = 0; i < 9; ++i) gw[l * 9 + i] = out[i][l];
}

void f32_wino_f4x3_otrans8__avx2_fma(const float* m, int64_t mstride, float bias,
                                     float* const dst[8], const int64_t ld[8], int64_t cs) {
  __m256 t[4][6];  // t[i][xc] = (A^T M)[i][xc]
  for (int c = 0; c < 6; ++c) {
    __m256 col[6];
    for (int r = 0; r < 6; ++r) col[r] = _mm256_loadu_ps(m + (6 * r + c) * mstride);
    __m256 o[4];
    at4(col, o);
    for (int i = 0; i < 4; ++i) t[i][c] = o[i];
  }
  const __m256 vb = _mm256_set1_ps(bias);
  for (int i = 0; i < 4; ++i) {
    __m256 o[4];
    at4(t[i], o);
    for (int j = 0; j < 4; ++j) o[j] = _mm256_add_ps(o[j], vb);
    float* row[8];
    for (int k = 0; k < 8; ++k) row[k] = dst[k] + i * ld[k];
    if (cs == 1) {
      store_rows(o, row);
    } else {
      // o[j] lane k = element (i, j) of tile k.
      alignas(32) float e[4][8];
      for (int j = 0; j < 4; ++j) _mm256_store_ps(e[j], o[j]);
      for (int k = 0; k < 8; ++k)
        for (int j = 0; j < 4; ++j) row[k][j * cs] = e[j][k];
    }
  }
}

void f32_wino_gemm_6x8__avx2_fma(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                 int64_t mr, bool accumulate) {
  __m256 acc[6];
  for (int i = 0; i < 6; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k, a += 6, b += 16) {
    const __m256 bk = _mm256_load_ps(b);
    for (int i = 0; i < 6; ++i) acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + i), bk, acc[i]);
  }
  for (int64_t i = 0; i < mr; ++i) {
    float* ci = c + i * ldc;
    _mm256_storeu_ps(ci, accumulate ? _mm256_add_ps(_mm256_loadu_ps(ci), acc[i]) : acc[i]);
  }
}

void f32_wino_gemm_12x8__avx2_fma(int64_t kc, const float* a0, const float* a1, const float* b,
                                  float* c, int64_t ldc, int64_t mr, bool accumulate) {
  // 12 independent accumulators keep both FMA pipes busy (6 would wait on the FMA latency).
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k, a0 += 6, a1 += 6, b += 16) {
    const __m256 bk = _mm256_load_ps(b);
    for (int i = 0; i < 6; ++i) {
      acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + i), bk, acc[i]);
      acc[6 + i] = _mm256_fmadd_ps(_mm256_broadcast_ss(a1 + i), bk, acc[6 + i]);
    }
  }
  for (int64_t i = 0; i < mr; ++i) {
    float* ci = c + i * ldc;
    _mm256_storeu_ps(ci, accumulate ? _mm256_add_ps(_mm256_loadu_ps(ci), acc[i]) : acc[i]);
  }
}

}  // namespace convkit::kernels::winograd
