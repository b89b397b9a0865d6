// Packed SGEMM core (BLIS-style): C (M x N, rows contiguous, leading dimension ldc) = A (M x K) B
// (K x N).
//
// Packed formats (64-byte aligned, zero-filled past the matrix edge):
//   A block  (mc x kc): ceil(mc / MR) panels, panel r holds a[k * MR + i] = A(r * MR + i, k)
//   B block  (kc x nc): ceil(nc / NR) panels, panel s holds b[k * NR + j] = B(k, s * NR + j)
// Block sizes for AMD Zen 3 (32 KiB L1d, 512 KiB L2 per core): a B micro-panel (KC x NR = 16 KiB)
// stays in L1 while the A block (MC x KC = 144 KiB) streams from L2; the B block (KC x NC = 128
// KiB) is packed just before use and stays in L2 beside the A block. (NC = 512 filled the whole L2
// with B, so its panels came back from L3: 64x3136x256 ran at ~49 GFLOP/s on one core against
// ~54 with NC = 128, min of 15.) The result of an element depends only on K and KC (the K blocks
// are summed in order), never on MC, NC or how columns are split between threads.
#pragma once
#include <algorithm>
#include <cstdint>

namespace convkit::kernels::gemm {

constexpr int64_t MR = 6, NR = 16;
constexpr int64_t MC = 144, KC = 256, NC = 128;

// Micro-kernel contract: for i < mr, j < nr,
//   C(i, j) = (accumulate ? C(i, j) : 0) + sum_{k < kc} a[k * MR + i] * b[k * NR + j]
// with the k sum in increasing order, one float accumulator per element. C is never read when
// accumulate is false, and only rows < mr, columns < nr are touched. kc may be 0.
using MicroKernel = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                             int64_t mr, int64_t nr, bool accumulate);

// AVX2 + FMA (call only when base::use_avx2()).
void f32_gemm_6x16__avx2_fma(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                             int64_t mr, int64_t nr, bool accumulate);
// Portable C++.
void f32_gemm_6x16__generic(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                            int64_t mr, int64_t nr, bool accumulate);

// MicroKernel with A read in place: A(i, k) = a[i * lda + k] (rows past mr are not stored), the
// same sums in the same order, bit for bit; with bias (not null), bias[i] is then added to row i
// as a step of its own (InplaceArgs' bias rounding).
using RowsMicroKernel = void (*)(int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                                 int64_t ldc, int64_t mr, int64_t nr, bool accumulate,
                                 const float* bias);
void f32_gemm_6x16_arows__avx2_fma(int64_t kc, const float* a, int64_t lda, const float* b,
                                   float* c, int64_t ldc, int64_t mr, int64_t nr, bool accumulate,
                                   const float* bias);
void f32_gemm_6x16_arows__generic(int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                                  int64_t ldc, int64_t mr, int64_t nr, bool accumulate,
                                  const float* bias);

// The micro-kernel of gemm_inplace_b: C as MicroKernel computes it, plus
//   - with src: B's rows are read in place (src + k * ldb, nr floats; zeros past nr) and stored
//     to the packed panel b as they are used (b is written, not read);
//   - with bias: bias[i] is added to row i of the final C as a step of its own, C = (C + A B) +
//     bias, the rounding of a separate epilogue;
//   - rows pf + r * pf_ld, r < pf_n, are prefetched into L2, one every pf_every iterations of
//     the k loop (any left over after it).
// The sums are MicroKernel's, bit for bit.
struct InplaceArgs {
  const float* src = nullptr;
  int64_t ldb = 0;
  const float* bias = nullptr;
  const float* pf = nullptr;
  int64_t pf_ld = 0, pf_n = 0, pf_every = 1;
};
using InplaceMicroKernel = void (*)(int64_t kc, const float* a, float* b, float* c, int64_t ldc,
                                    int64_t mr, int64_t nr, bool accumulate, const InplaceArgs& x);
void f32_gemm_6x16_inplace__avx2_fma(int64_t kc, const float* a, float* b, float* c, int64_t ldc,
                                     int64_t mr, int64_t nr, bool accumulate, const InplaceArgs& x);
