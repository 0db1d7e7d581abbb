// KvClient: the worker's side of the parameter server. Push, pull and
// push-pull are asynchronous: each returns a handle at once, and Wait() blocks
// until every server involved has answered. A request on a dense table is cut
// along the layout's slices; on a sparse table, duplicate keys are merged
// (pushed rows summed), keys are split by partition, and pulled rows are
// reassembled in the caller's key order (duplicates included). Each part goes
// to its partition's owner; when the owner changes (a failover) the parts
// still unanswered are sent to the new one.
//
// Values move as spans of floats: the client checks every span's length
// against the table's shape (a dense table's size, keys x dim for a sparse
// one) and fails the request with an error naming the table, so no caller
// counts bytes. Both spans are borrowed and must stay alive and untouched
// until Wait (or Cancel) returns: dense gradients leave from the caller's
// memory without a copy (sparse rows are merged into per-server requests
// first), and replies are written straight into `out`. Wait and Cancel
// return only once no socket holds the gradient any more (a copy queued to a
// server that died, a retry): they drop what is queued for servers that left
// the job, and for every server of a request that ended without its answers.
// Thread-safe; replies are handled on the node's Dispatcher thread.
//
// With options.host_aggregation (BSP only), a dense push-pull of a worker that
// shares its host with others goes through the host's group (kv/host_group.h):
// a member's goes to the group's leader, which pushes the sum of the host's
// gradients once and hands back the parameters; the leader's waits for its
// members' gradients first. A member whose leader dies or refuses it pushes
// its own gradient to the servers instead. The caller sees the same handle
// either way. (client_host_group.cc holds that part.)
//
//   KvClient kv(opts, tables, transport, &dispatcher, log);
//   std::vector<float> grad(n), params(n);  // n: the dense table's size
//   auto h = kv.PushPull(w_table, grad, params, clock);
//   RETURN_IF_ERROR(kv.Wait(h, Deadline::After(30s)));
#ifndef DISTOPT_KV_CLIENT_H_
#define DISTOPT_KV_CLIENT_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/env.h"
#include "base/loan.h"
#include "base/logging.h"
#include "base/mutex.h"
#include "cluster/membership.h"
#include "kv/host_group.h"
#include "kv/kv_message.h"
#include "kv/layout.h"
#include "transport/dispatcher.h"

namespace distopt {

// The shared state behind a KvHandle.
class KvRequest {
 public:
  bool done() const {
    MutexLock lock(&mu_);
    return pending_ == 0;
  }
  // The clock the servers answered with (the oldest of the parts), and the
  // newest (-1: none; they differ when a rejoin finds partitions at two clocks).
  int64_t clock() const {
    MutexLock lock(&mu_);
    return clock_;
  }
  int64_t newest_clock() const {
    MutexLock lock(&mu_);
    return newest_clock_;
  }

 private:
  friend class KvClient;
  mutable Mutex mu_;
  CondVar done_cv_;  // signalled when pending_ reaches 0
  int pending_ GUARDED_BY(mu_) = 0;
  Status status_ GUARDED_BY(mu_);
  int64_t clock_ GUARDED_BY(mu_) = INT64_MAX;
  int64_t newest_clock_ GUARDED_BY(mu_) = -1;
  // Written by the KvClient under its own lock: request ids, for
  // cancellation (a host leader's are added when its members' gradients are
  // in), and "pull of table 'w' at clock 3", for errors (read-only once the
  // handle is returned).
  std::vector<uint64_t> parts_;
  std::string what_;
  // A host leader's request: the members' pushes it answers once done
  // (node, request id), with the parameters in out_ or the error.
  std::vector<std::pair<NodeId, uint64_t>> members_ GUARDED_BY(mu_);
  NodeId answer_as_ GUARDED_BY(mu_) = kUnassignedId;  // the leader's id and epoch then
  uint32_t answer_epoch_ GUARDED_BY(mu_) = 0;
  // The members got each slice as its reply came (ForwardSlice): once done
  // they have them all, and only an error is left to tell.
  bool forwarded_ GUARDED_BY(mu_) = false;
  std::span<const float> out_;
  uint32_t table_ = 0;
  // A dense push's gradient, lent to the messages that carry it.
  std::unique_ptr<Loan> loan_;
  std::vector<NodeId> sent_to_ GUARDED_BY(mu_);  // every node a part went to
};

using KvHandle = std::shared_ptr<KvRequest>;

struct KvClientOptions {
  // Resend a request that got no answer after this long (0: never). Servers
  // apply a retried push once (pushes are identified by table, worker, clock).
  Duration retry_interval = Duration::zero();
  // Its clock decides when a request is due to be sent again.
  Env* env = Env::Default();
  // Per-host aggregation of dense push-pulls (BSP jobs only; see the top).
  HostAggregation host_aggregation = HostAggregation::kOff;
  // The servers wait for dead workers' slots (ConsistencyOptions); a host's
  // leader then adds its dead members' gradients to the host's sum.
  bool adopt_dead_workers = false;
};

struct KvClientStats {
  uint64_t requests = 0;
  uint64_t messages = 0;
  uint64_t retries = 0;
  uint64_t stale_replies = 0;  // replies to requests already finished or cancelled
  // Replies from a server that had not yet seen this worker's rollback
  // (dropped; the request is sent again).
  uint64_t pre_rollback_replies = 0;
  uint64_t bad_replies = 0;  // replies whose kv header does not decode (dropped)
  // Per-host aggregation: gradients summed for the host's members (leader),
  // host pushes sent to the leader (member), and member pushes that went to
  // the servers instead (the leader died, or refused a late one).
  uint64_t host_sums = 0;
  uint64_t host_member_pushes = 0;
  uint64_t host_fallbacks = 0;
  // Slices of the parameters a leader passed on to its members as each came
  // back (one per member), and slices a member took one by one.
  uint64_t host_slices_forwarded = 0;
  uint64_t host_slices_taken = 0;
};

class KvClient {
 public:
  // Registers reply handlers on `dispatcher`; call before dispatcher->Start().
  KvClient(KvClientOptions options, std::vector<TableSpec> tables, Transport* transport,
           Dispatcher* dispatcher, Logger log);

