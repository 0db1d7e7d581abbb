// Softmax (multinomial logistic) regression: P(y|x) = softmax(x W + b), mean
// cross-entropy over the batch with integer class labels in [0, classes).
// Tables: "w" dense, a row-major (num_features x classes) matrix (row f holds
// the class weights of feature f), and "b" dense (classes), both zero-
// initialized (the loss is convex). Dense or sparse input. One per thread.
//
//   ASSIGN_OR_RETURN(auto model, SoftmaxRegression::Create(784, 10));
//   ASSIGN_OR_RETURN(float loss, model->ForwardBackward(batch, params, &grads));
#ifndef DISTOPT_ML_SOFTMAX_REGRESSION_H_
#define DISTOPT_ML_SOFTMAX_REGRESSION_H_

#include <cstdint>
#include <memory>

#include "ml/dense_net.h"

namespace distopt {

class SoftmaxRegression : public DenseNet {
 public:
  // Fails (naming the option) for classes < 2 or a table too large.
  static Result<std::unique_ptr<SoftmaxRegression>> Create(uint64_t num_features, int classes);

 private:
  SoftmaxRegression(uint64_t num_features, int classes);
};

}  // namespace distopt

#endif  // DISTOPT_ML_SOFTMAX_REGRESSION_H_
