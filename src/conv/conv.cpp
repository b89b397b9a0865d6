// The dispatcher behind conv::forward / backward_data / backward_weight (see conv/dispatch.h).
#include "conv/conv.h"

#include <convkit/error.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "base/aligned.h"
#include "base/parallel.h"
#include "conv/dispatch.h"
#include "conv/impls.h"
#include "kernels/ref/pad_index.h"

namespace convkit::conv {

namespace {

// Fastest first; each list ends with the reference, which applies to everything.
const Impl* const kFwd[] = {&impl::tiny_fwd,         &impl::wino1d_fwd_avx2,
                            &impl::smallc_fwd_avx2,  &impl::dwconv_fwd_avx2,
                            &impl::direct_fwd_avx2,  &impl::wino_fwd_avx2,
                            &impl::gemm_fwd_avx2,    &impl::direct_fwd_generic,
                            &impl::gemm_fwd_generic, &impl::ref_fwd};
const Impl* const kBwdData[] = {&impl::tiny_bwd_data,         &impl::smallc_bwd_data_avx2,
                                &impl::wino1d_bwd_data_avx2,  &impl::dwconv_bwd_data_avx2,
                                &impl::direct_bwd_data_avx2,  &impl::wino_bwd_data_avx2,
                                &impl::gemm_bwd_data_avx2,    &impl::direct_bwd_data_generic,
                                &impl::gemm_bwd_data_generic, &impl::ref_bwd_data};
const Impl* const kBwdWeight[] = {&impl::tiny_bwd_weight,         &impl::wino1d_bwd_weight_avx2,
                                  &impl::smallc_bwd_weight_avx2,  &impl::dwconv_bwd_weight_avx2,
                                  &impl::direct_bwd_weight_avx2,  &impl::wino_bwd_weight_avx2,
                                  &impl::gemm_bwd_weight_avx2,    &impl::direct_bwd_weight_generic,
                                  &impl::gemm_bwd_weight_generic, &impl::ref_bwd_weight};

bool verbose() {
  static const bool v = [] {
    const char* e = std::getenv("CONVKIT_VERBOSE");
    return e && *e && std::strcmp(e, "0") != 0;
  }();
  return v;
}

// Forced names: from CONVKIT_IMPL until set_forced_impl replaces them. Read under a mutex only
// when something is forced (the flag keeps the common path free of locks).
struct Forced {
  std::mutex mu;
  std::vector<std::string> names;
  std::atomic<bool> any{false};
  Forced() {
    const char* e = std::getenv("CONVKIT_IMPL");
    if (e && *e) set(e);
  }
  void set(const std::string& list) {
    std::vector<std::string> parsed;
    std::stringstream ss(list);
    std::string item;
    while (std::getline(ss, item, ',')) {
      item.erase(0, item.find_first_not_of(" \t"));
      item.erase(item.find_last_not_of(" \t") + 1);
      if (!item.empty()) parsed.push_back(item);
    }
    for (const auto& n : parsed) {
      bool known = false;
      for (Pass pass : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight})
        known = known || find_impl(pass, n) != nullptr;
      if (!known) {
        std::string all;
        for (Pass pass : {Pass::Fwd, Pass::BwdData, Pass::BwdWeight})
          for (const Impl* i : impls(pass))
            if (all.find(std::string(" ") + i->name + ",") == std::string::npos)
              all += std::string(" ") + i->name + ",";
        if (!all.empty()) all.pop_back();
        fail("conv2d: CONVKIT_IMPL names unknown implementation '", n, "'; known:", all);
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    names = std::move(parsed);
    any.store(!names.empty());
  }
};
Forced& forced() {
  static Forced f;
  return f;
}

std::string describe(const ConvParams& p) {
  std::ostringstream o;
  o << "N=" << p.N << " C=" << p.C << " H=" << p.H << " W=" << p.W << " O=" << p.O << " k=" << p.kH
    << "x" << p.kW << " s=" << p.sH << "x" << p.sW << " d=" << p.dH << "x" << p.dW
    << " pad(t,b,l,r)=" << p.pad_t << "," << p.pad_b << "," << p.pad_l << "," << p.pad_r
    << " g=" << p.groups;
  return o.str();
}

base::AlignedBuffer& scratch() {
  thread_local base::AlignedBuffer buf;
  return buf;
}

// Runs an implementation already known to apply: books its workspace (none for the tiny path,
// which therefore allocates nothing) and calls it.
void run_applying(const Impl& impl, const ConvParams& p, const ConvArgs& a) {
  const int nt = base::max_threads();
  const std::size_t ws = impl.workspace_floats(p, nt);
  impl.run(p, a, ws ? scratch().reserve(ws) : nullptr, nt);
}

void dispatch(Pass pass, const ConvParams& p, const ConvArgs& a) {
  const Impl& impl = choose(pass, p);
  if (!verbose()) {
    run_applying(impl, p, a);
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  run_applying(impl, p, a);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "convkit: conv2d %s %s impl=%s threads=%d workspace=%zuB time=%.4fms\n",
               pass_name(pass), describe(p).c_str(), impl.name, base::max_threads(),
               workspace_bytes(impl, p), ms);
}

}  // namespace

bool verbose_enabled() {
  return verbose();
}

const char* pass_name(Pass pass) {
  switch (pass) {
    case Pass::Fwd:
      return "fwd";
    case Pass::BwdData:
      return "bwd_data";
    case Pass::BwdWeight:
      return "bwd_weight";
  }
  return "?";
}

std::span<const Impl* const> impls(Pass pass) {
  switch (pass) {
    case Pass::Fwd:
      return kFwd;
    case Pass::BwdData:
      return kBwdData;
    case Pass::BwdWeight:
      return kBwdWeight;
  }
  return {};
}

const Impl* find_impl(Pass pass, const std::string& name) {
  for (const Impl* i : impls(pass))
    if (name == i->name) return i;
  return nullptr;
}

const Impl& choose(Pass pass, const ConvParams& p) {
  Forced& f = forced();
  if (f.any.load(std::memory_order_acquire)) {
    std::vector<std::string> names;
    {
      std::lock_guard<std::mutex> lock(f.mu);
      names = f.names;
    }
    for (const auto& n : names) {
      const Impl* i = find_impl(pass, n);
      if (!i) continue;  // a name may exist for some passes only (e.g. forward-only Winograd)
      if (const char* why = i->why_not(p))
        fail("conv2d ", pass_name(pass), ": forced implementation '", n, "' does not apply to ",
             describe(p), ": ", why);
      return *i;
    }
  }
  for (const Impl* i : impls(pass))
    if (!i->why_not(p)) return *i;
  fail("conv2d ", pass_name(pass), ": no implementation applies to ", describe(p));
}

std::size_t workspace_bytes(const Impl& impl, const ConvParams& p) {
  return impl.workspace_floats(p, base::max_threads()) * sizeof(float);
}

void run_impl(const Impl& impl, Pass pass, const ConvParams& p, const ConvArgs& a) {
  if (const char* why = impl.why_not(p))
    fail("conv2d ", pass_name(pass), ": implementation '", impl.name, "' does not apply to ",
         describe(p), ": ", why);
  run_applying(impl, p, a);
}

void set_forced_impl(const std::string& names) {
  Forced& f = forced();
  f.set(names);
}

// Padding modes other than zeros (reflect, replicate, circular, symmetric, constant) are
// materialised: the input is padded into scratch once, and the convolution runs unpadded on it, so
// every fast implementation serves them. Backward-data folds the padded gradient back onto the
// samples each padded position read (constant padding reads none).
namespace {

bool pads_explicitly(const ConvParams& p) {
  return p.has_padding() && p.mode != kernels::PadMode::Zeros;
}

ConvParams unpadded(const ConvParams& p) {
  ConvParams q = p;
  q.H = p.H + p.pad_t + p.pad_b;
  q.W = p.W + p.pad_l + p.pad_r;
  q.pad_t = q.pad_b = q.pad_l = q.pad_r = 0;
  q.mode = kernels::PadMode::Zeros;
  q.pad_value = 0.f;
  return q;
}

// Source row/column each padded coordinate reads (kernels::kPadConstant for none).
std::pair<std::vector<int64_t>, std::vector<int64_t>> pad_maps(const ConvParams& p) {
  const ConvParams q = unpadded(p);
  std::vector<int64_t> rows(static_cast<size_t>(q.H)), cols(static_cast<size_t>(q.W));
  for (int64_t i = 0; i < q.H; ++i) rows[i] = kernels::pad_index(i - p.pad_t, p.H, p.mode);
  for (int64_t j = 0; j < q.W; ++j) cols[j] = kernels::pad_index(j - p.pad_l, p.W, p.mode);
  return {rows, cols};
}

// xp (N, C, Hp, Wp) = x (N, C, H, W) padded by p's mode. Interior runs are copied whole; only the
// border columns go through the index map.
std::vector<float> pad_input(const ConvParams& p, const float* x) {
  const ConvParams q = unpadded(p);
  const auto [rows, cols] = pad_maps(p);
  std::vector<float> xp(static_cast<size_t>(p.N * p.C * q.H * q.W));
  for (int64_t nc = 0; nc < p.N * p.C; ++nc) {
    const float* src = x + nc * p.H * p.W;
    float* dst = xp.data() + nc * q.H * q.W;
    for (int64_t i = 0; i < q.H; ++i) {
      float* out = dst + i * q.W;
      if (rows[i] == kernels::kPadConstant) {
        std::fill(out, out + q.W, p.pad_value);
        continue;
      }
      const float* in = src + rows[i] * p.W;
      for (int64_t j = 0; j < p.pad_l; ++j) {
        out[j] = cols[j] == kernels::kPadConstant ? p.pad_value : in[cols[j]];
      }
      std::copy(in, in + p.W, out + p.pad_l);
      for (int64_t j = p.pad_l + p.W; j < q.W; ++j) {
        out[j] = cols[j] == kernels::kPadConstant ? p.pad_value : in[cols[j]];
      }
    }
  }
  return xp;
}

// gx (N, C, H, W) = gxp (N, C, Hp, Wp) folded back through the padding (fixed order: bitwise
// reproducible).
void fold_padding(const ConvParams& p, const float* gxp, float* gx) {
  const ConvParams q = unpadded(p);
  const auto [rows, cols] = pad_maps(p);
  std::fill(gx, gx + p.N * p.C * p.H * p.W, 0.f);
  for (int64_t nc = 0; nc < p.N * p.C; ++nc) {
    const float* src = gxp + nc * q.H * q.W;
    float* dst = gx + nc * p.H * p.W;
    for (int64_t i = 0; i < q.H; ++i) {
      for (int64_t j = 0; j < q.W; ++j) {
        if (rows[i] == kernels::kPadConstant || cols[j] == kernels::kPadConstant) continue;
        dst[rows[i] * p.W + cols[j]] += src[i * q.W + j];
      }
    }
  }
}

}  // namespace

void forward(const ConvParams& p, const float* x, const float* w, const float* b, float* y) {
  if (p.N == 0) return;  // empty batch: empty output
  if (pads_explicitly(p)) {
    const std::vector<float> xp = pad_input(p, x);
    forward(unpadded(p), xp.data(), w, b, y);
    return;
  }
  ConvArgs a;
  a.x = x;
  a.w = w;
  a.b = b;
  a.y = y;
  dispatch(Pass::Fwd, p, a);
}

void backward_data(const ConvParams& p, const float* gy, const float* w, float* gx) {
  if (p.N == 0) return;
  if (pads_explicitly(p)) {
    const ConvParams q = unpadded(p);
    std::vector<float> gxp(static_cast<size_t>(q.N * q.C * q.H * q.W));
    backward_data(q, gy, w, gxp.data());
    fold_padding(p, gxp.data(), gx);
    return;
  }
  ConvArgs a;
  a.gy = gy;
  a.w = w;
  a.gx = gx;
  dispatch(Pass::BwdData, p, a);
}

void backward_weight(const ConvParams& p, const float* gy, const float* x, float* gw, float* gb) {
  if (!gw && !gb) return;
  if (p.N == 0) {  // no samples: the gradients are sums over nothing
    if (gw) std::fill(gw, gw + p.O * p.Cg() * p.kH * p.kW, 0.f);
    if (gb) std::fill(gb, gb + p.O, 0.f);
    return;
  }
  if (pads_explicitly(p)) {
    const std::vector<float> xp = pad_input(p, x);
    backward_weight(unpadded(p), gy, xp.data(), gw, gb);
    return;
  }
  ConvArgs a;
  a.gy = gy;
  a.x = x;
  a.gw = gw;
  a.gb = gb;
  dispatch(Pass::BwdWeight, p, a);
}

}  // namespace convkit::conv
