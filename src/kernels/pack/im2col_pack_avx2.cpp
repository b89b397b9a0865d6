// AVX2 packs (contracts in im2col_pack.h). Compiled with -mavx2 -mfma only.
// - Forward B blocks: runs of up to NR samples copied 8 at a time; stride 2 (strided layers, the
//   7x7 stem) takes the even samples of two overlapping loads with two shuffles.
// - The weight-gradient GEMM's operands are transposed while packed (the reduction index q runs
//   along the rows of gy and of col), so they go through registers 8 x 8 at a time: 8 row loads, a
//   24-shuffle transpose, 8 stores — instead of one scalar load and store per element.
#include <immintrin.h>

#include <algorithm>
#include <climits>

#include "kernels/evens_avx2.h"
#include "kernels/gemm/gemm.h"
#include "kernels/lanes_avx2.h"
#include "kernels/pack/im2col_pack.h"
#include "kernels/pack/im2col_pack_impl.h"
#include "kernels/transpose_avx2.h"

namespace convkit::kernels::pack {

namespace {

using gemm::MR;
using gemm::NR;

// d[i] = row[i * sW] for i < len, 8 at a time for strides 1 and 2 (the last, short block with
// masked loads). Reads only row[0 .. (len-1) sW]. With Overshoot, the last block is stored whole:
// up to 7 floats past d[len - 1] are written (garbage), which the caller's buffer must allow;
// otherwise exactly d[0 .. len) is written.
template <bool Overshoot>
struct CopyRunAvx2 {
  void operator()(const float* row, int64_t sW, int64_t len, float* d) const {
    int64_t i = 0;
    if (sW == 1) {
      for (; i + 8 <= len; i += 8) _mm256_storeu_ps(d + i, _mm256_loadu_ps(row + i));
      if (Overshoot && i < len) {
        _mm256_storeu_ps(d + i, _mm256_maskload_ps(row + i, first_lanes(len - i)));
        return;
      }
    } else if (sW == 2) {
      i = copy_evens_blocks(row, len, d);
      if (Overshoot && i < len) {
        const int64_t last = 2 * (len - i - 1);  // offset of the last sample from row + 2i
        const __m256 lo =
            _mm256_maskload_ps(row + 2 * i, first_lanes(std::min<int64_t>(8, last + 1)));
        const __m256 hi =
            _mm256_maskload_ps(row + 2 * i + 7, first_lanes(std::max<int64_t>(0, last - 6)));
        _mm256_storeu_ps(d + i, evens(lo, hi));
        return;
      }
    }
    for (; i < len; ++i) d[i] = row[i * sW];
  }
};

// The 8 float pairs of lo = row[0 .. 8), hi = row[8 .. 16): their first halves (row[0], row[2], ..
// row[14]) to e, their second halves to o. Per 128-bit lane take the even (odd) floats of lo and
// hi, then swap the middle 64-bit pairs into order.
inline void split_pairs(__m256 lo, __m256 hi, float* e, float* o) {
  const __m256 ev = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
  const __m256 od = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
  _mm256_storeu_ps(e, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xD8)));
  _mm256_storeu_ps(o, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), 0xD8)));
}

// row[i * sW] += src[i] for i < len, 8 at a time for strides 1 and 2. Touches only row[0 ..
// (len-1) sW]: for stride 2 the odd floats between are added 0 and written back unchanged (this
// thread owns the whole row), and a block runs only while its 16 floats end inside the run.
struct AddRunAvx2 {
  void operator()(float* row, int64_t sW, int64_t len, const float* src) const {
    int64_t i = 0;
    if (sW == 1) {
      for (; i + 8 <= len; i += 8)
        _mm256_storeu_ps(row + i,
                         _mm256_add_ps(_mm256_loadu_ps(row + i), _mm256_loadu_ps(src + i)));
    } else if (sW == 2) {
      const __m256 zero = _mm256_setzero_ps();
      for (; i + 8 < len; i += 8) {  // i + 8 < len: row[2i + 15] <= row[2 (len-1)]
        const __m256 s = _mm256_loadu_ps(src + i);
        const __m256 lo = _mm256_unpacklo_ps(s, zero), hi = _mm256_unpackhi_ps(s, zero);
        // lo = {s0 0 s1 0 | s4 0 s5 0}, hi = {s2 0 s3 0 | s6 0 s7 0}
        float* r = row + 2 * i;
        _mm256_storeu_ps(r,
                         _mm256_add_ps(_mm256_loadu_ps(r), _mm256_permute2f128_ps(lo, hi, 0x20)));
        _mm256_storeu_ps(
            r + 8, _mm256_add_ps(_mm256_loadu_ps(r + 8), _mm256_permute2f128_ps(lo, hi, 0x31)));
      }
    }
    for (; i < len; ++i) row[i * sW] += src[i];
  }
};

}  // namespace

