// BspAggregator: the pushes of one table's BSP clocks, kept as received
// (their buffers shared, not copied) until every live worker's push of the
// clock is in; then MeanOf sums them in worker-rank order, so the result
// does not depend on arrival order (a run is bit-reproducible) and each
// input is read once. A combined push (the sum of one host's workers, kv
// header kKvGroup) stands for all of its ranks: it is kept at the first and
// counts once per rank in the mean. Not thread-safe: the server calls it
// under its lock.
//
//   if (agg.Add(head.clock, rank, m) == BspAggregator::kDuplicate) return;
//   if (!agg.Complete(applied, live)) return;   // still waiting
//   BspAggregator::Clock c = agg.Take(applied);
//   MeanGradient g = MeanOf(spec, dense_size, c, /*own_buffers=*/replicated, &scratch);
#ifndef DISTOPT_KV_BSP_AGGREGATOR_H_
#define DISTOPT_KV_BSP_AGGREGATOR_H_

#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "base/buffer.h"
#include "kv/layout.h"
#include "wire/message.h"

namespace distopt {

class BspAggregator {
 public:
  // The pushes of one clock so far.
  struct Clock {
    std::vector<bool> from;         // by worker rank
    std::vector<Message> pushes;    // by worker rank (empty where none, or in a group)
    std::vector<uint32_t> kept_at;  // by worker rank: the rank its push is kept at
    uint32_t count = 0;             // ranks pushed (the mean's divisor)
  };
  enum AddResult { kAdded, kDuplicate };

  explicit BspAggregator(uint32_t num_workers) : num_workers_(num_workers) {}

  // Keeps the push for `clock` of the workers `ranks` (ascending, each <
  // num_workers): one rank, or a host's group summed. A push naming a rank
  // already in for the clock (a retry; a member of a group that reached it
  // before) is a duplicate, and none of it is kept, unless it holds every
  // push it overlaps and more: then it replaces them (a host's sum that
  // reaches a new owner after a survivor's push for one of its ranks; each
  // rank's gradient of a clock is the same whoever computed it, so the
  // clock's mean is the sum's, whatever the order of arrival).
  AddResult Add(int64_t clock, std::span<const uint32_t> ranks, const Message& push);
  AddResult Add(int64_t clock, uint32_t rank, const Message& push) {
    return Add(clock, std::span<const uint32_t>(&rank, 1), push);
  }
  // Whether every live worker pushed `clock` (false if nobody did: every
  // live worker may be gone mid-clock).
  bool Complete(int64_t clock, const std::vector<bool>& live) const;
  // Who pushed `clock` so far, by rank (empty if nobody).
  std::vector<bool> Pushed(int64_t clock) const;
  // Removes the pushes of `clock` and returns them.
  Clock Take(int64_t clock);
  // Forgets every partial clock (a takeover or a rollback).
  void Clear() { pending_.clear(); }

 private:
  uint32_t num_workers_;
  std::map<int64_t, Clock> pending_;
};

// The mean of a clock's pushes, ready to apply: `keys` (sparse tables) and
// `values` point into `keys_buffer`/`values_buffer` or into `scratch`.
struct MeanGradient {
  std::span<const uint64_t> keys;
  const float* values = nullptr;
  Buffer keys_buffer;    // sparse: always set
  Buffer values_buffer;  // set for sparse tables, and for dense ones with own_buffers
};

// Sums `c`'s pushes in rank order and scales by 1 / count. A single push is
// the mean as it came (shared, no copy; a sparse one may repeat keys, which
// ApplyBatch sums). Dense tables (`dense_size` floats) sum into `scratch`
// unless `own_buffers` asks for a buffer of the mean's own (to send on).
MeanGradient MeanOf(const TableSpec& spec, size_t dense_size, const BspAggregator::Clock& c,
                    bool own_buffers, std::vector<float>* scratch);

}  // namespace distopt

#endif  // DISTOPT_KV_BSP_AGGREGATOR_H_
