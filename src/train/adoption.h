// Adoption: how a BSP job loses workers without changing its result. The
// servers keep waiting for a dead worker's slot of every clock
// (ConsistencyOptions::adopt_dead_workers) and the survivors fill it: they
// read the dead worker's batch of the clock, compute its gradient with the
// clock's parameters and push it as the dead worker's rank. The mean is then
// over the same W gradients, summed in the same order, as if nobody had
// died, so a job that loses workers (a whole host of them, its servers
// failing over to their backups) ends with exactly the fault-free model.
//
// Who computes which slot is a pure function of the view (PlanAdoption):
// - with per-host aggregation, a dead worker whose host still runs a worker
//   belongs to that host's leader: its gradient joins the host's sum
//   (KvClient::ContributeFor), where it was while it lived;
// - the dead workers of a host with none left form one unit (with
//   aggregation; without, every dead rank is a unit of its own), whose
//   gradients are summed in rank order and pushed as the host's
//   (KvClient::PushFor); units are dealt round-robin over the live workers.
// A restarted worker takes its slot back: its first push of a clock that a
// survivor also pushed is the same gradient, and the servers count one.
//
//   std::vector<AdoptionUnit> plan = PlanAdoption(view, rank, workers, host_sums);
//   RETURN_IF_ERROR(adopter.PushFor(clock, plan, dense, fetch));
//   ... wait for the step's own requests, then for adopter.pending()
#ifndef DISTOPT_TRAIN_ADOPTION_H_
#define DISTOPT_TRAIN_ADOPTION_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cluster/membership.h"
#include "data/batcher.h"
#include "data/shares.h"
#include "distopt/status.h"
#include "kv/client.h"
#include "ml/model.h"

namespace distopt {

// Slots one worker computes each clock, pushed as one request.
struct AdoptionUnit {
  std::vector<uint32_t> ranks;  // ascending
  bool via_host = false;        // each rank's gradient joins this worker's host sum
  bool operator==(const AdoptionUnit&) const = default;
};

// The units `self` computes in `view` (of a job of `workers`; `host_sums`:
// per-host aggregation is on, HostGroup::Enabled). `host_adopted`: the dead
// ranks the host group waits for this worker, as its leader, to add
// (KvClient::HostAdopted). That comes from the group's own state rather than
// from `view`: the two can differ for a moment after a view change, and a
// slot added nowhere would leave the leader waiting for it. Empty when every
// rank has a live worker.
std::vector<AdoptionUnit> PlanAdoption(const ClusterView& view, uint32_t self, uint32_t workers,
                                       bool host_sums,
                                       const std::vector<uint32_t>& host_adopted = {});

// "worker/2, worker/3 (host h3)" for the log.
std::string DescribeUnits(const std::vector<AdoptionUnit>& plan);

// Fills a batch's parameters at the current clock (the trainer's FetchParams).
using FetchFn = std::function<Status(const std::vector<std::vector<uint64_t>>& keys,
                                     ParamSet* params, std::vector<std::vector<float>>* storage)>;

// One worker's adopted slots: a batch iterator and scratch per rank. Not
// thread-safe (the trainer's thread).
class Adopter {
 public:
  // `base`: the trainer's batch options (shards replaced per rank: the
  // shares of that rank among `workers`); everything borrowed must outlive
  // the Adopter.
  Adopter(KvClient& kv, Model& model, ShareSource& train, const BatchOptions& base,
          uint32_t workers, int64_t steps_per_epoch);

  // Computes and pushes, for `clock`, every unit of `plan` not pushed for it
  // yet. Sparse rows come from `fetch`; dense parameters are the clock's.
  Status PushFor(int64_t clock, const std::vector<AdoptionUnit>& plan, const FetchFn& fetch);
  // The pushes made since the last call: to wait for before the next clock
  // (they lend the gradients) or cancel.
  std::vector<KvHandle> TakePending();
  // Forgets what was pushed (a rollback: the clocks come again).
  void Reset();
  uint64_t slots_pushed() const { return slots_pushed_; }

 private:
  struct Slot {
    Dataset storage;  // the rank's shares, when it has several
    std::optional<BatchIterator> batches;
    int64_t next_clock = -1;      // the clock `batches` yields next
    int64_t computed_clock = -1;  // the clock `grads` holds (lent to its pushes)
    std::vector<std::vector<uint64_t>> keys;
    ParamSet params;
    std::vector<std::vector<float>> rows;
    GradSet grads;
  };
  // The gradient of `rank`'s batch of `clock` into its slot.
  Status Compute(uint32_t rank, int64_t clock, const FetchFn& fetch);
  Status PositionAt(uint32_t rank, Slot& slot, int64_t clock);
  // False if a slot for the host's sum was not taken (this worker no
  // longer leads its host): the unit is not done for `clock`.
  bool PushUnit(const AdoptionUnit& unit, int64_t clock);

  KvClient& kv_;
  Model& model_;
  ShareSource& train_;
  const BatchOptions base_;
  const uint32_t workers_;
  const int64_t steps_per_epoch_;
  const std::vector<TableDecl> decls_;
  std::map<uint32_t, Slot> slots_;                   // by rank
  std::map<std::vector<uint32_t>, int64_t> pushed_;  // by unit: the clock last pushed
  // A unit's sum of its ranks per table, by unit (lent to its pushes).
  std::map<std::vector<uint32_t>, std::vector<std::vector<float>>> sums_;
  std::vector<KvHandle> pending_;
  uint64_t slots_pushed_ = 0;
};

}  // namespace distopt

#endif  // DISTOPT_TRAIN_ADOPTION_H_
