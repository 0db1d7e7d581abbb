// LinearModel: the shared core of linear and logistic regression, a score
// z = w.x + b per example with w either a dense table (num_features floats,
// indexed by feature id) or a sparse table of dim 1 keyed by feature id, over
// dense or sparse input. Subclasses supply the loss on z. One instance per
// thread (scratch buffers), like every Model.
#ifndef DISTOPT_ML_LINEAR_MODEL_H_
#define DISTOPT_ML_LINEAR_MODEL_H_

#include <cstdint>
#include <vector>

#include "ml/model.h"

namespace distopt {

class LinearModel : public Model {
 public:
  // Tables: 0 "w" (dense num_features, or sparse dim 1), 1 "b" (dense 1).
  static constexpr int kWeights = 0;
  static constexpr int kBias = 1;

  std::vector<TableDecl> Tables() const override { return tables_; }
  int num_outputs() const override { return 1; }
  void CollectKeys(const Batch& batch, std::vector<std::vector<uint64_t>>* keys) const override;
  Result<float> ForwardBackward(const Batch& batch, const ParamSet& params,
                                GradSet* grads) override;
  Status Predict(const Batch& batch, const ParamSet& params, Eigen::MatrixXf* out) override;

  bool sparse_weights() const { return sparse_weights_; }

 protected:
  LinearModel(uint64_t num_features, bool sparse_weights);

  virtual Status CheckLabels(const Batch& batch) const = 0;
  // Loss of one example with score z and label y; *slope = dLoss/dz.
  virtual double Loss(float z, float y, float* slope) const = 0;
  // What Predict reports for score z.
  virtual float Output(float z) const = 0;

 private:
  // Validates and fills z_ (one score per batch row); slots_ when sparse.
  Status Scores(const Batch& batch, const ParamSet& params, bool check_labels);

  const uint64_t num_features_;
  const bool sparse_weights_;
  const std::vector<TableDecl> tables_;

  std::vector<float> z_;         // scratch: scores of the batch
  std::vector<uint32_t> slots_;  // scratch: row in the sparse "w" per feature
};

}  // namespace distopt

#endif  // DISTOPT_ML_LINEAR_MODEL_H_
