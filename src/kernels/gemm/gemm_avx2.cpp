// f32_gemm_6x16__avx2_fma: 6 rows x 16 columns of C in 12 ymm accumulators; per k one 16-wide row
// of B (2 loads), 6 broadcasts of A and 12 FMAs. Compiled with -mavx2 -mfma only.
// Panels of 4 rows or fewer (the last one of M = 64, 128, ...) take a 4-row loop, so they do not
// pay 12 FMAs per k for 8 or fewer results.
// f32_gemm_6x16_inplace__avx2_fma is the same loop, optionally reading B's rows in place (ldb
// apart; masked loads for a short last panel) and storing each as the packed panel row it uses,
// prefetching rows for the next call and adding a bias as it stores.
// The k loops are unrolled 4 times: at 2 threads the loop's own instructions cost throughput (an
// L1-resident 6x16 tile, kc 256, two threads side by side, against 10 FMA chains: 0.79-0.90 of
// their rate rolled, 0.89-1.11 unrolled, medians 0.82 and 0.96 over 10 rounds).
// The C tile's lines are prefetched before the k loop, so a tile that is not in cache (a large
// output written once) arrives while the FMAs run instead of stalling the stores; short calls
// prefetch the next micro-panel's tile as well (kShortK).
#include <immintrin.h>

#include <algorithm>

#include "kernels/gemm/gemm.h"
#include "kernels/lanes_avx2.h"
#include "kernels/transpose_avx2.h"

