// FailoverPolicy: the coordinator's decisions about where the model lives.
// Given the server processes of a new membership view (which rank is served
// by which node) and the layout it last published, it decides: keep the
// layout, publish a new one (a dead owner's synced backup takes over, a lost
// backup is dropped, a partition without a backup gets one), roll the job
// back to the newest good checkpoint (a partition lost every copy), wait for
// the servers to be restarted first, or fail, each with a line of reason for
// the log. A plain value: no threads, no transport, no files (the newest
// checkpoint comes from a callback, asked only when a rollback is decided).
// Not thread-safe; the coordinator calls it from its own thread.
//
//   FailoverPolicy policy(options);
//   std::string blob = policy.Start(ServerNodes::FromView(first_view, n)).Encode();
//   FailoverDecision d = policy.OnMembership(ServerNodes::FromView(view, n));
//   if (d.kind == FailoverDecision::kNewLayout) coordinator.SetLayout(d.layout.Encode());
//
// A copy of a partition counts only while the process that held it is the
// one serving its rank: a restarted server (a new node id for the rank)
// holds nothing until it is given a copy (a backup's snapshot, or every
// server's reload in a rollback).
#ifndef DISTOPT_KV_FAILOVER_POLICY_H_
#define DISTOPT_KV_FAILOVER_POLICY_H_

#include <functional>
#include <string>
#include <vector>

#include "base/logging.h"
#include "cluster/membership.h"
#include "distopt/status.h"
#include "kv/layout.h"

namespace distopt {

// The server processes of one membership view: by rank, the node serving it
// (kUnassignedId: no live server of that rank).
struct ServerNodes {
  uint32_t epoch = 0;  // the membership epoch they were seen in
  std::vector<NodeId> by_rank;
  std::vector<std::string> hosts;    // by rank (Member::host; empty: unknown, or no server)
  std::vector<uint32_t> capacities;  // by rank (Member::capacity; 0: not said)

  static ServerNodes FromView(const ClusterView& view, uint32_t num_servers);
  NodeId at(uint32_t rank) const { return rank < by_rank.size() ? by_rank[rank] : kUnassignedId; }
  const std::string& host(uint32_t rank) const;
  // Whether ranks a and b are known to run on one host.
  bool SameHost(uint32_t a, uint32_t b) const { return !host(a).empty() && host(a) == host(b); }
  // Each rank's share of the partitions: its host's capacity (the largest
  // its servers said) split evenly among the host's servers; 1 each when a
  // server is missing or did not say.
  std::vector<double> Weights() const;
};

struct FailoverDecision {
  enum Kind {
    kKeep,            // nothing to publish
    kNewLayout,       // publish `layout`
    kRollBack,        // publish `layout`: every server reloads `restore_step`
    kWaitForRestart,  // a partition lost every copy; roll back once all ranks are back
    kFail,            // end the job with `failure`
  };
  struct Event {
    LogLevel level = LogLevel::kInfo;
    std::string text;
  };
  Kind kind = kKeep;
  Layout layout;
  int64_t restore_step = -1;
  Status failure;
  std::vector<Event> events;  // what was decided and why, in order
};

struct FailoverPolicyOptions {
  std::vector<TableSpec> tables;
  uint32_t num_servers = 1;
  uint32_t num_partitions = 0;  // 0: Layout::Partitions
  uint32_t replication = 1;     // 1, or 2 with >= 2 servers
  // Servers write checkpoints the job can roll back to.
  bool checkpoints = false;
  // The step of the newest good checkpoint (NotFound: none); asked only
  // when a rollback is decided.
  std::function<Result<int64_t>()> latest_checkpoint;
  // The checkpoint the job starts from (-1: the initializers).
  int64_t restore_step = -1;
};

class FailoverPolicy {
 public:
  explicit FailoverPolicy(FailoverPolicyOptions options);

  // The job's first layout, held by the servers of its first complete view.
  const Layout& Start(const ServerNodes& servers);
  // A membership change.
  FailoverDecision OnMembership(const ServerNodes& servers);
  // Node `from` reports (in its membership epoch `epoch`) that its backup
  // copy of `partition` is complete. Counted only from the node the backup
  // was assigned to, sent after it could have seen the assignment.
  FailoverDecision OnReplicaSynced(uint32_t partition, NodeId from, uint32_t epoch);

  const Layout& layout() const { return layout_; }
  uint32_t generation() const { return layout_.generation; }

 private:
  // Who holds each copy of a partition, by node (ranks restart).
  struct Holders {
    NodeId owner = kUnassignedId;
    NodeId backup = kUnassignedId;
    uint32_t backup_assigned_in = 0;  // the epoch the backup was assigned in
  };

  // A fresh layout of generation `generation`, every copy held by `servers`.
  void Reset(const ServerNodes& servers, int64_t restore_step, uint32_t generation);
  // With replication 2: each partition's backup on a server of another host
  // than its owner's where there is one (the least loaded, then the next
  // rank round from the owner), so a whole host can die.
  void PlaceBackups(const ServerNodes& servers, Layout& layout) const;
  // The partitions none of whose copies is usable any more.
  std::vector<uint32_t> LostPartitions(const ServerNodes& servers) const;
  FailoverDecision DecideLoss(const ServerNodes& servers, const std::vector<uint32_t>& lost);
  // Failovers and lost backups into `next`.
  void ReplaceDeadCopies(const ServerNodes& servers, Layout& next, std::vector<Holders>& holders,
                         FailoverDecision& d) const;
  // With replication 2, gives each partition without a backup one on the
  // live server holding the fewest copies.
  void AssignBackups(const ServerNodes& servers, Layout& next, std::vector<Holders>& holders,
                     FailoverDecision& d) const;

  const FailoverPolicyOptions options_;
  bool started_ = false;
  Layout layout_;                 // as last decided (and published)
  std::vector<Holders> holders_;  // by partition
};

}  // namespace distopt

#endif  // DISTOPT_KV_FAILOVER_POLICY_H_
