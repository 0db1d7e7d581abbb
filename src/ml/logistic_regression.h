// Logistic regression: P(y=1|x) = sigmoid(w.x + b), log loss averaged over
// the batch. Labels > 0 are the positive class, so 0/1 and -1/+1 (LibSVM)
// labels both work. "w" is a sparse table (dim 1, keyed by feature id: only
// the features a batch touches move) or, for dense data, a dense table; both
// layouts accept dense and sparse input. One instance per thread.
//
//   LogisticRegression model(num_features, /*sparse_weights=*/true);
//   std::vector<std::vector<uint64_t>> keys;
//   model.CollectKeys(batch, &keys);   // pull keys[0] of "w"
#ifndef DISTOPT_ML_LOGISTIC_REGRESSION_H_
#define DISTOPT_ML_LOGISTIC_REGRESSION_H_

#include <cstdint>

#include "ml/linear_model.h"

namespace distopt {

class LogisticRegression : public LinearModel {
 public:
  LogisticRegression(uint64_t num_features, bool sparse_weights)
      : LinearModel(num_features, sparse_weights) {}

  Task task() const override { return Task::kBinary; }

 protected:
  Status CheckLabels(const Batch& batch) const override;
  double Loss(float z, float y, float* slope) const override;
  float Output(float z) const override;
};

}  // namespace distopt

#endif  // DISTOPT_ML_LOGISTIC_REGRESSION_H_
