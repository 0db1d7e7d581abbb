#include "ml/model.h"

#include <string>

#include "ml/dense_net.h"
#include "ml/fm.h"
#include "ml/linear_regression.h"
#include "ml/logistic_regression.h"
#include "ml/mlp.h"
#include "ml/model_util.h"
#include "ml/softmax_regression.h"

namespace distopt {

uint64_t Model::NumDenseParams() const {
  uint64_t n = 0;
  for (const TableDecl& t : Tables()) {
    if (t.kind == TableKind::kDense) n += t.size;
  }
  return n;
}

Result<std::unique_ptr<Model>> CreateModel(const ModelOptions& options, uint64_t num_features) {
  const std::string& kind = options.kind;
  if (num_features == 0) {
    return InvalidArgumentError("model '" + kind + "': num_features is 0 (empty dataset?)");
  }
  if (kind == "linear_regression") {
    RETURN_IF_ERROR(ml_internal::CheckDenseTableSize("w", num_features, 1));
    return std::unique_ptr<Model>(new LinearRegression(num_features));
  }
  if (kind == "logistic_regression") {
    if (options.dense_weights) {
      RETURN_IF_ERROR(ml_internal::CheckDenseTableSize("w", num_features, 1));
    }
    return std::unique_ptr<Model>(new LogisticRegression(num_features, !options.dense_weights));
  }
  if (kind == "softmax_regression") {
    ASSIGN_OR_RETURN(auto m, SoftmaxRegression::Create(num_features, options.num_classes));
    return std::unique_ptr<Model>(std::move(m));
  }
  if (kind == "mlp") {
    if (options.hidden.empty()) {
      return InvalidArgumentError(
          "model.hidden is empty: an mlp needs at least one hidden width (or use "
          "softmax_regression)");
    }
    ASSIGN_OR_RETURN(Activation act, ParseActivation(options.activation));
    ASSIGN_OR_RETURN(
        auto m, Mlp::Create(num_features, options.hidden, act, options.num_classes, options.seed));
    return std::unique_ptr<Model>(std::move(m));
  }
  if (kind == "fm") {
    ASSIGN_OR_RETURN(
        auto m, FactorizationMachine::Create(options.fm_factors, options.init_scale, options.seed));
    return std::unique_ptr<Model>(std::move(m));
  }
  return InvalidArgumentError("model.kind '" + kind +
                              "' is unknown (expected linear_regression, logistic_regression, "
                              "softmax_regression, mlp or fm)");
}

}  // namespace distopt
