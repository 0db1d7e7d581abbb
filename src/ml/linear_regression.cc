#include "ml/linear_regression.h"

#include "ml/model_util.h"

namespace distopt {

Status LinearRegression::CheckLabels(const Batch& batch) const {
  return ml_internal::CheckFiniteLabels(batch);
}

double LinearRegression::Loss(float z, float y, float* slope) const {
  const float r = z - y;
  *slope = r;
  return 0.5 * static_cast<double>(r) * r;
}

}  // namespace distopt
