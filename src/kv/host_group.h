// HostGroup: the bookkeeping of per-host aggregation (BSP). The live workers
// that share a host (Member::host) form a group with one leader. Each
// clock, every other member sends the leader its gradient of each dense
// table (kHostPush, over the host's loopback or in-process, never the
// network); the leader sums the group's gradients in rank order, makes one
// push-pull for all of them (KvClient::PushPullGroup: the servers count it
// as each member's push) and hands every member the parameters it got back
// (kHostParams). One gradient and one copy of the parameters per host and
// clock cross the network, whatever the number of workers there.
//
// The leader is the host's longest-lived worker (the lowest node id: ids
// grow with each registration), so a restarted worker never displaces a
// live leader, and every member, reading the same view, names the same one.
// A new leader is chosen only when the leader dies. What the old one left
// unanswered may have reached the servers or not, for some partitions or
// all, and it may have answered some members and not others: no sum is
// made again for those clocks. The new leader counts each table's clock it
// last gave the old one (Submitted) as sent, so a member's contribution to
// it is late and the member pushes it itself; the new leader pushes its
// own unanswered ones itself too, and leads from its next clock. The
// servers count a rank once per clock and let a host's sum replace the
// single pushes it holds: whatever reached them, no gradient is applied
// twice or lost, and the mean is the same floats (rank order either way).
//
// This class is the leader's and the members' state only: who is in the
// group, which contributions arrived, when a table's clock is complete. The
// KvClient owns one, calls it under its lock and does the messaging. A
// value: no threads, no transport; not thread-safe.
//
// Whom the leader waits for: the members live when the group formed, and
// any member once it has contributed (a restarted worker joins at the clock
// it is given, so it is not waited for before it first speaks); a member
// that dies is no longer waited for, unless dead members are adopted: then
// the leader waits for the contribution its own trainer makes for it. A
// contribution for a clock the leader already sent is late: the member is
// told so and pushes it itself (the servers count a rank once per clock, so
// nothing is applied twice).
//
//   HostGroup g;
//   g.OnView(view, my_rank, HostAggregation::kOn);
//   if (g.leading()) { g.Contribute(table, clock, rank, std::move(push)); ...
//     if (g.Complete(table, clock)) auto parts = g.Take(table, clock); }
#ifndef DISTOPT_KV_HOST_GROUP_H_
#define DISTOPT_KV_HOST_GROUP_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "cluster/membership.h"
#include "wire/message.h"

namespace distopt {

// Whether workers of one host aggregate: never, always (a shared host is
// enough), or when the job spans more than one host (on one machine the
// extra hop costs more than it saves).
enum class HostAggregation { kOff, kOn, kAuto };

class HostGroup {
 public:
  // One member's gradient of a table for a clock, as it arrived.
  struct Contribution {
    uint32_t rank = 0;
    NodeId node = kUnassignedId;
    uint64_t request_id = 0;  // its kHostPush's: the kHostParams answers it
    Message push;             // values: the gradient
  };
  enum class Added { kStored, kLate, kNotLeading };

  // Recomputes the group from a new view. Aggregation off (or a host with
  // only this worker): a group of one, every request goes to the servers.
  // `adopt_dead`: the host's dead workers stay in the group, adopted by the
  // leader (its trainer computes their gradients and adds them with
  // Contribute), so the host's sum is of the same ranks in the same order
  // as before they died.
  void OnView(const ClusterView& view, uint32_t self_rank, HostAggregation mode,
              bool adopt_dead = false);
  // Whether `mode` aggregates in `view`: on, or auto and the job has ever
  // spanned hosts (its dead nodes count: a job that loses a host keeps its
  // sums as they were).
  static bool Enabled(const ClusterView& view, HostAggregation mode);

  // More than one live worker on this host, aggregation on.
  bool active() const { return active_; }
  bool leading() const { return active_ && leader_rank_ == self_rank_; }
  NodeId leader() const { return leader_node_; }
  uint32_t leader_rank() const { return leader_rank_; }
  uint32_t self_rank() const { return self_rank_; }
  // The dead workers of this host the leader adds (empty unless leading).
  std::vector<uint32_t> adopted() const {
    return leading() ? std::vector<uint32_t>(adopted_.begin(), adopted_.end())
                     : std::vector<uint32_t>();
  }
  const std::string& host() const { return host_; }
  // The rank of the live member of this host at `node` (not this worker).
  std::optional<uint32_t> RankOf(NodeId node) const;

  // The leader keeps `c` for (table, clock); kLate if that clock of the
  // table was already sent, kNotLeading if this worker does not lead.
  Added Contribute(uint32_t table, int64_t clock, Contribution c);
  // Whether every member waited for has contributed to (table, clock).
  bool Complete(uint32_t table, int64_t clock) const;
  // The contributions of (table, clock) in rank order, forgotten here; the
  // clock of that table counts as sent from now on.
  std::vector<Contribution> Take(uint32_t table, int64_t clock);
  // The keys (table, clock) that hold contributions.
  std::vector<std::pair<uint32_t, int64_t>> Pending() const;
  // This worker gave (table, clock) to the host's sum (its own push-pull,
  // to the leader or as the leader). Should it start leading, the newest
  // such clock of each table counts as sent.
  void Submitted(uint32_t table, int64_t clock);
  // Forgets everything kept (a rollback: none of it belongs to the job).
  void Clear();
  // The members waited for that have not contributed to (table, clock):
  // "worker/1, worker/3".
  std::string Missing(uint32_t table, int64_t clock) const;

  // Every gradient of the group in rank order (the leader's, `own`, at
  // `own_rank`; `members` in rank order, as Take returns them), summed into
  // `out` (the table's floats from `begin` on, as many as out holds): the
  // same order whoever leads, so a run is bit-reproducible, and per float,
  // so summing a table slice by slice gives the same floats as at once.
  static void Sum(uint32_t own_rank, std::span<const float> own,
                  const std::vector<Contribution>& members, std::span<float> out, size_t begin = 0);
  // The ranks of a combined push: this worker's, then the contributors'.
  std::vector<uint32_t> Ranks(const std::vector<Contribution>& members) const;

 private:
  using Key = std::pair<uint32_t, int64_t>;  // (table, clock)

  bool active_ = false;
  uint32_t self_rank_ = 0;
  std::string host_;
  uint32_t leader_rank_ = 0;
  NodeId leader_node_ = kUnassignedId;
  std::set<uint32_t> live_members_;         // the other live workers of this host
  std::map<NodeId, uint32_t> member_rank_;  // their nodes
  std::set<uint32_t> adopted_;              // the host's dead workers (adopt_dead)
  std::set<uint32_t> waited_for_;           // of live_members_, and adopted_ when leading
  std::map<Key, std::vector<Contribution>> got_;
  std::map<uint32_t, int64_t> sent_clock_;  // by table: the newest clock sent
  std::map<uint32_t, int64_t> own_clock_;   // by table: the newest Submitted
};

}  // namespace distopt

#endif  // DISTOPT_KV_HOST_GROUP_H_
