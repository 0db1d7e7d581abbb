// DenseNet: the shared core of softmax regression and the MLP, a stack of
// fully connected layers (activation between them) with softmax cross-entropy
// on top, computed with Eigen on Maps of the pulled parameter spans (never a
// copy of a parameter). Subclasses only name and initialize the tables.
// Scratch matrices are reused across calls: one instance per thread.
//
// Table layout: layer l has its weights in table 2l and its bias in 2l+1.
// The weights W (fan_in x fan_out, forward pass Z = X W with X the row-major
// batch x fan_in input) are stored in one of two layouts, chosen per model:
//   kOutMajor: row-major fan_out x fan_in (PyTorch's nn.Linear). Fastest for
//     dense input: on this AVX-512 machine Eigen runs 64x784 * 784x128 in
//     ~105 us against ~200 us in-major, and the dW and dX products ~5% faster.
//   kInMajor: row-major fan_in x fan_out: row f is the contiguous fan_out
//     weights of feature f, which sparse input wants (Z.row(i) += v W.row(f)
//     touches one cache line or two instead of fan_out strided floats).
#ifndef DISTOPT_ML_DENSE_NET_H_
#define DISTOPT_ML_DENSE_NET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ml/model.h"
#include "ml/model_util.h"

namespace distopt {

enum class Activation : uint8_t { kRelu = 0, kTanh = 1, kSigmoid = 2 };
enum class WeightLayout : uint8_t { kOutMajor = 0, kInMajor = 1 };

// "relu" | "tanh" | "sigmoid"; the error names the option model.activation.
Result<Activation> ParseActivation(const std::string& name);
const char* ActivationName(Activation a);

class DenseNet : public Model {
 public:
  std::vector<TableDecl> Tables() const override { return tables_; }
  Task task() const override { return Task::kMulticlass; }
  int num_outputs() const override { return static_cast<int>(widths_.back()); }
  void CollectKeys(const Batch& batch, std::vector<std::vector<uint64_t>>* keys) const override;
  Result<float> ForwardBackward(const Batch& batch, const ParamSet& params,
                                GradSet* grads) override;
  Status Predict(const Batch& batch, const ParamSet& params, Eigen::MatrixXf* out) override;

  int num_layers() const { return static_cast<int>(widths_.size()) - 1; }
  WeightLayout layout() const { return layout_; }

 protected:
  // widths = {num_features, hidden..., classes}; `tables` has 2 per layer in
  // the layout above (sizes are checked by the subclass's construction).
  DenseNet(std::vector<int64_t> widths, Activation activation, WeightLayout layout,
           std::vector<TableDecl> tables);

 private:
  using RowMatrix = ml_internal::RowMatrix;

  // Validates; fills acts_ with every layer's output, the last one being the
  // class probabilities; with labels, returns the mean cross-entropy.
  Result<float> Forward(const Batch& batch, const ParamSet& params, bool with_labels);
  // Input of layer 0 as a row-major (batch x num_features) map: the dataset
  // rows themselves when the batch is a contiguous range, else gathered into x_.
  ml_internal::ConstRowMap DenseInput(const Batch& batch);
  void BiasActivation(const float* bias, RowMatrix* a) const;

  const std::vector<int64_t> widths_;
  const Activation activation_;
  const WeightLayout layout_;
  const std::vector<TableDecl> tables_;

  // Scratch, reused across calls (resized only when the batch size changes).
  RowMatrix x_;                    // gathered dense input
  const float* input_ = nullptr;   // the dense input of the current batch
  std::vector<RowMatrix> acts_;    // acts_[l]: output of layer l, post-activation
  std::vector<RowMatrix> deltas_;  // deltas_[l]: dLoss/d(pre-activation) of layer l
  Eigen::VectorXf row_max_;        // softmax scratch
};

}  // namespace distopt

#endif  // DISTOPT_ML_DENSE_NET_H_