namespace convkit::kernels::gemm {

namespace {

// Calls shorter than this end before a C line prefetched at their start arrives from memory, so
// they also prefetch (into L2) the tile one micro-panel to the right: the drivers run every A
// panel on a micro-panel before the next, so that tile's call comes a whole sweep of calls later.
// (A 1x1 layer with K = 24 and O = 144 writes 7 MB of y: 1.32 -> 0.93 ms at 2 threads.)
constexpr int64_t kShortK = 128;

// ROWS (6 or 4) rows of the tile; with Pack, B row k is read from src + k * ldb (nr floats) and
// stored to b + k * NR (zeros past nr) before use, else read from the packed panel b. With Extra,
// x's bias and prefetches (f32_gemm_6x16_inplace__avx2_fma's contract in gemm.h) apply. With
// ARows, A(i, k) is a[i * lda + k] (rows past mr repeat row mr - 1, never stored), else the
// packed panel's a[k * MR + i].
template <int ROWS, bool Pack, bool Extra, bool ARows = false, int64_t KFixed = 0>
inline __attribute__((always_inline)) void tile(int64_t kc_arg, const float* a, const float* src,
                                                int64_t ldb, float* b, float* c, int64_t ldc,
                                                int64_t mr, int64_t nr, bool accumulate,
                                                const InplaceArgs* x, int64_t lda = 0) {
  const int64_t kc = KFixed ? KFixed : kc_arg;
  const float* ar[ROWS];
  if constexpr (ARows)
    for (int i = 0; i < ROWS; ++i) ar[i] = a + (i < mr ? i : mr - 1) * lda;
  int64_t ka = 0;  // the A column (ARows)
  __m256 acc[ROWS][2];
#pragma GCC unroll 8
  for (int i = 0; i < ROWS; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t i = 0; i < mr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + nr - 1), _MM_HINT_T0);
  }
  if (kc < kShortK)
    for (int64_t i = 0; i < mr; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 2 * NR - 1), _MM_HINT_T1);
    }
  const __m256i m0 = first_lanes(nr < 8 ? nr : 8), m1 = first_lanes(nr > 8 ? nr - 8 : 0);
  const auto step = [&]() __attribute__((always_inline)) {
    __m256 b0, b1;
    if constexpr (Pack) {
      if (nr == NR) {
        b0 = _mm256_loadu_ps(src), b1 = _mm256_loadu_ps(src + 8);
      } else {
        b0 = _mm256_maskload_ps(src, m0), b1 = _mm256_maskload_ps(src + 8, m1);
      }
      _mm256_store_ps(b, b0), _mm256_store_ps(b + 8, b1);
      src += ldb;
    } else {
      b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    }
#pragma GCC unroll 8
    for (int i = 0; i < ROWS; ++i) {
      const __m256 ai = _mm256_broadcast_ss(ARows ? ar[i] + ka : a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
    if constexpr (ARows)
      ++ka;
    else
      a += MR;
    b += NR;
  };
  if constexpr (Extra) {
    // One prefetch per pf_every iterations (the rest, if any, after the loop).
    const int64_t every = x->pf_n > 0 ? x->pf_every : kc;
    int64_t r = 0;
    for (int64_t k0 = 0; k0 < kc; k0 += every) {
      if (r < x->pf_n) __builtin_prefetch(x->pf + r++ * x->pf_ld, 0, 2);
      const int64_t k1 = k0 + every < kc ? k0 + every : kc;
#pragma GCC unroll 4
      for (int64_t k = k0; k < k1; ++k) step();
    }
    for (; r < x->pf_n; ++r) __builtin_prefetch(x->pf + r * x->pf_ld, 0, 2);
  } else {
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; ++k) step();
  }
  // The bias row by row, after the sum (and after adding the old C): an epilogue's rounding.
  __m256 bias[ROWS];
#pragma GCC unroll 8
  for (int i = 0; i < ROWS; ++i)
    bias[i] = Extra && x->bias && i < mr ? _mm256_broadcast_ss(x->bias + i) : _mm256_setzero_ps();
  const bool with_bias = Extra && x->bias;
  if (nr == NR) {
#pragma GCC unroll 8
    for (int i = 0; i < ROWS; ++i) {
      if (i >= mr) break;
      float* ci = c + i * ldc;
      __m256 v0 = acc[i][0], v1 = acc[i][1];
      if (accumulate) {
        v0 = _mm256_add_ps(_mm256_loadu_ps(ci), v0);
        v1 = _mm256_add_ps(_mm256_loadu_ps(ci + 8), v1);
      }
      if (with_bias) v0 = _mm256_add_ps(v0, bias[i]), v1 = _mm256_add_ps(v1, bias[i]);
      _mm256_storeu_ps(ci, v0);
      _mm256_storeu_ps(ci + 8, v1);
    }
    return;
  }
  alignas(32) float t[ROWS][16];
#pragma GCC unroll 8
  for (int i = 0; i < ROWS; ++i) {
    _mm256_store_ps(t[i], acc[i][0]);
    _mm256_store_ps(t[i] + 8, acc[i][1]);
  }
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t j = 0; j < nr; ++j) {
      const float v = accumulate ? c[i * ldc + j] + t[i][j] : t[i][j];
      c[i * ldc + j] = with_bias ? v + x->bias[i] : v;
    }
}

// Six-row tiles of full K blocks (kc == KC, every block but a GEMM's last) run a copy with the
// trip count fixed: 0.85-0.87 -> 0.89-0.93 of the FMA chains' rate at 2 threads (L1-resident
// tile, 10 rounds side by side with the runtime-kc copy).
template <bool Pack, bool Extra, bool ARows = false>
inline __attribute__((always_inline)) void tile6(int64_t kc, const float* a, const float* src,
                                                 int64_t ldb, float* b, float* c, int64_t ldc,
                                                 int64_t mr, int64_t nr, bool accumulate,
                                                 const InplaceArgs* x, int64_t lda = 0) {
  if (kc == KC)
    tile<6, Pack, Extra, ARows, KC>(kc, a, src, ldb, b, c, ldc, mr, nr, accumulate, x, lda);
  else
    tile<6, Pack, Extra, ARows>(kc, a, src, ldb, b, c, ldc, mr, nr, accumulate, x, lda);
}

}  // namespace

