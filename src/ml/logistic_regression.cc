#include "ml/logistic_regression.h"

#include "ml/model_util.h"

namespace distopt {

Status LogisticRegression::CheckLabels(const Batch& batch) const {
  // NaN > 0 is false, so a NaN label would silently become class 0.
  return ml_internal::CheckFiniteLabels(batch);
}

double LogisticRegression::Loss(float z, float y, float* slope) const {
  const float t = ml_internal::BinaryLabel(y);
  *slope = ml_internal::Sigmoid(z) - t;
  return ml_internal::LogLoss(z, t);
}

float LogisticRegression::Output(float z) const { return ml_internal::Sigmoid(z); }

}  // namespace distopt
