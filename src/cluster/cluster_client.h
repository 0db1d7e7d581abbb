// ClusterClient: a server's or worker's link to the coordinator. Registers
// (retrying until the coordinator answers), keeps the membership view,
// sends heartbeats from its own thread, runs barriers, reports done/abort,
// and notices both the coordinator's shutdown order and its silence. Message
// handlers run on the node's Dispatcher thread; the public methods are
// thread-safe and may block the caller (never the dispatcher).
//
//   ClusterClient cc(opts, transport, &dispatcher, log);   // before dispatcher.Start()
//   RETURN_IF_ERROR(cc.Register(Deadline::After(60s)));
//   RETURN_IF_ERROR(cc.Barrier("start", BarrierGroup::kAll, Deadline::After(60s)));
#ifndef DISTOPT_CLUSTER_CLUSTER_CLIENT_H_
#define DISTOPT_CLUSTER_CLUSTER_CLIENT_H_

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "base/env.h"
#include "base/logging.h"
#include "base/mutex.h"
#include "cluster/membership.h"
#include "transport/dispatcher.h"

namespace distopt {

enum class BarrierGroup : uint8_t { kAll = 0, kServers = 1, kWorkers = 2 };

struct ClusterClientOptions {
  Role role = Role::kWorker;
  int32_t rank = -1;  // -1: the coordinator picks
  std::string coordinator_address;
  // Names this node's host for the coordinator (empty: the host of the
  // address it advertises; see Member::host).
  std::string host_label;
  uint32_t capacity = 0;  // Member::capacity
  Duration heartbeat_interval = std::chrono::seconds(1);
  // The coordinator is presumed gone after this much silence; the node then
  // shuts down with an error (see README: coordinator crash).
  Duration coordinator_timeout = std::chrono::seconds(30);
  Duration register_retry = std::chrono::seconds(1);
  // Its clock times the coordinator's silence (the waits for registration
  // and between heartbeats are real-time waits on the real clock).
  Env* env = Env::Default();
};

class ClusterClient {
 public:
  // Registers handlers on `dispatcher`; call before dispatcher->Start().
  ClusterClient(ClusterClientOptions options, Transport* transport, Dispatcher* dispatcher,
                Logger log);
  ~ClusterClient();

  // Blocks until the coordinator has admitted this node and published the
  // job's first view (every node registered), then starts heartbeats.
  Status Register(Deadline deadline);

  NodeId id() const;
  uint32_t rank() const;
  ClusterView view() const;
  // The current view's epoch, without copying the view (to ask whether it moved).
  uint32_t epoch() const;

  // Called (on the dispatcher thread) with each new view after registration.
  void OnViewChange(std::function<void(const ClusterView&)> cb);

  Status Barrier(const std::string& name, BarrierGroup group, Deadline deadline);
  // A barrier of one role (kServers or kWorkers) whose arrivals carry
  // `value` (at most kMaxGatherValueBytes): returns every live member's
  // value by rank, as the coordinator had them at the release (a member
  // that died before arriving is missing). A node arriving after the
  // release gets the kept values at once.
  Result<std::map<uint32_t, std::string>> Gather(const std::string& name, BarrierGroup group,
                                                 const std::string& value, Deadline deadline);
  // Reports this worker done; a non-empty `end_job_reason` ends the whole
  // job at once (e.g. the target metric was reached).
  void SendDone(const std::string& end_job_reason = "");
  // Hands the file at `path` to the coordinator's run folder as `name`, in
  // acknowledged chunks (resent until answered). For the job's results when
  // the coordinator runs on another host.
  Status SendFile(const std::string& name, const std::string& path, Deadline deadline);
  void SendAbort(const std::string& reason);

  // Reports done (resending until answered) and waits for the shutdown order.
  Status FinishAndWait(const std::string& end_job_reason, Deadline deadline);

  // Blocks until the coordinator orders shutdown (or goes silent); returns
  // OK for a normal end of job, the reason otherwise.
  Status WaitShutdown(Deadline deadline);
  // Non-blocking: set once a shutdown was ordered or the coordinator is gone.
  bool shutting_down() const;
  std::optional<Status> shutdown_status() const;

  // Stops heartbeats (the node is exiting or, in tests, "crashing").
  void Stop();

 private:
  void OnRegisterReply(Message&& m);
  void OnMembership(Message&& m);
  void OnBarrierRelease(Message&& m);
  void OnShutdown(Message&& m);
  void OnHeartbeatAck(Message&& m);
  void OnFileAck(Message&& m);
  void HeartbeatLoop();
  void SendToCoordinator(MsgType type, Buffer body);
  // Sends `request` (resending) until its release; the release's values.
  Result<std::map<uint32_t, std::string>> AwaitRelease(const BarrierRequest& request,
                                                       Deadline deadline);
  bool SetShutdown(Status s);  // true the first time

  const ClusterClientOptions options_;
  Transport* const transport_;
  const Logger log_;

  mutable Mutex mu_;
  CondVar cv_;
  NodeId id_ GUARDED_BY(mu_) = kUnassignedId;
  uint32_t rank_ GUARDED_BY(mu_) = 0;
  bool registered_ GUARDED_BY(mu_) = false;
  ClusterView view_ GUARDED_BY(mu_);  // written on the dispatcher thread only
  std::map<std::string, std::map<uint32_t, std::string>> released_ GUARDED_BY(mu_);
  std::optional<Status> shutdown_ GUARDED_BY(mu_);
  SteadyTime last_heard_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
  uint64_t next_file_request_ GUARDED_BY(mu_) = 1;
  std::map<uint64_t, uint32_t> file_acks_ GUARDED_BY(mu_);  // request id -> status
  std::function<void(const ClusterView&)> on_view_ GUARDED_BY(mu_);
  // Stop() may run on two threads at once (a kill during Run), and while
  // Register() starts the thread. Never taken with mu_ held.
  Mutex join_mu_;
  std::thread heartbeat_thread_ GUARDED_BY(join_mu_);
};

}  // namespace distopt

#endif  // DISTOPT_CLUSTER_CLUSTER_CLIENT_H_
