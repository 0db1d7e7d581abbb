// InProcCluster: a whole job (coordinator, S servers, W workers) as threads
// of one test process over the in-process transport. Servers and the
// coordinator run on their own threads; each worker runs the caller's
// function on its own thread with a started WorkerNode. Test support only.
//
//   InProcCluster c({.servers = 2, .workers = 4, .tables = tables});
//   Status s = c.Run([&](WorkerNode& w) -> Status { ...push/pull...; return Status::Ok(); });
#ifndef DISTOPT_KV_TESTING_IN_PROC_CLUSTER_H_
#define DISTOPT_KV_TESTING_IN_PROC_CLUSTER_H_

#include <functional>
#include <memory>
#include <vector>

#include "kv/node.h"
#include "transport/inproc_transport.h"

namespace distopt {

struct InProcClusterOptions {
  uint32_t servers = 1;
  uint32_t workers = 1;
  uint32_t replication = 1;
  uint32_t partitions = 0;  // Layout::Partitions's `requested`
  std::vector<TableSpec> tables;
  ConsistencyOptions consistency;
  std::function<void(const PullTrace&)> on_pull;
  KvClientOptions client;
  Duration heartbeat_interval = std::chrono::milliseconds(100);
  Duration heartbeat_timeout = std::chrono::seconds(10);
  std::shared_ptr<LogSink> log_sink;  // default: stderr, warnings and up
  // Wraps each node's transport (fault injection); `name` is "coordinator",
  // "server/1", "worker/0".
  std::function<std::unique_ptr<Transport>(const std::string& name, std::unique_ptr<Transport>)>
      wrap_transport;
  Duration shutdown_grace = std::chrono::milliseconds(500);
  // The host label of each node by name ("server/1", "worker/0"); empty, or
  // no function: every node a host of its own.
  std::function<std::string(const std::string& name)> host_of;
  // Checkpoints (servers' shard files; no manifest: the coordinator here
  // writes none).
  std::string run_dir;
  int64_t checkpoint_every_steps = 0;
};

class InProcCluster {
 public:
  explicit InProcCluster(InProcClusterOptions options);
  ~InProcCluster();

  // Runs the job: `work` on every worker (its own thread), then each worker
  // reports done. Returns the first error of any node, else the
  // coordinator's verdict.
  Status Run(const std::function<Status(WorkerNode&)>& work);

  // Valid after Run: the servers, for inspection.
  const std::vector<std::unique_ptr<ServerNode>>& servers() const { return servers_; }
  // The whole dense table, reassembled from the servers' slices.
  std::vector<float> DenseTable(uint32_t table) const;
  // A sparse row from whichever server holds it (empty if none).
  std::vector<float> SparseRow(uint32_t table, uint64_t key) const;

 private:
  Logger Log(const std::string& name) const;

  InProcClusterOptions options_;
  std::shared_ptr<InProcHub> hub_;
  std::vector<std::unique_ptr<ServerNode>> servers_;
};

}  // namespace distopt

#endif  // DISTOPT_KV_TESTING_IN_PROC_CLUSTER_H_
