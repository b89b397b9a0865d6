// The reference loops as dispatch entries: every option, no workspace, single-threaded.
#include "conv/impls.h"
#include "kernels/ref/conv2d_ref.h"

namespace convkit::conv::impl {

namespace {
const char* always(const ConvParams&) {
  return nullptr;
}
std::size_t no_workspace(const ConvParams&, int) {
  return 0;
}
}  // namespace

const Impl ref_fwd{"ref", always, no_workspace,
                   [](const ConvParams& p, const ConvArgs& a, float*, int) {
                     kernels::ref::conv2d_fwd(p, a.x, a.w, a.b, a.y);
                   }};
const Impl ref_bwd_data{"ref", always, no_workspace,
                        [](const ConvParams& p, const ConvArgs& a, float*, int) {
                          kernels::ref::conv2d_bwd_data(p, a.gy, a.w, a.gx);
                        }};
const Impl ref_bwd_weight{"ref", always, no_workspace,
                          [](const ConvParams& p, const ConvArgs& a, float*, int) {
                            kernels::ref::conv2d_bwd_weight(p, a.gy, a.x, a.gw, a.gb);
                          }};

}  // namespace convkit::conv::impl