void col2im_add__avx2(const Im2col& g, const float* dcol, int64_t ld, int64_t k0, int64_t kc,
                      int64_t j0, int64_t nc, float* gx) {
  col2im_add_with(g, dcol, ld, k0, kc, j0, nc, gx, AddRunAvx2{});
}

void pack_im2col__avx2(const Im2col& g, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
                       float* dst) {
  pack_im2col_rows(g, k0, kc, j0, nc, dst, CopyRunAvx2<true>{});
}

void pack_a_gy__avx2(const float* gy0, int64_t image_stride, int64_t P, int64_t i0, int64_t mc,
                     int64_t q0, int64_t qc, float* dst) {
  static_assert(MR == 6, "the stores below write 4 + 2 lanes");
  for (int64_t r = 0; r < mc; r += MR) {
    const int64_t rows = std::min(MR, mc - r);
    float* d = dst + r * qc;
    int64_t q = q0;
    while (q < q0 + qc) {
      const int64_t n = q / P, j = q % P;
      const int64_t len = std::min(P - j, q0 + qc - q);
      const float* s = gy0 + n * image_stride + (i0 + r) * P + j;  // row i at s + i * P
      float* dq = d + (q - q0) * MR;
      int64_t e = 0;
      for (; e + 8 <= len; e += 8) {
        __m256 v[8];
        for (int64_t i = 0; i < 8; ++i)
          v[i] = i < rows ? _mm256_loadu_ps(s + i * P + e) : _mm256_setzero_ps();
        __m256 c[8];
        transpose8(v, c);
        for (int64_t t = 0; t < 8; ++t) {  // q = e + t: lanes 0..5 are rows 0..5
          float* o = dq + (e + t) * MR;
          _mm_storeu_ps(o, _mm256_castps256_ps128(c[t]));
          _mm_storel_pi(reinterpret_cast<__m64*>(o + 4), _mm256_extractf128_ps(c[t], 1));
        }
      }
      for (; e < len; ++e)
        for (int64_t i = 0; i < MR; ++i) dq[e * MR + i] = i < rows ? s[i * P + e] : 0.f;
      q += len;
    }
  }
}

namespace {

// Panel rows q = 0 .. len of NR columns: panel[q * NR + kk] = rows[kk][q], 8 x 8 in registers.
void transpose_rows_into_panel(const float* const (&rows)[NR], int64_t len, float* panel) {
  int64_t q = 0;
  for (; q + 8 <= len; q += 8) {
    __m256 lo[8], hi[8];
    for (int i = 0; i < 8; ++i) {
      lo[i] = _mm256_loadu_ps(rows[i] + q);
      hi[i] = _mm256_loadu_ps(rows[i + 8] + q);
    }
    __m256 clo[8], chi[8];
    transpose8(lo, clo);
    transpose8(hi, chi);
    for (int t = 0; t < 8; ++t) {
      _mm256_storeu_ps(panel + (q + t) * NR, clo[t]);
      _mm256_storeu_ps(panel + (q + t) * NR + 8, chi[t]);
    }
  }
  for (; q < len; ++q)
    for (int64_t kk = 0; kk < NR; ++kk) panel[q * NR + kk] = rows[kk][q];
}

}  // namespace

