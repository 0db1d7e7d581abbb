// ConsistencyGate: the consistency model of one table of one partition, as
// its owner enforces it. It keeps the table's clocks (what BSP applied, what
// the backup confirmed, how far each worker pushed) and decides whether a
// pull for a clock may be answered now (BSP: that clock is applied and held
// by the backup; SSP: the slowest live worker is within the staleness
// bound; ASP: always); a request that may not is parked here until it may.
// Not thread-safe: the server calls it under its lock.
//
//   ConsistencyGate gate(consistency, num_workers);
//   if (gate.Ready(head.clock, live)) Answer(pull); else gate.Park({std::move(pull), head, ...});
//   gate.Advance();                       // BSP: a clock was applied
//   for (ParkedRequest& p : gate.TakeReady(live, confirmed_seq)) Answer(p.request);
#ifndef DISTOPT_KV_CONSISTENCY_GATE_H_
#define DISTOPT_KV_CONSISTENCY_GATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "base/time.h"
#include "kv/kv_message.h"
#include "kv/options.h"
#include "wire/message.h"

namespace distopt {

// A request waiting for its clock (or for the backup to confirm an update).
struct ParkedRequest {
  Message request;  // the pull (or the pull half of a push-pull), or the push to ack
  KvHeader head;    // its kv header, decoded (the pull half's: clock + 1)
  uint32_t rank = 0;
  NodeId node = 0;
  MsgType reply_type = MsgType::kPullReply;  // or kPushAck (an update waiting for its backup)
  // Ready once this clock is served (kAnyClock: no clock to wait for) ...
  int64_t need_clock = 0;
  // ... and the partition's backup confirmed this update (0: none).
  uint64_t need_seq = 0;
  SteadyTime since;
  SteadyTime last_log;
};

class ConsistencyGate {
 public:
  static constexpr int64_t kAnyClock = INT64_MIN;

  ConsistencyGate(ConsistencyOptions options, uint32_t num_workers);

  const ConsistencyOptions& options() const { return options_; }
  bool bsp() const { return options_.mode == Consistency::kBsp; }

  // BSP: clocks below `applied` were applied here, below `confirmed` also by the backup.
  int64_t applied() const { return applied_; }
  int64_t confirmed() const { return confirmed_; }
  // By worker rank: the clocks each worker pushed (or announced) so far.
  const std::vector<int64_t>& worker_clocks() const { return worker_clock_; }
  int64_t worker_clock(uint32_t rank) const { return worker_clock_[rank]; }

  // Worker `rank` reached `clock` + 1 (never moves back).
  void Saw(uint32_t rank, int64_t clock);
  // Worker `rank` goes on from `clock` (a rejoining worker under SSP/ASP).
  void MoveTo(uint32_t rank, int64_t clock);
  // BSP: the next clock was applied; with `held`, the backup has it too.
  void Advance(bool held);
  // BSP: the backup confirmed every clock below `clock` / everything applied.
  void ConfirmUpTo(int64_t clock);
  void ConfirmAll() { confirmed_ = applied_; }
  // A backup's copy took the owner's applied clock.
  void SetApplied(int64_t clock) { applied_ = confirmed_ = clock; }
  // Everything starts again from `clock` (a checkpoint restored): every
  // worker there, nothing parked.
  void Restart(int64_t clock);
  // A snapshot's clocks (its worker clocks have the gate's worker count).
  void Install(int64_t applied, std::vector<int64_t> worker_clocks);

  // The slowest / fastest live worker's clock (INT64_MAX / 0 when none is live).
  int64_t MinClock(const std::vector<bool>& live) const;
  int64_t MaxClock(const std::vector<bool>& live) const;

  // Whether a pull for `clock` may be answered now.
  bool Ready(int64_t clock, const std::vector<bool>& live) const;
  // Whether a parked request may be answered, with the partition's backup
  // having confirmed updates up to `confirmed_seq`.
  bool Ready(const ParkedRequest& p, const std::vector<bool>& live, uint64_t confirmed_seq) const;

  void Park(ParkedRequest p) { parked_.push_back(std::move(p)); }
  // Removes and returns the parked requests that may now be answered, in
  // the order they came; those of workers no longer live are dropped.
  std::vector<ParkedRequest> TakeReady(const std::vector<bool>& live, uint64_t confirmed_seq);
  std::vector<ParkedRequest>& parked() { return parked_; }

  // The live workers a pull for `clock` waits for, for the log ("worker/2
  // (at clock 7)"); under BSP `pushed` says (by rank) who pushed the clock
  // being aggregated.
  std::string WhoIsSlow(int64_t clock, const std::vector<bool>& live,
                        const std::vector<bool>& pushed) const;

 private:
  ConsistencyOptions options_;
  int64_t applied_ = 0;
  int64_t confirmed_ = 0;
  std::vector<int64_t> worker_clock_;
  std::vector<ParkedRequest> parked_;
};

}  // namespace distopt

#endif  // DISTOPT_KV_CONSISTENCY_GATE_H_
