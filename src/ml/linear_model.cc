#include "ml/linear_model.h"

#include <algorithm>

#include "ml/model_util.h"

namespace distopt {
namespace {

using ml_internal::ForEachFeature;

std::vector<TableDecl> MakeTables(uint64_t num_features, bool sparse_weights) {
  // Both losses are convex in (w, b): zeros is the canonical start and makes
  // runs reproducible without a seed.
  std::vector<TableDecl> t(2);
  t[0].name = "w";
  if (sparse_weights) {
    t[0].kind = TableKind::kSparse;
    t[0].dim = 1;
  } else {
    t[0].kind = TableKind::kDense;
    t[0].size = num_features;
  }
  t[1].name = "b";
  t[1].kind = TableKind::kDense;
  t[1].size = 1;
  return t;
}

}  // namespace

LinearModel::LinearModel(uint64_t num_features, bool sparse_weights)
    : num_features_(num_features),
      sparse_weights_(sparse_weights),
      tables_(MakeTables(num_features, sparse_weights)) {}

void LinearModel::CollectKeys(const Batch& batch, std::vector<std::vector<uint64_t>>* keys) const {
  keys->assign(tables_.size(), {});
  if (sparse_weights_) ml_internal::CollectFeatureIds(batch, &(*keys)[kWeights]);
}

Status LinearModel::Scores(const Batch& batch, const ParamSet& params, bool check_labels) {
  RETURN_IF_ERROR(ml_internal::CheckBatch(batch, /*allow_empty=*/!check_labels));
  RETURN_IF_ERROR(ml_internal::CheckParams(tables_, params));
  if (check_labels) RETURN_IF_ERROR(CheckLabels(batch));
  const Dataset& data = *batch.data;
  const float* w = params.values[kWeights].data();
  const float b = params.values[kBias][0];
  z_.assign(batch.size(), b);
  if (sparse_weights_) {
    RETURN_IF_ERROR(ml_internal::MapFeaturesToSlots(batch, params.keys[kWeights], "w", &slots_));
    size_t k = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      ForEachFeature(data, batch.rows[i], [&](uint64_t, float v) { z_[i] += v * w[slots_[k++]]; });
    }
    return Status::Ok();
  }
  RETURN_IF_ERROR(ml_internal::CheckFeaturesFit(batch, num_features_));
  const auto n = static_cast<Eigen::Index>(num_features_);
  Eigen::Map<const Eigen::VectorXf> wv(w, n);
  for (size_t i = 0; i < batch.size(); ++i) {
    const uint32_t r = batch.rows[i];
    if (data.sparse) {
      for (uint64_t p = data.row_ptr[r]; p < data.row_ptr[r + 1]; ++p) {
        z_[i] += data.col_val[p] * w[data.col_idx[p]];
      }
    } else {
      z_[i] += Eigen::Map<const Eigen::VectorXf>(data.DenseRow(r), n).dot(wv);
    }
  }
  return Status::Ok();
}

Result<float> LinearModel::ForwardBackward(const Batch& batch, const ParamSet& params,
                                           GradSet* grads) {
  RETURN_IF_ERROR(Scores(batch, params, /*check_labels=*/true));
  const Dataset& data = *batch.data;
  ml_internal::ResizeGrads(params, grads);
  std::vector<float>& gw = grads->values[kWeights];
  std::fill(gw.begin(), gw.end(), 0.0f);
  const double inv_b = 1.0 / static_cast<double>(batch.size());
  double loss = 0.0;
  double gb = 0.0;
  size_t k = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const uint32_t r = batch.rows[i];
    float slope = 0.0f;
    loss += Loss(z_[i], data.labels[r], &slope);
    const auto g = static_cast<float>(slope * inv_b);  // gradient of the mean
    gb += g;
    if (sparse_weights_) {
      ForEachFeature(data, r, [&](uint64_t, float v) { gw[slots_[k++]] += g * v; });
    } else if (data.sparse) {
      for (uint64_t p = data.row_ptr[r]; p < data.row_ptr[r + 1]; ++p) {
        gw[data.col_idx[p]] += g * data.col_val[p];
      }
    } else {
      const auto n = static_cast<Eigen::Index>(num_features_);
      Eigen::Map<Eigen::VectorXf>(gw.data(), n) +=
          g * Eigen::Map<const Eigen::VectorXf>(data.DenseRow(r), n);
    }
  }
  grads->values[kBias][0] = static_cast<float>(gb);
  return static_cast<float>(loss * inv_b);
}

Status LinearModel::Predict(const Batch& batch, const ParamSet& params, Eigen::MatrixXf* out) {
  RETURN_IF_ERROR(Scores(batch, params, /*check_labels=*/false));
  out->resize(static_cast<Eigen::Index>(batch.size()), 1);
  for (size_t i = 0; i < batch.size(); ++i) (*out)(static_cast<Eigen::Index>(i), 0) = Output(z_[i]);
  return Status::Ok();
}

}  // namespace distopt
