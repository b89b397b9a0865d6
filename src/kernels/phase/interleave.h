// The last step of backward data by phases (src/conv/impl_gemm.cpp, bwd_data_phases): a stride
// (sH, sW) layer's gx splits into sH x sW phase grids, each computed by its own GEMM into a buffer;
// this writes one block of all of them back into gx, row by row in memory order, each element once.
#pragma once
#include <cstdint>

namespace convkit::kernels::phase {

// Phase (a, b)'s block has rows[a] rows of width[b] columns (both non-increasing); its element
// (ch, r, x) is src[(a * sW + b) * ps + (ch * rows[a] + r) * ld + x]. It goes to
//   gx[ch * plane + (a + sH * r) * W + sW * x + b]        (gx: the block's first element)
// for ch < C. stream: the stores may bypass the caches (a gx too large for them, written once);
// portable code ignores it.
struct Interleave {
  const float* src;
  int64_t ps, ld;
  int64_t sH, sW;
  const int64_t* rows;   // (sH)
  const int64_t* width;  // (sW)
  int64_t C;
  float* gx;
  int64_t plane, W;
  bool stream;
};

void interleave(const Interleave& t);
// AVX2 (call only when base::use_avx2()): sW = 2 eight columns at a time, streaming stores (fenced
// before it returns) where t.stream is set; the same values, to the same places.
void interleave__avx2(const Interleave& t);

}  // namespace convkit::kernels::phase
