// Learning-rate schedules: validation of LrScheduleOptions and
// Optimizer::LearningRate, which every rule calls once per Update (never per
// element). The formulas are documented on LearningRate in optimizer.h. Pure
// functions of (options, step); thread-safe.
#include <algorithm>
#include <cmath>
#include <numbers>
#include <utility>

#include "optim/optimizer.h"
#include "optim/rules.h"

namespace distopt {

Optimizer::Optimizer(OptimizerOptions options) : options_(std::move(options)) {
  // Create has validated the kind; anything else cannot reach here.
  const std::string& k = options_.schedule.kind;
  schedule_kind_ = k == "step"           ? ScheduleKind::kStep
                   : k == "cosine"       ? ScheduleKind::kCosine
                   : k == "inverse_sqrt" ? ScheduleKind::kInverseSqrt
                                         : ScheduleKind::kConstant;
}

float Optimizer::LearningRate(int64_t step) const {
  const LrScheduleOptions& s = options_.schedule;
  const double lr = options_.lr;
  const int64_t t = std::max<int64_t>(step, 1);
  const int64_t warmup = s.warmup_steps;
  // Double precision: t can be in the millions, and t / warmup or
  // (t - W) / (T - W) lose digits in float well before that.
  if (t <= warmup) return static_cast<float>(lr * static_cast<double>(t) / warmup);
  switch (schedule_kind_) {
    case ScheduleKind::kConstant:
      return options_.lr;
    case ScheduleKind::kStep: {
      const int64_t decays = (t - warmup - 1) / s.step_size;
      return static_cast<float>(lr * std::pow(static_cast<double>(s.gamma), decays));
    }
    case ScheduleKind::kCosine: {
      const double progress =
          std::min(1.0, static_cast<double>(t - warmup) / (s.total_steps - warmup));
      const double min_lr = s.min_lr;
      return static_cast<float>(min_lr + (lr - min_lr) * 0.5 *
                                             (1.0 + std::cos(std::numbers::pi * progress)));
    }
    case ScheduleKind::kInverseSqrt:
      return static_cast<float>(lr *
                                std::sqrt(static_cast<double>(std::max<int64_t>(warmup, 1)) / t));
  }
  return options_.lr;  // unreachable: the switch covers every kind
}

namespace optim_internal {
namespace {

Status ScheduleError(const std::string& field, const std::string& what) {
  return InvalidArgumentError("optimizer.schedule." + field + " " + what);
}

}  // namespace

Status ValidateSchedule(const OptimizerOptions& options) {
  const LrScheduleOptions& s = options.schedule;
  const bool step = s.kind == "step", cosine = s.kind == "cosine";
  if (!step && !cosine && s.kind != "constant" && s.kind != "inverse_sqrt") {
    return ScheduleError("kind", "'" + s.kind +
                                     "' is unknown (expected constant, step, cosine, "
                                     "inverse_sqrt)");
  }
  if (s.warmup_steps < 0) {
    return ScheduleError("warmup_steps", "must be >= 0, got " + std::to_string(s.warmup_steps));
  }
  // Fields another kind reads are rejected when set: a "step_size" under a
  // cosine schedule means the user expected a behaviour they will not get.
  if (step) {
    if (s.step_size <= 0) {
      return ScheduleError("step_size",
                           "must be > 0 for kind 'step', got " + std::to_string(s.step_size));
    }
    if (!(s.gamma > 0.0f && s.gamma <= 1.0f)) {
      return ScheduleError("gamma",
                           "must be in (0, 1] for kind 'step', got " + FormatNumber(s.gamma));
    }
  } else if (s.step_size != 0) {
    return ScheduleError("step_size", "is only used by kind 'step' (kind is '" + s.kind +
                                          "'), got " + std::to_string(s.step_size));
  }
  if (cosine) {
    if (s.total_steps <= s.warmup_steps) {
      return ScheduleError("total_steps", "must be > optimizer.schedule.warmup_steps (" +
                                              std::to_string(s.warmup_steps) +
                                              ") for kind 'cosine', got " +
                                              std::to_string(s.total_steps));
    }
    if (!(s.min_lr >= 0.0f && s.min_lr <= options.lr)) {
      return ScheduleError("min_lr", "must be in [0, optimizer.lr=" + FormatNumber(options.lr) +
                                         "] for kind 'cosine', got " + FormatNumber(s.min_lr));
    }
  } else {
    if (s.total_steps != 0) {
      return ScheduleError("total_steps", "is only used by kind 'cosine' (kind is '" + s.kind +
                                              "'), got " + std::to_string(s.total_steps));
    }
    if (s.min_lr != 0.0f) {
      return ScheduleError("min_lr", "is only used by kind 'cosine' (kind is '" + s.kind +
                                         "'), got " + FormatNumber(s.min_lr));
    }
  }
  return Status::Ok();
}

}  // namespace optim_internal
}  // namespace distopt
