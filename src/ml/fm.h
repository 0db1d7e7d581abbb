// Factorization machine (Rendle 2010) for binary classification on sparse
// features: z = b + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j, P(y=1) =
// sigmoid(z), mean log loss; labels > 0 are positive. The pairwise term uses
// the sum-square identity, so forward and backward cost O(k * nnz). One
// instance per thread (scratch buffers).
//
// Tables: "v" sparse, dim 1 + k per feature id (w_i, then the k factors
// v_i), initialized N(0, init_scale^2); "b" dense, size 1, zero.
//
//   ASSIGN_OR_RETURN(auto fm, FactorizationMachine::Create(/*k=*/8, 0.01f, /*seed=*/1));
//   fm->CollectKeys(batch, &keys);   // pull keys[0] of "v"
#ifndef DISTOPT_ML_FM_H_
#define DISTOPT_ML_FM_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "ml/model.h"

namespace distopt {

class FactorizationMachine : public Model {
 public:
  static constexpr int kFactors = 0;  // table "v"
  static constexpr int kBias = 1;     // table "b"

  // Fails, naming the option, for k < 1 (or absurdly large) or a negative
  // or non-finite init_scale.
  static Result<std::unique_ptr<FactorizationMachine>> Create(int k, float init_scale,
                                                              uint64_t seed);

  std::vector<TableDecl> Tables() const override { return tables_; }
  Task task() const override { return Task::kBinary; }
  int num_outputs() const override { return 1; }
  void CollectKeys(const Batch& batch, std::vector<std::vector<uint64_t>>* keys) const override;
  Result<float> ForwardBackward(const Batch& batch, const ParamSet& params,
                                GradSet* grads) override;
  Status Predict(const Batch& batch, const ParamSet& params, Eigen::MatrixXf* out) override;

  int k() const { return k_; }

 private:
  FactorizationMachine(int k, std::vector<TableDecl> tables);

  // Validates; fills z_ and, per example, sums_ (the k sums sum_i v_if x_i
  // the backward pass reuses) and slots_ (row in "v" of every feature).
  Status Scores(const Batch& batch, const ParamSet& params, bool check_labels);

  const int k_;
  const std::vector<TableDecl> tables_;

  std::vector<float> z_;
  std::vector<float> sums_;  // batch x k
  std::vector<uint32_t> slots_;
};

}  // namespace distopt

#endif  // DISTOPT_ML_FM_H_
