// Model: what a worker trains. A model declares its parameter tables (dense
// float vectors, or sparse key -> row of dim floats), names the sparse keys a
// batch touches, and computes the mean loss over a batch with its gradient
// (Eigen). It never sees the network: the caller hands it the parameters it
// pulled. Models are stateless between calls apart from scratch buffers, so
// one instance serves one thread; build one per worker thread.
//
//   ASSIGN_OR_RETURN(auto model, CreateModel(opts, train.num_features));
//   ParamSet p = ...;   // pulled tables, laid out as Tables() says
//   GradSet g;
//   ASSIGN_OR_RETURN(float loss, model->ForwardBackward(batch, p, &g));
#ifndef DISTOPT_ML_MODEL_H_
#define DISTOPT_ML_MODEL_H_

#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/init.h"
#include "data/dataset.h"
#include "distopt/status.h"

namespace distopt {

enum class TableKind : uint8_t { kDense = 0, kSparse = 1 };

// A table as the model declares it (the trainer adds the optimizer).
struct TableDecl {
  std::string name;
  TableKind kind = TableKind::kDense;
  uint64_t size = 0;  // dense: number of floats
  uint32_t dim = 0;   // sparse: floats per key
  InitSpec init;
};

// Parameters for one batch, indexed like Tables(). Dense: the whole table.
// Sparse: keys[t] (unique, ascending) and values[t] = keys[t].size() * dim
// floats, row i belonging to keys[t][i].
struct ParamSet {
  std::vector<std::span<const float>> values;
  std::vector<std::span<const uint64_t>> keys;
};

// Gradients of the mean batch loss, laid out exactly like the ParamSet they
// were computed from (sparse rows in the same key order).
struct GradSet {
  std::vector<std::vector<float>> values;
  // Called, where a model can, as soon as values[t] holds table t's final
  // gradient, while ForwardBackward still runs (DenseNet: layer by layer,
  // the last first), so the trainer can push it and overlap the rest of
  // backward. The callee may read and scale values[t], nothing else; a table
  // not announced is final when ForwardBackward returns.
  std::function<void(size_t table)> ready;
};

enum class Task : uint8_t { kRegression = 0, kBinary = 1, kMulticlass = 2 };

class Model {
 public:
  virtual ~Model() = default;

  virtual std::vector<TableDecl> Tables() const = 0;
  virtual Task task() const = 0;
  // Output columns of Predict: 1 for regression/binary, classes for multiclass.
  virtual int num_outputs() const = 0;

  // For every table, the unique ascending keys this batch touches (empty
  // vector for dense tables). keys->size() == Tables().size() afterwards.
  virtual void CollectKeys(const Batch& batch, std::vector<std::vector<uint64_t>>* keys) const = 0;

  // Mean loss over the batch; fills grads (resized as needed).
  virtual Result<float> ForwardBackward(const Batch& batch, const ParamSet& params,
                                        GradSet* grads) = 0;

  // Predictions, one row per example: class probabilities (multiclass),
  // P(y=1) (binary) or the value (regression).
  virtual Status Predict(const Batch& batch, const ParamSet& params, Eigen::MatrixXf* out) = 0;

  // Floats in the dense tables (sparse tables grow with the data and are not
  // counted): what a full pull moves.
  uint64_t NumDenseParams() const;
};

struct ModelOptions {
  // linear_regression | logistic_regression | softmax_regression | mlp | fm
  std::string kind = "mlp";
  std::vector<int> hidden = {128};  // mlp: hidden layer widths
  std::string activation = "relu";  // mlp: relu | tanh | sigmoid
  int num_classes = 10;             // softmax_regression, mlp
  int fm_factors = 8;               // fm: latent dimension k
  float init_scale = 0.01f;         // fm: stddev of the factor init
  uint64_t seed = 1;                // initializer seed
  // logistic_regression: "w" is a dense table of num_features floats instead
  // of a sparse table keyed by feature id (pick it for dense data; either
  // layout accepts either kind of input).
  bool dense_weights = false;
};

// `num_features` is the input width (dense) or feature-id space (sparse).
Result<std::unique_ptr<Model>> CreateModel(const ModelOptions& options, uint64_t num_features);

}  // namespace distopt

#endif  // DISTOPT_ML_MODEL_H_
