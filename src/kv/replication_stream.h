// ReplicationStream: an owner's stream of updates to the backup of one
// partition. Each update applied at the owner gets the next sequence number
// and is sent; the backup applies them in order and acknowledges the last
// it applied; what it has not confirmed is kept and sent again (go-back-N:
// the backup drops anything after a gap). Replies that acknowledge an
// update wait until the stream confirms its sequence number. Not
// thread-safe: the server calls it under its lock; sends never block.
//
//   const uint64_t seq = stream.Next();
//   if (stream.has_backup()) stream.Send(seq, MakeReplicate(update, seq), bsp_clock, now);
//   ...
//   for (const auto& [table, clock] : stream.Confirm(acked_seq)) gate[table].ConfirmUpTo(clock);
#ifndef DISTOPT_KV_REPLICATION_STREAM_H_
#define DISTOPT_KV_REPLICATION_STREAM_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "base/time.h"
#include "kv/layout.h"
#include "transport/transport.h"

namespace distopt {

class ReplicationStream {
 public:
  explicit ReplicationStream(Transport* transport) : transport_(transport) {}

  // The backup (kNoServer / kUnassignedId: none). Whatever the previous
  // backup had not confirmed now has only the owner's copy: it is released
  // (see Confirm) and no longer re-sent.
  std::vector<std::pair<uint32_t, int64_t>> SetBackup(uint32_t rank, NodeId node);
  uint32_t backup_rank() const { return backup_rank_; }
  NodeId backup_node() const { return backup_node_; }
  bool has_backup() const { return backup_node_ != kUnassignedId; }

  // The last update applied here / the last the backup confirmed.
  uint64_t seq() const { return seq_; }
  uint64_t confirmed() const { return confirmed_; }
  size_t in_flight() const { return unconfirmed_.size(); }
  uint64_t first_unconfirmed() const { return unconfirmed_.empty() ? 0 : unconfirmed_.front().seq; }
  // Starts from update `seq`, everything confirmed (a takeover, a restore).
  void Reset(uint64_t seq);

  // The sequence number of the next update; with no backup it counts as
  // confirmed at once.
  uint64_t Next();
  // Sends update `seq` (a kReplicate message) to the backup and keeps it
  // until confirmed; `bsp_clock` is the table's applied clock after it
  // (BSP), or -1.
  void Send(uint64_t seq, Message m, uint32_t table, int64_t bsp_clock, SteadyTime now);

  // The backup applied everything up to `seq`. Returns, for each BSP update
  // confirmed now, its table and applied clock; a confirmation that leaves
  // nothing in flight ends with {kAllTables, 0}.
  static constexpr uint32_t kAllTables = UINT32_MAX;
  std::vector<std::pair<uint32_t, int64_t>> Confirm(uint64_t seq);
  // An acknowledgement that confirms nothing new while updates are in
  // flight means the backup saw a gap: true if a go-back is due now (at most
  // one per `gap` of time).
  bool GoBackDue(uint64_t acked, SteadyTime now, Duration gap);
  // Whether the oldest unconfirmed update has waited `retry` since the last send.
  bool RetryDue(SteadyTime now, Duration retry) const;
  SteadyTime last_send() const { return last_send_; }
  // Sends every unconfirmed update again, stamped with `epoch`.
  void Resend(uint32_t epoch, SteadyTime now);

 private:
  struct Entry {
    uint64_t seq;
    Message msg;
    uint32_t table;
    int64_t bsp_clock;
  };
  Transport* const transport_;
  uint32_t backup_rank_ = kNoServer;
  NodeId backup_node_ = kUnassignedId;
  uint64_t seq_ = 0;
  uint64_t confirmed_ = 0;
  std::vector<Entry> unconfirmed_;  // ascending seq (short: a few in flight)
  SteadyTime last_send_;
  SteadyTime last_go_back_;
};

}  // namespace distopt

#endif  // DISTOPT_KV_REPLICATION_STREAM_H_
