// The phase interleave (kernels/phase/interleave.h), portable and AVX2 with and without streaming
// stores, against the formula of its contract: every element it owns written with the right
// value, nothing else touched; over strides 1..3, widths around the 4- and 8-float blocks, odd
// and unequal phase sizes, and gx rows at every float alignment (the streamed path aligns itself).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "base/cpu.h"
#include "kernels/phase/interleave.h"

namespace convkit::kernels::phase {
namespace {

TEST(PhaseInterleave, WritesEachOwnedElementOnce) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  int cases = 0;
  for (int64_t sH = 1; sH <= 3; ++sH)
    for (int64_t sW = 1; sW <= 3; ++sW)
      for (int64_t W : {1, 2, 5, 8, 9, 16, 17, 31, 34, 57})
        for (int64_t H : {1, 4, 7})
          for (int64_t shift = 0; shift < 4; ++shift) {
            // The block: all of an (C, H, W) gx; phase (a, b) has rows[a] x width[b].
            const int64_t C = 3;
            std::vector<int64_t> ext(sH + sW);
            for (int64_t a = 0; a < sH; ++a) ext[a] = a < H ? (H - a + sH - 1) / sH : 0;
            for (int64_t b = 0; b < sW; ++b) ext[sH + b] = b < W ? (W - b + sW - 1) / sW : 0;
            const int64_t ld = ext[sH] + 3, ps = C * ext[0] * ld + 5;
            std::vector<float> src(sH * sW * ps);
            for (auto& v : src) v = u(rng);
            const float nan = std::numeric_limits<float>::quiet_NaN();
            std::vector<float> want(shift + C * H * W + 4, nan);
            for (int64_t ch = 0; ch < C; ++ch)
              for (int64_t a = 0; a < sH; ++a)
                for (int64_t r = 0; r < ext[a]; ++r)
                  for (int64_t b = 0; b < sW; ++b)
                    for (int64_t x = 0; x < ext[sH + b]; ++x)
                      want[shift + ch * H * W + (a + sH * r) * W + sW * x + b] =
                          src[(a * sW + b) * ps + (ch * ext[a] + r) * ld + x];
            for (int variant = 0; variant < 3; ++variant) {
              if (variant > 0 && !base::use_avx2()) continue;
              // 64-byte aligned storage, gx at `shift` floats past it.
              std::vector<float> buf(want.size() + 16, nan);
              float* base = buf.data() + (16 - reinterpret_cast<uintptr_t>(buf.data()) / 4 % 16);
              Interleave t;
              t.src = src.data(), t.ps = ps, t.ld = ld, t.sH = sH, t.sW = sW;
              t.rows = ext.data(), t.width = ext.data() + sH, t.C = C;
              t.gx = base + shift, t.plane = H * W, t.W = W, t.stream = variant == 2;
              if (variant == 0)
                interleave(t);
              else
                interleave__avx2(t);
              for (size_t i = 0; i < want.size(); ++i) {
                const bool same = std::isnan(want[i]) ? std::isnan(base[i]) : base[i] == want[i];
                ASSERT_TRUE(same) << "variant " << variant << " sH " << sH << " sW " << sW << " W "
                                  << W << " H " << H << " shift " << shift << " at " << i;
              }
            }
            ++cases;
          }
  EXPECT_EQ(cases, 3 * 3 * 10 * 3 * 4);
}

}  // namespace
}  // namespace convkit::kernels::phase
