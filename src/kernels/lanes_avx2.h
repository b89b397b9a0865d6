// Lane masks for AVX2 masked loads and stores, shared by the AVX2 kernels (include it only from
// *_avx2.cpp files: it is compiled with their -mavx2 flags). Internal linkage, as transpose_avx2.h.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace convkit::kernels {
namespace {

// Lanes [0, n) set (all bits), the rest clear; 0 <= n <= 8.
inline __m256i first_lanes(int64_t n) {
  alignas(32) static constexpr int32_t table[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                    0,  0,  0,  0,  0,  0,  0,  0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(table + 8 - n));
}

}  // namespace
}  // namespace convkit::kernels
