// Stride-2 gathers in AVX registers (every other float of a row), shared by the AVX2 kernels that
// split inputs into stride phases: the im2col packs and smallc's buffer fill. Include it only from
// *_avx2.cpp files (compiled with -mavx2); internal linkage, as transpose_avx2.h.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace convkit::kernels {
namespace {

// The evens of lo = row[0 .. 8) and hi = row[7 .. 15): row[0], row[2], .. row[14]. Per 128-bit
// lane take lo[0], lo[2], hi[1], hi[3] (offsets {0,2,8,10 | 4,6,12,14}), then swap the middle
// 64-bit pairs.
inline __m256 evens(__m256 lo, __m256 hi) {
  const __m256 mix = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 2, 0));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(mix), 0xD8));
}

// d[i] = row[2 i] for the whole blocks of 8 in i < len; returns how many were copied (a multiple
// of 8). Reads only row[0 .. 2 (len - 1)]: a block's last load ends at its last even sample.
inline int64_t copy_evens_blocks(const float* row, int64_t len, float* d) {
  int64_t i = 0;
  for (; i + 8 <= len; i += 8)
    _mm256_storeu_ps(d + i, evens(_mm256_loadu_ps(row + 2 * i), _mm256_loadu_ps(row + 2 * i + 7)));
  return i;
}

}  // namespace
}  // namespace convkit::kernels
