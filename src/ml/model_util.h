// Helpers shared by the models of the ml layer (not part of its interface):
// validation of batches, labels and pulled parameters with messages that name
// the row or table, iteration over the features of a row whatever the storage,
// mapping sparse feature ids to rows of a pulled sparse table, and stable
// loss primitives. Stateless functions; thread-safe.
#ifndef DISTOPT_ML_MODEL_UTIL_H_
#define DISTOPT_ML_MODEL_UTIL_H_

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "distopt/status.h"
#include "ml/model.h"

namespace distopt::ml_internal {

// Activations and weights are row-major: one example (or one input feature)
// per contiguous row, which is what the per-row softmax, the sparse-input
// kernels and the gather of batch rows want.
using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMap = Eigen::Map<RowMatrix>;
using ConstRowMap = Eigen::Map<const RowMatrix>;

// The batch has a dataset, rows in range, one label per row and CSR arrays
// consistent with num_rows. An empty batch is fine only if `allow_empty`.
Status CheckBatch(const Batch& batch, bool allow_empty);

// Models whose feature tables are dense: dense data must have exactly
// `num_features` columns, sparse feature ids must be < num_features.
Status CheckFeaturesFit(const Batch& batch, uint64_t num_features);

// Labels: finite (regression, binary) or integers in [0, classes).
Status CheckFiniteLabels(const Batch& batch);
Status CheckClassLabels(const Batch& batch, int classes);

// `params` has one entry per table with the sizes the tables declare; sparse
// keys are strictly ascending.
Status CheckParams(std::span<const TableDecl> tables, const ParamSet& params);

// A dense table of rows x cols floats must stay below 2^31 floats (8 GiB):
// a larger one is a configuration mistake, caught before anything allocates.
Status CheckDenseTableSize(const std::string& name, uint64_t rows, uint64_t cols);

// Sizes grads->values like params (contents unspecified: the caller writes
// or zeroes every value).
void ResizeGrads(const ParamSet& params, GradSet* grads);

// Calls fn(feature_id, value) for the features of dataset row `row`: every
// CSR entry for sparse data, the non-zero columns for dense data.
template <typename Fn>
inline void ForEachFeature(const Dataset& data, uint32_t row, Fn&& fn) {
  if (data.sparse) {
    for (uint64_t p = data.row_ptr[row]; p < data.row_ptr[row + 1]; ++p) {
      fn(data.col_idx[p], data.col_val[p]);
    }
  } else {
    const float* x = data.DenseRow(row);
    for (uint64_t j = 0; j < data.num_features; ++j) {
      if (x[j] != 0.0f) fn(j, x[j]);
    }
  }
}

// The unique ascending feature ids the batch touches (ForEachFeature's ids).
void CollectFeatureIds(const Batch& batch, std::vector<uint64_t>* ids);

// For every feature the batch touches, in ForEachFeature order (row by row),
// its row in the pulled sparse table with `keys`. Fails naming the table and
// row if a feature id was not pulled.
Status MapFeaturesToSlots(const Batch& batch, std::span<const uint64_t> keys,
                          const std::string& table, std::vector<uint32_t>* slots);

// Binary label: anything > 0 is the positive class (so -1/+1 works).
inline float BinaryLabel(float y) { return y > 0.0f ? 1.0f : 0.0f; }

inline float Sigmoid(float z) {
  // Two branches keep exp() from overflowing for large |z|.
  if (z >= 0.0f) return 1.0f / (1.0f + std::exp(-z));
  const float e = std::exp(z);
  return e / (1.0f + e);
}

// -log P(y | z) for P(1) = sigmoid(z), stable for any z: softplus(z) - y z.
inline double LogLoss(float z, float y) {
  const double zd = z;
  return std::max(zd, 0.0) - y * zd + std::log1p(std::exp(-std::abs(zd)));
}

}  // namespace distopt::ml_internal

#endif  // DISTOPT_ML_MODEL_UTIL_H_
