// Portable phase interleave (contract in interleave.h).
#include "kernels/phase/interleave.h"

namespace convkit::kernels::phase {

void interleave(const Interleave& t) {
  const int64_t rmax = t.rows[0];
  for (int64_t ch = 0; ch < t.C; ++ch)
    for (int64_t r = 0; r < rmax; ++r)
      for (int64_t a = 0; a < t.sH && r < t.rows[a]; ++a) {
        float* d = t.gx + ch * t.plane + (a + t.sH * r) * t.W;
        const float* s = t.src + a * t.sW * t.ps + (ch * t.rows[a] + r) * t.ld;
        if (t.sW == 2) {  // the common stride: pairs in one pass
          const int64_t w0 = t.width[0], w1 = t.width[1];
          const float* s1 = s + t.ps;
          for (int64_t x = 0; x < w1; ++x) d[2 * x] = s[x], d[2 * x + 1] = s1[x];
          if (w0 > w1) d[2 * w1] = s[w1];
          continue;
        }
        for (int64_t b = 0; b < t.sW; ++b)
          for (int64_t x = 0; x < t.width[b]; ++x) d[t.sW * x + b] = s[b * t.ps + x];
      }
}

}  // namespace convkit::kernels::phase