void f32_gemm_6x16_inplace__generic(int64_t kc, const float* a, float* b, float* c, int64_t ldc,
                                    int64_t mr, int64_t nr, bool accumulate, const InplaceArgs& x);

constexpr int64_t round_up(int64_t v, int64_t m) {
  return (v + m - 1) / m * m;
}

// Floats of a packed A block of mc rows x kc, and of a packed B block of kc x nc columns.
constexpr int64_t packed_a_floats(int64_t mc, int64_t kc) {
  return round_up(mc, MR) * kc;
}
constexpr int64_t packed_b_floats(int64_t kc, int64_t nc) {
  return round_up(nc, NR) * kc;
}

// Packs A(i0 .. i0+mc, k0 .. k0+kc) of a row-major matrix (leading dimension lda) into dst.
void pack_a_rows(const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                 float* dst);
// AVX2 (call only when base::use_avx2()): 8 k of a panel's rows per step, transposed in
// registers. The same floats.
void pack_a_rows__avx2(const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                       float* dst);
// Packs B(k0 .. k0+kc, j0 .. j0+nc) of a row-major matrix (leading dimension ldb) into dst.
void pack_b_rows(const float* B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
                 float* dst);

// The blocked loops over one thread's column range [j0, j1) of C (M x N):
//   pack_b(k0, kc, jc, nc, buf)   fills the B block (kc x nc) at (k0, jc) into buf (packed format)
//   a_block(i0, mc, k0, kc)       returns the packed A block (mc x kc) at (i0, k0)
//   epilogue(jc, nc)              runs after columns [jc, jc + nc) of C are final
//   before_call()                 runs before every micro-kernel call (prefetches spread over them)
// bbuf holds packed_b_floats(KC, NC) floats. C(i, j) lives at c[i * ldc + j].
struct NoHook {
  void operator()() const {}
};
template <typename PackB, typename ABlock, typename Epilogue, typename BeforeCall = NoHook>
void gemm_columns(MicroKernel uk, int64_t M, int64_t K, int64_t j0, int64_t j1, float* c,
                  int64_t ldc, float* bbuf, PackB&& pack_b, ABlock&& a_block, Epilogue&& epilogue,
                  BeforeCall&& before_call = {}) {
  for (int64_t jc = j0; jc < j1; jc += NC) {
    const int64_t nc = j1 - jc < NC ? j1 - jc : NC;
    if (K == 0) {  // an empty sum: C = 0
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < nc; ++j) c[i * ldc + jc + j] = 0.f;
    }
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = K - pc < KC ? K - pc : KC;
      pack_b(pc, kc, jc, nc, bbuf);
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = M - ic < MC ? M - ic : MC;
        const float* ablk = a_block(ic, mc, pc, kc);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int64_t nr = nc - jr < NR ? nc - jr : NR;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t mr = mc - ir < MR ? mc - ir : MR;
            before_call();
            uk(kc, ablk + ir * kc, bbuf + jr * kc, c + (ic + ir) * ldc + jc + jr, ldc, mr, nr,
               pc > 0);
          }
        }
      }
    }
    epilogue(jc, nc);
  }
}

// Packed A (pack_a_whole's format: K blocks of KC, MR-row panels) no larger than this fits in L2
// beside a B micro-panel, so gemm_inplace_b can stream it once per micro-panel of columns.
constexpr int64_t kInplaceAFloats = 65536;