  // The job's view (layout, server ids). Must be called once before any
  // request, and again on every membership change.
  Status OnViewChange(const ClusterView& view);

  // Dense tables: `grads` and `out` hold the whole table (its size floats).
  KvHandle Push(uint32_t table, std::span<const float> grads, int64_t clock);
  KvHandle Pull(uint32_t table, std::span<float> out, int64_t clock);
  // Pushes clock `clock` and pulls the parameters of clock+1.
  KvHandle PushPull(uint32_t table, std::span<const float> grads, std::span<float> out,
                    int64_t clock);

  // Per-host aggregation (BSP): `sum` is the sum of the gradients of the
  // workers `group` (ascending ranks, this worker's among them, all on its
  // host; kv/host_group.h builds it); the servers count it as each one's push.
  KvHandle PushPullGroup(uint32_t table, std::span<const float> sum, std::span<float> out,
                         int64_t clock, std::vector<uint32_t> group);

  // Slots of dead workers a survivor adopted (BSP, adopt_dead_workers;
  // train/adoption.h). PushFor: the gradient of `ranks` (ascending, one
  // rank or one host's, summed in rank order) pushed as theirs; the servers
  // count it once per rank and drop it where a rank's own push of the clock
  // came first (the same gradient). PushSparseFor: `rank`'s sparse push.
  KvHandle PushFor(uint32_t table, std::span<const float> grads, int64_t clock,
                   std::vector<uint32_t> ranks);
  KvHandle PushSparseFor(uint32_t table, std::span<const uint64_t> keys,
                         std::span<const float> grads, int64_t clock, uint32_t rank);
  // The dead workers of this host whose gradients this worker, as the
  // host's leader, adds to the host's sum (HostGroup::adopted; empty unless
  // it leads). ContributeFor adds `rank`'s gradient of dense `table` to the
  // sum of `clock` (copied; the handle is done at once), or, when that sum
  // has gone to the servers already, pushes it for `rank` (PushFor: after
  // the sum, so where the sum held it the servers drop this one). Nothing
  // (nullopt) if this worker does not lead: a push of its own could reach a
  // server before the host's sum and make the sum a duplicate.
  std::vector<uint32_t> HostAdopted() const;
  std::optional<KvHandle> ContributeFor(uint32_t table, std::span<const float> grads, int64_t clock,
                                        uint32_t rank);
  HostAggregation host_aggregation() const { return options_.host_aggregation; }

  // Sparse tables: `grads` and `out` hold keys.size() * dim floats in key order.
  KvHandle PushSparse(uint32_t table, std::span<const uint64_t> keys, std::span<const float> grads,
                      int64_t clock);
  KvHandle PullSparse(uint32_t table, std::span<const uint64_t> keys, std::span<float> out,
                      int64_t clock);
  KvHandle PushPullSparse(uint32_t table, std::span<const uint64_t> keys,
                          std::span<const float> grads, std::span<float> out, int64_t clock);