void pack_im2col_t__avx2(const Im2col& g, int64_t q0, int64_t qc, int64_t k0, int64_t nc,
                         float* dst) {
  alignas(32) static const float zeros[gemm::KC] = {};
  const float* rows[NR];
  if (is_plain(g)) {
    // col is x itself: each image's run of q is transposed straight from its planes.
    const int64_t P = g.W;
    for (int64_t s = 0; s < nc; s += NR) {
      const int64_t cols = std::min(NR, nc - s);
      float* panel = dst + (s / NR) * qc * NR;
      for (int64_t q = q0; q < q0 + qc;) {
        const int64_t n = q / P, j = q % P, len = std::min(P - j, q0 + qc - q);
        const float* plane = g.x + n * g.image_stride + j;
        for (int64_t kk = 0; kk < NR; ++kk)
          rows[kk] = kk < cols ? plane + (k0 + s + kk) * P : zeros;
        transpose_rows_into_panel(rows, len, panel + (q - q0) * NR);
        q += len;
      }
    }
    return;
  }
  // Otherwise per panel of NR columns k: the NR rows of col over q0 .. q0+qc are gathered row by
  // row into tmp (contiguous copies), then transposed into the panel.
  alignas(32) float tmp[NR][gemm::KC];
  for (int64_t s = 0; s < nc; s += NR) {
    const int64_t cols = std::min(NR, nc - s);
    for (int64_t kk = 0; kk < NR; ++kk) {
      if (kk < cols) gather_col_row_with(g, k0 + s + kk, q0, qc, tmp[kk], CopyRunAvx2<false>{});
      rows[kk] = kk < cols ? tmp[kk] : zeros;
    }
    transpose_rows_into_panel(rows, qc, dst + (s / NR) * qc * NR);
  }
}

namespace {

// Stride 2, both column phases: the x row split into its even and odd samples in one pass, 16
// floats per two loads (the last, short block with masked loads, whose zero lanes are the padding
// columns). SplitByPhase's contract.
struct SplitPairs {
  void operator()(const PhasePlanes& pp, const float* row, float* d0, int64_t stride) const {
    float* d1 = d0 + stride;
    const int64_t W = pp.W;
    int64_t m = 0;
    if (row) {
      for (; 2 * m + 16 <= W; m += 8)
        split_pairs(_mm256_loadu_ps(row + 2 * m), _mm256_loadu_ps(row + 2 * m + 8), d0 + m, d1 + m);
      if (2 * m < W && m < pp.Wo) {
        const int64_t left = W - 2 * m;  // 1 .. 15
        split_pairs(
            _mm256_maskload_ps(row + 2 * m, first_lanes(std::min<int64_t>(8, left))),
            _mm256_maskload_ps(row + 2 * m + 8, first_lanes(std::max<int64_t>(0, left - 8))),
            d0 + m, d1 + m);
        m += 8;
      }
    }
    if (m < pp.Wo) {
      std::fill(d0 + m, d0 + pp.Wo, 0.f);
      std::fill(d1 + m, d1 + pp.Wo, 0.f);
    }
  }
};

}  // namespace

void build_planes__avx2(const PhasePlanes& pp, int64_t c0, int64_t c1, int64_t oh0, int64_t rows,
                        float* buf) {
  if (pp.sW == 2 && pp.used_q.size() == 2)
    build_planes_with(pp, c0, c1, oh0, rows, buf, SplitPairs{});
  else
    build_planes_with(pp, c0, c1, oh0, rows, buf, SplitByPhase<CopyRunAvx2<true>>{});
}

