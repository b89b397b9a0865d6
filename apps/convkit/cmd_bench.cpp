// `convkit bench [--suite FILE] [--threads N] [--json]`: for every shape of a suite and every pass
// (fwd, bwd_data, bwd_weight), the median time of convkit's dispatched convolution, GFLOP/s
// (2 N O Ho Wo (C/groups) kH kW, the direct-convolution count, for every pass), percent of this
// machine's FMA peak (measured at start-up), the implementation chosen and its workspace, at 1 and
// 2 threads (or --threads N). Built with -DCONVKIT_BENCH_ONEDNN=ON it times oneDNN's convolution
// primitive on the same shape and pass, interleaved with convkit's runs, in oneDNN's preferred
// (blocked) layouts with reorders untimed, and prints the ratio oneDNN time / convkit time.
//
// This is a benchmark, not a test: it uses the library's internal dispatch header (conv/dispatch.h)
// to report the implementation and workspace.
#include <convkit/error.h>
#include <convkit/runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/cpu.h"
#include "commands.h"
#include "conv/conv.h"
#include "conv/dispatch.h"
#include "kernels/gemm/gemm.h"

#if defined(CONVKIT_BENCH_ONEDNN)
#include <omp.h>

#include <dnnl.hpp>
#endif

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace convkit::cli {

namespace {

using Clock = std::chrono::steady_clock;
using kernels::ConvParams;

struct BenchShape {
  std::string name;
  ConvParams p;
};

// ---- the suite --------------------------------------------------------------------------------

std::string default_suite() {
  std::vector<std::filesystem::path> candidates;
#if defined(CONVKIT_DEFAULT_SUITE)
  candidates.emplace_back(CONVKIT_DEFAULT_SUITE);  // <source>/../shared/bench/shapes.json
#endif
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec)  // <repo>/build/<preset>/bin/convkit -> <repo>/../shared/bench/shapes.json
    for (auto dir = exe.parent_path(); !dir.empty() && dir != dir.root_path();
         dir = dir.parent_path())
      candidates.push_back(dir / ".." / "shared" / "bench" / "shapes.json");
  for (const auto& c : candidates)
    if (std::filesystem::exists(c, ec)) return c.lexically_normal().string();
  fail(
      "bench: no --suite given and the default suite shared/bench/shapes.json was not found "
      "beside the source tree or above the executable; pass --suite FILE");
}

std::vector<BenchShape> load_suite(const std::string& path) {
  std::ifstream in(path);
  check(bool(in), "bench: cannot open suite '", path, "'");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const std::exception& e) {
    fail("bench: suite '", path, "' is not valid JSON: ", e.what());
  }
  check(j.contains("shapes") && j["shapes"].is_array(), "bench: suite '", path,
        "' needs a \"shapes\" array");
  std::vector<BenchShape> out;
  for (const auto& s : j["shapes"]) {
    auto get = [&](const char* key, int64_t def) -> int64_t {
      if (!s.contains(key)) {
        check(def >= 0, "bench: shape ", s.dump(), " lacks \"", key, "\"");
        return def;
      }
      return s[key].get<int64_t>();
    };
    BenchShape b;
    b.name = s.value("name", std::string("shape") + std::to_string(out.size()));
    ConvParams& p = b.p;
    p.N = get("N", -1), p.C = get("Cin", -1), p.H = get("H", -1), p.W = get("W", -1);
    p.O = get("Cout", -1), p.kH = get("kh", -1), p.kW = get("kw", -1);
    p.sH = p.sW = get("stride", 1);
    p.dH = p.dW = get("dilation", 1);
    p.pad_t = p.pad_b = p.pad_l = p.pad_r = get("pad", 0);
    p.groups = get("groups", 1);
    check(p.N >= 1 && p.C >= 1 && p.O >= 1 && p.groups >= 1 && p.C % p.groups == 0 &&
              p.O % p.groups == 0 && p.sH >= 1 && p.dH >= 1 && p.pad_t >= 0,
          "bench: shape '", b.name, "' has invalid sizes");
    p.Ho = (p.H + 2 * p.pad_t - p.dH * (p.kH - 1) - 1) / p.sH + 1;
    p.Wo = (p.W + 2 * p.pad_l - p.dW * (p.kW - 1) - 1) / p.sW + 1;
    check(p.Ho >= 1 && p.Wo >= 1, "bench: shape '", b.name, "' has an empty output");
    out.push_back(b);
  }
  return out;
}

// ---- FMA peak ---------------------------------------------------------------------------------

