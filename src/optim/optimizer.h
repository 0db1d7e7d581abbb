// Server-side update rules. A server owns one Optimizer per table and calls
// Update on contiguous runs of parameters (a dense slice, or one sparse row)
// with their gradient and their optimizer state, which lives beside the
// parameters. Optimizers are immutable after Create and thread-safe: the
// caller serializes updates to the same parameters.
//
//   OptimizerOptions o; o.kind = "adam"; o.lr = 1e-3f;
//   ASSIGN_OR_RETURN(auto opt, Optimizer::Create(o));
//   std::vector<float> state(opt->state_slots() * n);
//   opt->Update(w, g, state.data(), n, /*step=*/1);
#ifndef DISTOPT_OPTIM_OPTIMIZER_H_
#define DISTOPT_OPTIM_OPTIMIZER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "distopt/status.h"

namespace distopt {

// Learning-rate schedule, evaluated at the table's update count.
struct LrScheduleOptions {
  std::string kind = "constant";  // constant | step | cosine | inverse_sqrt
  int64_t warmup_steps = 0;       // linear ramp from 0 to lr over these steps
  int64_t step_size = 0;          // step: multiply by gamma every step_size steps
  float gamma = 0.1f;
  int64_t total_steps = 0;  // cosine: decays to min_lr at total_steps
  float min_lr = 0.0f;
};

struct OptimizerOptions {
  std::string kind = "sgd";  // sgd | adagrad | adam | adamw | ftrl
  float lr = 0.01f;
  // sgd
  float momentum = 0.0f;
  bool nesterov = false;
  float weight_decay = 0.0f;  // sgd/adagrad/adam: added to the gradient; adamw: decoupled
  // adam / adamw
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  // adagrad
  float initial_accumulator = 0.0f;
  // ftrl-proximal (lr is alpha)
  float ftrl_beta = 1.0f;
  float l1 = 0.0f;
  float l2 = 0.0f;
  LrScheduleOptions schedule;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;

  // Validates options (names the bad field in the error).
  static Result<std::unique_ptr<Optimizer>> Create(const OptimizerOptions& options);

  // Floats of state per parameter: 0 (sgd), 1 (momentum, adagrad), 2 (adam, ftrl).
  virtual int state_slots() const = 0;

  // Fills the state of n fresh parameters (e.g. adagrad's initial accumulator).
  // `state` holds state_slots() arrays of n floats, slot-major: slot k of
  // parameter i is state[k * n + i].
  virtual void InitState(float* state, size_t n) const;

  // One update of n parameters w with gradient g. `step` is 1 for the first
  // update these parameters receive (adam's bias correction and the schedule
  // use it; a step below 1 is treated as 1). Same state layout as InitState.
  // w, g and state must not overlap.
  virtual void Update(float* w, const float* g, float* state, size_t n, int64_t step) const = 0;

  // A batch of rows of a sparse table, each of `dim` parameters: row r holds
  // its parameters at params + r * dim, its state at state + r * dim *
  // state_slots() (the layout above with n = dim; state may be null when
  // state_slots() is 0) and its update count at steps[r]. For i = 0, 1, ...,
  // num_rows - 1 in order, with r = rows[i]:
  //   Update(params + r * dim, grads + i * dim, state + r * dim * slots, dim, ++steps[r])
  // and bit for bit the same, repeated rows included. The rules do it with
  // one virtual call per batch instead of per row, the step's scalars (the
  // schedule, Adam's bias corrections) computed once per distinct step count,
  // and the rows some iterations ahead prefetched (they are scattered over a
  // table much larger than the cache).
  virtual void UpdateRows(float* params, float* state, int64_t* steps, const uint32_t* rows,
                          size_t num_rows, const float* grads, size_t dim) const;

  // The learning rate the schedule gives at `step` (1-based; below 1 reads as 1).
  // Warmup (if any) comes first: lr * step / warmup_steps up to warmup_steps.
  // After it, with W = warmup_steps and T = total_steps:
  //   step:         lr * gamma^floor((step - W - 1) / step_size)
  //   cosine:       min_lr + (lr - min_lr) * (1 + cos(pi * min(1, (step - W) / (T - W)))) / 2
  //   inverse_sqrt: lr * sqrt(max(W, 1) / step)
  // so every kind is continuous at the end of warmup and peaks at lr.
  float LearningRate(int64_t step) const;

  const OptimizerOptions& options() const { return options_; }

 protected:
  explicit Optimizer(OptimizerOptions options);
  OptimizerOptions options_;

 private:
  // options_.schedule.kind parsed once (Create validated it), so LearningRate
  // does no string compares on the per-row path of sparse tables.
  enum class ScheduleKind : uint8_t { kConstant, kStep, kCosine, kInverseSqrt };
  ScheduleKind schedule_kind_;
};

}  // namespace distopt

#endif  // DISTOPT_OPTIM_OPTIMIZER_H_
