// MLP: fully connected layers of the given hidden widths with relu, tanh or
// sigmoid between them and softmax cross-entropy over num_classes on top.
// One dense table per weight matrix and one per bias ("l0.w", "l0.b", "l1.w",
// ...) so layers can be pushed separately. "lN.w" is row-major
// (fan_out x fan_in), PyTorch's layout: element [o * fan_in + i] connects
// input i to unit o (the fastest GEMMs, see dense_net.h). Weights start
// Glorot-uniform U(+-sqrt(6 / (fan_in + fan_out))) from the seed, biases at
// zero. Scratch buffers are reused across calls: one instance per thread.
//
//   ASSIGN_OR_RETURN(auto mlp, Mlp::Create(784, {128}, Activation::kRelu, 10, /*seed=*/1));
//   ASSIGN_OR_RETURN(float loss, mlp->ForwardBackward(batch, params, &grads));
#ifndef DISTOPT_ML_MLP_H_
#define DISTOPT_ML_MLP_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "ml/dense_net.h"

namespace distopt {

class Mlp : public DenseNet {
 public:
  // Fails, naming the option, for a zero or negative hidden width, fewer than
  // 2 classes or a weight matrix too large. An empty `hidden` is softmax
  // regression with the MLP's table names.
  static Result<std::unique_ptr<Mlp>> Create(uint64_t num_features, const std::vector<int>& hidden,
                                             Activation activation, int classes, uint64_t seed);

 private:
  Mlp(std::vector<int64_t> widths, Activation activation, std::vector<TableDecl> tables);
};

}  // namespace distopt

#endif  // DISTOPT_ML_MLP_H_