// The loops over columns [j0, j1) of C (M x N) = A B (+ row_bias[i] on row i, when not null) for a
// B that is a row-major matrix read in place (leading dimension ldb; a 1x1 convolution's x) and
// an A small enough to stay in L2 (round_up(M, MR) * min(K, KC) <= kInplaceAFloats). Per K block
// and micro-panel of up to NR columns, the first A panel's call packs the micro-panel into bpanel
// (kc x NR) as it computes, the others reuse it, and each of those prefetches (into L2) a slice of
// the next micro-panel's rows — so B is read from memory while the FMAs run, not in a separate
// pass that waits on it. Slices of more than two rows are spread over the call's k loop (issued in
// one burst between calls they stalled: 7% of the 1x1 forward's time); a row or two goes up front
// and the call is the plain micro-kernel's (the extras cost 7% on 64-iteration calls). The bias is
// added by the last K block's calls as they store. Where every row of B starts at the same offset
// in a 64-byte line (ldb a multiple of 16 floats), the first micro-panel is cut short so that the
// others start on a line: a panel row is then one line, not two (a std::vector's data is 16 bytes
// into a line: 15% slower without this). a_block(k0, kc) returns the packed A block (all M rows) at
// k0. Every C element gets the same sums in the same order, and the bias the same rounding, as
// through gemm_columns and a bias epilogue.
template <typename ABlock>
void gemm_inplace_b(MicroKernel uk, InplaceMicroKernel uki, int64_t M, int64_t K, const float* B,
                    int64_t ldb, int64_t j0, int64_t j1, float* c, int64_t ldc, float* bpanel,
                    const float* row_bias, ABlock&& a_block) {
  const int64_t panels = (M + MR - 1) / MR;
  const auto addr = reinterpret_cast<uintptr_t>(B + j0);
  const int64_t lead = ldb % 16 == 0 && addr % 4 == 0 && addr % 64 != 0
                           ? 16 - static_cast<int64_t>(addr % 64 / 4)
                           : NR;  // the first micro-panel's width
  for (int64_t pc = 0; pc < K; pc += KC) {
    const int64_t kc = K - pc < KC ? K - pc : KC;
    const float* ablk = a_block(pc, kc);
    const float* Bk = B + pc * ldb;
    const float* bias = pc + kc == K ? row_bias : nullptr;
    // Iterations between prefetches for the largest slice (computed once: a division per call
    // cost 10% of a 64-iteration call).
    const int64_t every =
        panels > 1 ? std::max<int64_t>(1, kc / ((kc + panels - 2) / (panels - 1))) : 1;
    for (int64_t jr = j0, nr; jr < j1; jr += nr) {
      nr = std::min(jr == j0 ? lead : NR, j1 - jr);
      InplaceArgs x;
      x.src = Bk + jr, x.ldb = ldb, x.bias = bias;
      const float* next = jr + nr < j1 ? Bk + jr + nr : nullptr;  // the next micro-panel's rows
      if (next && panels == 1) x.pf = next, x.pf_ld = ldb, x.pf_n = kc, x.pf_every = 1;
      uki(kc, ablk, bpanel, c + jr, ldc, M < MR ? M : MR, nr, pc > 0, x);
      // Rows that start mid-line reach into a second line: prefetch both ends then.
      const bool one_line = next && reinterpret_cast<uintptr_t>(next) % 64 == 0 && ldb % 16 == 0;
      for (int64_t p = 1; p < panels; ++p) {
        const int64_t ir = p * MR, r0 = (p - 1) * kc / (panels - 1), r1 = p * kc / (panels - 1);
        const int64_t mr = M - ir < MR ? M - ir : MR;
        if (bias || (next && r1 - r0 > 2)) {  // spread over the k loop, bias as it stores
          InplaceArgs y;
          y.bias = bias ? bias + ir : nullptr;
          if (next) y.pf = next + r0 * ldb, y.pf_ld = ldb, y.pf_n = r1 - r0, y.pf_every = every;
          uki(kc, ablk + ir * kc, bpanel, c + ir * ldc + jr, ldc, mr, nr, pc > 0, y);
        } else {  // a prefetch or two (short k loops: M large, K small): up front, plain call
          for (int64_t r = r0; next && r < r1; ++r) __builtin_prefetch(next + r * ldb, 0, 2);
          uk(kc, ablk + ir * kc, bpanel, c + ir * ldc + jr, ldc, mr, nr, pc > 0);
        }
        if (next && !one_line)
          for (int64_t r = r0; r < r1; ++r) __builtin_prefetch(next + r * ldb + NR - 1, 0, 2);
      }
    }
  }
}

// Plain row-major SGEMM for tests and tools: C (M x N) = A (M x K) B (K x N), single-threaded,
// with the given micro-kernel. Allocates its packing buffers.
void sgemm(MicroKernel uk, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
           const float* B, int64_t ldb, float* C, int64_t ldc);

}  // namespace convkit::kernels::gemm
