// Optimizer::Create: checks OptimizerOptions and builds the rule for its kind.
// Every error names the field as "optimizer.<field>" and the value it got, so a
// bad config can be fixed from the message alone. The rules live in sgd.cc,
// adagrad.cc, adam.cc and ftrl.cc, the schedule in schedule.cc. Thread-safe.
#include "optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "optim/rules.h"

namespace distopt {
namespace optim_internal {

std::string FormatNumber(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace optim_internal

namespace {

using optim_internal::FormatNumber;

// Every check is written so that NaN fails it (NaN compares false), and
// infinities are rejected explicitly: neither is a usable hyperparameter.
Status RequirePositive(const char* field, float v) {
  if (v > 0.0f && std::isfinite(v)) return Status::Ok();
  return InvalidArgumentError(std::string("optimizer.") + field + " must be > 0, got " +
                              FormatNumber(v));
}

Status RequireNonNegative(const char* field, float v) {
  if (v >= 0.0f && std::isfinite(v)) return Status::Ok();
  return InvalidArgumentError(std::string("optimizer.") + field + " must be >= 0, got " +
                              FormatNumber(v));
}

Status RequireUnitInterval(const char* field, float v) {
  if (v >= 0.0f && v < 1.0f) return Status::Ok();
  return InvalidArgumentError(std::string("optimizer.") + field + " must be in [0, 1), got " +
                              FormatNumber(v));
}

// A field the chosen kind never reads is a config mistake (a typo in `kind`,
// or a setting copied from another optimizer); silently ignoring it would
// train something other than what the user asked for.
Status RequireUnused(const char* field, bool is_set, const std::string& kind, double v,
                     const char* used_by) {
  if (!is_set) return Status::Ok();
  return InvalidArgumentError(std::string("optimizer.") + field + " is not used by '" + kind +
                              "' (only by " + used_by + "), got " + FormatNumber(v));
}

Status ValidateOptions(const OptimizerOptions& o) {
  const std::string& k = o.kind;
  const bool sgd = k == "sgd", adagrad = k == "adagrad", ftrl = k == "ftrl";
  const bool adam = k == "adam" || k == "adamw";
  if (!sgd && !adagrad && !adam && !ftrl) {
    return InvalidArgumentError("optimizer.kind '" + k +
                                "' is unknown (expected sgd, adagrad, adam, adamw, ftrl)");
  }
  RETURN_IF_ERROR(RequirePositive("lr", o.lr));
  RETURN_IF_ERROR(RequireNonNegative("weight_decay", o.weight_decay));
  if (sgd) {
    RETURN_IF_ERROR(RequireNonNegative("momentum", o.momentum));
    if (o.nesterov && o.momentum == 0.0f) {
      return InvalidArgumentError("optimizer.nesterov requires optimizer.momentum > 0, got 0");
    }
  } else {
    RETURN_IF_ERROR(RequireUnused("momentum", o.momentum != 0.0f, k, o.momentum, "sgd"));
    RETURN_IF_ERROR(RequireUnused("nesterov", o.nesterov, k, 1, "sgd"));
  }
  if (adagrad) {
    RETURN_IF_ERROR(RequireNonNegative("initial_accumulator", o.initial_accumulator));
  } else {
    RETURN_IF_ERROR(RequireUnused("initial_accumulator", o.initial_accumulator != 0.0f, k,
                                  o.initial_accumulator, "adagrad"));
  }
  // eps keeps the denominator away from 0 when a coordinate has seen only
  // zero gradients (0/0 would write NaN into the table).
  if (adagrad || adam) RETURN_IF_ERROR(RequirePositive("eps", o.eps));
  if (adam) {
    RETURN_IF_ERROR(RequireUnitInterval("beta1", o.beta1));
    RETURN_IF_ERROR(RequireUnitInterval("beta2", o.beta2));
  }
  if (ftrl) {
    RETURN_IF_ERROR(RequireNonNegative("ftrl_beta", o.ftrl_beta));
    RETURN_IF_ERROR(RequireNonNegative("l1", o.l1));
    RETURN_IF_ERROR(RequireNonNegative("l2", o.l2));
    if (o.weight_decay != 0.0f) {
      return InvalidArgumentError(
          "optimizer.weight_decay is not used by 'ftrl' (use optimizer.l2), got " +
          FormatNumber(o.weight_decay));
    }
  } else {
    RETURN_IF_ERROR(RequireUnused("l1", o.l1 != 0.0f, k, o.l1, "ftrl"));
    RETURN_IF_ERROR(RequireUnused("l2", o.l2 != 0.0f, k, o.l2, "ftrl"));
  }
  return optim_internal::ValidateSchedule(o);
}

}  // namespace

Result<std::unique_ptr<Optimizer>> Optimizer::Create(const OptimizerOptions& options) {
  RETURN_IF_ERROR(ValidateOptions(options));
  const std::string& k = options.kind;
  if (k == "sgd") return optim_internal::NewSgd(options);
  if (k == "adagrad") return optim_internal::NewAdagrad(options);
  if (k == "adam") return optim_internal::NewAdam(options, /*decoupled=*/false);
  if (k == "adamw") return optim_internal::NewAdam(options, /*decoupled=*/true);
  return optim_internal::NewFtrl(options);  // the only kind left after validation
}

void Optimizer::InitState(float* state, size_t n) const {
  std::fill(state, state + static_cast<size_t>(state_slots()) * n, 0.0f);
}

// The definition of UpdateRows; every rule overrides it with ForEachRow
// (rows.h), which the tests check against this.
void Optimizer::UpdateRows(float* params, float* state, int64_t* steps, const uint32_t* rows,
                           size_t num_rows, const float* grads, size_t dim) const {
  const size_t state_floats = dim * static_cast<size_t>(state_slots());
  for (size_t i = 0; i < num_rows; ++i) {
    const size_t r = rows[i];
    float* row_state = state_floats > 0 ? state + r * state_floats : nullptr;
    Update(params + r * dim, grads + i * dim, row_state, dim, ++steps[r]);
  }
}

}  // namespace distopt
