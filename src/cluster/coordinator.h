// Coordinator: one per job. Accepts registrations and hands out node ids and
// ranks, publishes the membership view (with the key-range layout its owner
// computes), runs barriers, detects dead nodes by missing heartbeats, and
// ends the job: cleanly when every live worker reported done, with an error
// when start-up times out or a node aborts. Run() owns the calling thread
// (the coordinator thread), which alone reads and writes the job's state;
// Stop() and view() may be called from any thread. What the job does when
// its membership changes (the layout, failover, rollback) is its JobPolicy's
// decision, which the coordinator carries out.
//
//   opts.policy = &my_policy;  // optional
//   Coordinator c(opts, transport.get(), log);
//   Status s = c.Run();   // returns when the job is over
#ifndef DISTOPT_CLUSTER_COORDINATOR_H_
#define DISTOPT_CLUSTER_COORDINATOR_H_

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "base/env.h"
#include "base/logging.h"
#include "base/mutex.h"
#include "base/time.h"
#include "cluster/membership.h"
#include "transport/transport.h"

namespace distopt {

// What a JobPolicy decides after an event: nothing, a new layout blob (the
// coordinator publishes it as the next membership epoch), or the end of the
// job with `failure`.
struct JobAction {
  std::optional<std::string> layout;
  Status failure;

  static JobAction Keep() { return {}; }
  static JobAction Publish(std::string layout) { return {std::move(layout), Status::Ok()}; }
  static JobAction Fail(Status failure) { return {std::nullopt, std::move(failure)}; }
};

// The job's policy above membership (for kv: partition failover, rollback,
// checkpoint commits). The coordinator consults it on its own thread, hands
// it what it needs, and carries out the action it returns; the policy never
// calls into the coordinator.
class JobPolicy {
 public:
  virtual ~JobPolicy() = default;
  // The layout blob of the first complete view (epoch 1).
  virtual std::string FirstLayout(const ClusterView& view) = 0;
  // After each membership change (`view` is the new one, already published).
  virtual JobAction OnViewChange(const ClusterView& view) = 0;
  // A member's report (kCheckpoint, kReplicaSynced); `view` is the current one.
  virtual JobAction OnReport(const Message& m, const ClusterView& view) = 0;
};

struct CoordinatorOptions {
  uint32_t num_servers = 1;
  uint32_t num_workers = 1;
  Duration heartbeat_timeout = std::chrono::seconds(10);
  Duration startup_timeout = std::chrono::seconds(120);
  Duration startup_log_interval = std::chrono::seconds(3);
  // After the job ends, how long to keep answering stragglers with shutdown.
  Duration shutdown_grace = std::chrono::milliseconds(500);
  // Not owned; outlives Run(). Null: the layout blob stays empty.
  JobPolicy* policy = nullptr;
  // A dead server may be replaced (its parameters restored by the owner,
  // e.g. from a checkpoint) instead of ending the job, if it rejoins in time.
  bool tolerate_server_loss = false;
  Duration server_rejoin_timeout = std::chrono::seconds(60);
  // With replicas the job goes on without the lost server (its partitions
  // fail over to their backups; the policy decides): no rejoin needed.
  bool server_rejoin_required = true;
  // The coordinator's run folder: the lead worker's result files land here
  // (kResultFile), and nodes.json says where every node ran. Empty: neither.
  std::string result_dir;
  // Its clock times heartbeats, start-up and rejoin timeouts (the loop that
  // waits on the transport paces itself by the real clock).
  Env* env = Env::Default();
};

class Coordinator {
 public:
  Coordinator(CoordinatorOptions options, Transport* transport, Logger log);

  // Serves until the job ends. OK when every live worker is done.
  Status Run();
  void Stop() { stop_.store(true); }

  // The current view (a copy; any thread).
  ClusterView view() const EXCLUDES(mu_);

