// Linear regression: yhat = w.x + b, loss 0.5 (y - yhat)^2 averaged over the
// batch. "w" is a dense table of num_features floats indexed by feature id,
// so dense and sparse (CSR) input both work. One instance per thread.
//
//   LinearRegression model(/*num_features=*/13);
//   ASSIGN_OR_RETURN(float loss, model.ForwardBackward(batch, params, &grads));
#ifndef DISTOPT_ML_LINEAR_REGRESSION_H_
#define DISTOPT_ML_LINEAR_REGRESSION_H_

#include <cstdint>

#include "ml/linear_model.h"

namespace distopt {

class LinearRegression : public LinearModel {
 public:
  explicit LinearRegression(uint64_t num_features)
      : LinearModel(num_features, /*sparse_weights=*/false) {}

  Task task() const override { return Task::kRegression; }

 protected:
  Status CheckLabels(const Batch& batch) const override;
  double Loss(float z, float y, float* slope) const override;
  float Output(float z) const override { return z; }
};

}  // namespace distopt

#endif  // DISTOPT_ML_LINEAR_REGRESSION_H_