#if defined(__x86_64__)
// 10 independent FMA chains (latency 4-5 x 2 pipes), 8 floats each: the throughput bound.
__attribute__((target("avx2,fma"))) double fma_loop_gflops(int64_t reps) {
  __m256 a0 = _mm256_set1_ps(0.1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0,
         a8 = a0, a9 = a0;
  const __m256 m = _mm256_set1_ps(0.9999f), c = _mm256_set1_ps(1e-4f);
  const auto t0 = Clock::now();
  for (int64_t r = 0; r < reps; ++r) {
    a0 = _mm256_fmadd_ps(a0, m, c), a1 = _mm256_fmadd_ps(a1, m, c);
    a2 = _mm256_fmadd_ps(a2, m, c), a3 = _mm256_fmadd_ps(a3, m, c);
    a4 = _mm256_fmadd_ps(a4, m, c), a5 = _mm256_fmadd_ps(a5, m, c);
    a6 = _mm256_fmadd_ps(a6, m, c), a7 = _mm256_fmadd_ps(a7, m, c);
    a8 = _mm256_fmadd_ps(a8, m, c), a9 = _mm256_fmadd_ps(a9, m, c);
    __asm__ volatile(""
                     : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6),
                       "+x"(a7), "+x"(a8), "+x"(a9));
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  volatile float sink = _mm256_cvtss_f32(_mm256_add_ps(a0, a9));
  (void)sink;
  return 2.0 * 8 * 10 * double(reps) / s / 1e9;
}
#endif

// The best of 3 trials of `threads` threads each running gflops() at once, their rates summed.
template <typename F>
double side_by_side(int threads, F&& gflops) {
  double best = 0;
  for (int trial = 0; trial < 3; ++trial) {
    std::vector<double> g(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back([&g, &gflops, t] { g[t] = gflops(); });
    for (auto& th : pool) th.join();
    double sum = 0;
    for (double v : g) sum += v;
    best = std::max(best, sum);
  }
  return best;
}

// GFLOP/s of `threads` threads each running the FMA loop (best of 3 short runs, ~50 ms each).
double fma_peak(int threads) {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0.0;
  return side_by_side(threads, [] { return fma_loop_gflops(4'000'000); });
#else
  (void)threads;
  return 0.0;
#endif
}

// GFLOP/s of `threads` threads each running the library's GEMM micro-kernel (6 x 16 tile, one
// full K block) on its own A and B panels, which stay in L1: no packing, no memory traffic. It is
// the most a GEMM-bound layer can reach on these threads (seen here at 2 threads: 83-103% of the
// FMA peak measured just before it, run to run). Best of 3 short runs, as fma_peak.
double gemm_ceiling(int threads) {
  namespace kg = convkit::kernels::gemm;
  const kg::MicroKernel uk =
      convkit::base::use_avx2() ? kg::f32_gemm_6x16__avx2_fma : kg::f32_gemm_6x16__generic;
  return side_by_side(threads, [uk] {
    std::vector<float> a(static_cast<std::size_t>(kg::MR * kg::KC) + 16, 1e-3f);
    std::vector<float> b(static_cast<std::size_t>(kg::NR * kg::KC) + 16, 1e-3f);
    std::vector<float> c(static_cast<std::size_t>(kg::MR * kg::NR) + 16, 0.f);
    // 32-byte aligned panels, as the packs leave them.
    const auto aligned = [](std::vector<float>& v) {
      const auto p = reinterpret_cast<std::uintptr_t>(v.data());
      return v.data() + ((32 - p % 32) % 32) / sizeof(float);
    };
    float *pa = aligned(a), *pb = aligned(b), *pc = aligned(c);
    const int64_t calls = 10000;  // ~60 ms
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < calls; ++i) uk(kg::KC, pa, pb, pc, kg::NR, kg::MR, kg::NR, true);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    return 2.0 * kg::MR * kg::NR * kg::KC * double(calls) / s / 1e9;
  });
}

// ---- timing -----------------------------------------------------------------------------------

// Times fns[i] in interleaved batches (one batch of each in turn): returns median seconds per call
// for each. A batch repeats a call until it lasts ~200 us, so sub-microsecond calls are measured
// too.
std::vector<double> time_interleaved(const std::vector<std::function<void()>>& fns,
                                     double budget_s) {
  const size_t k = fns.size();
  std::vector<int64_t> batch(k, 1);
  for (size_t i = 0; i < k; ++i) {  // warm-up (first-touch, workspace booking) and calibration
    fns[i]();
    const auto t0 = Clock::now();
    fns[i]();
    const double once = std::chrono::duration<double>(Clock::now() - t0).count();
    batch[i] = std::clamp<int64_t>(static_cast<int64_t>(200e-6 / std::max(once, 1e-9)), 1, 100000);
  }
  std::vector<std::vector<double>> samples(k);
  const auto start = Clock::now();
  for (int rep = 0; rep < 51; ++rep) {
    for (size_t i = 0; i < k; ++i) {
      const auto t0 = Clock::now();
      for (int64_t b = 0; b < batch[i]; ++b) fns[i]();
      samples[i].push_back(std::chrono::duration<double>(Clock::now() - t0).count() /
                           double(batch[i]));
    }
    if (rep >= 4 && std::chrono::duration<double>(Clock::now() - start).count() > budget_s) break;
  }
  std::vector<double> med(k);
  for (size_t i = 0; i < k; ++i) {
    auto& s = samples[i];
    std::nth_element(s.begin(), s.begin() + s.size() / 2, s.end());
    med[i] = s[s.size() / 2];
  }
  return med;
}

// ---- oneDNN baseline --------------------------------------------------------------------------

#if defined(CONVKIT_BENCH_ONEDNN)
// One shape's three primitives in oneDNN's preferred layouts (format_tag::any); data reordered
// from plain NCHW/OIHW once, untimed.
class OneDnnConv {
 public:
  OneDnnConv(const ConvParams& p, const float* x, const float* w, const float* b, const float* gy)
      : eng_(dnnl::engine::kind::cpu, 0), strm_(eng_) {
    using namespace dnnl;
    using tag = memory::format_tag;
    using dt = memory::data_type;
    const memory::dims src{p.N, p.C, p.H, p.W}, dst{p.N, p.O, p.Ho, p.Wo}, bias{p.O};
    const memory::dims wei = p.groups == 1 ? memory::dims{p.O, p.C, p.kH, p.kW}
                                           : memory::dims{p.groups, p.Og(), p.Cg(), p.kH, p.kW};
    const tag wtag = p.groups == 1 ? tag::oihw : tag::goihw;
    const memory::dims strides{p.sH, p.sW}, dil{p.dH - 1, p.dW - 1}, pl{p.pad_t, p.pad_l},
        pr{p.pad_b, p.pad_r};
    const memory::desc src_any(src, dt::f32, tag::any), dst_any(dst, dt::f32, tag::any),
        wei_any(wei, dt::f32, tag::any), bias_md(bias, dt::f32, tag::x);
    fwd_pd_ = convolution_forward::primitive_desc(
        convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct,
                                  src_any, wei_any, bias_md, dst_any, strides, dil, pl, pr),
        eng_);
    bwd_d_pd_ = convolution_backward_data::primitive_desc(
        convolution_backward_data::desc(algorithm::convolution_direct, src_any, wei_any, dst_any,
                                        strides, dil, pl, pr),
        eng_, fwd_pd_);
    bwd_w_pd_ = convolution_backward_weights::primitive_desc(
        convolution_backward_weights::desc(algorithm::convolution_direct, src_any, wei_any, bias_md,
                                           dst_any, strides, dil, pl, pr),
        eng_, fwd_pd_);
    auto load = [&](const memory::desc& want, const memory::dims& dims, tag t, const float* data) {
      memory plain({dims, dt::f32, t}, eng_, const_cast<float*>(data));
      memory m(want, eng_);
      reorder(plain, m).execute(strm_, plain, m);
      return m;
    };
    src_ = load(fwd_pd_.src_desc(), src, tag::nchw, x);
    wei_ = load(fwd_pd_.weights_desc(), wei, wtag, w);
    bias_ = load(bias_md, bias, tag::x, b);
    dst_ = memory(fwd_pd_.dst_desc(), eng_);
    bsrc_ = load(bwd_w_pd_.src_desc(), src, tag::nchw, x);
    bwei_ = load(bwd_d_pd_.weights_desc(), wei, wtag, w);
    ddst_d_ = load(bwd_d_pd_.diff_dst_desc(), dst, tag::nchw, gy);
    ddst_w_ = load(bwd_w_pd_.diff_dst_desc(), dst, tag::nchw, gy);
    dsrc_ = memory(bwd_d_pd_.diff_src_desc(), eng_);
    dwei_ = memory(bwd_w_pd_.diff_weights_desc(), eng_);
    dbias_ = memory(bias_md, eng_);
    strm_.wait();
    fwd_ = convolution_forward(fwd_pd_);
    bwd_d_ = convolution_backward_data(bwd_d_pd_);
    bwd_w_ = convolution_backward_weights(bwd_w_pd_);
  }
  void run(conv::Pass pass) {
    if (pass == conv::Pass::Fwd)
      fwd_.execute(strm_, {{DNNL_ARG_SRC, src_},
                           {DNNL_ARG_WEIGHTS, wei_},
                           {DNNL_ARG_BIAS, bias_},
                           {DNNL_ARG_DST, dst_}});
    else if (pass == conv::Pass::BwdData)
      bwd_d_.execute(
          strm_,
          {{DNNL_ARG_DIFF_DST, ddst_d_}, {DNNL_ARG_WEIGHTS, bwei_}, {DNNL_ARG_DIFF_SRC, dsrc_}});
    else
      bwd_w_.execute(strm_, {{DNNL_ARG_SRC, bsrc_},
                             {DNNL_ARG_DIFF_DST, ddst_w_},
                             {DNNL_ARG_DIFF_WEIGHTS, dwei_},
                             {DNNL_ARG_DIFF_BIAS, dbias_}});
    strm_.wait();
  }

 private:
  dnnl::engine eng_;
  dnnl::stream strm_;
  dnnl::convolution_forward::primitive_desc fwd_pd_;
  dnnl::convolution_backward_data::primitive_desc bwd_d_pd_;
  dnnl::convolution_backward_weights::primitive_desc bwd_w_pd_;
  dnnl::convolution_forward fwd_;
  dnnl::convolution_backward_data bwd_d_;
  dnnl::convolution_backward_weights bwd_w_;
  dnnl::memory src_, wei_, bias_, dst_, bsrc_, bwei_, ddst_d_, ddst_w_, dsrc_, dwei_, dbias_;
};
#endif

