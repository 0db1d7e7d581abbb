// Streaming evaluation metrics, fed batch by batch and read at the end: mean
// (of a loss), accuracy, exact ROC AUC and RMSE, plus TaskMetrics, which picks
// the ones that fit a model's task and feeds them from Model::Predict output.
// Each accumulator is a plain value: not thread-safe, but Merge() combines
// the accumulators of several threads or workers.
//
//   TaskMetrics m(model->task());
//   for (const Batch& b : batches) {
//     RETURN_IF_ERROR(model->Predict(b, params, &pred));
//     RETURN_IF_ERROR(m.Add(b, pred));
//   }
//   for (const MetricValue& v : m.Values()) log.Info(v.name, "=", v.value);
#ifndef DISTOPT_ML_METRICS_H_
#define DISTOPT_ML_METRICS_H_

#include <Eigen/Core>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "distopt/status.h"
#include "ml/model.h"

namespace distopt {

// Mean of values added as (sum, count) pairs: Add(batch_mean * n, n) gives
// the per-example mean over all batches, whatever their sizes.
class MeanMetric {
 public:
  void Add(double sum, uint64_t count);
  void Merge(const MeanMetric& other);
  uint64_t count() const { return count_; }
  double value() const;  // NaN when nothing was added

 private:
  double sum_ = 0.0;
  uint64_t count_ = 0;
};

// Fraction of correct predictions. `pred` has one row per example as
// Model::Predict returns it: one column = P(y=1), correct when (p >= 0.5) ==
// (label > 0); several columns = class scores, correct when the argmax (the
// first on ties) equals the label (a label that is no class index is wrong).
class AccuracyMetric {
 public:
  Status Add(const Eigen::MatrixXf& pred, std::span<const float> labels);
  void Merge(const AccuracyMetric& other);
  uint64_t count() const { return total_; }
  double value() const;  // NaN when nothing was added

 private:
  uint64_t correct_ = 0;
  uint64_t total_ = 0;
};

// Exact area under the ROC curve of binary scores (label > 0 is positive):
// keeps every (score, label) and ranks them at value(), tied scores sharing
// their average rank (the Mann-Whitney statistic), so AUC(constant) = 0.5.
// O(n) memory, O(n log n) per value().
class AucMetric {
 public:
  // Fails on a size mismatch or a NaN score (which has no rank).
  Status Add(std::span<const float> scores, std::span<const float> labels);
  void Merge(const AucMetric& other);
  uint64_t count() const { return scores_.size(); }
  double value() const;  // NaN unless both classes were seen

 private:
  std::vector<float> scores_;
  std::vector<uint8_t> positive_;
};

// Root of the mean squared error of predictions against labels.
class RmseMetric {
 public:
  Status Add(std::span<const float> pred, std::span<const float> labels);
  void Merge(const RmseMetric& other);
  uint64_t count() const { return count_; }
  double value() const;  // NaN when nothing was added

 private:
  double sum_sq_ = 0.0;
  uint64_t count_ = 0;
};

struct MetricValue {
  std::string name;  // "loss", "accuracy", "auc", "rmse"
  double value = 0.0;
};

// The metrics of a task, computed from predictions: loss (the model's own
// loss, recomputed from the prediction with probabilities clamped to
// [1e-7, 1 - 1e-7], so it can differ from ForwardBackward's for extremely
// confident mistakes), accuracy (binary, multiclass), auc (binary), rmse
// (regression).
class TaskMetrics {
 public:
  explicit TaskMetrics(Task task) : task_(task) {}

  // `pred` is what Model::Predict returned for `batch`. Fails on a shape
  // mismatch or (multiclass) a label that is no class, naming the row.
  Status Add(const Batch& batch, const Eigen::MatrixXf& pred);
  void Merge(const TaskMetrics& other);
  uint64_t count() const { return loss_.count(); }
  std::vector<MetricValue> Values() const;

 private:
  Task task_;
  MeanMetric loss_;
  AccuracyMetric accuracy_;
  AucMetric auc_;
  RmseMetric rmse_;
  std::vector<float> labels_;  // scratch: the batch's labels
};

}  // namespace distopt

#endif  // DISTOPT_ML_METRICS_H_