  // Blocks until every part of `h` is answered. On a deadline the request is
  // cancelled (late replies are ignored) and the error names the servers
  // that did not answer.
  Status Wait(const KvHandle& h, Deadline deadline = Deadline::Never());
  // Stops waiting for what is left of `h`: late replies are dropped and
  // never write into its output, and `h` finishes with kAborted (a no-op
  // once it is answered). Call it before freeing or reusing the buffers of
  // a request nobody will wait for.
  void Cancel(const KvHandle& h);
  // True once `h` is answered (then Wait returns at once); false if the
  // deadline came first. Never cancels (for loops that also watch shutdown).
  bool WaitDone(const KvHandle& h, Deadline deadline);

  // Marks this worker's pushes of `clock` as asking the servers for a
  // checkpoint once that clock is applied (time-based checkpoints).
  void RequestCheckpointAt(int64_t clock);

  // The layout generation: it changes when the job rolls back to a
  // checkpoint. Requests in flight then fail with kAborted, and so does
  // every new request until the caller asks where the job is (a pull at
  // clock -1): a request built from the rolled-back past never reaches a
  // server of the replay. Replies are accepted only from servers that have
  // seen the rollback (their epoch); an earlier one is asked again.
  uint32_t generation() const;

  const TableSpec& table(uint32_t id) const { return tables_[id]; }
  size_t num_tables() const { return tables_.size(); }
  KvClientStats stats() const;

 private:
  // Where each partition's rows of a sparse pull go: (caller's row, row in
  // that partition's reply), by partition.
  struct SparsePlan {
    std::vector<std::vector<std::pair<uint32_t, uint32_t>>> by_partition;
    uint32_t dim = 0;
  };
  struct Part {
    KvHandle req;
    uint32_t partition = 0;
    NodeId sent_to = kUnassignedId;
    Message msg;           // kept for retries (its body: the kv header, encoded once)
    std::span<float> out;  // pulls: the slice (dense) or the whole destination (sparse)
    uint64_t expect = 0;   // floats the reply must carry
    std::shared_ptr<SparsePlan> plan;
    SteadyTime sent;
    SteadyTime resend_at;  // set: answered from before the rollback, ask again then
    // A member's push to its host's leader (kHostPush, the whole table),
    // answered slice by slice: which slices of the table came back.
    bool to_leader = false;
    uint32_t table = 0;
    int64_t clock = 0;
    std::vector<bool> got;
    size_t got_count = 0;
  };
  // A host leader's push-pull waiting for its members' gradients.
  struct HostWait {
    KvHandle req;
    std::span<const float> grads;
    std::span<float> out;
  };
  // How long a part answered from before a rollback waits before it is
  // sent again (the server is then expected to have seen the new epoch).
  static constexpr Duration kStaleResendDelay = std::chrono::milliseconds(20);
  // Settle: how long the loan of a push may take to come back before queues
  // are dropped, how often it looks again, and every how many looks it warns.
  static constexpr Duration kSettleFirst = std::chrono::milliseconds(20);
  static constexpr Duration kSettleEvery = std::chrono::milliseconds(500);
  static constexpr int kSettleWarnEvery = 10;

  KvHandle Dense(MsgType type, uint32_t table, std::span<const float> grads, std::span<float> out,
                 int64_t clock, const std::vector<uint32_t>& group = {});
  // Adds a part per slice of dense `table` to `h` (its pending count grows
  // by the slices) and sends them, in order; `fill`, if set, writes each
  // slice's values just before it goes (so the first is on the wire while
  // the next is computed).
  void SendSlices(const KvHandle& h, MsgType type, uint32_t table, const Buffer& values,
                  std::span<float> out, int64_t clock, const std::vector<uint32_t>& group,
                  const std::function<void(const DenseSlice&)>& fill = nullptr) REQUIRES(mu_);
  // Where a part goes: its partition's owner, or its host's leader.
  NodeId RouteOf(const Part& part) const REQUIRES(mu_);

