// Direct convolution in output rows (zero padding only): every output row is a sum of row
// primitives (kernels/direct/rows.h), a contiguous run of outputs with no bounds checks. For
// layers whose per-group GEMM is too small to pay for packing: depthwise and small groups,
// single-channel images, and tiny problems. Pure: no allocation, no threads; callers split rows.
#pragma once
#include <cstdint>

#include "kernels/conv_params.h"
#include "kernels/direct/rows.h"

namespace convkit::kernels::direct {

// Outputs o in [lo, hi) whose tap at offset `off` (= k*d - pad) reads inside [0, size) with stride
// s: 0 <= o*s + off < size.
inline void valid_range(int64_t off, int64_t s, int64_t size, int64_t out, int64_t& lo,
                        int64_t& hi) {
  lo = off >= 0 ? 0 : (-off + s - 1) / s;
  hi = size - off <= 0 ? 0 : (size - off - 1) / s + 1;
  if (hi > out) hi = out;
  if (lo > hi) lo = hi;
}

// Rows oh0 .. oh1 of output plane (n, o): y = b + sum over (c, kh, kw), in that order, of w * x.
void fwd_rows(const RowOps& ops, const ConvParams& p, const float* x, const float* w,
              const float* b, float* y, int64_t n, int64_t o, int64_t oh0, int64_t oh1);
// Rows ih0 .. ih1 of input-gradient plane (n, ci), overwritten: sum over (o, kh, kw) in order.
void bwd_data_rows(const RowOps& ops, const ConvParams& p, const float* gy, const float* w,
                   float* gx, int64_t n, int64_t ci, int64_t ih0, int64_t ih1);
// acc (C/g, kH, kW) = the part of dL/dw[o] from stacked output rows r = n * Ho + oh in [r0, r1),
// each element summed over rows in order. Overwrites acc.
void bwd_weight_rows(const RowOps& ops, const ConvParams& p, const float* gy, const float* x,
                     int64_t o, int64_t r0, int64_t r1, float* acc);

// Whole passes on the calling thread (the tiny path).
void fwd(const ConvParams& p, const float* x, const float* w, const float* b, float* y);
// fwd for an unpadded layer with column stride 1, 8 outputs of a row at a time: the same bits as
// fwd (bias, then per tap in (c, kh, kw) order a rounded product and a rounded sum; no FMA), so
// the notebook's numbers do not depend on the CPU. Call only when base::use_avx2().
void fwd_unpadded_s1__avx2(const ConvParams& p, const float* x, const float* w, const float* b,
                           float* y);
void bwd_data(const ConvParams& p, const float* gy, const float* w, float* gx);
void bwd_weight(const ConvParams& p, const float* gy, const float* x, float* gw, float* gb);

}  // namespace convkit::kernels::direct
