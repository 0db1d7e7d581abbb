// KvServer: the server role of the parameter server, a facade over its
// parts. It holds this server's copies of the model's partitions
// (kv/partition.h): those it owns it serves (push, pull, push-pull and
// clock requests from workers), those it backs up it keeps in step with
// their owners. Per table, the consistency gate (kv/consistency_gate.h)
// decides when a pull may be answered and parks it until then; under BSP
// the aggregator (kv/bsp_aggregator.h) sums a clock's pushes in rank order
// once all are in; the replication stream (kv/replication_stream.h) sends
// each applied update to the backup, and replies that acknowledge an
// update wait until the backup confirmed it, so an acknowledged push
// survives the owner's death; checkpoints are copied here and written by
// the checkpoint writer's thread (kv/checkpoint_writer.h). A push is
// identified by table, worker and clock, so a retry is applied exactly
// once with no per-request memory.
//
// The server exists before it knows the job: requests that arrive before
// Start, or that belong to a membership epoch it has not seen yet, are held
// (in one place) and handled once it can. Every public method is
// thread-safe (one internal mutex, never held across file I/O).
//
//   KvServer server(opts, transport, log);
//   dispatcher.Handle(MsgType::kPush, [&](Message&& m) { server.HandleMessage(std::move(m)); });
//   RETURN_IF_ERROR(server.Start(rank, cluster.view()));
//   cluster.OnViewChange([&](const ClusterView& v) { server.OnViewChange(v); });
#ifndef DISTOPT_KV_SERVER_H_
#define DISTOPT_KV_SERVER_H_

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "base/bytes.h"
#include "base/logging.h"
#include "base/mutex.h"
#include "cluster/membership.h"
#include "kv/checkpoint_writer.h"
#include "kv/kv_message.h"
#include "kv/layout.h"
#include "kv/options.h"
#include "kv/partition.h"
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
  // Files (checkpoints) and the clock (waits, resends) go through it.
  Env* env = Env::Default();
  // Called under the server's lock when it cannot go on serving (a rollback
  // whose checkpoint does not load): the node aborts the job with `reason`.
  // Must not call back into the server.
  std::function<void(const std::string& reason)> on_fatal;
};

struct KvServerStats {
  uint64_t pushes = 0;
  uint64_t pulls = 0;
  uint64_t duplicate_pushes = 0;
  uint64_t updates = 0;          // optimizer applications (BSP: one per clock)
  uint64_t parked_pulls = 0;     // pulls that had to wait
  uint64_t rejected = 0;         // malformed or unauthorized requests
  uint64_t misrouted = 0;        // requests for a partition this server does not serve
  uint64_t held = 0;             // requests held until the server knew their epoch
  uint64_t replicated = 0;       // updates sent to a backup (as owner)
  uint64_t replica_applied = 0;  // updates applied as a backup
  uint64_t snapshots_sent = 0;
  uint64_t snapshots_installed = 0;
  uint64_t takeovers = 0;  // partitions this server took over as their backup
  CheckpointWriterStats checkpoints;
};

class KvServer {
 public:
  KvServer(KvServerOptions options, Transport* transport, Logger log);
  ~KvServer();

  // Joins the job as server `rank` of `view`: builds (or restores) the
  // partitions its layout gives this server, then handles the requests held
  // so far. InvalidArgument if the layout does not fit the tables.
  Status Start(uint32_t rank, const ClusterView& view);

  // A push, pull, push-pull or clock message from a worker, or a replication
  // message from another server. Replies go out through the transport.
  void HandleMessage(Message&& m);
  // Periodic housekeeping: logs pulls that wait too long and for whom;
  // resends updates a backup has not confirmed.
  void Tick();
  // New membership (dispatcher thread): BSP stops waiting for dead workers;
  // partitions fail over, get new backups, or roll back with the layout.
  void OnViewChange(const ClusterView& view);

  // Returns once every checkpoint taken so far is written and reported.
  void FlushCheckpoints();

