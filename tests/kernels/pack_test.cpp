// The AVX2 packs (forward im2col blocks; the transposing packs of the weight-gradient GEMM) against
// the portable ones: they only move floats, so the packed blocks must be equal bit for bit, over
// shapes where runs cross output rows and images, tails of 8-wide blocks and NR panels, padding,
// strides 1 and 2, wide rows (runs of a full 16-lane panel) and 1x1 layers read in place.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/cpu.h"
#include "conv/naive_conv.h"
#include "kernels/gemm/gemm.h"
#include "kernels/pack/im2col_pack.h"
#include "kernels/pack/phase_planes.h"

namespace convkit::kernels::pack {
namespace {

using gemm::KC;
using gemm::MR;
using gemm::NR;

std::vector<float> random_floats(std::mt19937& rng, int64_t n) {
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

TEST(Pack, Avx2PacksEqualPortableOnes) {
  if (!base::use_avx2()) GTEST_SKIP() << "no AVX2 here";
  std::mt19937 rng(11);
  struct Case {
    int64_t N, C, H, W, k, s, pad;
  };
  const Case cases[] = {{2, 3, 5, 7, 3, 1, 1},
                        {1, 2, 9, 13, 3, 2, 1},
                        {3, 1, 4, 4, 1, 1, 0},
                        {2, 4, 11, 6, 5, 1, 2},
                        {1, 3, 17, 19, 7, 2, 3},
                        {2, 5, 8, 8, 2, 2, 0},
                        {1, 2, 7, 70, 3, 2, 1},
                        {1, 1, 5, 40, 3, 1, 1},
                        // 1x1 stride 1 unpadded: col is x itself (transposed straight from it)
                        {2, 20, 3, 5, 1, 1, 0},
                        {3, 17, 6, 7, 1, 1, 0}};
  for (const Case& c : cases) {
    const ConvParams p = testing::make(c.N, c.C, c.H, c.W, 4, c.k, c.k, c.s, c.pad);
    const auto x = random_floats(rng, p.N * p.C * p.H * p.W);
    const Im2col view = im2col_view(p, x.data(), 0, 0);
    const int64_t K = p.C * p.kH * p.kW, Q = p.N * p.Ho * p.Wo, P1 = p.Ho * p.Wo;
    for (int64_t j0 : {int64_t{0}, P1 / 3}) {  // forward B blocks of image 0
      const int64_t kc = std::min(KC, K), nc = std::min(gemm::NC, P1 - j0);
      const int64_t n = gemm::round_up(nc, NR) * kc;
      std::vector<float> want(n, 7.f), got(n, -7.f);
      pack_im2col(view, 0, kc, j0, nc, want.data());
      pack_im2col__avx2(view, 0, kc, j0, nc, got.data());
      EXPECT_EQ(0, std::memcmp(want.data(), got.data(), n * sizeof(float)))
          << "col N" << c.N << " C" << c.C << " " << c.H << "x" << c.W << " k" << c.k << " s" << c.s
          << " j0 " << j0;
    }
    for (int64_t q0 : {int64_t{0}, int64_t{3}}) {
      const int64_t qc = std::min(KC, Q - q0);
      for (int64_t k0 : {int64_t{0}, K / 3}) {
        const int64_t nc = K - k0;
        const int64_t n = gemm::round_up(nc, NR) * qc;
        std::vector<float> want(n, 7.f), got(n, -7.f);
        pack_im2col_t(view, q0, qc, k0, nc, want.data());
        pack_im2col_t__avx2(view, q0, qc, k0, nc, got.data());
        EXPECT_EQ(0, std::memcmp(want.data(), got.data(), n * sizeof(float)))
            << "colT N" << c.N << " C" << c.C << " " << c.H << "x" << c.W << " k" << c.k << " s"
            << c.s << " q0 " << q0 << " k0 " << k0;
      }
    }
    {  // col2im of a (K x P1) block of image 0 into gx planes (C, H, W)
      const int64_t j0 = P1 / 4, nc = P1 - j0;
      const auto dcol = random_floats(rng, K * nc);
      std::vector<float> want = random_floats(rng, p.C * p.H * p.W), got = want;
      col2im_add(view, dcol.data(), nc, 0, K, j0, nc, want.data());
      col2im_add__avx2(view, dcol.data(), nc, 0, K, j0, nc, got.data());
      EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
          << "col2im N" << c.N << " C" << c.C << " " << c.H << "x" << c.W << " k" << c.k << " s"
          << c.s;
    }
    // gy (N, O, Ho, Wo) with O = 13 rows: A blocks of 13 - i0 rows (MR tails), q across images.
    const int64_t O = 13, P = p.Ho * p.Wo;
    const auto gy = random_floats(rng, p.N * O * P);
    for (int64_t i0 : {int64_t{0}, int64_t{5}}) {
      const int64_t mc = O - i0, q0 = Q > 5 ? 2 : 0, qc = std::min(KC, Q - q0);
      const int64_t n = gemm::round_up(mc, MR) * qc;
      std::vector<float> want(n, 7.f), got(n, -7.f);
      pack_a_gy(gy.data(), O * P, P, i0, mc, q0, qc, want.data());
      pack_a_gy__avx2(gy.data(), O * P, P, i0, mc, q0, qc, got.data());
      EXPECT_EQ(0, std::memcmp(want.data(), got.data(), n * sizeof(float)))
          << "gy P " << P << " i0 " << i0;
    }
  }
}

// The phase-plane pack (portable and AVX2) against pack_im2col, whose blocks it replaces: equal bit
// for bit for blocks of tasks of whole output rows (rows where a tap's run wraps, partial panels,
// k blocks starting and ending inside a channel), over strides 1 to 3, dilation, asymmetric
// padding and groups.
// Layers whose B blocks phase planes can build (Wo sW >= W): strides 1 to 3, dilation, asymmetric
// padding, groups, a 1x1 stride-2 layer, wide rows; plus `extra`. N images.
std::vector<ConvParams> planes_cases(int64_t N, std::vector<std::array<int64_t, 12>> extra = {}) {
  std::vector<std::array<int64_t, 12>> cases = {
      {6, 9, 13, 3, 3, 2, 1, 1, 1, 1, 1, 1},  {4, 14, 14, 3, 3, 2, 1, 1, 1, 1, 1, 2},
      {3, 23, 21, 7, 7, 2, 1, 3, 3, 3, 3, 1}, {5, 8, 8, 1, 1, 2, 1, 0, 0, 0, 0, 1},
      {4, 10, 12, 5, 5, 1, 1, 2, 2, 2, 2, 1}, {3, 11, 10, 3, 3, 1, 2, 2, 2, 2, 2, 1},
      {2, 13, 17, 3, 5, 3, 1, 1, 2, 2, 1, 1}, {40, 6, 7, 3, 3, 2, 2, 2, 1, 3, 2, 1},
      {2, 7, 40, 3, 3, 2, 1, 1, 0, 1, 1, 1}};
  cases.insert(cases.end(), extra.begin(), extra.end());
  std::vector<ConvParams> out;
  for (const auto& c : cases) {  // C, H, W, kh, kw, s, d, pad t b l r, groups
    ConvParams p = testing::make(N, c[0], c[1], c[2], 2 * c[11], c[3], c[4], c[5], 0, c[6], c[11]);
    p.pad_t = c[7], p.pad_b = c[8], p.pad_l = c[9], p.pad_r = c[10];
    testing::finish(p);
    out.push_back(p);
  }
  return out;
}

TEST(Pack, PhasePlanesEqualIm2col) {
  std::mt19937 rng(29);
  for (const ConvParams& p : planes_cases(2)) {
    struct {
      int64_t C, H, W, kh, kw, s, d;
    } c{p.C, p.H, p.W, p.kH, p.kW, p.sH, p.dH};
    ASSERT_TRUE(planes_fit(p)) << "case C" << c.C << " " << c.H << "x" << c.W;
    const auto x = random_floats(rng, p.N * p.C * p.H * p.W);
    const int64_t K = p.Cg() * p.kH * p.kW, khw = p.kH * p.kW;
    const int64_t n = 1, g = p.groups - 1;
    const Im2col view = im2col_view(p, x.data(), n, g);
    const PhasePlanes pp = phase_planes(p, x.data(), n, g);
    for (const int64_t rows : {int64_t{1}, int64_t{3}, p.Ho}) {
      for (int64_t oh0 = 0; oh0 < p.Ho; oh0 += rows) {
        const int64_t r = std::min(rows, p.Ho - oh0), cols = r * p.Wo;
        for (const int64_t k0 : {int64_t{0}, K / 3, K - 1}) {
          const int64_t kc = std::min(KC, K - k0), ch0 = k0 / khw, ch1 = (k0 + kc - 1) / khw + 1;
          std::vector<float> buf(pp.floats(ch1 - ch0, r), 9.f), buf2(buf.size(), -9.f);
          build_planes(pp, ch0, ch1, oh0, r, buf.data());
          if (base::use_avx2()) {
            build_planes__avx2(pp, ch0, ch1, oh0, r, buf2.data());
            EXPECT_EQ(0, std::memcmp(buf.data(), buf2.data(), buf.size() * sizeof(float)));
          }
          for (const int64_t jc : {int64_t{0}, cols / 3}) {
            const int64_t nc = std::min(gemm::NC, cols - jc);
            const int64_t len = gemm::round_up(nc, NR) * kc;
            std::vector<float> want(len, 7.f), got(len, -7.f), got2(len, -5.f);
            pack_im2col(view, k0, kc, oh0 * p.Wo + jc, nc, want.data());
            pack_planes(pp, buf.data(), ch0, r, k0, kc, jc, nc, got.data());
            EXPECT_EQ(0, std::memcmp(want.data(), got.data(), len * sizeof(float)))
                << "C" << c.C << " " << c.H << "x" << c.W << " k" << c.kh << "x" << c.kw << " s"
                << c.s << " d" << c.d << " rows " << r << " oh0 " << oh0 << " k0 " << k0 << " jc "
                << jc;
            if (!base::use_avx2()) continue;
            pack_planes__avx2(pp, buf.data(), ch0, r, k0, kc, jc, nc, got2.data());
            EXPECT_EQ(0, std::memcmp(want.data(), got2.data(), len * sizeof(float)))
                << "avx2 C" << c.C << " " << c.H << "x" << c.W << " k" << c.kh << "x" << c.kw
                << " s" << c.s << " d" << c.d << " rows " << r << " oh0 " << oh0 << " k0 " << k0
                << " jc " << jc;
          }
        }
      }
    }
  }
}

// The weight gradient's col^T blocks through phase planes (portable and AVX2) against the
// definition of col^T, element by element: blocks whose q runs start and end mid-row and cross
// images, k blocks starting inside a channel, partial panels, and a buffer of planes_t_floats
// filled with garbage first.
TEST(Pack, PhasePlanesTransposedEqualColT) {
  std::mt19937 rng(31);
  for (const ConvParams& p : planes_cases(3, {{20, 56, 56, 3, 3, 2, 1, 1, 1, 1, 1, 1}})) {
    struct {
      int64_t C, H, W, kh, kw, s;
    } c{p.C, p.H, p.W, p.kH, p.kW, p.sH};
    if (p.kH * p.kW == 1) continue;  // 1x1 layers gather their blocks (no planes)
    ASSERT_TRUE(planes_fit(p)) << "case C" << c.C << " " << c.H << "x" << c.W;
    const auto x = random_floats(rng, p.N * p.C * p.H * p.W);
    const int64_t K = p.Cg() * p.kH * p.kW, khw = p.kH * p.kW, P = p.Ho * p.Wo, Q = p.N * P;
    const int64_t g = p.groups - 1;
    const Im2col view = im2col_view(p, x.data(), 0, g);
    PhasePlanes pp = phase_planes(p, x.data(), 0, g), pp2 = pp;
    const auto colT = [&](int64_t q, int64_t k) {
      const int64_t n = q / P, oh = q % P / p.Wo, ow = q % p.Wo;
      const int64_t ch = g * p.Cg() + k / khw, kh = k % khw / p.kW, kw = k % p.kW;
      const int64_t ih = oh * p.sH - p.pad_t + kh * p.dH, iw = ow * p.sW - p.pad_l + kw * p.dW;
      if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) return 0.f;
      return x[((n * p.C + ch) * p.H + ih) * p.W + iw];
    };
    for (const int64_t q0 : {int64_t{0}, P - 5, Q / 2 + 3, Q - 37}) {
      if (q0 < 0 || q0 >= Q) continue;
      const int64_t qc = std::min(KC, Q - q0);
      for (const int64_t k0 : {int64_t{0}, K / 3, K - 1}) {
        const int64_t nc = std::min(gemm::NC, K - k0), len = gemm::round_up(nc, NR) * qc;
        std::vector<float> want(len);
        for (int64_t kk = 0; kk < gemm::round_up(nc, NR); ++kk)
          for (int64_t i = 0; i < qc; ++i)
            want[kk / NR * qc * NR + i * NR + kk % NR] = kk < nc ? colT(q0 + i, k0 + kk) : 0.f;
        std::vector<float> buf(planes_t_floats(pp, p.Cg()), 9.f), got(len, -7.f);
        pack_col_t_planes(view, pp, q0, qc, k0, nc, buf.data(), got.data());
        const std::string where = "C" + std::to_string(c.C) + " " + std::to_string(c.H) + "x" +
                                  std::to_string(c.W) + " k" + std::to_string(c.kh) + "x" +
                                  std::to_string(c.kw) + " s" + std::to_string(c.s) + " q0 " +
                                  std::to_string(q0) + " k0 " + std::to_string(k0);
        EXPECT_EQ(0, std::memcmp(want.data(), got.data(), len * sizeof(float))) << where;
        if (!base::use_avx2()) continue;
        std::vector<float> buf2(buf.size(), -9.f), got2(len, -5.f);
        pack_col_t_planes__avx2(view, pp2, q0, qc, k0, nc, buf2.data(), got2.data());
        EXPECT_EQ(0, std::memcmp(want.data(), got2.data(), len * sizeof(float)))
            << "avx2 " << where;
      }
    }
  }
}

}  // namespace
}  // namespace convkit::kernels::pack
