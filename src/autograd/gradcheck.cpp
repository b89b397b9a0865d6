// Finite-difference gradient check. The function's output is projected on a fixed random vector v
// (so errors cannot cancel the way they can in a plain sum), L = sum(v * fn(inputs)), and
// autograd's dL/dx is compared with central differences of L accumulated in double.
#include <convkit/autograd.h>

#include <cmath>
#include <random>
#include <sstream>

#include "tensor/tensor_impl.h"

namespace convkit {

bool gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
               const std::vector<Tensor>& inputs, GradcheckOptions options, std::string* report) {
  // Work on private copies so the caller's tensors and their .grad stay untouched.
  std::vector<Tensor> xs;
  for (const auto& t : inputs) {
    if (!t.defined()) {
      xs.emplace_back();
      continue;
    }
    Tensor c = t.detach().clone();
    c.requires_grad_(t.requires_grad());
    xs.push_back(c);
  }
  Tensor out = fn(xs);
  check(out.defined(), "gradcheck: the function returned an undefined tensor");
  std::mt19937 rng(12345);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(static_cast<size_t>(out.numel()));
  for (auto& e : v) e = dist(rng);
  const Tensor vt = from_vector(v, out.shape());
  auto objective = [&](const std::vector<Tensor>& args) {
    NoGradGuard no_grad;
    const std::vector<float> y = fn(args).to_vector();
    double acc = 0.0;
    for (size_t i = 0; i < y.size(); ++i) acc += double(v[i]) * double(y[i]);
    return acc;
  };
  if (out.requires_grad()) out.backward(vt);

  bool ok = true;
  std::ostringstream msg;
  for (size_t k = 0; k < xs.size(); ++k) {
    Tensor& x = xs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    const Tensor analytic = x.grad().defined() ? x.grad() : zeros(x.shape());
    const std::vector<float> a = analytic.to_vector();
    Tensor xd = x.detach();  // shares storage with x: perturb in place
    float* p = xd.data_ptr();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const float orig = p[i];
      p[i] = static_cast<float>(orig + options.eps);
      const double up = objective(xs);
      p[i] = static_cast<float>(orig - options.eps);
      const double down = objective(xs);
      p[i] = orig;
      const double h = (double(static_cast<float>(orig + options.eps)) -
                        double(static_cast<float>(orig - options.eps)));
      const double numeric = (up - down) / h;
      const double diff = std::fabs(numeric - double(a[static_cast<size_t>(i)]));
      if (!(diff <= options.atol + options.rtol * std::fabs(numeric))) {
        if (ok) {
          msg << "gradcheck: input " << k << " (shape " << x.shape_str() << ") element " << i
              << ": autograd " << a[static_cast<size_t>(i)] << " vs finite difference " << numeric
              << " (|diff| " << diff << " > atol " << options.atol << " + rtol " << options.rtol
              << " * |numeric|)";
        }
        ok = false;
      }
    }
  }
  if (report) *report = msg.str();
  return ok;
}

}  // namespace convkit
