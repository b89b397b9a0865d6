// "tiny_direct": direct loops for problems too small to pay for packing, workspace or threads (the
// notebook's 6x8 image). No allocation, no parallel region. The forward of an unpadded layer with
// column stride 1 runs 8 outputs at a time where the CPU has AVX2, with the portable loop's bits
// (kernels/direct/direct.h); everything else runs the portable loops.
#include "base/cpu.h"
#include "conv/impls.h"
#include "kernels/direct/direct.h"

namespace convkit::conv::impl {

namespace {
// Up to 4096 multiply-adds the whole call takes ~1 us scalar, below any threaded path's overhead.
constexpr double kTinyFlops = 2.0 * 4096;

const char* tiny_why_not(const ConvParams& p) {
  if (p.flops() > kTinyFlops) return "more than 4096 multiply-adds";
  return zero_padding_reason(p);
}
std::size_t no_workspace(const ConvParams&, int) {
  return 0;
}
}  // namespace

const Impl tiny_fwd{"tiny_direct", tiny_why_not, no_workspace,
                    [](const ConvParams& p, const ConvArgs& a, float*, int) {
                      if (!p.has_padding() && p.sW == 1 && base::use_avx2())
                        kernels::direct::fwd_unpadded_s1__avx2(p, a.x, a.w, a.b, a.y);
                      else
                        kernels::direct::fwd(p, a.x, a.w, a.b, a.y);
                    }};
const Impl tiny_bwd_data{"tiny_direct", tiny_why_not, no_workspace,
                         [](const ConvParams& p, const ConvArgs& a, float*, int) {
                           kernels::direct::bwd_data(p, a.gy, a.w, a.gx);
                         }};
const Impl tiny_bwd_weight{"tiny_direct", tiny_why_not, no_workspace,
                           [](const ConvParams& p, const ConvArgs& a, float*, int) {
                             kernels::direct::bwd_weight(p, a.gy, a.x, a.gw, a.gb);
                           }};

}  // namespace convkit::conv::impl
