// Winograd F(4x4, 3x3) input and output transforms, 8 tiles per call in the 8 lanes of a ymm.
#include <immintrin.h>

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

// From 40 floats x[0 .. 40): q[c][t] = x[4t + c] for c < 6, t < 8.
inline void deinterleave(const float* x, __m256 q[6]) {
  // 8 groups of 4: rows of a 8x4 matrix; transpose to 4 vectors of 8.
  const __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
  const __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
  // Lane halves: v0 = g0 | g1, v1 = g2 | g3, v2 = g4 | g5, v3 = g6 | g7.
  const __m256 a = _mm256_permute2f128_ps(v0, v2, 0x20);  // g0 | g4
  const __m256 b = _mm256_permute2f128_ps(v0, v2, 0x31);  // g1 | g5
  const __m256 c = _mm256_permute2f128_ps(v1, v3, 0x20);  // g2 | g6
  const __m256 d = _mm256_permute2f128_ps(v1, v3, 0x31);  // g3 | g7
  // 4x4 transposes inside each 128-bit half: groups (a, b, c, d) -> columns, order g0 g1 g2 g3.
  const __m256 t0 = _mm256_unpacklo_ps(a, b), t1 = _mm256_unpackhi_ps(a, b);
  const __m256 t2 = _mm256_unpacklo_ps(c, d), t3 = _mm256_unpackhi_ps(c, d);
  // Lane order after this: [g0 g1 g2 g3 | g4 g5 g6 g7] per column.
  q[0] = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
  q[1] = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
  q[2] = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
  q[3] = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
  // Columns 4 and 5 are columns 0 and 1 of the next tile: shift by one lane, pull in x[32], x[33].
  const __m256i next = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7);
  q[4] = _mm256_blend_ps(_mm256_permutevar8x32_ps(q[0], next), _mm256_broadcast_ss(x + 32), 0x80);
  q[5] = _mm256_blend_ps(_mm256_permutevar8x32_ps(q[1], next), _mm256_broadcast_ss(x + 33), 0x80);
}

// Inverse of the first half of deinterleave: out[4t + j] = o[j][t], j < 4, t < 8.
inline void interleave(const __m256 o[4], float* out) {
  const __m256 t0 = _mm256_unpacklo_ps(o[0], o[1]), t1 = _mm256_unpackhi_ps(o[0], o[1]);
  const __m256 t2 = _mm256_unpacklo_ps(o[2], o[3]), t3 = _mm256_unpackhi_ps(o[2], o[3]);
  const __m256 a = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
  const __m256 b = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
  const __m256 c = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
  const __m256 d = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
  // a = tile0 | tile4, b = tile1 | tile5, c = tile2 | tile6, d = tile3 | tile7 (4 floats each).
  _mm256_storeu_ps(out, _mm256_permute2f128_ps(a, b, 0x20));
  _mm256_storeu_ps(out + 8, _mm256_permute2f128_ps(c, d, 0x20));
  _mm256_storeu_ps(out + 16, _mm256_permute2f128_ps(a, b, 0x31));
  _mm256_storeu_ps(out + 24, _mm256_permute2f128_ps(c, d, 0x31));
}

}  // namespace

void f32_wino_f4x3_ftrans6__avx2_fma(const float* g, int64_t lane_stride, int64_t tap_stride, int n,
                                     float* dst, int64_t xi_stride) {
  // gv[t] lane i = tap t of kernel i.
  alignas(32) float lanes[9][8] = {};
  for (int i = 0; i < n; ++i)
    for (int t = 0; t < 9; ++t) lanes[t][i] = g[i * lane_stride + t * tap_stride];
  __m256 gv[9];
  for (int t = 0; t < 9; ++t) gv[t] = _mm256_load_ps(lanes[t]);
  const __m256 q = _mm256_set1_ps(0.25f), m6 = _mm256_set1_ps(-1.f / 6.f);
  const __m256 c24 = _mm256_set1_ps(1.f / 24.f), c12 = _mm256_set1_ps(1.f / 12.f),
               c6 = _mm256_set1_ps(1.f / 6.f);
  // s (6) = G v (3), lane-wise; the same expressions as f32_wino_f4x3_ftrans.
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
  __m256 t6[6][3];  // G g
  for (int j = 0; j < 3; ++j) {
    __m256 s6[6];
    gt(gv[j], gv[3 + j], gv[6 + j], s6);
    for (int i = 0; i < 6; ++i) t6[i][j] = s6[i];
  }
  const __m256i mask = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
  for (int i = 0; i < 6; ++i) {
    __m256 u[6];
    gt(t6[i][0], t6[i][1], t6[i][2], u);
    for (int k = 0; k < 6; ++k) _mm256_maskstore_ps(dst + (6 * i + k) * xi_stride, mask, u[k]);
  }
}

void f32_wino_f4x3_itrans8__avx2_fma(const float* const rows[6], float* v, int64_t vstride) {
  __m256 t[6][6];  // t[r][xc]: row r after the column transform
  for (int r = 0; r < 6; ++r) {
    __m256 q[6];
    deinterleave(rows[r], q);
    bt6(q, t[r]);
  }
  for (int c = 0; c < 6; ++c) {
    const __m256 col[6] = {t[0][c], t[1][c], t[2][c], t[3][c], t[4][c], t[5][c]};
    __m256 r[6];
    bt6(col, r);
    for (int i = 0; i < 6; ++i) _mm256_storeu_ps(v + (6 * i + c) * vstride, r[i]);
  }
}

void f32_wino_f4x3_otrans8__avx2_fma(const float* m, int64_t mstride, float bias, float* out,
                                     int64_t ostride) {
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
    interleave(o, out + i * ostride);
  }
}

}  // namespace convkit::kernels::winograd