  KvServerStats stats() const;
  // The slices of dense `table` in the partitions this server owns, by where they start.
  std::map<uint64_t, std::vector<float>> DenseValues(uint32_t table) const;
  // The row of a sparse key if a partition this server owns holds it.
  std::vector<float> SparseRow(uint32_t table, uint64_t key) const;
  // The partitions this server owns / backs up (ascending).
  std::vector<uint32_t> Owned() const;
  std::vector<uint32_t> BackedUp() const;

 private:
  Status Init(uint32_t rank, const ClusterView& view) REQUIRES(mu_);
  // Gives partition p fresh tables (the initializers) held by this server.
  Status MakePartition(uint32_t p, bool owner) REQUIRES(mu_);
  // Learns the live workers and servers of `view` (and connects to them).
  Status ApplyMembers(const ClusterView& view) REQUIRES(mu_);
  // Applies layout_'s replica assignment: takes over, starts or stops
  // holding partitions, and (as owner) starts streaming to a new backup.
  void ApplyAssignment() REQUIRES(mu_);
  // The node of live server `rank` (kUnassignedId: none).
  NodeId NodeOfServer(uint32_t rank) const REQUIRES(mu_);
  void TakeOver(PartitionReplica& part) REQUIRES(mu_);
  void SetBackup(PartitionReplica& part, const Replica& rep, NodeId backup) REQUIRES(mu_);
  // The job rolled back (layout_ carries the step): every copy restarts from it.
  void RollBack(uint32_t epoch) REQUIRES(mu_);
  void Dispatch(Message&& m) REQUIRES(mu_);
  // Keeps a request until Start, or until the view of its epoch arrives;
  // handles those that can be now.
  void Hold(Message m) REQUIRES(mu_);
  void ReleaseHeld() REQUIRES(mu_);

  // `head` is the message's kv header, decoded once by Dispatch.
  void HandlePush(Message&& m, const KvHeader& head, bool then_pull) REQUIRES(mu_);
  void HandlePull(Message&& m, KvHeader head) REQUIRES(mu_);
  void HandleClock(Message&& m, const KvHeader& head) REQUIRES(mu_);
  void HandleReplicate(Message&& m, const KvHeader& head) REQUIRES(mu_);
  void InstallSnapshot(PartitionReplica& part, const Message& m, ByteReader& body, uint64_t seq)
      REQUIRES(mu_);
  void ApplyReplicated(PartitionReplica& part, const Message& m, const KvHeader& head,
                       uint32_t worker, uint64_t seq) REQUIRES(mu_);
  void HandleReplicateAck(const Message& m, const KvHeader& head) REQUIRES(mu_);

  // Validation; on failure the request is answered with kKvError (or held
  // for a view this server has not seen yet). The sender's worker rank and
  // the addressed table, or nullptr.
  TableReplica* Admit(const Message& m, const KvHeader& head, uint32_t* rank) REQUIRES(mu_);
  Result<uint32_t> WorkerRank(const Message& m) const REQUIRES(mu_);
  // Ok unless a combined push (head.group) is refused: not BSP, its sender
  // not among the ranks, or a rank whose worker (live or dead) is not of the
  // sender's host (a worker speaks only for those it shares a machine with).
  Status CheckGroup(const TableReplica& t, const KvHeader& head, uint32_t sender) const
      REQUIRES(mu_);
  Result<TableReplica*> FindTable(const KvHeader& head) REQUIRES(mu_);

  // Applies or aggregates a push; returns the update the reply must wait
  // for the backup to confirm (0: none).
  uint64_t Accept(TableReplica& t, uint32_t rank, const KvHeader& head, const Message& m)
      REQUIRES(mu_);
  void TryApplyBsp(TableReplica& t) REQUIRES(mu_);
  // Sends an applied update to the partition's backup; returns its sequence
  // number (0: there is no backup, nothing to wait for).
  uint64_t Replicate(TableReplica& t, int64_t clock, bool sparse, Buffer keys, Buffer values,
                     int64_t bsp_clock, uint32_t worker = kNoServer) REQUIRES(mu_);
  void SendSnapshot(PartitionReplica& part) REQUIRES(mu_);
  // A message from this server in the current epoch: its type, sender,
  // epoch and the request it answers (0: none) filled in.
  Message Outgoing(MsgType type, uint64_t request_id = 0) const REQUIRES(mu_);
  // As backup: tells the owner of `part` that everything up to `seq` is applied.
  void SendReplicateAck(const PartitionReplica& part, NodeId to, uint64_t seq) REQUIRES(mu_);
  // The backup confirmed updates up to `seq` of `part`, or they were released.
  void Confirmed(PartitionReplica& part, const std::vector<std::pair<uint32_t, int64_t>>& done)
      REQUIRES(mu_);
  bool Replicated(const TableReplica& t) const REQUIRES(mu_);

