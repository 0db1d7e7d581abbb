// The parameter-server roles as runnable nodes. Each node owns its
// transport, its receive loop (Dispatcher) and its link to the coordinator;
// the same classes run as threads of one test process (in-process transport)
// and as the `distopt` processes (ZeroMQ). ServerNode::Run and
// RunCoordinator block the calling thread until the job ends; a WorkerNode
// is driven by the training loop on the caller's thread.
//
//   WorkerNode w(node_opts, tables, {}, std::move(transport), log);
//   RETURN_IF_ERROR(w.Start(Deadline::After(60s)));
//   auto h = w.kv().PushPull(0, grads, params, clock);
//   RETURN_IF_ERROR(w.Finish());
#ifndef DISTOPT_KV_NODE_H_
#define DISTOPT_KV_NODE_H_

#include <memory>
#include <string>

#include "cluster/cluster_client.h"
#include "cluster/coordinator.h"
#include "kv/client.h"
#include "kv/job_policy.h"
#include "kv/server.h"

namespace distopt {

struct NodeOptions {
  std::string coordinator_address;
  int32_t rank = -1;       // -1: the coordinator assigns one
  std::string host_label;  // empty: the host of the advertised address (Member::host)
  uint32_t capacity = 0;   // Member::capacity
  Duration heartbeat_interval = std::chrono::seconds(1);
  Duration coordinator_timeout = std::chrono::seconds(30);
  Duration register_timeout = std::chrono::seconds(120);
};

// The coordinator of a job over `tables`, with KvJobPolicy's decisions:
// publishes their layout over the servers (with the checkpoint to restore,
// on resume), writes each checkpoint's manifest once every partition's files
// are durable, and prunes old checkpoints. Returns when the job is over.
// With replication 2 it also keeps every partition's (owner, backup) pair:
// a dead owner's backup takes over, a partition without a backup gets one on
// the least loaded live server, and a partition that lost every copy rolls
// the job back to the last checkpoint (or ends it, without checkpoints).
Status RunCoordinator(CoordinatorOptions options, const std::vector<TableSpec>& tables,
                      Transport* transport, Logger log, const CheckpointOptions& ckpt = {},
                      uint32_t replication = 1, uint32_t partitions = 0);

class ServerNode {
 public:
  ServerNode(NodeOptions node, KvServerOptions kv, std::unique_ptr<Transport> transport,
             Logger log);
  ~ServerNode();

  // Registers, serves until the coordinator ends the job, returns its verdict.
  Status Run();
  // Stops at once, as if the process died (tests); Run then returns kAborted.
  void Kill();
  bool killed() const { return killed_.load(); }

  // The server (tests inspect it; it serves once Run has registered).
  KvServer* server() { return server_.get(); }
  bool ready() const { return ready_.load(); }

 private:
  const NodeOptions node_;
  KvServerOptions kv_;
  std::unique_ptr<Transport> transport_;
  const Logger log_;
  Dispatcher dispatcher_;
  ClusterClient cluster_;
  // Built with the node, started once it registered (it holds early requests).
  std::unique_ptr<KvServer> server_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> killed_{false};

  void Stop();
};

class WorkerNode {
 public:
  WorkerNode(NodeOptions node, std::vector<TableSpec> tables, KvClientOptions kv,
             std::unique_ptr<Transport> transport, Logger log);
  ~WorkerNode();

  // Registers and waits until the job starts.
  Status Start(Deadline deadline);
  // Reports this worker done and waits for the coordinator to end the job.
  Status Finish(Deadline deadline = Deadline::After(std::chrono::minutes(10)),
                const std::string& end_job_reason = "");
  // Reports a fatal error: the coordinator stops the whole job.
  void Abort(const std::string& reason);
  // Stops at once, as if the process died (tests).
  void Kill();

  KvClient& kv() { return kv_; }
  ClusterClient& cluster() { return cluster_; }
  uint32_t rank() const { return cluster_.rank(); }
  Transport& transport() { return *transport_; }

 private:
  const NodeOptions node_;
  std::unique_ptr<Transport> transport_;
  const Logger log_;
  Dispatcher dispatcher_;
  ClusterClient cluster_;
  KvClient kv_;
};

}  // namespace distopt

#endif  // DISTOPT_KV_NODE_H_
