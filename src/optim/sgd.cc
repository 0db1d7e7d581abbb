// SGD, with optional heavy-ball or Nesterov momentum and coupled weight decay,
// in PyTorch's formulation (no dampening). State: none for plain SGD, else one
// slot holding the momentum buffer. Immutable after construction; thread-safe
// as long as callers serialize updates to the same parameters.
#include <memory>

#include "base/simd.h"
#include "optim/optimizer.h"
#include "optim/rows.h"
#include "optim/rules.h"
#include "optim/vectorize.h"

namespace distopt::optim_internal {
namespace {

// The kernels are free functions over __restrict pointers with every scalar
// hoisted, in the loop shape of vectorize.h, so GCC vectorizes them at -O2.
// Weight decay is always applied: wd = 0 adds 0 * w, which costs one FMA in a
// loop bound by memory bandwidth, and keeps one loop per variant.

// g' = g + wd * w;  w -= lr * g'
DISTOPT_SIMD_CLONES void PlainKernel(float* __restrict w, const float* __restrict g, size_t n,
                                     float lr, float wd) {
  ForEachIndex(n, [&](size_t i) {
    const float gi = g[i] + wd * w[i];
    w[i] -= lr * gi;
  });
}

// buf = momentum * buf + g';  w -= lr * buf   (Nesterov: w -= lr * (g' + momentum * buf))
template <bool kNesterov>
inline void MomentumLoop(float* __restrict w, const float* __restrict g, float* __restrict buf,
                         size_t n, float lr, float wd, float momentum) {
  ForEachIndex(n, [&](size_t i) {
    const float gi = g[i] + wd * w[i];
    const float b = momentum * buf[i] + gi;
    buf[i] = b;
    if constexpr (kNesterov) {
      w[i] -= lr * (gi + momentum * b);
    } else {
      w[i] -= lr * b;
    }
  });
}

// One clone set per variant (target_clones takes no templates).
DISTOPT_SIMD_CLONES void MomentumKernel(float* __restrict w, const float* __restrict g,
                                        float* __restrict buf, size_t n, float lr, float wd,
                                        float momentum) {
  MomentumLoop<false>(w, g, buf, n, lr, wd, momentum);
}
DISTOPT_SIMD_CLONES void NesterovKernel(float* __restrict w, const float* __restrict g,
                                        float* __restrict buf, size_t n, float lr, float wd,
                                        float momentum) {
  MomentumLoop<true>(w, g, buf, n, lr, wd, momentum);
}

class Sgd final : public Optimizer {
 public:
  explicit Sgd(const OptimizerOptions& options) : Optimizer(options) {}

  int state_slots() const override { return options_.momentum > 0.0f ? 1 : 0; }

  void Update(float* w, const float* g, float* state, size_t n, int64_t step) const override {
    const float lr = LearningRate(step);
    if (options_.momentum == 0.0f) {
      Plain(w, g, state, n, lr);
    } else if (options_.nesterov) {
      Momentum<true>(w, g, state, n, lr);
    } else {
      Momentum<false>(w, g, state, n, lr);
    }
  }

  // The variant is chosen once per batch, not per row.
  void UpdateRows(float* params, float* state, int64_t* steps, const uint32_t* rows,
                  size_t num_rows, const float* grads, size_t dim) const override {
    auto prepare = [this](int64_t step) { return LearningRate(step); };
    auto run = [&](const auto& kernel) {
      ForEachRow(params, state, steps, rows, num_rows, grads, dim, state_slots(), prepare, kernel);
    };
    if (options_.momentum == 0.0f) {
      run([this](float* w, const float* g, float* st, size_t n, float lr) {
        Plain(w, g, st, n, lr);
      });
    } else if (options_.nesterov) {
      run([this](float* w, const float* g, float* st, size_t n, float lr) {
        Momentum<true>(w, g, st, n, lr);
      });
    } else {
      run([this](float* w, const float* g, float* st, size_t n, float lr) {
        Momentum<false>(w, g, st, n, lr);
      });
    }
  }

 private:
  void Plain(float* w, const float* g, float* /*state*/, size_t n, float lr) const {
    PlainKernel(w, g, n, lr, options_.weight_decay);
  }
  template <bool kNesterov>
  void Momentum(float* w, const float* g, float* state, size_t n, float lr) const {
    (kNesterov ? NesterovKernel : MomentumKernel)(w, g, state, n, lr, options_.weight_decay,
                                                  options_.momentum);
  }
};

}  // namespace

std::unique_ptr<Optimizer> NewSgd(const OptimizerOptions& options) {
  return std::make_unique<Sgd>(options);
}

}  // namespace distopt::optim_internal
