// KvServer: the server role of the parameter server. Owns this server's
// shards of every table, answers push/pull/push-pull requests from workers,
// enforces the job's consistency model (BSP aggregation, SSP bounded
// staleness, ASP), applies updates with each table's optimizer, and drops
// duplicate pushes (a push is identified by table, worker and clock, so
// retries are applied exactly once with no per-request memory). Requests are
// serialized by an internal mutex; every public method is thread-safe.
//
//   ASSIGN_OR_RETURN(auto server, KvServer::Create(opts, rank, view, transport, log));
//   dispatcher.Handle(MsgType::kPush, [&](Message&& m) { server->HandleMessage(std::move(m)); });
//   cluster_client.OnViewChange([&](const ClusterView& v) { server->OnViewChange(v); });
#ifndef DISTOPT_KV_SERVER_H_
#define DISTOPT_KV_SERVER_H_

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "base/logging.h"
#include "cluster/membership.h"
#include "kv/layout.h"
#include "kv/options.h"
#include "kv/shard.h"
#include "transport/dispatcher.h"

namespace distopt {

struct KvServerOptions {
  std::vector<TableSpec> tables;
  ConsistencyOptions consistency;
  // Called (on the request thread) each time a pull is answered.
  std::function<void(const PullTrace&)> on_pull;
  // A parked pull older than this is logged with whom it waits for.
  Duration wait_log_interval = std::chrono::seconds(5);
  // Checkpoints: every `checkpoint_every_steps` clocks (0: never) the server
  // writes its shards under run_dir/checkpoints/step-N/ and reports them to
  // the coordinator; a layout with a restore step starts from that one.
  std::string run_dir;
  int64_t checkpoint_every_steps = 0;
};

struct KvServerStats {
  uint64_t pushes = 0;
  uint64_t pulls = 0;
  uint64_t duplicate_pushes = 0;
  uint64_t updates = 0;       // optimizer applications (BSP: one per clock)
  uint64_t parked_pulls = 0;  // pulls that had to wait
  uint64_t rejected = 0;      // malformed or unauthorized requests
};

class KvServer {
 public:
  static Result<std::unique_ptr<KvServer>> Create(KvServerOptions options, uint32_t rank,
                                                  const ClusterView& view, Transport* transport,
                                                  Logger log);

  // A push, pull, push-pull or clock message from a worker. Replies go out
  // through the transport. Thread-safe (serialized internally).
  void HandleMessage(Message&& m);
  // Periodic housekeeping: logs pulls that wait too long and for whom.
  void Tick();

  // New membership (dispatcher thread): BSP stops waiting for dead workers.
  void OnViewChange(const ClusterView& view);

  KvServerStats stats() const;
  // This server's slice of dense `table` (empty if it holds none) and where it starts.
  std::pair<uint64_t, std::vector<float>> DenseValues(uint32_t table) const;
  // The row of a sparse key if this server holds it.
  std::vector<float> SparseRow(uint32_t table, uint64_t key) const;
  int64_t applied_clock(uint32_t table) const;

 private:
  struct Parked {
    Message request;  // the pull (or the pull half of a push-pull)
    uint32_t rank;
    NodeId node;
    MsgType reply_type;
    SteadyTime since;
    SteadyTime last_log;
  };
  // The pushes of one BSP clock, kept as received (zero-copy) and summed in
  // worker-rank order once complete: the result does not depend on arrival
  // order, so a run is bit-reproducible, and each input is read only once.
  struct Aggregation {
    std::vector<bool> from;       // by worker rank
    std::vector<Message> pushes;  // by worker rank (empty where none)
    uint32_t count = 0;
  };
  struct Table {
    TableSpec spec;
    std::unique_ptr<Optimizer> opt;
    std::unique_ptr<DenseShard> dense;  // null if this server holds no slice
    std::unique_ptr<SparseShard> sparse;
    int64_t applied_clock = 0;               // BSP: clocks below are applied
    std::map<int64_t, Aggregation> pending;  // BSP: clock -> partial sum
    std::vector<int64_t> worker_clock;       // by rank: clocks pushed so far
    std::vector<Parked> parked;
    std::vector<float> scratch;  // BSP: the mean gradient
  };

  KvServer(KvServerOptions options, uint32_t rank, Layout layout, Transport* transport, Logger log);
  Status Init(const ClusterView& view);

  void HandlePush(Message&& m, bool then_pull);
  void HandlePull(Message&& m);
  void HandleClock(Message&& m);
  // Writes a checkpoint when this server's tables all reached a new
  // multiple of checkpoint_every_steps.
  void MaybeCheckpoint();
  Status WriteCheckpoint(int64_t step);
  Status RestoreCheckpoint(int64_t step);

  // Validation; on failure the request is answered with kKvError.
  // The sender's worker rank and the addressed table, or nullptr (rejected).
  Table* Admit(const Message& m, uint32_t* rank);
  Result<uint32_t> WorkerRank(const Message& m) const;
  Result<Table*> FindTable(const Message& m);
  Status CheckPayload(const Table& t, const Message& m, bool has_values) const;

  void Accept(Table& t, uint32_t rank, const Message& m);
  void TryApplyBsp(Table& t);
  void ApplyAggregation(Table& t, Aggregation& a);
  void ApplyNow(Table& t, const Message& m);
  bool Ready(const Table& t, int64_t clock) const;
  int64_t MinClock(const Table& t) const;
  void Answer(Table& t, const Message& req, uint32_t rank, NodeId node, MsgType type, bool waited);
  void ServeParked(Table& t);
  void Reply(NodeId node, const Message& req, MsgType type);
  void Reject(NodeId node, const Message& req, const Status& s);
  std::string WhoIsSlow(const Table& t, int64_t clock) const;

  const KvServerOptions options_;
  const uint32_t rank_;
  const Layout layout_;
  Transport* const transport_;
  const Logger log_;

  mutable std::mutex mu_;  // guards everything below (taken by each handler)
  std::vector<Table> tables_;
  std::map<NodeId, uint32_t> worker_rank_;  // live workers of the current epoch
  std::vector<bool> live_;                  // by worker rank
  uint32_t epoch_ = 0;
  NodeId self_id_ = kUnassignedId;
  int64_t last_checkpoint_ = 0;
  int64_t requested_checkpoint_ = -1;  // a clock worker 0 asked to checkpoint at
  uint32_t generation_ = 0;
  KvServerStats stats_;
};

}  // namespace distopt

#endif  // DISTOPT_KV_SERVER_H_
