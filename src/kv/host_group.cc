#include "kv/host_group.h"

#include <algorithm>
#include <cstring>

#include "base/vector_ops.h"

namespace distopt {
namespace {

// clocks[table] = max(clocks[table], clock), set if absent.
void RaiseTo(std::map<uint32_t, int64_t>* clocks, uint32_t table, int64_t clock) {
  int64_t& c = clocks->try_emplace(table, clock).first->second;
  c = std::max(c, clock);
}

}  // namespace

bool HostGroup::Enabled(const ClusterView& view, HostAggregation mode) {
  if (mode != HostAggregation::kAuto) return mode == HostAggregation::kOn;
  const std::string* first = nullptr;
  for (const Member& m : view.members) {
    if (m.role == Role::kCoordinator) continue;
    if (first == nullptr) first = &m.host;
    if (m.host != *first) return true;
  }
  return false;
}

void HostGroup::OnView(const ClusterView& view, uint32_t self_rank, HostAggregation mode,
                       bool adopt_dead) {
  const bool enabled = Enabled(view, mode);
  const bool was_leading = leading();
  self_rank_ = self_rank;
  host_.clear();
  if (const Member* me = view.FindRank(Role::kWorker, self_rank)) host_ = me->host;
  std::set<uint32_t> members, dead;
  member_rank_.clear();
  leader_rank_ = self_rank;
  leader_node_ = kUnassignedId;
  for (const Member& w : view.members) {
    if (w.role != Role::kWorker || w.host != host_ || host_.empty()) continue;
    if (!w.alive) {
      if (adopt_dead && w.rank != self_rank) dead.insert(w.rank);
      continue;
    }
    if (w.rank != self_rank) {
      members.insert(w.rank);
      member_rank_[w.id] = w.rank;
    }
    if (leader_node_ == kUnassignedId || w.id < leader_node_) {
      leader_rank_ = w.rank;
      leader_node_ = w.id;
    }
  }
  // A rank restarted is live again: its old incarnation is not adopted.
  for (uint32_t r : members) dead.erase(r);
  active_ = enabled && !(members.empty() && dead.empty());
  adopted_ = active_ ? std::move(dead) : std::set<uint32_t>();
  if (!active_) {
    live_members_.clear();
    waited_for_.clear();
    return;
  }
  if (!was_leading && leading()) {
    // Starts leading: waits for every member there is now, from the clocks
    // after those this worker gave a leader that is gone.
    waited_for_ = members;
    for (auto [table, clock] : own_clock_) RaiseTo(&sent_clock_, table, clock);
  } else {
    // The dead are no longer waited for; newcomers are, once they speak.
    std::set<uint32_t> kept;
    for (uint32_t r : waited_for_) {
      if (members.count(r)) kept.insert(r);
    }
    waited_for_ = std::move(kept);
  }
  if (leading()) waited_for_.insert(adopted_.begin(), adopted_.end());
  live_members_ = std::move(members);
}

std::optional<uint32_t> HostGroup::RankOf(NodeId node) const {
  auto it = member_rank_.find(node);
  if (it == member_rank_.end()) return std::nullopt;
  return it->second;
}

HostGroup::Added HostGroup::Contribute(uint32_t table, int64_t clock, Contribution c) {
  if (!leading()) return Added::kNotLeading;
  auto sent = sent_clock_.find(table);
  if (sent != sent_clock_.end() && clock <= sent->second) return Added::kLate;
  if (live_members_.count(c.rank)) waited_for_.insert(c.rank);
  auto& list = got_[{table, clock}];
  for (Contribution& have : list) {
    if (have.rank != c.rank) continue;
    // A duplicate: the first one counts. Where that was the leader's own
    // for an adopted rank, the rank's restarted worker still wants its answer.
    if (have.node == kUnassignedId) {
      have.node = c.node;
      have.request_id = c.request_id;
    }
    return Added::kStored;
  }
  list.push_back(std::move(c));
  return Added::kStored;
}

bool HostGroup::Complete(uint32_t table, int64_t clock) const {
  auto it = got_.find({table, clock});
  for (uint32_t r : waited_for_) {
    if (it == got_.end()) return false;
    const auto& list = it->second;
    if (std::none_of(list.begin(), list.end(),
                     [r](const Contribution& c) { return c.rank == r; })) {
      return false;
    }
  }
  return true;
}

std::vector<HostGroup::Contribution> HostGroup::Take(uint32_t table, int64_t clock) {
  std::vector<Contribution> out;
  auto it = got_.find({table, clock});
  if (it != got_.end()) {
    out = std::move(it->second);
    got_.erase(it);
  }
  std::sort(out.begin(), out.end(),
            [](const Contribution& a, const Contribution& b) { return a.rank < b.rank; });
  RaiseTo(&sent_clock_, table, clock);
  return out;
}

std::vector<std::pair<uint32_t, int64_t>> HostGroup::Pending() const {
  std::vector<Key> keys;
  for (const auto& [key, list] : got_) keys.push_back(key);
  return keys;
}

void HostGroup::Submitted(uint32_t table, int64_t clock) { RaiseTo(&own_clock_, table, clock); }

void HostGroup::Clear() {
  got_.clear();
  sent_clock_.clear();
  own_clock_.clear();
}

std::string HostGroup::Missing(uint32_t table, int64_t clock) const {
  auto it = got_.find({table, clock});
  std::string out;
  for (uint32_t r : waited_for_) {
    const bool in =
        it != got_.end() && std::any_of(it->second.begin(), it->second.end(),
                                        [r](const Contribution& c) { return c.rank == r; });
    if (!in) out += (out.empty() ? "worker/" : ", worker/") + std::to_string(r);
  }
  return out;
}

void HostGroup::Sum(uint32_t own_rank, std::span<const float> own,
                    const std::vector<Contribution>& members, std::span<float> out, size_t begin) {
  // Every gradient in rank order, the leader's at its own rank: the same
  // floats in the same order whichever worker leads (which depends on who
  // registered first), so a run and its replay are bit-identical.
  std::vector<const float*> in;
  in.reserve(members.size() + 1);
  bool own_in = false;
  for (const Contribution& c : members) {
    if (!own_in && c.rank > own_rank) {
      in.push_back(own.data() + begin);
      own_in = true;
    }
    in.push_back(c.push.values.as<float>().data() + begin);
  }
  if (!own_in) in.push_back(own.data() + begin);  // the highest rank
  SumScaled(in, out.size(), 1.0f, out.data());
}

std::vector<uint32_t> HostGroup::Ranks(const std::vector<Contribution>& members) const {
  std::vector<uint32_t> ranks = {self_rank_};
  for (const Contribution& c : members) ranks.push_back(c.rank);
  std::sort(ranks.begin(), ranks.end());
  return ranks;
}

}  // namespace distopt
