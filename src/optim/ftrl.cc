// FTRL-proximal (McMahan et al., "Ad Click Prediction: a View from the
// Trenches", KDD 2013, Algorithm 1), per coordinate, with alpha = the
// scheduled lr. State: two slots, z then n (sum of squared gradients), both 0
// at start. L1 makes small weights exactly 0, which is the point of FTRL for
// sparse models. Immutable after construction; thread-safe (callers serialize
// per parameter).
#include <cmath>
#include <limits>
#include <memory>

#include "base/simd.h"
#include "optim/optimizer.h"
#include "optim/rows.h"
#include "optim/rules.h"
#include "optim/vectorize.h"

namespace distopt::optim_internal {
namespace {

// One pass updates z and n and recomputes w from them:
//   sigma = (sqrt(n + g^2) - sqrt(n)) / alpha
//   z += g - sigma * w;  n += g^2
//   w = |z| <= l1 ? 0 : -(z - sign(z) * l1) / ((beta + sqrt(n)) / alpha + l2)
// The branch is a select on two computed values (GCC turns it into a masked
// vector op), and copysign gives sign(z) * l1 without a branch, so the loop
// shape of vectorize.h vectorizes at -O2.
DISTOPT_SIMD_CLONES void FtrlKernel(float* __restrict w, const float* __restrict g,
                                    float* __restrict z, float* __restrict nsum, size_t n,
                                    float inv_alpha, float beta, float l1, float l2) {
  ForEachIndex(n, [&](size_t i) {
    const float gi = g[i];
    const float n_old = nsum[i];
    const float n_new = n_old + gi * gi;
    const float sqrt_new = std::sqrt(n_new);
    const float sigma = (sqrt_new - std::sqrt(n_old)) * inv_alpha;
    const float zi = z[i] + gi - sigma * w[i];
    z[i] = zi;
    nsum[i] = n_new;
    const float shrunk = zi - std::copysign(l1, zi);
    const float denom = (beta + sqrt_new) * inv_alpha + l2;
    w[i] = std::fabs(zi) <= l1 ? 0.0f : -shrunk / denom;
  });
}

class Ftrl final : public Optimizer {
 public:
  explicit Ftrl(const OptimizerOptions& options) : Optimizer(options) {}

  int state_slots() const override { return 2; }

  void Update(float* w, const float* g, float* state, size_t n, int64_t step) const override {
    Run(w, g, state, n, LearningRate(step));
  }

  void UpdateRows(float* params, float* state, int64_t* steps, const uint32_t* rows,
                  size_t num_rows, const float* grads, size_t dim) const override {
    ForEachRow(
        params, state, steps, rows, num_rows, grads, dim, state_slots(),
        [this](int64_t step) { return LearningRate(step); },
        [this](float* w, const float* g, float* st, size_t n, float alpha) {
          Run(w, g, st, n, alpha);
        });
  }

 private:
  void Run(float* w, const float* g, float* state, size_t n, float alpha) const {
    // A schedule can reach 0 (cosine with min_lr = 0) or underflow (step
    // decay); 1 / alpha would then be inf and turn z into inf or NaN. A zero
    // learning rate means no update, as it does for the other rules.
    if (!(alpha >= std::numeric_limits<float>::min())) return;
    const float inv_alpha = 1.0f / alpha;
    FtrlKernel(w, g, state, state + n, n, inv_alpha, options_.ftrl_beta, options_.l1, options_.l2);
  }
};

}  // namespace

std::unique_ptr<Optimizer> NewFtrl(const OptimizerOptions& options) {
  return std::make_unique<Ftrl>(options);
}

}  // namespace distopt::optim_internal