 private:
  // The policy's word on the current view, then carried out.
  void ConsultPolicy();
  void Carry(JobAction action);
  // Replaces the layout blob and publishes a new epoch.
  void SetLayout(std::string layout);
  void Handle(Message&& m);
  void HandleRegister(Message&& m);
  // The steps of HandleRegister. The request, unless it is malformed, claims
  // the coordinator's role, contradicts its CURVE key or advertises an
  // address the coordinator cannot reach (each logged).
  std::optional<RegisterRequest> ScreenRegistration(const Message& m);
  // True if `req` repeats the registration of a live member (answered again).
  bool AnswerRetry(const RegisterRequest& req);
  // Servers or workers in the job.
  uint32_t RankLimit(Role role) const;
  // False (logged) when `req` asks for a rank its role does not have.
  bool RankInRange(const RegisterRequest& req) const;
  // The rank `req` gets (one asked for, else the lowest free one), or -1 when
  // every rank it may take is held by a live member.
  int64_t PickRank(const RegisterRequest& req);
  // Tells a node whose role has no free rank to shut down.
  void RefuseFullRole(const RegisterRequest& req);
  // Enters `req` as a member with `rank` (replacing a dead holder), then
  // answers it and the others (a running job) or checks for startup.
  void Admit(const RegisterRequest& req, const std::string& peer_host, uint32_t rank);
  void SendRegisterReply(NodeId id);
  Member* RankHolder(Role role, uint32_t rank);
  void HandleBarrier(const Message& m);
  void HandleDone(const Message& m);
  void HandleAbort(const Message& m);
  void HandleResultFile(const Message& m);
  Status StoreResultChunk(const FileChunk& c);
  void WriteNodesFile();
  void Tick();
  void CheckStartup();
  void CheckHeartbeats();
  void CheckBarriers();
  // The release of barrier `name` to one node, with a gather's values.
  void SendRelease(NodeId to, const std::string& name, uint8_t group);
  void CheckDone();
  void Publish(MsgType type);  // sends the view to every live member
  void Broadcast(MsgType type, const Buffer& body, uint32_t status);
  void Finish(Status result);
  std::string Missing() const;
  const Member* MemberOf(NodeId id) const;
  std::string Describe(const Member& m) const;
  // Copies view_ to where view() reads it. Called after each change of
  // view_, before the coordinator thread sends it or calls out.
  void ShareView() EXCLUDES(mu_);

  const CoordinatorOptions options_;
  Transport* const transport_;
  const Logger log_;
  std::atomic<bool> stop_{false};
  const SteadyTime start_time_;

  // What view() returns: other threads never touch view_ itself.
  mutable Mutex mu_;
  ClusterView shared_view_ GUARDED_BY(mu_);

  // Everything below belongs to the coordinator thread: Run() and what it
  // calls. No lock.
  ClusterView view_;
  bool started_ = false;
  NodeId next_id_ = 1;
  SteadyTime last_startup_log_;
  std::map<NodeId, SteadyTime> last_seen_;
  std::map<std::string, std::set<NodeId>> barriers_;
  std::map<std::string, uint8_t> barrier_groups_;
  // Gathers: the values by name and rank, kept after the release for the
  // nodes that arrive later; the names already released.
  std::map<std::string, std::map<uint32_t, std::string>> gathered_;
  std::set<std::string> gather_released_;
  std::set<uint32_t> done_ranks_;
  std::map<uint32_t, SteadyTime> dead_servers_;  // rank -> when declared dead
  std::set<std::string> warned_unreachable_;     // advertised addresses already named
  struct Origin {
    std::string host;       // the node's own hostname
    std::string peer_host;  // the address its registration came from
    uint32_t pid = 0;
  };
  std::map<NodeId, Origin> origins_;
  std::map<std::string, uint32_t> results_done_;  // result file -> its CRC, once stored
  bool finished_ = false;
  Status result_;
};

}  // namespace distopt

#endif  // DISTOPT_CLUSTER_COORDINATOR_H_
