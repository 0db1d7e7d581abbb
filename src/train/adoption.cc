#include "train/adoption.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "base/vector_ops.h"

namespace distopt {

std::vector<AdoptionUnit> PlanAdoption(const ClusterView& view, uint32_t self, uint32_t workers,
                                       bool host_sums, const std::vector<uint32_t>& host_adopted) {
  std::vector<const Member*> live = view.Live(Role::kWorker);
  std::sort(live.begin(), live.end(),
            [](const Member* a, const Member* b) { return a->rank < b->rank; });
  if (live.empty()) return {};
  std::set<uint32_t> live_ranks;
  for (const Member* m : live) live_ranks.insert(m->rank);
  // The dead ranks by host (the host of their last incarnation).
  std::map<std::string, std::vector<uint32_t>> dead;
  for (const Member& m : view.members) {
    if (m.role != Role::kWorker || m.alive || m.rank >= workers || live_ranks.count(m.rank)) {
      continue;
    }
    std::vector<uint32_t>& ranks = dead[m.host];
    if (std::find(ranks.begin(), ranks.end(), m.rank) == ranks.end()) ranks.push_back(m.rank);
  }
  std::vector<AdoptionUnit> mine, dealt;
  if (!host_adopted.empty()) mine.push_back({host_adopted, /*via_host=*/true});
  for (auto& [dead_host, ranks] : dead) {
    const std::string& host = dead_host;  // a structured binding cannot be captured (C++20, clang)
    std::sort(ranks.begin(), ranks.end());
    const bool host_lives =
        std::any_of(live.begin(), live.end(), [&](const Member* m) { return m->host == host; });
    if (host_sums && host_lives) {
      continue;  // in the host's sum, by its leader (host_adopted there)
    } else if (host_sums) {
      dealt.push_back({ranks, false});
    } else {
      for (uint32_t r : ranks) dealt.push_back({{r}, false});
    }
  }
  std::sort(dealt.begin(), dealt.end(), [](const AdoptionUnit& a, const AdoptionUnit& b) {
    return a.ranks.front() < b.ranks.front();
  });
  // Round-robin from live[first dead % live], as ShardsToRead deals shards.
  const size_t first = dealt.empty() ? 0 : dealt.front().ranks.front();
  for (size_t i = 0; i < dealt.size(); ++i) {
    const size_t at = (first + i) % live.size();
    if (live[at]->rank == self) mine.push_back(std::move(dealt[i]));
  }
  return mine;
}

std::string DescribeUnits(const std::vector<AdoptionUnit>& plan) {
  std::string out;
  for (const AdoptionUnit& u : plan) {
    for (uint32_t r : u.ranks) out += (out.empty() ? "worker/" : ", worker/") + std::to_string(r);
    if (u.via_host) out += " (in this host's sum)";
  }
  return out;
}

Adopter::Adopter(KvClient& kv, Model& model, ShareSource& train, const BatchOptions& base,
                 uint32_t workers, int64_t steps_per_epoch)
    : kv_(kv),
      model_(model),
      train_(train),
      base_(base),
      workers_(workers),
      steps_per_epoch_(steps_per_epoch),
      decls_(model.Tables()) {}

Status Adopter::PushFor(int64_t clock, const std::vector<AdoptionUnit>& plan,
                        const FetchFn& fetch) {
  for (const AdoptionUnit& unit : plan) {
    auto it = pushed_.find(unit.ranks);
    if (it != pushed_.end() && it->second == clock) continue;
    for (uint32_t r : unit.ranks) RETURN_IF_ERROR(Compute(r, clock, fetch));
    if (!PushUnit(unit, clock)) continue;  // no longer the host's leader: asked again
    pushed_[unit.ranks] = clock;
    slots_pushed_ += unit.ranks.size();
  }
  return Status::Ok();
}

Status Adopter::PositionAt(uint32_t rank, Slot& slot, int64_t clock) {
  const int64_t epoch = clock / steps_per_epoch_;
  if (slot.batches.has_value() && slot.next_clock == clock && clock % steps_per_epoch_ != 0) {
    return Status::Ok();
  }
  if (!slot.batches.has_value()) {
    BatchOptions o = base_;
    o.shards = SharesOfRank(rank, workers_, train_.num_shares());
    ASSIGN_OR_RETURN(const Dataset* rows,
                     JoinShares(train_, o.shards, &slot.storage, &o.share_rows));
    ASSIGN_OR_RETURN(BatchIterator it, BatchIterator::Create(rows, o));
    if (static_cast<int64_t>(it.batches_per_epoch()) != steps_per_epoch_) {
      // BSP reads in global order, where every rank has as many steps.
      return FailedPreconditionError(
          "worker/" + std::to_string(rank) + " has " + std::to_string(it.batches_per_epoch()) +
          " steps per epoch, this worker " + std::to_string(steps_per_epoch_) +
          ": its slots cannot be computed here");
    }
    slot.batches.emplace(std::move(it));
  }
  slot.batches->StartEpoch(static_cast<int>(epoch));
  Batch skipped;
  for (int64_t s = epoch * steps_per_epoch_; s < clock; ++s) {
    if (!slot.batches->Next(&skipped)) break;
  }
  slot.next_clock = clock;
  return Status::Ok();
}

Status Adopter::Compute(uint32_t rank, int64_t clock, const FetchFn& fetch) {
  Slot& slot = slots_[rank];
  if (slot.computed_clock == clock) return Status::Ok();  // in another unit before a view change
  RETURN_IF_ERROR(PositionAt(rank, slot, clock));
  Batch batch;
  if (!slot.batches->Next(&batch)) {
    return InternalError("worker/" + std::to_string(rank) + "'s data has no batch for clock " +
                         std::to_string(clock));
  }
  ++slot.next_clock;
  model_.CollectKeys(batch, &slot.keys);
  RETURN_IF_ERROR(fetch(slot.keys, &slot.params, &slot.rows));
  ASSIGN_OR_RETURN(float loss, model_.ForwardBackward(batch, slot.params, &slot.grads));
  bool finite = std::isfinite(loss);
  for (const auto& g : slot.grads.values) {
    for (float x : g) finite &= std::isfinite(x);
  }
  if (!finite) {
    return InvalidArgumentError("the gradient of dead worker/" + std::to_string(rank) +
                                "'s batch is not finite at step " + std::to_string(clock) +
                                " (learning rate too high?); stopping the job");
  }
  slot.computed_clock = clock;
  return Status::Ok();
}

bool Adopter::PushUnit(const AdoptionUnit& unit, int64_t clock) {
  bool all = true;
  for (size_t t = 0; t < decls_.size(); ++t) {
    const auto table = static_cast<uint32_t>(t);
    if (decls_[t].kind == TableKind::kSparse) {
      // Sparse pushes are never summed per host: one per rank.
      for (uint32_t r : unit.ranks) {
        const Slot& s = slots_[r];
        pending_.push_back(kv_.PushSparseFor(table, s.keys[t], s.grads.values[t], clock, r));
      }
    } else if (unit.via_host) {
      for (uint32_t r : unit.ranks) {
        std::optional<KvHandle> h = kv_.ContributeFor(table, slots_[r].grads.values[t], clock, r);
        if (h.has_value()) {
          pending_.push_back(std::move(*h));
        } else {
          all = false;
        }
      }
    } else if (unit.ranks.size() == 1) {
      pending_.push_back(
          kv_.PushFor(table, slots_[unit.ranks[0]].grads.values[t], clock, unit.ranks));
    } else {
      // A dead host's sum, as its leader made it: in rank order.
      std::vector<const float*> in;
      for (uint32_t r : unit.ranks) in.push_back(slots_[r].grads.values[t].data());
      std::vector<std::vector<float>>& sums = sums_[unit.ranks];
      sums.resize(decls_.size());
      sums[t].resize(decls_[t].size);
      SumScaled(in, sums[t].size(), 1.0f, sums[t].data());
      pending_.push_back(kv_.PushFor(table, sums[t], clock, unit.ranks));
    }
  }
  return all;
}

std::vector<KvHandle> Adopter::TakePending() {
  std::vector<KvHandle> out = std::move(pending_);
  pending_.clear();
  return out;
}

void Adopter::Reset() {
  pushed_.clear();
  for (auto& [rank, slot] : slots_) slot.next_clock = slot.computed_clock = -1;
}

}  // namespace distopt
