// KvServer: the server role of the parameter server. Holds its copies of
// the model's partitions: those it owns (it answers push/pull/push-pull
// requests from workers for them, enforces the job's consistency model (BSP
// aggregation, SSP bounded staleness, ASP), applies updates with each
// table's optimizer, and drops duplicate pushes: a push is identified by
// table, worker and clock, so retries are applied exactly once with no
// per-request memory) and, with replication, those it backs up. An owner
// numbers each update it applies and sends it to the partition's backup,
// which applies it the same way (bit-identical state); replies that
// acknowledge an update wait until the backup confirmed it, so a push
// acknowledged to a worker survives the owner's death. A new backup first
// gets a snapshot. Requests are serialized by an internal mutex; every
// public method is thread-safe.
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

#include "base/bytes.h"
#include "base/logging.h"
#include "cluster/membership.h"
#include "kv/checkpoint.h"
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
  int64_t keep_checkpoints = 3;  // a folder of its own is pruned to this many
  // Replication: updates a backup has not confirmed are sent again after this long.
  Duration replicate_retry = std::chrono::milliseconds(500);
};

struct KvServerStats {
  uint64_t pushes = 0;
  uint64_t pulls = 0;
  uint64_t duplicate_pushes = 0;
  uint64_t updates = 0;          // optimizer applications (BSP: one per clock)
  uint64_t parked_pulls = 0;     // pulls that had to wait
  uint64_t rejected = 0;         // malformed or unauthorized requests
  uint64_t misrouted = 0;        // requests for a partition this server does not serve
  uint64_t replicated = 0;       // updates sent to a backup (as owner)
  uint64_t replica_applied = 0;  // updates applied as a backup
  uint64_t snapshots_sent = 0;
  uint64_t snapshots_installed = 0;
  uint64_t takeovers = 0;  // partitions this server took over as their backup
};

class KvServer {
 public:
  static Result<std::unique_ptr<KvServer>> Create(KvServerOptions options, uint32_t rank,
                                                  const ClusterView& view, Transport* transport,
                                                  Logger log);

  // A push, pull, push-pull or clock message from a worker, or a replication
  // message from another server. Replies go out through the transport.
  // Thread-safe (serialized internally).
  void HandleMessage(Message&& m);
  // Periodic housekeeping: logs pulls that wait too long and for whom;
  // resends updates a backup has not confirmed.
  void Tick();

  // New membership (dispatcher thread): BSP stops waiting for dead workers.
  void OnViewChange(const ClusterView& view);

  KvServerStats stats() const;
  // The slices of dense `table` in the partitions this server owns, by where they start.
  std::map<uint64_t, std::vector<float>> DenseValues(uint32_t table) const;
  // The row of a sparse key if a partition this server owns holds it.
  std::vector<float> SparseRow(uint32_t table, uint64_t key) const;
  // The partitions this server owns / backs up (ascending).
  std::vector<uint32_t> Owned() const;
  std::vector<uint32_t> BackedUp() const;

 private:
  struct Parked {
    Message request;  // the pull (or the pull half of a push-pull), or the push to ack
    uint32_t rank;
    NodeId node;
    MsgType reply_type;  // kPullReply, or kPushAck (an update waiting for its backup)
    int64_t need_clock;  // ready once this clock is served (see Ready)
    uint64_t need_seq;   // ... and the partition's backup confirmed this update
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
    uint32_t partition = 0;
    std::unique_ptr<Optimizer> opt;
    std::unique_ptr<DenseShard> dense;  // null if the partition holds no slice
    std::unique_ptr<SparseShard> sparse;
    int64_t applied_clock = 0;               // BSP: clocks below are applied
    int64_t confirmed_clock = 0;             // BSP: ... and held by the backup too
    std::map<int64_t, Aggregation> pending;  // BSP: clock -> partial sum
    std::vector<int64_t> worker_clock;       // by rank: clocks pushed so far
    std::vector<Parked> parked;
    std::vector<float> scratch;  // BSP: the mean gradient
  };
  // An update (or snapshot) sent to the backup and not yet confirmed.
  struct ReplEntry {
    uint64_t seq;
    Message msg;
    int64_t bsp_clock;  // BSP update: the table's applied clock after it (-1 otherwise)
  };
  struct Partition {
    uint32_t id = 0;
    bool held = false;   // this server has a copy
    bool owner = false;  // ... and serves it (else it is the backup)
    std::vector<Table> tables;
    int64_t last_checkpoint = 0;
    int64_t requested_checkpoint = -1;  // a clock worker 0 asked to checkpoint at
    // As owner: the stream to the backup (none: kNoServer).
    uint32_t backup_rank = kNoServer;
    NodeId backup_node = kUnassignedId;
    uint64_t seq = 0;                    // the last update applied here
    uint64_t confirmed = 0;              // the backup applied everything up to here
    std::vector<ReplEntry> unconfirmed;  // ascending seq (short: a few in flight)
    SteadyTime last_send;
    SteadyTime last_resend;  // the last go-back triggered by the backup
    // As backup: whose updates count, and whether the copy is complete.
    NodeId owner_node = kUnassignedId;
    bool synced = false;
  };

