// Convolution dispatch: for each pass an ordered list of implementations, the reference last.
// The first one whose why_not() is null runs, unless CONVKIT_IMPL (or set_forced_impl) names one;
// a forced implementation that does not apply is an error, never a silent fallback.
// CONVKIT_VERBOSE=1 prints each call's pass, shape, implementation and time on stderr.
#pragma once
#include <cstddef>
#include <span>
#include <string>

#include "kernels/conv_params.h"

namespace convkit::conv {

using kernels::ConvParams;

enum class Pass : int { Fwd = 0, BwdData = 1, BwdWeight = 2 };
const char* pass_name(Pass pass);  // "fwd", "bwd_data", "bwd_weight"

// Pointers of one call; a pass reads and writes only its own.
//   Fwd:       x (N, C, H, W), w (O, C/g, kH, kW), b (O) or null  ->  y (N, O, Ho, Wo)
//   BwdData:   gy (N, O, Ho, Wo), w                                ->  gx (N, C, H, W)
//   BwdWeight: gy, x                                               ->  gw (O, C/g, kH, kW) and/or
//   gb (O)
struct ConvArgs {
  const float* x = nullptr;
  const float* w = nullptr;
  const float* b = nullptr;
  float* y = nullptr;
  const float* gy = nullptr;
  float* gx = nullptr;
  float* gw = nullptr;
  float* gb = nullptr;
};

struct Impl {
  const char* name;  // grep-able, e.g. "gemm_avx2"
  // Null when the implementation handles p; otherwise a short static reason.
  const char* (*why_not)(const ConvParams& p);
  // Scratch floats the call needs with `nthreads` threads (the dispatcher books it).
  std::size_t (*workspace_floats)(const ConvParams& p, int nthreads);
  // Runs the pass; ws holds workspace_floats(p, nthreads) floats, 64-byte aligned.
  void (*run)(const ConvParams& p, const ConvArgs& a, float* ws, int nthreads);
};

// The ordered list for a pass (reference last).
std::span<const Impl* const> impls(Pass pass);
// The implementation a call with these params would run now (honours the forced names). Throws
// convkit::Error if a forced name is unknown for this pass or does not apply.
const Impl& choose(Pass pass, const ConvParams& p);
// Finds an implementation by name in a pass's list; null if absent.
const Impl* find_impl(Pass pass, const std::string& name);
// Bytes of workspace `impl` books for p at the current thread count.
std::size_t workspace_bytes(const Impl& impl, const ConvParams& p);
// Runs one implementation (booking its workspace); throws if it does not apply to p.
void run_impl(const Impl& impl, Pass pass, const ConvParams& p, const ConvArgs& a);
// Overrides CONVKIT_IMPL for this process: comma-separated names; the first name present in a
// pass's list is forced for that pass. "" restores automatic choice (CONVKIT_IMPL is then ignored).
void set_forced_impl(const std::string& names);
// True when CONVKIT_VERBOSE is set (implementations log their own data-dependent fallbacks).
bool verbose_enabled();

}  // namespace convkit::conv
