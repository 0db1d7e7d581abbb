// JobConfig: everything a distopt job is told, loaded once by the CLI from a
// TOML file (plus --set overrides) and handed down as option structs. Strict:
// an unknown key, a wrong type or an out-of-range value is an error naming
// the key and the file (with its line where the TOML parser knows it).
// Values; not thread-safe to mutate concurrently.
//
//   ASSIGN_OR_RETURN(JobConfig cfg, LoadConfig("examples/fashion_mnist.toml",
//                                              {"train.epochs=3", "cluster.workers=2"}));
//   std::string resolved = ConfigToToml(cfg);   // written to the run folder
#ifndef DISTOPT_CLI_CONFIG_H_
#define DISTOPT_CLI_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "distopt/status.h"
#include "kv/options.h"
#include "ml/model.h"
#include "optim/optimizer.h"

namespace distopt {

struct ClusterConfig {
  uint32_t workers = 1;
  uint32_t servers = 1;
  Consistency consistency = Consistency::kBsp;
  int64_t staleness = 0;           // ssp only
  std::string host = "127.0.0.1";  // interface the local launcher binds
  // curve: CURVE keys from `distopt keygen` | none | auto: curve, except a
  // job whose nodes all stay on loopback (the local launcher's default)
  std::string security = "auto";
  int64_t heartbeat_interval_ms = 1000;
  int64_t heartbeat_timeout_ms = 10000;
  int64_t startup_timeout_s = 120;
  int64_t request_timeout_s = 120;  // a push/pull unanswered this long fails the job
  int64_t retry_interval_ms = 0;    // resend unanswered requests (0: off)
  int64_t max_restarts = 0;         // local launcher: restarts per crashed node
  int64_t replication = 1;          // 2: every key range has a backup server
  // How many pieces the model is cut into, dealt to the servers (0: one per
  // server, more when a dense table's slice would exceed 4 MiB, so large
  // messages are pipelined).
  int64_t partitions = 0;
  // What this node's host can serve, relative to the other hosts: the
  // coordinator deals each host a share of the partitions in proportion
  // (split evenly among its servers). 0: the CPUs this process may run on.
  int64_t capacity = 0;
  // Bytes of each TCP connection's receive buffer, which bounds what a peer
  // has in flight to this node (0: the OS's autotuning). Small values keep
  // many concurrent pushes from overflowing a shallow switch queue.
  int64_t tcp_receive_buffer = 0;
  // separate: servers are processes of their own | process: a server inside
  // each worker's process (cluster.servers = cluster.workers; a worker
  // reaches its own partition without a socket)
  std::string placement = "separate";
  // Workers of one host sum their gradients before anything crosses the
  // network (BSP): auto (on when the job spans hosts) | on | off
  std::string host_aggregation = "auto";

  bool operator==(const ClusterConfig&) const = default;
};

struct DataConfig {
  std::string format = "idx";  // idx | libsvm | csv
  std::string train;           // idx: images file; libsvm/csv: the data file
  std::string train_labels;    // idx only
  std::string test;
  std::string test_labels;
  uint64_t num_features = 0;    // libsvm: feature-id space (0: infer from the data)
  bool zero_based = false;      // libsvm feature ids
  int64_t label_column = 0;     // csv (negative counts from the end)
  bool header = false;          // csv
  std::string delimiter = ",";  // csv
  bool skip_bad_lines = false;
  double scale = 1.0 / 255.0;  // idx pixel scale
  int64_t max_train_rows = 0;  // 0: all (quick experiments)
  int64_t shares = 0;          // the training data cut into this many (0: one per worker)
  // "bytes": each worker reads only its shares (byte ranges or whole files);
  // "whole": every worker reads every file and takes strided rows (small
  // files sorted by label or time, where a contiguous share would be skewed).
  std::string split = "bytes";
  int64_t max_test_rows = 0;

  bool operator==(const DataConfig&) const = default;
};

struct TrainConfig {
  int64_t epochs = 10;
  int64_t batch_size = 64;  // per worker
  uint64_t seed = 42;
  std::string target_metric;  // e.g. "test_accuracy" or "test_auc"; empty: none
  double target = 0.0;        // stop once target_metric reaches this
  int64_t eval_every_epochs = 1;
  int64_t log_every_steps = 50;  // one metrics.jsonl line per this many steps
  int64_t checkpoint_every_steps = 0;
  int64_t checkpoint_every_s = 0;
  int64_t keep_checkpoints = 3;
  bool global_order = true;  // BSP: workers' batches tile one global batch

  bool operator==(const TrainConfig&) const = default;
};

// TOML keys are the field names: top-level `name`, then tables [cluster],
// [data], [model], [optimizer], [optimizer.schedule] and [train]. A new field
// needs its row in the schema in config_schema.cc, which drives parsing, range
// checks and ConfigToToml alike (so nothing is readable but not written back).
// Fault injection (testing fault tolerance on a real job): applied to the
// traffic of the nodes it names, from `distopt run`.
struct FaultConfig {
  double drop = 0.0;                 // probability a message is lost
  double duplicate = 0.0;            // probability a message is sent twice
  int64_t delay_ms = 0;              // each message waits U(0, delay_ms)
  std::string role;                  // "" (every node), "server" or "worker"
  int64_t rank = -1;                 // -1: every node of `role`
  int64_t kill_after_messages = -1;  // the node SIGKILLs itself after this many sends
  uint64_t seed = 1;
  bool operator==(const FaultConfig&) const = default;
};

struct JobConfig {
  std::string name = "job";
  std::string source;  // the file it was loaded from (for messages)
  ClusterConfig cluster;
  DataConfig data;
  ModelOptions model;
  OptimizerOptions optimizer;
  TrainConfig train;
  FaultConfig faults;
};

// Loads `path`, then applies each "section.key=value" override (the value
// is parsed as a TOML value: 3, 0.1, true, "text", [128, 64]; a bare word is
// taken as a string). Validates the result.
Result<JobConfig> LoadConfig(const std::string& path, const std::vector<std::string>& overrides);
// Same, from TOML text (`name` is used in messages).
Result<JobConfig> ParseConfig(const std::string& text, const std::string& name,
                              const std::vector<std::string>& overrides);
// The resolved configuration as TOML (written to the run folder; loads back
// to an equal JobConfig).
std::string ConfigToToml(const JobConfig& config);
// Every field's range plus the cross-field checks (data files the format
// needs, staleness only under ssp, target_metric against the model, the
// optimizer via Optimizer::Create, ...); also run by LoadConfig and
// ParseConfig. Messages start with config.source (or "config").
Status ValidateConfig(const JobConfig& config);

}  // namespace distopt

#endif  // DISTOPT_CLI_CONFIG_H_
