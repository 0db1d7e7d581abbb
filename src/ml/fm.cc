#include "ml/fm.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "ml/model_util.h"

namespace distopt {

using ml_internal::ForEachFeature;

Result<std::unique_ptr<FactorizationMachine>> FactorizationMachine::Create(int k, float init_scale,
                                                                           uint64_t seed) {
  constexpr int kMaxFactors = 1 << 16;
  if (k < 1 || k > kMaxFactors) {
    return InvalidArgumentError("model.fm_factors must be in [1, " + std::to_string(kMaxFactors) +
                                "], got " + std::to_string(k));
  }
  if (!std::isfinite(init_scale) || init_scale < 0.0f) {
    return InvalidArgumentError("model.init_scale must be finite and >= 0, got " +
                                std::to_string(init_scale));
  }
  std::vector<TableDecl> t(2);
  t[kFactors].name = "v";
  t[kFactors].kind = TableKind::kSparse;
  t[kFactors].dim = static_cast<uint32_t>(1 + k);
  // InitSpec is one distribution per table, so the linear weight w_i (column
  // 0) starts N(0, init_scale^2) like the factors instead of exactly zero;
  // with a small init_scale the difference is immaterial.
  t[kFactors].init = InitSpec{InitKind::kNormal, init_scale, seed};
  t[kBias].name = "b";
  t[kBias].size = 1;
  return std::unique_ptr<FactorizationMachine>(new FactorizationMachine(k, std::move(t)));
}

FactorizationMachine::FactorizationMachine(int k, std::vector<TableDecl> tables)
    : k_(k), tables_(std::move(tables)) {}

void FactorizationMachine::CollectKeys(const Batch& batch,
                                       std::vector<std::vector<uint64_t>>* keys) const {
  keys->assign(tables_.size(), {});
  ml_internal::CollectFeatureIds(batch, &(*keys)[kFactors]);
}

Status FactorizationMachine::Scores(const Batch& batch, const ParamSet& params, bool check_labels) {
  RETURN_IF_ERROR(ml_internal::CheckBatch(batch, /*allow_empty=*/!check_labels));
  RETURN_IF_ERROR(ml_internal::CheckParams(tables_, params));
  if (check_labels) RETURN_IF_ERROR(ml_internal::CheckFiniteLabels(batch));
  RETURN_IF_ERROR(ml_internal::MapFeaturesToSlots(batch, params.keys[kFactors], "v", &slots_));
  const float* v = params.values[kFactors].data();
  const size_t dim = 1 + static_cast<size_t>(k_);
  const float b = params.values[kBias][0];
  z_.assign(batch.size(), b);
  sums_.assign(batch.size() * k_, 0.0f);
  size_t n = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    float* s = sums_.data() + i * k_;
    float linear = 0.0f;
    float squares = 0.0f;  // sum_f sum_i v_if^2 x_i^2
    ForEachFeature(*batch.data, batch.rows[i], [&](uint64_t, float x) {
      const float* row = v + slots_[n++] * dim;
      linear += row[0] * x;
      for (int f = 0; f < k_; ++f) {
        const float vx = row[1 + f] * x;
        s[f] += vx;
        squares += vx * vx;
      }
    });
    float sum_sq = 0.0f;
    for (int f = 0; f < k_; ++f) sum_sq += s[f] * s[f];
    z_[i] += linear + 0.5f * (sum_sq - squares);
  }
  return Status::Ok();
}

Result<float> FactorizationMachine::ForwardBackward(const Batch& batch, const ParamSet& params,
                                                    GradSet* grads) {
  RETURN_IF_ERROR(Scores(batch, params, /*check_labels=*/true));
  ml_internal::ResizeGrads(params, grads);
  std::vector<float>& gv = grads->values[kFactors];
  std::fill(gv.begin(), gv.end(), 0.0f);
  const float* v = params.values[kFactors].data();
  const size_t dim = 1 + static_cast<size_t>(k_);
  const double inv_b = 1.0 / static_cast<double>(batch.size());
  double loss = 0.0;
  double gb = 0.0;
  size_t n = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const uint32_t r = batch.rows[i];
    const float t = ml_internal::BinaryLabel(batch.data->labels[r]);
    loss += ml_internal::LogLoss(z_[i], t);
    const auto g = static_cast<float>((ml_internal::Sigmoid(z_[i]) - t) * inv_b);
    gb += g;
    const float* s = sums_.data() + i * k_;
    ForEachFeature(*batch.data, r, [&](uint64_t, float x) {
      const size_t off = slots_[n++] * dim;
      const float* row = v + off;
      float* grow = gv.data() + off;
      const float gx = g * x;
      grow[0] += gx;
      // d z / d v_if = x_i (S_f - v_if x_i)
      for (int f = 0; f < k_; ++f) grow[1 + f] += gx * (s[f] - row[1 + f] * x);
    });
  }
  grads->values[kBias][0] = static_cast<float>(gb);
  return static_cast<float>(loss * inv_b);
}

Status FactorizationMachine::Predict(const Batch& batch, const ParamSet& params,
                                     Eigen::MatrixXf* out) {
  RETURN_IF_ERROR(Scores(batch, params, /*check_labels=*/false));
  out->resize(static_cast<Eigen::Index>(batch.size()), 1);
  for (size_t i = 0; i < batch.size(); ++i) {
    (*out)(static_cast<Eigen::Index>(i), 0) = ml_internal::Sigmoid(z_[i]);
  }
  return Status::Ok();
}

}  // namespace distopt
