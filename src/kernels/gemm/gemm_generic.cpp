// Portable micro-kernel and packing routines of the SGEMM core (see gemm.h for the contracts).
#include <algorithm>
#include <cstring>
#include <vector>

#include "base/aligned.h"
#include "kernels/gemm/gemm.h"

namespace convkit::kernels::gemm {

void f32_gemm_6x16__generic(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                            int64_t mr, int64_t nr, bool accumulate) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int64_t i = 0; i < MR; ++i) {
      const float ai = a[i];
      for (int64_t j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
    a += MR;
    b += NR;
  }
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t j = 0; j < nr; ++j)
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

void f32_gemm_6x16_arows__generic(int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                                  int64_t ldc, int64_t mr, int64_t nr, bool accumulate,
                                  const float* bias) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t i = 0; i < MR; ++i) {
      const float ai = a[(i < mr ? i : mr - 1) * lda + k];
      for (int64_t j = 0; j < NR; ++j) acc[i][j] += ai * b[k * NR + j];
    }
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t j = 0; j < nr; ++j) {
      const float v = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
      c[i * ldc + j] = bias ? v + bias[i] : v;
    }
}

void f32_gemm_6x16_inplace__generic(int64_t kc, const float* a, float* b, float* c, int64_t ldc,
                                    int64_t mr, int64_t nr, bool accumulate, const InplaceArgs& x) {
  if (x.src)
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t j = 0; j < NR; ++j) b[k * NR + j] = j < nr ? x.src[k * x.ldb + j] : 0.f;
  for (int64_t r = 0; r < x.pf_n; ++r) __builtin_prefetch(x.pf + r * x.pf_ld, 0, 2);
  f32_gemm_6x16__generic(kc, a, b, c, ldc, mr, nr, accumulate);
  if (x.bias)
    for (int64_t i = 0; i < mr; ++i)
      for (int64_t j = 0; j < nr; ++j) c[i * ldc + j] += x.bias[i];
}

void pack_a_rows(const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                 float* dst) {
  for (int64_t r = 0; r < mc; r += MR) {
    const int64_t rows = std::min(MR, mc - r);
    for (int64_t k = 0; k < kc; ++k) {
      float* d = dst + r * kc + k * MR;
      int64_t i = 0;
      for (; i < rows; ++i) d[i] = A[(i0 + r + i) * lda + k0 + k];
      for (; i < MR; ++i) d[i] = 0.f;
    }
  }
}

void pack_b_rows(const float* B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
                 float* dst) {
  // Row by row, so the source is read contiguously (prefetch-friendly); each row scatters into
  // the panels 64 bytes at a time.
  // The same columns of the next block are prefetched while this one is packed: a block reads kc
  // separate rows, too many streams for the hardware prefetchers when B comes from memory.
  const int64_t full = nc / NR, tail = nc % NR;
  for (int64_t k = 0; k < kc; ++k) {
    const float* src = B + (k0 + k) * ldb + j0;
    for (int64_t s = 0; s < full; ++s) __builtin_prefetch(src + nc + s * NR);
    float* d = dst + k * NR;
    for (int64_t s = 0; s < full; ++s)
      std::memcpy(d + s * kc * NR, src + s * NR, sizeof(float) * NR);  // fixed size: inlined
    if (tail) {
      float* dt = d + full * kc * NR;
      std::memcpy(dt, src + full * NR, sizeof(float) * tail);
      std::fill(dt + tail, dt + NR, 0.f);
    }
  }
}

void sgemm(MicroKernel uk, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
           const float* B, int64_t ldb, float* C, int64_t ldc) {
  base::AlignedBuffer abuf(static_cast<size_t>(packed_a_floats(MC, KC)));
  base::AlignedBuffer bbuf(static_cast<size_t>(packed_b_floats(KC, NC)));
  gemm_columns(
      uk, M, K, 0, N, C, ldc, bbuf.data(),
      [&](int64_t k0, int64_t kc, int64_t jc, int64_t nc, float* dst) {
        pack_b_rows(B, ldb, k0, kc, jc, nc, dst);
      },
      [&](int64_t i0, int64_t mc, int64_t k0, int64_t kc) {
        pack_a_rows(A, lda, i0, mc, k0, kc, abuf.data());
        return static_cast<const float*>(abuf.data());
      },
      [](int64_t, int64_t) {});
}

}  // namespace convkit::kernels::gemm
