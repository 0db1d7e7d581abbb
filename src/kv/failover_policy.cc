#include "kv/failover_policy.h"

#include <algorithm>
#include <map>
#include <utility>

namespace distopt {
namespace {

std::string Server(uint32_t rank) { return "server/" + std::to_string(rank); }

std::string List(const std::vector<uint32_t>& v) {
  std::string out;
  for (uint32_t x : v) out += (out.empty() ? "" : ", ") + std::to_string(x);
  return out;
}

}  // namespace

ServerNodes ServerNodes::FromView(const ClusterView& view, uint32_t num_servers) {
  ServerNodes s;
  s.epoch = view.epoch;
  s.by_rank.assign(num_servers, kUnassignedId);
  s.hosts.assign(num_servers, std::string());
  s.capacities.assign(num_servers, 0);
  for (uint32_t r = 0; r < num_servers; ++r) {
    if (const Member* m = view.FindRank(Role::kServer, r)) {
      s.by_rank[r] = m->id;
      s.hosts[r] = m->host;
      s.capacities[r] = m->capacity;
    }
  }
  return s;
}

std::vector<double> ServerNodes::Weights() const {
  const size_t n = by_rank.size();
  std::map<std::string, std::pair<uint32_t, uint32_t>> per_host;  // capacity, servers
  for (size_t r = 0; r < n; ++r) {
    const uint32_t c = r < capacities.size() ? capacities[r] : 0;
    if (by_rank[r] == kUnassignedId || host(r).empty() || c == 0) {
      return std::vector<double>(n, 1.0);
    }
    auto& [capacity, servers] = per_host[host(r)];
    capacity = std::max(capacity, c);
    ++servers;
  }
  std::vector<double> w(n);
  for (size_t r = 0; r < n; ++r) {
    const auto& [capacity, servers] = per_host.at(host(r));
    w[r] = static_cast<double>(capacity) / servers;
  }
  return w;
}

const std::string& ServerNodes::host(uint32_t rank) const {
  static const std::string kUnknown;
  return rank < hosts.size() ? hosts[rank] : kUnknown;
}

void FailoverPolicy::PlaceBackups(const ServerNodes& servers, Layout& layout) const {
  const uint32_t n = options_.num_servers;
  std::vector<int> backups(n, 0);
  for (uint32_t p = 0; p < layout.replicas.size(); ++p) {
    Replica& rep = layout.replicas[p];
    if (rep.backup == kNoServer) continue;
    uint32_t best = kNoServer;
    for (uint32_t step = 1; step < n; ++step) {
      const uint32_t r = (rep.owner + step) % n;
      if (servers.SameHost(r, rep.owner) || servers.host(r).empty()) continue;
      if (best == kNoServer || backups[r] < backups[best]) best = r;
    }
    if (best != kNoServer) rep.backup = best;  // else every server shares the owner's host
    ++backups[rep.backup];
  }
}

FailoverPolicy::FailoverPolicy(FailoverPolicyOptions options) : options_(std::move(options)) {}

void FailoverPolicy::Reset(const ServerNodes& servers, int64_t restore_step, uint32_t generation) {
  layout_ = Layout::Compute(options_.tables, options_.num_servers, options_.replication,
                            options_.num_partitions);
  const std::vector<uint32_t> owners = DealPartitions(layout_.num_partitions, servers.Weights());
  for (uint32_t p = 0; p < layout_.num_partitions; ++p) {
    Replica& rep = layout_.replicas[p];
    rep.owner = owners[p];
    if (rep.backup != kNoServer) rep.backup = (rep.owner + 1) % options_.num_servers;
  }
  PlaceBackups(servers, layout_);
  layout_.restore_step = restore_step;
  layout_.generation = generation;
  holders_.assign(layout_.replicas.size(), Holders());
  for (size_t p = 0; p < layout_.replicas.size(); ++p) {
    const Replica& rep = layout_.replicas[p];
    holders_[p].owner = servers.at(rep.owner);
    if (rep.backup != kNoServer) holders_[p].backup = servers.at(rep.backup);
    holders_[p].backup_assigned_in = servers.epoch;
  }
}

const Layout& FailoverPolicy::Start(const ServerNodes& servers) {
  Reset(servers, options_.restore_step, 0);
  started_ = true;
  return layout_;
}

std::vector<uint32_t> FailoverPolicy::LostPartitions(const ServerNodes& servers) const {
  std::vector<uint32_t> lost;
  for (uint32_t p = 0; p < layout_.replicas.size(); ++p) {
    const Replica& rep = layout_.replicas[p];
    const Holders& h = holders_[p];
    const bool owner_here = h.owner != kUnassignedId && servers.at(rep.owner) == h.owner;
    const bool backup_usable = rep.backup != kNoServer && rep.synced && h.backup != kUnassignedId &&
                               servers.at(rep.backup) == h.backup;
    if (!owner_here && !backup_usable) lost.push_back(p);
  }
  return lost;
}

FailoverDecision FailoverPolicy::OnMembership(const ServerNodes& servers) {
  FailoverDecision d;
  if (!started_) return d;
  // Every copy is judged against this view before anything moves: when an
  // owner and its backup are gone in the same view the partition is lost,
  // not failed over to a backup that is dead too.
  const std::vector<uint32_t> lost = LostPartitions(servers);
  if (!lost.empty()) return DecideLoss(servers, lost);
  Layout next = layout_;
  std::vector<Holders> holders = holders_;
  ReplaceDeadCopies(servers, next, holders, d);
  if (options_.replication > 1) AssignBackups(servers, next, holders, d);
  holders_ = std::move(holders);
  if (next.Encode() == layout_.Encode()) return d;
  layout_ = std::move(next);
  d.kind = FailoverDecision::kNewLayout;
  d.layout = layout_;
  return d;
}

FailoverDecision FailoverPolicy::DecideLoss(const ServerNodes& servers,
                                            const std::vector<uint32_t>& lost) {
  FailoverDecision d;
  const std::string which = "partition(s) " + List(lost);
  if (!options_.checkpoints) {
    d.kind = FailoverDecision::kFail;
    d.failure = UnavailableError(which +
                                 " lost every copy (no live replica and no checkpoints); the job "
                                 "stops");
    d.events.push_back({LogLevel::kError, d.failure.message()});
    return d;
  }
  std::vector<uint32_t> missing;
  for (uint32_t r = 0; r < options_.num_servers; ++r) {
    if (servers.at(r) == kUnassignedId) missing.push_back(r);
  }
  if (!missing.empty()) {
    // Every rank reloads the checkpoint: all of them must be there first.
    d.kind = FailoverDecision::kWaitForRestart;
    d.events.push_back({LogLevel::kWarning,
                        which + " lost every copy; waiting for server rank(s) " + List(missing) +
                            " to be restarted to roll back to the last "
                            "checkpoint"});
    return d;
  }
  Result<int64_t> step =
      options_.latest_checkpoint ? options_.latest_checkpoint() : NotFoundError("no checkpoints");
  if (!step.ok()) {
    d.kind = FailoverDecision::kFail;
    d.failure = DataLossError(which +
                              " lost every copy and there is no good checkpoint to roll back "
                              "to: " +
                              step.status().message());
    d.events.push_back({LogLevel::kError, d.failure.message()});
    return d;
  }
  Reset(servers, *step, layout_.generation + 1);
  d.kind = FailoverDecision::kRollBack;
  d.layout = layout_;
  d.restore_step = *step;
  d.events.push_back({LogLevel::kWarning, which +
                                              " lost every copy: rolling the job back to "
                                              "checkpoint " +
                                              std::to_string(*step) + " (generation " +
                                              std::to_string(layout_.generation) + ")"});
  return d;
}

void FailoverPolicy::ReplaceDeadCopies(const ServerNodes& servers, Layout& next,
                                       std::vector<Holders>& holders, FailoverDecision& d) const {
  for (uint32_t p = 0; p < next.replicas.size(); ++p) {
    Replica& rep = next.replicas[p];
    Holders& h = holders[p];
    const bool owner_here = servers.at(rep.owner) == h.owner;
    const bool backup_here = rep.backup != kNoServer && servers.at(rep.backup) == h.backup;
    if (!owner_here) {
      // Not lost, so the backup is here and synced.
      d.events.push_back({LogLevel::kWarning, "partition " + std::to_string(p) +
                                                  " fails over from " + Server(rep.owner) +
                                                  " to its backup " + Server(rep.backup)});
      rep.owner = rep.backup;
      h.owner = h.backup;
    } else if (rep.backup == kNoServer || backup_here) {
      continue;
    } else {
      d.events.push_back({LogLevel::kWarning, "partition " + std::to_string(p) +
                                                  " lost its backup " + Server(rep.backup) +
                                                  (rep.synced ? "" : " while it was syncing")});
    }
    rep.backup = kNoServer;
    rep.synced = false;
    h.backup = kUnassignedId;
  }
}

void FailoverPolicy::AssignBackups(const ServerNodes& servers, Layout& next,
                                   std::vector<Holders>& holders, FailoverDecision& d) const {
  std::map<uint32_t, int> load;  // live ranks (restarted ones included) -> copies held
  for (uint32_t r = 0; r < options_.num_servers; ++r) {
    if (servers.at(r) != kUnassignedId) load.emplace(r, 0);
  }
  for (const Replica& rep : next.replicas) {
    if (load.count(rep.owner)) ++load[rep.owner];
    if (rep.backup != kNoServer && load.count(rep.backup)) ++load[rep.backup];
  }
  for (uint32_t p = 0; p < next.replicas.size(); ++p) {
    Replica& rep = next.replicas[p];
    if (rep.backup != kNoServer) continue;
    // The least loaded live server, one of another host than the owner's first.
    uint32_t best = kNoServer;
    auto key = [&](uint32_t r) { return std::make_pair(servers.SameHost(r, rep.owner), load[r]); };
    for (auto [r, n] : load) {
      if (r != rep.owner && (best == kNoServer || key(r) < key(best))) best = r;
    }
    if (best == kNoServer) continue;  // nobody else is alive: degraded
    d.events.push_back({LogLevel::kInfo, "partition " + std::to_string(p) +
                                             " gets a new backup: " + Server(best) +
                                             " (syncing from " + Server(rep.owner) + ")"});
    rep.backup = best;
    rep.synced = false;
    holders[p].backup = servers.at(best);
    holders[p].backup_assigned_in = servers.epoch;
    ++load[best];
  }
}

FailoverDecision FailoverPolicy::OnReplicaSynced(uint32_t partition, NodeId from, uint32_t epoch) {
  FailoverDecision d;
  if (!started_ || partition >= layout_.replicas.size()) return d;
  Replica& rep = layout_.replicas[partition];
  const Holders& h = holders_[partition];
  if (rep.backup == kNoServer || rep.synced) return d;
  if (from != h.backup || epoch <= h.backup_assigned_in) {
    // A former backup's, or sent before its node could know of this
    // assignment (the layout naming it is published after that epoch).
    d.events.push_back({LogLevel::kInfo, "ignored a stale report that partition " +
                                             std::to_string(partition) + " is in sync (node " +
                                             std::to_string(from) + ", epoch " +
                                             std::to_string(epoch) + ")"});
    return d;
  }
  rep.synced = true;
  d.kind = FailoverDecision::kNewLayout;
  d.layout = layout_;
  d.events.push_back({LogLevel::kInfo, "partition " + std::to_string(partition) + ": backup " +
                                           Server(rep.backup) + " is in sync"});
  return d;
}

}  // namespace distopt