void f32_gemm_6x16__avx2_fma(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                             int64_t mr, int64_t nr, bool accumulate) {
  float* bp = const_cast<float*>(b);  // read only: Pack is false
  if (mr <= 4)
    tile<4, false, false>(kc, a, nullptr, 0, bp, c, ldc, mr, nr, accumulate, nullptr);
  else
    tile6<false, false>(kc, a, nullptr, 0, bp, c, ldc, mr, nr, accumulate, nullptr);
}

void f32_gemm_6x16_arows__avx2_fma(int64_t kc, const float* a, int64_t lda, const float* b,
                                   float* c, int64_t ldc, int64_t mr, int64_t nr, bool accumulate,
                                   const float* bias) {
  float* bp = const_cast<float*>(b);  // read only: Pack is false
  if (bias) {
    InplaceArgs x;
    x.bias = bias;
    if (mr <= 4)
      tile<4, false, true, true>(kc, a, nullptr, 0, bp, c, ldc, mr, nr, accumulate, &x, lda);
    else
      tile6<false, true, true>(kc, a, nullptr, 0, bp, c, ldc, mr, nr, accumulate, &x, lda);
  } else if (mr <= 4) {
    tile<4, false, false, true>(kc, a, nullptr, 0, bp, c, ldc, mr, nr, accumulate, nullptr, lda);
  } else {
    tile6<false, false, true>(kc, a, nullptr, 0, bp, c, ldc, mr, nr, accumulate, nullptr, lda);
  }
}

void f32_gemm_6x16_inplace__avx2_fma(int64_t kc, const float* a, float* b, float* c, int64_t ldc,
                                     int64_t mr, int64_t nr, bool accumulate,
                                     const InplaceArgs& x) {
  if (x.src && !x.bias && x.pf_n == 0) {
    if (mr <= 4)
      tile<4, true, false>(kc, a, x.src, x.ldb, b, c, ldc, mr, nr, accumulate, nullptr);
    else
      tile6<true, false>(kc, a, x.src, x.ldb, b, c, ldc, mr, nr, accumulate, nullptr);
  } else if (x.src) {
    if (mr <= 4)
      tile<4, true, true>(kc, a, x.src, x.ldb, b, c, ldc, mr, nr, accumulate, &x);
    else
      tile6<true, true>(kc, a, x.src, x.ldb, b, c, ldc, mr, nr, accumulate, &x);
  } else {
    if (mr <= 4)
      tile<4, false, true>(kc, a, nullptr, 0, b, c, ldc, mr, nr, accumulate, &x);
    else
      tile6<false, true>(kc, a, nullptr, 0, b, c, ldc, mr, nr, accumulate, &x);
  }
}

void pack_a_rows__avx2(const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                       float* dst) {
  static_assert(MR == 6);
  for (int64_t r = 0; r < mc; r += MR) {
    const int64_t rows = std::min(MR, mc - r);
    const float* src[MR];
    for (int64_t i = 0; i < MR; ++i) src[i] = A + (i0 + r + std::min(i, rows - 1)) * lda + k0;
    float* d = dst + r * kc;
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
      __m256 v[8], t[8];
      for (int64_t i = 0; i < MR; ++i)
        v[i] = i < rows ? _mm256_loadu_ps(src[i] + k) : _mm256_setzero_ps();
      v[6] = v[7] = _mm256_setzero_ps();
      transpose8(v, t);  // t[j] lane i = A(r + i, k0 + k + j)
      // 8 floats a store, each spilling 2 into the next k's row until the last (6 floats).
      for (int j = 0; j < 7; ++j) _mm256_storeu_ps(d + (k + j) * MR, t[j]);
      _mm_storeu_ps(d + (k + 7) * MR, _mm256_castps256_ps128(t[7]));
      _mm_storel_pi(reinterpret_cast<__m64*>(d + (k + 7) * MR + 4), _mm256_extractf128_ps(t[7], 1));
    }
    for (; k < kc; ++k)
      for (int64_t i = 0; i < MR; ++i) d[k * MR + i] = i < rows ? src[i][k] : 0.f;
  }
}

}  // namespace convkit::kernels::gemm
