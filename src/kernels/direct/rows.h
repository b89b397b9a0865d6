// Row primitives of the direct kernels, one definition per ISA (rows_generic in direct.cpp, rows
// AVX2+FMA in direct_avx2.cpp). Each sums in a fixed order that depends only on n.
#pragma once
#include <cstdint>

namespace convkit::kernels::direct {

struct RowOps {
  // y[i] += a * x[i * sx] for i < n.
  void (*axpy)(int64_t n, float a, const float* x, int64_t sx, float* y);
  // y[i * sy] += a * x[i] for i < n (scatter; bwd_data).
  void (*axpy_scatter)(int64_t n, float a, const float* x, float* y, int64_t sy);
  // sum_i g[i] * x[i * sx] for i < n, in 8 interleaved lanes added pairwise at the end.
  float (*dot)(int64_t n, const float* g, const float* x, int64_t sx);
  // y[i] += sum over taps t < ntaps, in order, of w[t] * src[t][i], tap t only for i in
  // [lo[t], hi[t]) (where it reads inside its row); i < n. One pass over y: every output stays in
  // a register while all its taps accumulate.
  void (*taps)(int64_t n, int ntaps, const float* const* src, const int64_t* lo, const int64_t* hi,
               const float* w, float* y);
};

extern const RowOps rows_generic;
extern const RowOps rows_avx2;  // call only when base::use_avx2()

}  // namespace convkit::kernels::direct
