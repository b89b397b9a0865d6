// The packed SGEMM core against a naive double-precision matrix product, both micro-kernels,
// sizes straddling the 6x16 tile and the MC/KC/NC blocks. Tolerance: |got - exact| <=
// 2 (K + 2) 2^-24 sum_k |A(i,k) B(k,j)| (the recursive-summation bound; see
// tests/conv/naive_conv.h).
#include "kernels/gemm/gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "base/cpu.h"

namespace convkit::kernels::gemm {
namespace {

std::vector<MicroKernel> kernels_here() {
  std::vector<MicroKernel> k = {f32_gemm_6x16__generic};
  if (base::use_avx2()) k.push_back(f32_gemm_6x16__avx2_fma);
  return k;
}

void check_sgemm(MicroKernel uk, int64_t M, int64_t N, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  const int64_t lda = K + 3, ldb = N + 5, ldc = N + 2;  // padded leading dimensions
  std::vector<float> A(M * lda), B(K * ldb), C(M * ldc, 42.f);
  for (auto& v : A) v = u(rng);
  for (auto& v : B) v = u(rng);
  sgemm(uk, M, N, K, A.data(), lda, B.data(), ldb, C.data(), ldc);
  const double eps = std::ldexp(1.0, -24);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double exact = 0, mag = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double t = double(A[i * lda + k]) * B[k * ldb + j];
        exact += t;
        mag += std::fabs(t);
      }
      ASSERT_LE(std::fabs(C[i * ldc + j] - exact), 2.0 * (K + 2) * eps * mag + 1e-30)
          << "M" << M << " N" << N << " K" << K << " at (" << i << ", " << j << ")";
    }
    for (int64_t j = N; j < ldc; ++j) ASSERT_EQ(C[i * ldc + j], 42.f) << "wrote past column N";
  }
}

TEST(Sgemm, EdgeTilesAndBlocksMatchNaive) {
  const int64_t sizes[][3] = {{1, 1, 1},    {6, 16, 1},      {5, 15, 7},   {7, 17, 3},
                              {13, 33, 29}, {12, 32, 256},   {145, 20, 9}, {3, 513, 5},
                              {7, 9, 257},  {150, 530, 300}, {1, 40, 600}, {31, 1, 2}};
  uint32_t seed = 7;
  for (MicroKernel uk : kernels_here())
    for (const auto& s : sizes) check_sgemm(uk, s[0], s[1], s[2], seed++);
}

TEST(Sgemm, EmptyKGivesZeros) {
  for (MicroKernel uk : kernels_here()) {
    std::vector<float> C(4 * 5, 3.f);
    sgemm(uk, 4, 5, 0, nullptr, 1, nullptr, 5, C.data(), 5);
    for (float v : C) EXPECT_EQ(v, 0.f);
  }
}

// The micro-kernel contract: accumulate adds to C (otherwise C is overwritten), and nothing
// outside mr x nr is touched.
TEST(Sgemm, MicroKernelAccumulatesAndStaysInItsTile) {
  for (MicroKernel uk : kernels_here()) {
    const int64_t kc = 3;
    std::vector<float> a(kc * MR), b(kc * NR);
    for (size_t i = 0; i < a.size(); ++i) a[i] = float(i % 5) - 2.f;  // small integers: exact
    for (size_t i = 0; i < b.size(); ++i) b[i] = float(i % 7) - 3.f;
    alignas(64) float bal[kc * NR];
    std::copy(b.begin(), b.end(), bal);
    // mr <= 4 takes the AVX2 kernel's 4-row branch
    for (int64_t mr : {1, 2, 4, 5, 6})
      for (int64_t nr : {1, 9, 16})
        for (bool acc : {true, false}) {
          const int64_t ldc = 20;
          std::vector<float> c(MR * ldc, 1.f);
          uk(kc, a.data(), bal, c.data(), ldc, mr, nr, acc);
          for (int64_t i = 0; i < MR; ++i)
            for (int64_t j = 0; j < ldc; ++j) {
              float want = 1.f;
              if (i < mr && j < nr) {
                want = acc ? 1.f : 0.f;
                for (int64_t k = 0; k < kc; ++k) want += a[k * MR + i] * b[k * NR + j];
              }
              EXPECT_EQ(c[i * ldc + j], want)
                  << "mr " << mr << " nr " << nr << " acc " << acc << " (" << i << "," << j << ")";
            }
        }
  }
}

