// The implementation objects each impl_*.cpp defines; conv.cpp orders them into dispatch lists.
#pragma once
#include "conv/dispatch.h"

namespace convkit::conv::impl {

// Reference loops (kernels/ref), every option; last in every list.
extern const Impl ref_fwd, ref_bwd_data, ref_bwd_weight;
// Scalar direct loops for tiny problems: no workspace, no threads, no allocation.
extern const Impl tiny_fwd, tiny_bwd_data, tiny_bwd_weight;
// Direct kernels for few input and output channels per group (LeNet-like first layers).
extern const Impl smallc_fwd_avx2, smallc_bwd_data_avx2, smallc_bwd_weight_avx2;
// smallc's forward and weight gradient with each kernel row's taps by 1-D Winograd F(4, 2..4)
// (the ResNet stem), and strided backward-data by the same rows, where they pay; the *_any_*
// objects, not in the dispatch lists, take every geometry they can run (the tests run them
// directly).
extern const Impl wino1d_fwd_avx2, wino1d_bwd_data_avx2, wino1d_bwd_weight_avx2;
extern const Impl wino1d_fwd_any_avx2, wino1d_bwd_data_any_avx2, wino1d_bwd_weight_any_avx2;
// Depthwise (C/g = 1, any multiplier) plane kernels, zero padding at the borders in registers.
extern const Impl dwconv_fwd_avx2, dwconv_bwd_data_avx2, dwconv_bwd_weight_avx2;
// Direct kernels by output rows: depthwise, small groups, single channel (C/g * O/g <= 16).
extern const Impl direct_fwd_avx2, direct_bwd_data_avx2, direct_bwd_weight_avx2;
extern const Impl direct_fwd_generic, direct_bwd_data_generic, direct_bwd_weight_generic;
// Winograd F(4x4, 3x3): 3x3 stride 1 dense kernels, every pass.
extern const Impl wino_fwd_avx2, wino_bwd_data_avx2, wino_bwd_weight_avx2;
// Implicit GEMM over the packed SGEMM core (1x1 stride 1 unpadded: straight GEMM).
extern const Impl gemm_fwd_avx2, gemm_bwd_data_avx2, gemm_bwd_weight_avx2;
extern const Impl gemm_fwd_generic, gemm_bwd_data_generic, gemm_bwd_weight_generic;
// gemm's backward data of strided layers by phases on any strided shape (gemm_bwd_data_* take it
// where it pays); not in the dispatch lists: the tests run it directly.
extern const Impl gemm_bwd_data_phases_avx2, gemm_bwd_data_phases_generic;

// Shared reasons and helpers.
// Null when the padding reads zeros (mode zeros, or constant 0); fast paths handle only that.
const char* zero_padding_reason(const ConvParams& p);
// With CONVKIT_VERBOSE, says on stderr that `impl` hands a call to another path because of its
// data: "convkit: conv2d <pass> <impl>: <what>; running <instead>".
void note_fallback(const char* impl, const char* pass, const char* what, const char* instead);
// The usual `instead` of a zero-padded fast path whose weights or gradients hold Inf or NaN.
inline constexpr const char* kDirectLoops =
    "the direct loops, which skip padded taps as the reference does (0 * Inf would be NaN)";
// True when none of v[0 .. n) is Inf or NaN.
bool all_finite(const float* v, int64_t n);
// The same, the array split between up to nthreads threads when it is large.
bool all_finite(const float* v, int64_t n, int nthreads);
// gb (O) = sum over n, oh, ow of gy (N, O, Ho, Wo), each channel summed in a fixed order.
void bias_grad(const ConvParams& p, const float* gy, float* gb, int nthreads);
// s[0] + ... + s[n - 1] in 8 interleaved float lanes (element i in lane i % 8), the lanes then
// added pairwise in double: bias_grad's sum of one image's plane.
double lane_sum(const float* s, int64_t n);
// sums[r] += lane_sum(s + r * ld, n) for r < rows, the same bits; four rows at a time, so their
// chains of adds overlap.
void add_lane_sums(const float* s, int64_t ld, int64_t rows, int64_t n, double* sums);

}  // namespace convkit::conv::impl
