// AVX2 phase interleave (contract in interleave.h). Compiled with -mavx2 -mfma only.
// Stride 2: columns of the two phases are unpacked into consecutive gx floats. The rows of a block
// go out in memory order, so with t.stream whole lines are written without being read first
// (non-temporal stores only): half the memory traffic of plain stores for a gx larger than the
// caches.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/phase/interleave.h"

namespace convkit::kernels::phase {

namespace {

// *d = v, non-temporal.
inline void stream1(float* d, float v) {
  int bits;
  std::memcpy(&bits, &v, sizeof bits);
  _mm_stream_si32(reinterpret_cast<int*>(d), bits);
}

}  // namespace

void interleave__avx2(const Interleave& t) {
  if (t.sW != 2) {
    interleave(t);
    return;
  }
  const int64_t w0 = t.width[0], w1 = t.width[1], rmax = t.rows[0];
  for (int64_t ch = 0; ch < t.C; ++ch)
    for (int64_t r = 0; r < rmax; ++r)
      for (int64_t a = 0; a < t.sH && r < t.rows[a]; ++a) {
        float* d = t.gx + ch * t.plane + (a + t.sH * r) * t.W;
        const float* s0 = t.src + a * 2 * t.ps + (ch * t.rows[a] + r) * t.ld;
        const float* s1 = s0 + t.ps;
        int64_t x = 0;
        if (t.stream) {
          // Every store of a streamed row is non-temporal (a plain store into a line being
          // streamed would flush it half-written): pairs one float at a time until d + 2x is
          // 16-byte aligned (all of them when d is not 8-byte aligned), then 4 pairs at a time.
          const bool even = (reinterpret_cast<uintptr_t>(d) & 7) == 0;
          for (; x < w1 && (!even || (reinterpret_cast<uintptr_t>(d + 2 * x) & 15) != 0); ++x)
            stream1(d + 2 * x, s0[x]), stream1(d + 2 * x + 1, s1[x]);
          for (; x + 4 <= w1; x += 4) {  // lo = a0 b0 a1 b1, hi = a2 b2 a3 b3
            const __m128 a4 = _mm_loadu_ps(s0 + x), b4 = _mm_loadu_ps(s1 + x);
            _mm_stream_ps(d + 2 * x, _mm_unpacklo_ps(a4, b4));
            _mm_stream_ps(d + 2 * x + 4, _mm_unpackhi_ps(a4, b4));
          }
          for (; x < w1; ++x) stream1(d + 2 * x, s0[x]), stream1(d + 2 * x + 1, s1[x]);
          if (w0 > w1) stream1(d + 2 * w1, s0[w1]);
          continue;
        }
        for (; x + 8 <= w1; x += 8) {
          const __m256 a8 = _mm256_loadu_ps(s0 + x), b8 = _mm256_loadu_ps(s1 + x);
          const __m256 lo = _mm256_unpacklo_ps(a8, b8), hi = _mm256_unpackhi_ps(a8, b8);
          // lo = a0 b0 a1 b1 | a4 b4 a5 b5, hi = a2 b2 a3 b3 | a6 b6 a7 b7
          _mm256_storeu_ps(d + 2 * x, _mm256_permute2f128_ps(lo, hi, 0x20));
          _mm256_storeu_ps(d + 2 * x + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
        }
        for (; x < w1; ++x) d[2 * x] = s0[x], d[2 * x + 1] = s1[x];
        if (w0 > w1) d[2 * w1] = s0[w1];
      }
  if (t.stream) _mm_sfence();  // the streamed lines are in memory order before the caller goes on
}

}  // namespace convkit::kernels::phase