// ---- the command ------------------------------------------------------------------------------

struct Record {
  std::string shape, pass, impl;
  int threads = 1;
  double gflop = 0, convkit_ms = 0, onednn_ms = -1;
  std::size_t workspace = 0, im2col = 0;
};

void run_bench(const std::string& suite_arg, int threads_arg, bool json) {
  const std::string suite = suite_arg.empty() ? default_suite() : suite_arg;
  const auto shapes = load_suite(suite);
  std::vector<int> thread_counts =
      threads_arg > 0 ? std::vector<int>{threads_arg} : std::vector<int>{1, 2};
  std::vector<double> peak(thread_counts.size());
  for (size_t i = 0; i < thread_counts.size(); ++i) peak[i] = fma_peak(thread_counts[i]);
#if defined(CONVKIT_BENCH_ONEDNN)
  const bool with_onednn = true;
#else
  const bool with_onednn = false;
#endif
  if (!json) {
    std::printf("convkit bench: suite %s\n", suite.c_str());
    for (size_t i = 0; i < thread_counts.size(); ++i) {
      const double ceiling = gemm_ceiling(thread_counts[i]);
      std::printf(
          "FMA peak (measured) at %d thread%s: %.1f GFLOP/s; GEMM micro-kernel with its "
          "operands in L1: %.1f GFLOP/s (%.0f%% of peak)\n",
          thread_counts[i], thread_counts[i] > 1 ? "s" : "", peak[i], ceiling,
          peak[i] > 0 ? 100.0 * ceiling / peak[i] : 0.0);
    }
    std::printf("%-14s %-10s %2s %8s %-12s %10s %6s %10s %8s %6s", "shape", "pass", "T", "GFLOP",
                "impl", "workspace", "%i2c", "convkit_ms", "GFLOP/s", "%peak");
    if (with_onednn) std::printf(" %10s %6s", "onednn_ms", "ratio");
    std::printf("\n");
    std::fflush(stdout);
  }
  std::vector<Record> records;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (const auto& s : shapes) {
    const ConvParams& p = s.p;
    auto fill = [&](int64_t n) {
      std::vector<float> v(static_cast<size_t>(n));
      for (auto& e : v) e = u(rng);
      return v;
    };
    auto x = fill(p.N * p.C * p.H * p.W), w = fill(p.O * p.Cg() * p.kH * p.kW), b = fill(p.O),
         gy = fill(p.N * p.O * p.Ho * p.Wo);
    std::vector<float> y(gy.size()), gx(x.size()), gw(w.size()), gb(b.size());
    for (size_t ti = 0; ti < thread_counts.size(); ++ti) {
      const int t = thread_counts[ti];
#if defined(CONVKIT_BENCH_ONEDNN)
      // oneDNN fixes a primitive's thread count when it is created (from omp_get_max_threads),
      // so each thread count gets its own primitives, created under that count.
      omp_set_num_threads(t);
      OneDnnConv dnn(p, x.data(), w.data(), b.data(), gy.data());
#endif
      for (conv::Pass pass : {conv::Pass::Fwd, conv::Pass::BwdData, conv::Pass::BwdWeight}) {
        set_num_threads(t);
        std::vector<std::function<void()>> fns;
        fns.push_back([&] {
          if (pass == conv::Pass::Fwd)
            conv::forward(p, x.data(), w.data(), b.data(), y.data());
          else if (pass == conv::Pass::BwdData)
            conv::backward_data(p, gy.data(), w.data(), gx.data());
          else
            conv::backward_weight(p, gy.data(), x.data(), gw.data(), gb.data());
        });
#if defined(CONVKIT_BENCH_ONEDNN)
        fns.push_back([&] {
          omp_set_num_threads(t);
          dnn.run(pass);
        });
#endif
        const auto med = time_interleaved(fns, 0.4);
        Record r;
        r.shape = s.name;
        r.pass = conv::pass_name(pass);
        r.threads = t;
        r.gflop = p.flops() / 1e9;
        const conv::Impl& impl = conv::choose(pass, p);
        r.impl = impl.name;
        r.workspace = conv::workspace_bytes(impl, p);
        r.im2col = static_cast<std::size_t>(p.N * p.C * p.kH * p.kW * p.Ho * p.Wo) * sizeof(float);
        r.convkit_ms = med[0] * 1e3;
        if (med.size() > 1) r.onednn_ms = med[1] * 1e3;
        records.push_back(r);
        if (!json) {
          const double gflops = r.gflop / med[0];
          std::printf("%-14s %-10s %2d %8.4f %-12s %10zu %6.1f %10.4f %8.1f %6.1f", r.shape.c_str(),
                      r.pass.c_str(), t, r.gflop, r.impl.c_str(), r.workspace,
                      100.0 * double(r.workspace) / double(r.im2col), r.convkit_ms, gflops,
                      peak[ti] > 0 ? 100.0 * gflops / peak[ti] : 0.0);
          if (with_onednn) std::printf(" %10.4f %6.2f", r.onednn_ms, r.onednn_ms / r.convkit_ms);
          std::printf("\n");
          std::fflush(stdout);
        }
      }
    }
  }
  set_num_threads(0);
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : records) {
      nlohmann::json j = {{"shape", r.shape},
                          {"pass", r.pass},
                          {"threads", r.threads},
                          {"gflop", r.gflop},
                          {"convkit_ms", r.convkit_ms},
                          {"impl", r.impl},
                          {"workspace_bytes", r.workspace}};
      if (r.onednn_ms >= 0) j["onednn_ms"] = r.onednn_ms;
      out.push_back(j);
    }
    std::cout << out.dump(1) << "\n";
    return;
  }
  if (with_onednn) {  // geometric means of oneDNN time / convkit time per pass and thread count
    for (int t : thread_counts)
      for (const char* pass : {"fwd", "bwd_data", "bwd_weight"}) {
        double lg = 0, worst = 1e30;
        int n = 0;
        for (const auto& r : records)
          if (r.threads == t && r.pass == pass) {
            const double ratio = r.onednn_ms / r.convkit_ms;
            lg += std::log(ratio), worst = std::min(worst, ratio), ++n;
          }
        if (n)
          std::printf("threads %d %-10s geomean ratio %.2f  min %.2f\n", t, pass, std::exp(lg / n),
                      worst);
      }
  }
}

const CommandRegistrar reg(/*order=*/90, [](CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "bench",
      "Benchmark conv2d forward, backward-data and backward-weight over a shape suite "
      "(median time, GFLOP/s, % of the measured FMA peak, implementation, workspace; with "
      "-DCONVKIT_BENCH_ONEDNN=ON also oneDNN and the ratio)");
  auto suite = std::make_shared<std::string>();
  auto threads = std::make_shared<int>(0);
  auto json = std::make_shared<bool>(false);
  cmd->add_option("--suite", *suite,
                  "Shape suite JSON (default: shared/bench/shapes.json beside the source tree)");
  cmd->add_option("--threads", *threads, "Thread count to measure (default: 1 and 2)")
      ->check(CLI::Range(1, 1024));
  cmd->add_flag("--json", *json,
                "Print one JSON array of {shape, pass, threads, gflop, convkit_ms, impl, "
                "workspace_bytes[, onednn_ms]}");
  cmd->callback([=] { run_bench(*suite, *threads, *json); });
});

}  // namespace

}  // namespace convkit::cli