  void Park(TableReplica& t, Message req, const KvHeader& head, uint32_t rank, NodeId node,
            MsgType type, int64_t need_clock, uint64_t need_seq) REQUIRES(mu_);
  void Answer(TableReplica& t, const Message& req, const KvHeader& head, uint32_t rank, NodeId node,
              MsgType type, bool waited) REQUIRES(mu_);
  void ServeParked(TableReplica& t) REQUIRES(mu_);
  void ServeParked(PartitionReplica& part) REQUIRES(mu_);
  void Reply(NodeId node, const Message& req, const KvHeader& head, MsgType type) REQUIRES(mu_);
  // A kKvError naming `head`'s table and partition (a default header when
  // the request's own did not decode).
  void Reject(NodeId node, const Message& req, const KvHeader& head, const Status& s) REQUIRES(mu_);
  void LogParked(PartitionReplica& part, SteadyTime now) REQUIRES(mu_);

  // Takes a checkpoint of each owned partition whose tables all reached a
  // new multiple of checkpoint_every_steps (or a requested clock): copies
  // its state now, before any pull sees a later clock, for the writer.
  void MaybeCheckpoint() REQUIRES(mu_);
  void TakeCheckpoint(const PartitionReplica& part, int64_t step) REQUIRES(mu_);
  Status RestoreCheckpoint(int64_t step) REQUIRES(mu_);

  const KvServerOptions options_;
  Transport* const transport_;
  const Logger log_;

  mutable Mutex mu_;  // taken by each public method; never held across file I/O
  bool started_ GUARDED_BY(mu_) = false;
  uint32_t rank_ GUARDED_BY(mu_) = 0;
  Layout layout_ GUARDED_BY(mu_);
  std::vector<std::unique_ptr<PartitionReplica>> parts_
      GUARDED_BY(mu_);                                      // by partition id; null: not held
  std::map<NodeId, uint32_t> worker_rank_ GUARDED_BY(mu_);  // live workers of the current epoch
  std::map<uint32_t, NodeId> server_ids_
      GUARDED_BY(mu_);                      // live servers of the current epoch, by rank
  std::vector<bool> live_ GUARDED_BY(mu_);  // by worker rank
  // The ranks a BSP clock waits for: the live ones, and with
  // adopt_dead_workers every worker the job ever had.
  std::vector<bool> waited_ GUARDED_BY(mu_);
  std::vector<std::string> worker_host_ GUARDED_BY(mu_);  // by worker rank, the last known
  std::vector<Message> held_
      GUARDED_BY(mu_);  // requests of an epoch this server has not seen (or before Start)
  static constexpr size_t kMaxHeld = 4096;
  static constexpr Duration kFastResendGap = std::chrono::milliseconds(20);
  uint32_t num_workers_ GUARDED_BY(mu_) = 0;
  uint32_t epoch_ GUARDED_BY(mu_) = 0;
  NodeId self_id_ GUARDED_BY(mu_) = kUnassignedId;
  uint32_t generation_ GUARDED_BY(mu_) = 0;
  uint32_t rollback_epoch_ GUARDED_BY(mu_) =
      0;  // requests of earlier epochs belong to the rolled-back past
  KvServerStats stats_ GUARDED_BY(mu_);
  // Declared last: destroyed first, so its thread finishes writing while
  // everything it uses still exists (it uses only its own copies).
  std::unique_ptr<CheckpointWriter> writer_;
};

}  // namespace distopt

#endif  // DISTOPT_KV_SERVER_H_
