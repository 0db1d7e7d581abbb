// Adagrad (Duchi et al. 2011) with coupled weight decay, as PyTorch writes it:
// acc += g^2; w -= lr * g / (sqrt(acc) + eps). State: one slot, the squared-
// gradient accumulator, seeded with initial_accumulator by InitState.
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

// Vectorized at -O2 through the loop shape of vectorize.h (which also says
// why the layer is built with -fno-math-errno).
DISTOPT_SIMD_CLONES void AdagradKernel(float* __restrict w, const float* __restrict g,
                                       float* __restrict acc, size_t n, float lr, float wd,
                                       float eps) {
  ForEachIndex(n, [&](size_t i) {
    const float gi = g[i] + wd * w[i];
    const float a = acc[i] + gi * gi;
    acc[i] = a;
    w[i] -= lr * gi / (std::sqrt(a) + eps);
  });
}

class Adagrad final : public Optimizer {
 public:
  explicit Adagrad(const OptimizerOptions& options) : Optimizer(options) {}

  int state_slots() const override { return 1; }

  void InitState(float* state, size_t n) const override {
    std::fill(state, state + n, options_.initial_accumulator);
  }

  void Update(float* w, const float* g, float* state, size_t n, int64_t step) const override {
    Run(w, g, state, n, LearningRate(step));
  }

  void UpdateRows(float* params, float* state, int64_t* steps, const uint32_t* rows,
                  size_t num_rows, const float* grads, size_t dim) const override {
    ForEachRow(
        params, state, steps, rows, num_rows, grads, dim, state_slots(),
        [this](int64_t step) { return LearningRate(step); },
        [this](float* w, const float* g, float* st, size_t n, float lr) { Run(w, g, st, n, lr); });
  }

 private:
  void Run(float* w, const float* g, float* state, size_t n, float lr) const {
    AdagradKernel(w, g, state, n, lr, options_.weight_decay, options_.eps);
  }
};

}  // namespace

std::unique_ptr<Optimizer> NewAdagrad(const OptimizerOptions& options) {
  return std::make_unique<Adagrad>(options);
}

}  // namespace distopt::optim_internal
