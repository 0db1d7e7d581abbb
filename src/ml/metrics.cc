#include "ml/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace distopt {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Status SizeMismatch(const char* what, size_t preds, size_t labels) {
  return InvalidArgumentError(std::string(what) + ": " + std::to_string(preds) +
                              " predictions for " + std::to_string(labels) + " labels");
}

}  // namespace

void MeanMetric::Add(double sum, uint64_t count) {
  sum_ += sum;
  count_ += count;
}

void MeanMetric::Merge(const MeanMetric& other) { Add(other.sum_, other.count_); }

double MeanMetric::value() const { return count_ == 0 ? kNaN : sum_ / static_cast<double>(count_); }

Status AccuracyMetric::Add(const Eigen::MatrixXf& pred, std::span<const float> labels) {
  if (static_cast<size_t>(pred.rows()) != labels.size()) {
    return SizeMismatch("accuracy", static_cast<size_t>(pred.rows()), labels.size());
  }
  for (Eigen::Index i = 0; i < pred.rows(); ++i) {
    const float y = labels[static_cast<size_t>(i)];
    bool correct = false;
    if (pred.cols() == 1) {
      correct = (pred(i, 0) >= 0.5f) == (y > 0.0f);
    } else if (pred.cols() > 1) {
      Eigen::Index best = 0;
      pred.row(i).maxCoeff(&best);
      correct = static_cast<float>(best) == y;
    }
    correct_ += correct ? 1 : 0;
  }
  total_ += static_cast<uint64_t>(pred.rows());
  return Status::Ok();
}

void AccuracyMetric::Merge(const AccuracyMetric& other) {
  correct_ += other.correct_;
  total_ += other.total_;
}

double AccuracyMetric::value() const {
  return total_ == 0 ? kNaN : static_cast<double>(correct_) / static_cast<double>(total_);
}

Status AucMetric::Add(std::span<const float> scores, std::span<const float> labels) {
  if (scores.size() != labels.size()) return SizeMismatch("auc", scores.size(), labels.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    if (std::isnan(scores[i])) {
      return InvalidArgumentError("auc: score " + std::to_string(i) + " of the batch is NaN");
    }
  }
  scores_.insert(scores_.end(), scores.begin(), scores.end());
  for (float y : labels) positive_.push_back(y > 0.0f ? 1 : 0);
  return Status::Ok();
}

void AucMetric::Merge(const AucMetric& other) {
  scores_.insert(scores_.end(), other.scores_.begin(), other.scores_.end());
  positive_.insert(positive_.end(), other.positive_.begin(), other.positive_.end());
}

double AucMetric::value() const {
  const size_t n = scores_.size();
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(),
            [this](uint32_t a, uint32_t b) { return scores_[a] < scores_[b]; });
  // Sum of the (1-based, tie-averaged) ranks of the positives.
  double rank_sum = 0.0;
  uint64_t pos = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    uint64_t group_pos = 0;
    while (j < n && scores_[order[j]] == scores_[order[i]]) group_pos += positive_[order[j++]];
    const double avg_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    rank_sum += avg_rank * static_cast<double>(group_pos);
    pos += group_pos;
    i = j;
  }
  const uint64_t neg = n - pos;
  if (pos == 0 || neg == 0) return kNaN;
  const double p = static_cast<double>(pos);
  return (rank_sum - p * (p + 1.0) / 2.0) / (p * static_cast<double>(neg));
}

Status RmseMetric::Add(std::span<const float> pred, std::span<const float> labels) {
  if (pred.size() != labels.size()) return SizeMismatch("rmse", pred.size(), labels.size());
  for (size_t i = 0; i < pred.size(); ++i) {
    const double e = static_cast<double>(pred[i]) - labels[i];
    sum_sq_ += e * e;
  }
  count_ += pred.size();
  return Status::Ok();
}

void RmseMetric::Merge(const RmseMetric& other) {
  sum_sq_ += other.sum_sq_;
  count_ += other.count_;
}

double RmseMetric::value() const {
  return count_ == 0 ? kNaN : std::sqrt(sum_sq_ / static_cast<double>(count_));
}

Status TaskMetrics::Add(const Batch& batch, const Eigen::MatrixXf& pred) {
  if (batch.data == nullptr) return InvalidArgumentError("metrics: batch has no dataset");
  const size_t n = batch.size();
  const Eigen::Index want_cols = task_ == Task::kMulticlass ? pred.cols() : 1;
  if (static_cast<size_t>(pred.rows()) != n || pred.cols() != want_cols ||
      (task_ == Task::kMulticlass && pred.cols() < 2)) {
    return InvalidArgumentError("metrics: predictions are " + std::to_string(pred.rows()) + " x " +
                                std::to_string(pred.cols()) + " for a batch of " +
                                std::to_string(n));
  }
  labels_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t r = batch.rows[i];
    if (r >= batch.data->labels.size()) {
      return InvalidArgumentError("metrics: row " + std::to_string(r) + " has no label");
    }
    labels_[i] = batch.data->labels[r];
  }
  constexpr double kEps = 1e-7;
  double loss = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const auto row = static_cast<Eigen::Index>(i);
    const float y = labels_[i];
    switch (task_) {
      case Task::kRegression: {
        const double e = static_cast<double>(pred(row, 0)) - y;
        loss += 0.5 * e * e;
        break;
      }
      case Task::kBinary: {
        if (std::isnan(pred(row, 0))) {
          return InvalidArgumentError("metrics: prediction for row " +
                                      std::to_string(batch.rows[i]) + " is NaN");
        }
        const double p = std::clamp(static_cast<double>(pred(row, 0)), kEps, 1.0 - kEps);
        loss -= y > 0.0f ? std::log(p) : std::log1p(-p);
        break;
      }
      case Task::kMulticlass: {
        if (!(y >= 0.0f && y < static_cast<float>(pred.cols())) || y != std::floor(y)) {
          return InvalidArgumentError("metrics: row " + std::to_string(batch.rows[i]) + ": label " +
                                      std::to_string(y) + " is not a class in [0, " +
                                      std::to_string(pred.cols()) + ")");
        }
        const double p = pred(row, static_cast<Eigen::Index>(y));
        loss -= std::log(std::max(p, kEps));
        break;
      }
    }
  }
  loss_.Add(loss, n);
  const std::span<const float> col0(pred.data(), task_ == Task::kMulticlass ? 0 : n);
  switch (task_) {
    case Task::kRegression:
      return rmse_.Add(col0, labels_);
    case Task::kBinary:
      RETURN_IF_ERROR(auc_.Add(col0, labels_));
      return accuracy_.Add(pred, labels_);
    case Task::kMulticlass:
      return accuracy_.Add(pred, labels_);
  }
  return Status::Ok();
}

void TaskMetrics::Merge(const TaskMetrics& other) {
  loss_.Merge(other.loss_);
  accuracy_.Merge(other.accuracy_);
  auc_.Merge(other.auc_);
  rmse_.Merge(other.rmse_);
}

std::vector<MetricValue> TaskMetrics::Values() const {
  std::vector<MetricValue> v{{"loss", loss_.value()}};
  switch (task_) {
    case Task::kRegression:
      v.push_back({"rmse", rmse_.value()});
      break;
    case Task::kBinary:
      v.push_back({"accuracy", accuracy_.value()});
      v.push_back({"auc", auc_.value()});
      break;
    case Task::kMulticlass:
      v.push_back({"accuracy", accuracy_.value()});
      break;
  }
  return v;
}

}  // namespace distopt
