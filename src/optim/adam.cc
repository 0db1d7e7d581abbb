// Adam (Kingma & Ba 2015) with coupled weight decay, and AdamW (Loshchilov &
// Hutter 2019) with decoupled decay, both following PyTorch's update order and
// bias correction. State: two slots, m (first moment) then v (second moment).
// Immutable after construction; thread-safe (callers serialize per parameter).
#include <algorithm>
#include <cmath>
#include <memory>

#include "base/simd.h"
#include "optim/optimizer.h"
#include "optim/rows.h"
#include "optim/rules.h"
#include "optim/vectorize.h"

namespace distopt::optim_internal {
namespace {

// Per call, not per element: the bias corrections fold into two scalars,
//   step_size    = lr / (1 - beta1^t)
//   inv_sqrt_bc2 = 1 / sqrt(1 - beta2^t)
// so the loop is w = w * decay - step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps),
// which is PyTorch's mhat / (sqrt(vhat) + eps) rearranged the way PyTorch
// itself computes it. Adam passes coupled_wd = weight_decay, decay = 1 (exact
// in float); AdamW passes coupled_wd = 0, decay = 1 - lr * weight_decay,
// i.e. w -= lr * wd * w before the Adam step. Vectorized at -O2 through the
// loop shape of vectorize.h.
DISTOPT_SIMD_CLONES void AdamKernel(float* __restrict w, const float* __restrict g,
                                    float* __restrict m, float* __restrict v, size_t n, float beta1,
                                    float beta2, float step_size, float inv_sqrt_bc2, float eps,
                                    float coupled_wd, float decay) {
  const float one_minus_beta1 = 1.0f - beta1;
  const float one_minus_beta2 = 1.0f - beta2;
  ForEachIndex(n, [&](size_t i) {
    const float wi = w[i];
    const float gi = g[i] + coupled_wd * wi;
    const float mi = beta1 * m[i] + one_minus_beta1 * gi;
    const float vi = beta2 * v[i] + one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] = wi * decay - step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
  });
}

class Adam final : public Optimizer {
 public:
  Adam(const OptimizerOptions& options, bool decoupled)
      : Optimizer(options),
        decoupled_(decoupled),
        log_beta1_(std::log(static_cast<double>(options.beta1))),
        log_beta2_(std::log(static_cast<double>(options.beta2))) {}

  int state_slots() const override { return 2; }

  void Update(float* w, const float* g, float* state, size_t n, int64_t step) const override {
    Run(w, g, state, n, Prepare(step));
  }

  void UpdateRows(float* params, float* state, int64_t* steps, const uint32_t* rows,
                  size_t num_rows, const float* grads, size_t dim) const override {
    ForEachRow(
        params, state, steps, rows, num_rows, grads, dim, state_slots(),
        [this](int64_t step) { return Prepare(step); },
        [this](float* w, const float* g, float* st, size_t n, const StepScalars& s) {
          Run(w, g, st, n, s);
        });
  }

 private:
  // What one step count gives the kernel.
  struct StepScalars {
    float step_size = 0;
    float inv_sqrt_bc2 = 0;
    float coupled_wd = 0;
    float decay = 0;
  };

  StepScalars Prepare(int64_t step) const {
    const float lr = LearningRate(step);
    const double t = static_cast<double>(std::max<int64_t>(step, 1));
    // 1 - beta^t as -expm1(t * log(beta)) in double: no cancellation (1 -
    // pow(beta2, t) in float loses 3 of 7 digits at beta2 = 0.999), and half
    // the cost of two pow calls, which shows on sparse tables where Update
    // runs once per short row. beta = 0 gives log = -inf, a correction of 1.
    const double bc1 = -std::expm1(t * log_beta1_);
    const double bc2 = -std::expm1(t * log_beta2_);
    const float wd = options_.weight_decay;
    StepScalars s;
    s.step_size = static_cast<float>(lr / bc1);
    s.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
    s.coupled_wd = decoupled_ ? 0.0f : wd;
    s.decay = decoupled_ ? 1.0f - lr * wd : 1.0f;
    return s;
  }

  void Run(float* w, const float* g, float* state, size_t n, const StepScalars& s) const {
    AdamKernel(w, g, state, state + n, n, options_.beta1, options_.beta2, s.step_size,
               s.inv_sqrt_bc2, options_.eps, s.coupled_wd, s.decay);
  }

  const bool decoupled_;
  const double log_beta1_;
  const double log_beta2_;
};

}  // namespace

std::unique_ptr<Optimizer> NewAdam(const OptimizerOptions& options, bool decoupled) {
  return std::make_unique<Adam>(options, decoupled);
}

}  // namespace distopt::optim_internal