// gemm_inplace_b (B read in place by the packing micro-kernel, the first micro-panel cut short so
// the others start on a 64-byte line, the bias added as the last K block stores) against sgemm
// followed by a bias pass: the same sums in the same order and the same rounding of the bias, so
// equal bit for bit, for B at every float offset in a line, K past KC, M below and above one
// panel, with and without bias, both ISAs. Columns outside [j0, j1) stay untouched.
TEST(Sgemm, InplaceBEqualsPackedAtEveryAlignment) {
  struct Pair {
    MicroKernel uk;
    InplaceMicroKernel uki;
  };
  std::vector<Pair> pairs = {{f32_gemm_6x16__generic, f32_gemm_6x16_inplace__generic}};
  if (base::use_avx2()) pairs.push_back({f32_gemm_6x16__avx2_fma, f32_gemm_6x16_inplace__avx2_fma});
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  const int64_t K = 300, ldb = 320, j0 = 3, j1 = 290;
  for (const Pair& pr : pairs)
    for (const int64_t M : {int64_t{4}, int64_t{13}})
      for (const bool with_bias : {false, true}) {
        std::vector<float> A(M * K), bias(M);
        for (auto& v : A) v = u(rng);
        for (auto& v : bias) v = u(rng);
        // A packed as the whole-matrix format gemm_inplace_b reads: K blocks, MR-row panels.
        const int64_t Mp = round_up(M, MR);
        std::vector<float> Ap(Mp * K, 0.f);
        for (int64_t pc = 0; pc < K; pc += KC) {
          const int64_t kc = std::min(KC, K - pc);
          for (int64_t i = 0; i < M; ++i)
            for (int64_t k = 0; k < kc; ++k)
              Ap[pc * Mp + i / MR * MR * kc + k * MR + i % MR] = A[i * K + pc + k];
        }
        std::vector<float> store(K * ldb + 64);
        for (auto& v : store) v = u(rng);
        const auto base = reinterpret_cast<uintptr_t>(store.data());
        float* line = store.data() + (64 - base % 64) % 64 / 4;  // the first 64-byte boundary
        for (int64_t off = 0; off < 16; ++off) {
          const float* B = line + off;
          std::vector<float> want(M * ldb, 0.f), got(M * ldb, 5.f);
          sgemm(pr.uk, M, ldb - off, K, A.data(), K, B, ldb, want.data(), ldb);
          if (with_bias)
            for (int64_t i = 0; i < M; ++i)
              for (int64_t j = 0; j < ldb; ++j) want[i * ldb + j] += bias[i];
          alignas(64) static float bpanel[KC * NR];
          gemm_inplace_b(pr.uk, pr.uki, M, K, B, ldb, j0, j1, got.data(), ldb, bpanel,
                         with_bias ? bias.data() : nullptr,
                         [&](int64_t k0, int64_t) { return Ap.data() + k0 * Mp; });
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < ldb; ++j)
              ASSERT_EQ(got[i * ldb + j], j >= j0 && j < j1 ? want[i * ldb + j] : 5.f)
                  << "M " << M << " bias " << with_bias << " offset " << off << " at (" << i << ", "
                  << j << ")";
        }
      }
}

