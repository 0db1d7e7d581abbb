// ValidateConfig: every field's own range (the schema's `check`), then the
// rules across fields: data files each format needs, settings that only one
// format or consistency model reads, cluster sizes and timeouts that must
// agree, the target metric against what the model reports. The model and
// the optimizer are built to check their own settings. Thread-safe.
#include <cstdint>
#include <memory>
#include <string>

#include "cli/config.h"
#include "cli/config_schema.h"

namespace distopt {
namespace {

using config_internal::Field;
using config_internal::Fields;
using config_internal::kMaxMembers;
using config_internal::Quoted;
using config_internal::ShortestNumber;

const char* DescribeTask(Task task) {
  switch (task) {
    case Task::kRegression:
      return "test_loss, test_rmse";
    case Task::kBinary:
      return "test_loss, test_accuracy, test_auc";
    case Task::kMulticlass:
      return "test_loss, test_accuracy";
  }
  return "test_loss";
}

bool ReportsMetric(Task task, const std::string& metric) {
  if (metric == "test_loss") return true;
  if (metric == "test_accuracy") return task != Task::kRegression;
  if (metric == "test_auc") return task == Task::kBinary;
  if (metric == "test_rmse") return task == Task::kRegression;
  return false;
}

// Settings each data format reads; a non-default value under another format
// is a mistake (like optimizer fields the chosen kind never reads).
Status CheckDataFormat(const DataConfig& d) {
  const DataConfig defaults;
  struct Only {
    const char* key;
    const char* format;
    bool set;
  };
  const Only only[] = {
      {"data.train_labels", "idx", !d.train_labels.empty()},
      {"data.test_labels", "idx", !d.test_labels.empty()},
      {"data.scale", "idx", d.scale != defaults.scale},
      {"data.num_features", "libsvm", d.num_features != defaults.num_features},
      {"data.zero_based", "libsvm", d.zero_based != defaults.zero_based},
      {"data.label_column", "csv", d.label_column != defaults.label_column},
      {"data.header", "csv", d.header != defaults.header},
      {"data.delimiter", "csv", d.delimiter != defaults.delimiter},
  };
  for (const Only& o : only) {
    if (o.set && d.format != o.format) {
      return InvalidArgumentError(Quoted(o.key) + " only applies to data.format '" + o.format +
                                  "' (format is '" + d.format + "')");
    }
  }
  if (d.train.empty()) {
    return InvalidArgumentError("'data.train' is required (the training data file)");
  }
  if (d.format == "idx" && d.train_labels.empty()) {
    return InvalidArgumentError("'data.train_labels' is required when data.format is 'idx'");
  }
  if (d.format == "idx" && !d.test.empty() && d.test_labels.empty()) {
    return InvalidArgumentError(
        "'data.test_labels' is required when data.test is set and data.format is 'idx'");
  }
  if (d.test.empty() && !d.test_labels.empty()) {
    return InvalidArgumentError("'data.test_labels' is set but data.test is not");
  }
  return Status::Ok();
}

Status CheckCluster(const ClusterConfig& k) {
  if (k.consistency != Consistency::kSsp && k.staleness != 0) {
    return InvalidArgumentError(
        "'cluster.staleness' only applies to cluster.consistency 'ssp' (consistency is '" +
        std::string(ConsistencyName(k.consistency)) + "'), got " + std::to_string(k.staleness));
  }
  if (int64_t{k.workers} + k.servers + 1 > kMaxMembers) {
    return InvalidArgumentError(
        "'cluster.workers' + cluster.servers + 1 (the coordinator) must be "
        "<= " +
        std::to_string(kMaxMembers) + ", got " +
        std::to_string(int64_t{k.workers} + k.servers + 1));
  }
  if (k.placement == "process" && k.servers != k.workers) {
    return InvalidArgumentError(
        "'cluster.placement' = 'process' runs one server in each worker's process: set "
        "cluster.servers = cluster.workers (" +
        std::to_string(k.workers) + "), got " + std::to_string(k.servers));
  }
  if (k.host_aggregation == "on" && k.consistency != Consistency::kBsp) {
    return InvalidArgumentError(
        "'cluster.host_aggregation' = 'on' needs cluster.consistency 'bsp' (a host's workers "
        "would wait for each other every step), got '" +
        std::string(ConsistencyName(k.consistency)) + "'");
  }
  if (k.replication == 2 && k.servers < 2) {
    return InvalidArgumentError(
        "'cluster.replication' = 2 needs cluster.servers >= 2 (a backup lives on another "
        "server), got " +
        std::to_string(k.servers) + " server");
  }
  if (k.partitions != 0 && k.partitions < k.servers) {
    return InvalidArgumentError(
        "'cluster.partitions' must be 0 (one per server, or more for large tables) or at least "
        "cluster.servers (" +
        std::to_string(k.servers) + "), got " + std::to_string(k.partitions));
  }
  if (k.heartbeat_timeout_ms <= k.heartbeat_interval_ms) {
    return InvalidArgumentError(
        "'cluster.heartbeat_timeout_ms' must be greater than "
        "cluster.heartbeat_interval_ms (" +
        std::to_string(k.heartbeat_interval_ms) + "), got " +
        std::to_string(k.heartbeat_timeout_ms));
  }
  if (k.retry_interval_ms >= k.request_timeout_s * 1000) {
    return InvalidArgumentError(
        "'cluster.retry_interval_ms' must be 0 (off) or below "
        "cluster.request_timeout_s (" +
        std::to_string(k.request_timeout_s * 1000) + " ms), got " +
        std::to_string(k.retry_interval_ms));
  }
  return Status::Ok();
}

Status CheckTarget(const JobConfig& c, Task task) {
  const TrainConfig& t = c.train;
  if (t.target_metric.empty()) {
    if (t.target == 0.0) return Status::Ok();
    return InvalidArgumentError("'train.target' is set but train.target_metric is empty");
  }
  if (c.data.test.empty()) {
    return InvalidArgumentError("'train.target_metric' is '" + t.target_metric +
                                "', which needs test data (data.test)");
  }
  if (!ReportsMetric(task, t.target_metric)) {
    return InvalidArgumentError("'train.target_metric' is '" + t.target_metric +
                                "', which model.kind '" + c.model.kind +
                                "' does not report (it reports " + DescribeTask(task) + ")");
  }
  const bool fraction = t.target_metric == "test_accuracy" || t.target_metric == "test_auc";
  if (fraction ? !(t.target >= 0.0 && t.target <= 1.0) : !(t.target >= 0.0)) {
    return InvalidArgumentError("'train.target' must be " +
                                std::string(fraction ? "in [0, 1]" : ">= 0") + " for " +
                                t.target_metric + ", got " + ShortestNumber(t.target));
  }
  return Status::Ok();
}

}  // namespace

Status ValidateConfig(const JobConfig& c) {
  const std::string where = c.source.empty() ? "config" : c.source;
  for (const Field& f : Fields()) RETURN_IF_ERROR(f.check(c).WithContext(where));
  RETURN_IF_ERROR(CheckCluster(c.cluster).WithContext(where));
  RETURN_IF_ERROR(CheckDataFormat(c.data).WithContext(where));
  if (c.data.shares != 0 && c.data.shares < c.cluster.workers) {
    return InvalidArgumentError(
               "'data.shares' must be 0 (one share of the training data per worker) or at least "
               "cluster.workers (" +
               std::to_string(c.cluster.workers) + "), got " + std::to_string(c.data.shares))
        .WithContext(where);
  }
  // The model and the optimizer own their rules: building them is the check.
  // The input width is unknown until the data is read; libsvm may state it.
  const uint64_t features = c.data.num_features > 0 ? c.data.num_features : 1;
  Result<std::unique_ptr<Model>> model = CreateModel(c.model, features);
  RETURN_IF_ERROR(model.status().WithContext(where));
  RETURN_IF_ERROR(Optimizer::Create(c.optimizer).status().WithContext(where));
  return CheckTarget(c, (*model)->task()).WithContext(where);
}

}  // namespace distopt
