// AVX2+FMA row primitives of the direct kernels (contracts in rows.h).
#include <immintrin.h>

#include <cmath>

#include "kernels/direct/rows.h"

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
      // Even elements of x[2i .. 2i+16): shuffle the two halves, then fix the lane order.
      const __m256 lo = _mm256_loadu_ps(x + 2 * i), hi = _mm256_loadu_ps(x + 2 * i + 8);
      const __m256 ev = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
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

}  // namespace

const RowOps rows_avx2{axpy, axpy_scatter, dot};

}  // namespace convkit::kernels::direct