// Both A packs against the packed format's definition: panel r holds a[k MR + i] = A(i0 + r + i,
// k0 + k), zero rows past mc; the panel after the block is left alone. Blocks whose row count is
// not a multiple of MR and whose k count is not a multiple of 8 (the AVX2 pack's step).
TEST(Sgemm, PackARowsMatchesDefinition) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (const int64_t mc : {1, 5, 6, 7, 13, 32}) {
    for (const int64_t kc : {1, 7, 8, 9, 31, 256}) {
      const int64_t lda = kc + 11, i0 = 2, k0 = 3, Mp = round_up(mc, MR);
      std::vector<float> A((i0 + mc) * lda);
      for (auto& v : A) v = u(rng);
      std::vector<float> want(Mp * kc + 8, -3.f);
      for (int64_t r = 0; r < Mp; r += MR)
        for (int64_t k = 0; k < kc; ++k)
          for (int64_t i = 0; i < MR; ++i)
            want[r * kc + k * MR + i] = r + i < mc ? A[(i0 + r + i) * lda + k0 + k] : 0.f;
      using Pack = void (*)(const float*, int64_t, int64_t, int64_t, int64_t, int64_t, float*);
      std::vector<Pack> packs = {pack_a_rows};
      if (base::use_avx2()) packs.push_back(pack_a_rows__avx2);
      for (const Pack pack : packs) {
        std::vector<float> got(want.size(), -3.f);
        pack(A.data(), lda, i0, mc, k0, std::min<int64_t>(kc, lda - k0), got.data());
        EXPECT_EQ(want, got) << "mc " << mc << " kc " << kc
                             << (pack == pack_a_rows ? " generic" : " avx2");
      }
    }
  }
}

// The micro-kernels that read A in place against their packed counterparts: the same sums in the
// same order, so equal bits, for every tile height and width, accumulating or not, with rows past
// mr never touched in C; with a bias, those bits plus the bias.
TEST(Sgemm, RowsMicroKernelEqualsPacked) {
  std::mt19937 rng(23);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  struct Pair {
    MicroKernel packed;
    RowsMicroKernel rows;
  };
  std::vector<Pair> pairs = {{f32_gemm_6x16__generic, f32_gemm_6x16_arows__generic}};
  if (base::use_avx2()) pairs.push_back({f32_gemm_6x16__avx2_fma, f32_gemm_6x16_arows__avx2_fma});
  for (const Pair& k : pairs)
    for (const int64_t kc : {1, 7, 64, 257})
      for (int64_t mr = 1; mr <= MR; ++mr)
        for (const int64_t nr : {1, 8, 13, 16}) {
          const int64_t lda = kc + 5, ldc = 21;
          std::vector<float> A(mr * lda), apack(kc * MR, 0.f), bmem(kc * NR + 16);
          float* b = bmem.data() + (16 - reinterpret_cast<uintptr_t>(bmem.data()) % 64 / 4) % 16;
          for (auto& v : A) v = u(rng);
          for (int64_t i = 0; i < kc * NR; ++i) b[i] = u(rng);  // 64-byte aligned: a packed panel
          for (int64_t k0 = 0; k0 < kc; ++k0)
            for (int64_t i = 0; i < mr; ++i) apack[k0 * MR + i] = A[i * lda + k0];
          std::vector<float> bias(MR);
          for (auto& v : bias) v = u(rng);
          for (const bool acc : {false, true}) {
            std::vector<float> c1(MR * ldc, 0.5f), c2 = c1;
            k.packed(kc, apack.data(), b, c1.data(), ldc, mr, nr, acc);
            k.rows(kc, A.data(), lda, b, c2.data(), ldc, mr, nr, acc, nullptr);
            ASSERT_EQ(c1, c2) << "kc " << kc << " mr " << mr << " nr " << nr << " acc " << acc;
            // With a bias: the packed result plus the bias, rounded once more.
            for (int64_t i = 0; i < mr; ++i)
              for (int64_t j = 0; j < nr; ++j) c1[i * ldc + j] += bias[i];
            std::vector<float> c3(MR * ldc, 0.5f);
            k.rows(kc, A.data(), lda, b, c3.data(), ldc, mr, nr, acc, bias.data());
            ASSERT_EQ(c1, c3) << "bias: kc " << kc << " mr " << mr << " nr " << nr << " acc "
                              << acc;
          }
        }
}

}  // namespace
}  // namespace convkit::kernels::gemm