  KvServer(KvServerOptions options, uint32_t rank, Layout layout, Transport* transport, Logger log);
  Status Init(const ClusterView& view);
  // Gives partition p fresh tables (the initializers) held by this server.
  Status MakePartition(uint32_t p, bool owner);
  // Learns the live workers and servers of `view` (and connects to them).
  Status ApplyMembers(const ClusterView& view);
  // Applies layout_'s replica assignment: takes over, starts or stops
  // holding partitions, and (as owner) starts streaming to a new backup.
  void ApplyAssignment();
  void Dispatch(Message&& m);  // mu_ held

  void HandlePush(Message&& m, bool then_pull);
  void HandlePull(Message&& m);
  void HandleClock(Message&& m);
  void HandleReplicate(Message&& m);
  void HandleReplicateAck(const Message& m);
  // Writes a checkpoint of each owned partition whose tables all reached a
  // new multiple of checkpoint_every_steps (or a requested clock).
  void MaybeCheckpoint();
  Status WriteCheckpoint(Partition& p, int64_t step);
  Status RestoreCheckpoint(int64_t step);
  std::vector<ShardSnapshot> SnapshotOf(const Partition& p, int64_t step) const;
  Status Install(Partition& p, std::vector<ShardSnapshot> shards);

  // Validation; on failure the request is answered with kKvError (or kept
  // for a view this server has not seen yet). The sender's worker rank and
  // the addressed table, or nullptr.
  Table* Admit(const Message& m, uint32_t* rank);
  Result<uint32_t> WorkerRank(const Message& m) const;
  Result<Table*> FindTable(const Message& m);
  Status CheckPayload(const Table& t, const Message& m, bool has_values) const;

  // Applies or aggregates a push; returns the update the reply must wait
  // for the backup to confirm (0: none).
  uint64_t Accept(Table& t, uint32_t rank, const Message& m);
  void TryApplyBsp(Table& t);
  // Applies the mean; returns it as an update for the backup (payload only
  // if the partition has one).
  Message ApplyAggregation(Table& t, Aggregation& a);
  void ApplyNow(Table& t, const Message& m);
  // Sends an applied update to the partition's backup; returns its sequence
  // number (0: there is no backup, nothing to wait for).
  uint64_t Replicate(Table& t, const Message& update, int64_t bsp_clock,
                     uint32_t worker = kNoServer);
  void SendSnapshot(Partition& p);
  void ResendUnconfirmed(Partition& p);
  // A small control message about partition `p` (its id in `offset`).
  void SendAbout(const Partition& p, NodeId to, MsgType type, ByteWriter& body);
  void Confirm(Partition& p, uint64_t seq);
  bool Ready(const Table& t, int64_t clock) const;
  bool Ready(const Table& t, const Parked& p) const;
  int64_t MinClock(const Table& t) const;
  void Park(Table& t, Message req, uint32_t rank, NodeId node, MsgType type, int64_t need_clock,
            uint64_t need_seq);
  void Answer(Table& t, const Message& req, uint32_t rank, NodeId node, MsgType type, bool waited);
  void ServeParked(Table& t);
  void ServeParked(Partition& p);
  void Reply(NodeId node, const Message& req, MsgType type);
  void Reject(NodeId node, const Message& req, const Status& s);
  std::string WhoIsSlow(const Table& t, int64_t clock) const;
  bool Replicated(const Table& t) const;

  const KvServerOptions options_;
  const uint32_t rank_;
  Transport* const transport_;
  const Logger log_;

  mutable std::mutex mu_;  // guards everything below (taken by each handler)
  Layout layout_;
  std::vector<Partition> parts_;            // by partition id
  std::map<NodeId, uint32_t> worker_rank_;  // live workers of the current epoch
  std::map<uint32_t, NodeId> server_ids_;   // live servers of the current epoch, by rank
  std::vector<bool> live_;                  // by worker rank
  std::vector<Message> future_;             // requests of an epoch this server has not seen yet
  static constexpr size_t kMaxFuture = 4096;
  static constexpr Duration kFastResendGap = std::chrono::milliseconds(20);
  uint32_t num_workers_ = 0;
  uint32_t epoch_ = 0;
  NodeId self_id_ = kUnassignedId;
  uint32_t generation_ = 0;
  uint32_t rollback_epoch_ = 0;  // requests of earlier epochs belong to the rolled-back past
  KvServerStats stats_;
};

}  // namespace distopt

#endif  // DISTOPT_KV_SERVER_H_