  // ---- per-host aggregation (client_host_group.cc) ----
  // A dense push-pull while the host's group is active: sent to the leader
  // (member) or kept until the members' gradients are in (leader).
  KvHandle HostPushPull(KvHandle h, uint32_t table, const Buffer& grads,
                        std::span<const float> grads_span, std::span<float> out, int64_t clock)
      REQUIRES(mu_);
  // The leader sends (table, clock) once complete (or `force`: it no longer
  // leads, so nobody else will come).
  void TryLaunch(uint32_t table, int64_t clock, bool force) REQUIRES(mu_);
  // A reply to a member's part from its leader, the whole table or one
  // slice: the parameters land in p.out (or *s says why not) and true is
  // returned once all are in; false if more slices are to come, or the part
  // is to be asked again or went to the servers (nothing to finish).
  bool HostReply(uint64_t id, Part& p, const Message& m, const KvHeader& head, Status* s)
      REQUIRES(mu_);
  // At a leader: a slice of its push-pull came back (into `out`, a span of
  // r.out_); its members get it at once, the reply's bytes shared.
  void ForwardSlice(KvRequest& r, std::span<const float> out, const Message& reply, int64_t clock)
      REQUIRES(mu_);
  // A member's gradient, at its leader: kept, refused (late, not the
  // leader) or, from a member this worker does not know yet, kept aside
  // until the next view.
  void OnHostPush(Message&& m) EXCLUDES(mu_);
  void AcceptHostPush(Message&& m) REQUIRES(mu_);
  // A member's part to a leader that left or refused it: pushed to the
  // servers instead, as the slices of a plain push-pull.
  void FallBack(uint64_t id) REQUIRES(mu_);
  // The group after a view change: re-routes and re-launches.
  void OnHostView(const ClusterView& view) REQUIRES(mu_);
  // A leader's request is done: its members get the parameters or `s`.
  void AnswerMembers(KvRequest& r, const Status& s) REQUIRES(r.mu_);
  // Refuses a member's push (it then pushes to the servers itself).
  void RefuseHostPush(const Message& m, const KvHeader& head, const Status& why) REQUIRES(mu_);
  KvHandle Sparse(MsgType type, uint32_t table, std::span<const uint64_t> keys,
                  std::span<const float> grads, std::span<float> out, int64_t clock,
                  const std::vector<uint32_t>& group = {});
  // Ok if `table` exists and is sparse (or dense); else an error naming it.
  Status CheckKind(MsgType type, uint32_t table, bool sparse) const;
  KvHandle Failed(Status s);
  // Encodes `head` (and whether this clock asks for a checkpoint) into the
  // part's body and sends it.
  void SendPart(uint64_t id, Part part, KvHeader head) REQUIRES(mu_);
  // Refuses a request of clock >= 0 while a rollback is not yet rejoined;
  // a request of clock < 0 (where is the job?) rejoins.
  Status AdmitClock(int64_t clock) REQUIRES(mu_);
  // The node serving partition p (kUnassignedId: none alive now).
  NodeId OwnerNode(uint32_t p) const REQUIRES(mu_);
  std::string Describe(uint32_t partition) const REQUIRES(mu_);  // "server/1 (partition 2)"
  void OnReply(Message&& m) EXCLUDES(mu_);
  void Tick() EXCLUDES(mu_);
  void Finish(KvRequest& r, const Status& s, int64_t clock);
  // Removes what is in flight of `h`; returns whom it waited for
  // ("server/1 (partition 2) (node 7)").
  std::string Forget(const KvHandle& h) EXCLUDES(mu_);
  // Finishes `r` now with `s` unless it is already answered; its status.
  Status FinishEarly(KvRequest& r, Status s);
  // Sends a copy of `part` (sharing its payload) to `server` and notes it.
  void SendCopy(Part& part, NodeId server) REQUIRES(mu_);
  // Blocks until `h`'s gradient is back from the transport (see the top).
  void Settle(const KvHandle& h) EXCLUDES(mu_);

  const KvClientOptions options_;
  const std::vector<TableSpec> tables_;
  Transport* const transport_;
  const Logger log_;

  mutable Mutex mu_;
  Layout layout_ GUARDED_BY(mu_);
  std::vector<NodeId> server_ids_ GUARDED_BY(mu_);  // by server rank
  NodeId self_id_ GUARDED_BY(mu_) = kUnassignedId;
  uint32_t epoch_ GUARDED_BY(mu_) = 0;
  uint32_t generation_ GUARDED_BY(mu_) = 0;
  uint32_t generation_epoch_ GUARDED_BY(mu_) = 0;  // the first epoch of generation_
  bool rejoin_pending_ GUARDED_BY(mu_) = false;    // rolled back, not yet rejoined
  int64_t checkpoint_clock_ GUARDED_BY(mu_) = -1;
  bool has_layout_ GUARDED_BY(mu_) = false;
  uint64_t next_id_ GUARDED_BY(mu_) = 1;
  // By request id: what is re-sent (to a new owner, a new leader, a retry)
  // goes in the order it was first sent, as a server that dedupes expects.
  std::map<uint64_t, Part> inflight_ GUARDED_BY(mu_);
  KvClientStats stats_ GUARDED_BY(mu_);
  uint32_t self_rank_ GUARDED_BY(mu_) = 0;
  HostGroup group_ GUARDED_BY(mu_);
  std::map<std::pair<uint32_t, int64_t>, HostWait> host_wait_ GUARDED_BY(mu_);  // (table, clock)
  std::vector<Message> early_ GUARDED_BY(mu_);  // host pushes from members not known yet
  static constexpr size_t kMaxEarlyHostPushes = 4096;
};

}  // namespace distopt

#endif  // DISTOPT_KV_CLIENT_H_