// 8 floats per load; where a row's shift is not 0 (or past nc) the lanes outside the row are
// cleared by a mask from the block's column numbers.
void pack_runs__avx2(int64_t kc, int64_t nc, int64_t col0, int64_t width, const float* const* run,
                     const int64_t* shift, float* dst) {
  constexpr int64_t kMaxVectors = gemm::NC / 8;
  const int64_t nv = (nc + 7) / 8;  // vectors with block columns; the panels' rest is zeroed
  if (nv > kMaxVectors) {
    pack_runs(kc, nc, col0, width, run, shift, dst);
    return;
  }
  __m256i col[kMaxVectors];  // each lane's column in its row; past nc a value no shift brings in
  alignas(32) int32_t lane[8];
  for (int64_t v = 0; v < nv; ++v) {
    for (int64_t l = 0; l < 8; ++l) {
      const int64_t j = 8 * v + l;
      lane[l] = j < nc ? static_cast<int32_t>((col0 + j) % width) : INT32_MIN / 2;
    }
    col[v] = _mm256_load_si256(reinterpret_cast<const __m256i*>(lane));
  }
  const bool tail_lanes = nc % 8 != 0;
  const int64_t panels = (nc + NR - 1) / NR;
  for (int64_t kk = 0; kk < kc; ++kk) {
    const float* r = run[kk];
    float* d = dst + kk * NR;
    if (shift[kk] == 0 && !tail_lanes) {
      for (int64_t v = 0; v < nv; ++v)
        _mm256_storeu_ps(d + v / 2 * kc * NR + v % 2 * 8, _mm256_loadu_ps(r + 8 * v));
    } else {
      // inside: -shift <= col < width - shift
      const __m256i lo = _mm256_set1_epi32(static_cast<int32_t>(-shift[kk] - 1));
      const __m256i hi = _mm256_set1_epi32(static_cast<int32_t>(width - shift[kk]));
      for (int64_t v = 0; v < nv; ++v) {
        const __m256i in =
            _mm256_and_si256(_mm256_cmpgt_epi32(col[v], lo), _mm256_cmpgt_epi32(hi, col[v]));
        _mm256_storeu_ps(d + v / 2 * kc * NR + v % 2 * 8,
                         _mm256_and_ps(_mm256_castsi256_ps(in), _mm256_loadu_ps(r + 8 * v)));
      }
    }
    if (nv < 2 * panels) _mm256_storeu_ps(d + (panels - 1) * kc * NR + 8, _mm256_setzero_ps());
  }
}

void pack_planes__avx2(const PhasePlanes& pp, const float* buf, int64_t c0, int64_t rows,
                       int64_t k0, int64_t kc, int64_t jc, int64_t nc, float* dst) {
  const float* run[gemm::KC];
  int64_t shift[gemm::KC];
  plane_runs(pp, buf, c0, rows, k0, kc, jc, run, shift);
  pack_runs__avx2(kc, nc, jc, pp.Wo, run, shift, dst);
}

namespace {

// pack_col_t_planes_with's pack_t: 8 positions of all NR taps per step, each tap's 8 floats one
// load (lanes outside its row cleared as in pack_runs__avx2), then two 8 x 8 transposes.
void pack_runs_t(int64_t ntaps, int64_t len, int64_t col0, int64_t width, const float* const* run,
                 const int64_t* shift, float* dst) {
  alignas(32) int32_t lane[8];
  int64_t c = col0 % width;  // the column of position i0
  for (int64_t i0 = 0; i0 < len; i0 += 8) {
    for (int l = 0; l < 8; ++l) {
      lane[l] = static_cast<int32_t>(c);
      if (++c == width) c = 0;
    }
    const __m256i col = _mm256_load_si256(reinterpret_cast<const __m256i*>(lane));
    __m256 v[NR];
    for (int64_t kk = 0; kk < NR; ++kk) {
      if (kk >= ntaps) {
        v[kk] = _mm256_setzero_ps();
        continue;
      }
      v[kk] = _mm256_loadu_ps(run[kk] + i0);
      if (shift[kk] != 0) {  // inside: -shift <= col < width - shift
        const __m256i lo = _mm256_set1_epi32(static_cast<int32_t>(-shift[kk] - 1));
        const __m256i hi = _mm256_set1_epi32(static_cast<int32_t>(width - shift[kk]));
        const __m256i in =
            _mm256_and_si256(_mm256_cmpgt_epi32(col, lo), _mm256_cmpgt_epi32(hi, col));
        v[kk] = _mm256_and_ps(_mm256_castsi256_ps(in), v[kk]);
      }
    }
    __m256 lo[8], hi[8];
    transpose8(v, lo);
    transpose8(v + 8, hi);
    const int64_t n = std::min<int64_t>(8, len - i0);
    float* d = dst + i0 * NR;
    for (int64_t t = 0; t < n; ++t) {
      _mm256_storeu_ps(d + t * NR, lo[t]);
      _mm256_storeu_ps(d + t * NR + 8, hi[t]);
    }
  }
}

}  // namespace

void pack_col_t_planes__avx2(const Im2col& g, PhasePlanes& pp, int64_t q0, int64_t qc, int64_t k0,
                             int64_t nc, float* buf, float* dst) {
  pack_col_t_planes_with(g, pp, q0, qc, k0, nc, buf, dst, build_planes__avx2, pack_runs_t);
}

}  // namespace convkit::kernels::pack
