// Internal to the optim layer: the factories Optimizer::Create dispatches to,
// the schedule check it runs, and the number formatting its errors share.
// Every factory takes options Create has already validated. Stateless
// functions; thread-safe.
#ifndef DISTOPT_OPTIM_RULES_H_
#define DISTOPT_OPTIM_RULES_H_

#include <memory>
#include <string>

#include "distopt/status.h"
#include "optim/optimizer.h"

namespace distopt::optim_internal {

std::unique_ptr<Optimizer> NewSgd(const OptimizerOptions& options);      // sgd.cc
std::unique_ptr<Optimizer> NewAdagrad(const OptimizerOptions& options);  // adagrad.cc
// adam.cc: `decoupled` selects AdamW's weight decay.
std::unique_ptr<Optimizer> NewAdam(const OptimizerOptions& options, bool decoupled);
std::unique_ptr<Optimizer> NewFtrl(const OptimizerOptions& options);  // ftrl.cc

// schedule.cc: checks options.schedule (and min_lr against options.lr).
Status ValidateSchedule(const OptimizerOptions& options);

// Shortest round-trippable-enough rendering for error messages: -1, 0.001, nan.
std::string FormatNumber(double v);

}  // namespace distopt::optim_internal

#endif  // DISTOPT_OPTIM_RULES_H_
