#include "kv/client.h"

#include <algorithm>
#include <cstring>

#include "base/flat_map.h"

namespace distopt {
namespace {

// The refusal of a span whose length does not fit the table, e.g.
// "pull of table 'w' into 5 floats; the table holds 7".
Status WrongLength(MsgType type, const TableSpec& spec, const char* span_role, size_t got,
                   const std::string& want) {
  return InvalidArgumentError(std::string(MsgTypeName(type)) + " of table '" + spec.name + "' " +
                              span_role + " " + std::to_string(got) + " floats; " + want);
}

}  // namespace

KvClient::KvClient(KvClientOptions options, std::vector<TableSpec> tables, Transport* transport,
                   Dispatcher* dispatcher, Logger log)
    : options_(options), tables_(std::move(tables)), transport_(transport), log_(std::move(log)) {
  for (MsgType t :
       {MsgType::kPushAck, MsgType::kPullReply, MsgType::kKvError, MsgType::kHostParams}) {
    dispatcher->Handle(t, [this](Message&& m) { OnReply(std::move(m)); });
  }
  dispatcher->Handle(MsgType::kHostPush, [this](Message&& m) { OnHostPush(std::move(m)); });
  // Always ticking: a part answered from before a rollback is re-sent from
  // here even when retries are off.
  const Duration tick = options_.retry_interval > Duration::zero()
                            ? std::min<Duration>(options_.retry_interval / 4, kStaleResendDelay)
                            : kStaleResendDelay;
  dispatcher->OnTick(tick, [this] { Tick(); });
}

Status KvClient::OnViewChange(const ClusterView& view) {
  ASSIGN_OR_RETURN(Layout layout, Layout::Decode(view.layout));
  if (layout.tables.size() != tables_.size()) {
    return InvalidArgumentError(
        "the coordinator's layout has " + std::to_string(layout.tables.size()) +
        " tables, this worker's model declares " + std::to_string(tables_.size()));
  }
  MutexLock lock(&mu_);
  if (has_layout_ && layout.generation > generation_) {
    // Rolled back: nothing in flight belongs to the job any more, and
    // nothing the caller builds before it has asked where the job is now.
    Status s =
        AbortedError("the job rolled back to checkpoint " + std::to_string(layout.restore_step));
    for (auto& [id, part] : inflight_) Finish(*part.req, s, 0);
    inflight_.clear();
    for (auto& [key, wait] : host_wait_) FinishEarly(*wait.req, s).IgnoreError();
    host_wait_.clear();
    group_.Clear();
    rejoin_pending_ = true;
  }
  if (!has_layout_ || layout.generation != generation_) generation_epoch_ = view.epoch;
  has_layout_ = true;
  generation_ = layout.generation;
  layout_ = std::move(layout);
  epoch_ = view.epoch;
  const std::vector<NodeId> before = std::move(server_ids_);
  server_ids_.assign(layout_.num_servers, kUnassignedId);
  for (const Member* s : view.Live(Role::kServer)) {
    if (s->rank < server_ids_.size()) server_ids_[s->rank] = s->id;
  }
  // What is queued for a server that left is never read: release it (the
  // parts it carried go to the new owners below).
  for (NodeId gone : before) {
    if (gone != kUnassignedId &&
        std::find(server_ids_.begin(), server_ids_.end(), gone) == server_ids_.end()) {
      transport_->DropQueued(gone);
    }
  }
  for (const auto& m : view.members) {
    if (m.alive && m.address == transport_->address()) {
      self_id_ = m.id;
      self_rank_ = m.rank;
    }
  }
  for (const Member* s : view.Live(Role::kServer)) {
    RETURN_IF_ERROR(transport_->Connect(s->id, s->address));
  }
  // A partition changed hands (its owner died and the backup took over):
  // what the old owner did not answer goes to the new one, which applies a
  // push it already has once.
  auto now = options_.env->Now();
  int moved = 0;
  for (auto& [id, part] : inflight_) {
    if (part.to_leader) continue;  // OnHostView's
    NodeId owner = OwnerNode(part.partition);
    if (owner == part.sent_to || owner == kUnassignedId) continue;
    ++moved;
    part.sent = now;
    ++stats_.retries;
    SendCopy(part, owner);
  }
  if (moved > 0) {
    log_.Info("epoch ", epoch_, ": re-sent ", moved, " unanswered request part(s) to new owners");
  }
  OnHostView(view);
  return Status::Ok();
}

NodeId KvClient::RouteOf(const Part& part) const {
  return part.to_leader ? group_.leader() : OwnerNode(part.partition);
}

NodeId KvClient::OwnerNode(uint32_t p) const {
  if (p >= layout_.replicas.size()) return kUnassignedId;
  uint32_t rank = layout_.OwnerOf(p);
  return rank < server_ids_.size() ? server_ids_[rank] : kUnassignedId;
}

std::string KvClient::Describe(uint32_t p) const {
  uint32_t rank = p < layout_.replicas.size() ? layout_.OwnerOf(p) : p;
  std::string out = "server/" + std::to_string(rank);
  if (rank != p) out += " (partition " + std::to_string(p) + ")";
  return out;
}

void KvClient::RequestCheckpointAt(int64_t clock) {
  MutexLock lock(&mu_);
  checkpoint_clock_ = clock;
}

uint32_t KvClient::generation() const {
  MutexLock lock(&mu_);
  return generation_;
}

KvClientStats KvClient::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

KvHandle KvClient::Failed(Status s) {
  auto h = std::make_shared<KvRequest>();
  MutexLock lock(&h->mu_);
  h->status_ = std::move(s);
  return h;
}

KvHandle KvClient::Push(uint32_t table, std::span<const float> grads, int64_t clock) {
  return Dense(MsgType::kPush, table, grads, {}, clock);
}
KvHandle KvClient::Pull(uint32_t table, std::span<float> out, int64_t clock) {
  return Dense(MsgType::kPull, table, {}, out, clock);
}
KvHandle KvClient::PushPull(uint32_t table, std::span<const float> grads, std::span<float> out,
                            int64_t clock) {
  return Dense(MsgType::kPushPull, table, grads, out, clock);
}
KvHandle KvClient::PushPullGroup(uint32_t table, std::span<const float> sum, std::span<float> out,
                                 int64_t clock, std::vector<uint32_t> group) {
  return Dense(MsgType::kPushPull, table, sum, out, clock, group);
}
KvHandle KvClient::PushFor(uint32_t table, std::span<const float> grads, int64_t clock,
                           std::vector<uint32_t> ranks) {
  return Dense(MsgType::kPush, table, grads, {}, clock, ranks);
}
KvHandle KvClient::PushSparseFor(uint32_t table, std::span<const uint64_t> keys,
                                 std::span<const float> grads, int64_t clock, uint32_t rank) {
  return Sparse(MsgType::kPush, table, keys, grads, {}, clock, {rank});
}
std::optional<KvHandle> KvClient::ContributeFor(uint32_t table, std::span<const float> grads,
                                                int64_t clock, uint32_t rank) {
  if (Status s = CheckKind(MsgType::kPush, table, /*sparse=*/false); !s.ok()) {
    return Failed(std::move(s));
  }
  if (grads.size() != tables_[table].size) {
    return Failed(WrongLength(MsgType::kPush, tables_[table], "carries", grads.size(),
                              "the table holds " + std::to_string(tables_[table].size)));
  }
  {
    MutexLock lock(&mu_);
    // Computed before a rollback: it must not join the replay's sum.
    if (Status s = AdmitClock(clock); !s.ok()) return Failed(s);
    Message m;
    m.type = MsgType::kHostPush;
    m.values = Buffer::Copy(grads.data(), grads.size_bytes());
    switch (group_.Contribute(table, clock,
                              {.rank = rank, .node = kUnassignedId, .push = std::move(m)})) {
      case HostGroup::Added::kStored:
        TryLaunch(table, clock, /*force=*/false);
        return Failed(Status::Ok());  // in the sum: nothing to wait for
      case HostGroup::Added::kNotLeading:
        return std::nullopt;
      case HostGroup::Added::kLate:
        break;
    }
  }
  return PushFor(table, grads, clock, {rank});
}
KvHandle KvClient::PushSparse(uint32_t table, std::span<const uint64_t> keys,
                              std::span<const float> grads, int64_t clock) {
  return Sparse(MsgType::kPush, table, keys, grads, {}, clock);
}
KvHandle KvClient::PullSparse(uint32_t table, std::span<const uint64_t> keys, std::span<float> out,
                              int64_t clock) {
  return Sparse(MsgType::kPull, table, keys, {}, out, clock);
}
KvHandle KvClient::PushPullSparse(uint32_t table, std::span<const uint64_t> keys,
                                  std::span<const float> grads, std::span<float> out,
                                  int64_t clock) {
  return Sparse(MsgType::kPushPull, table, keys, grads, out, clock);
}

Status KvClient::CheckKind(MsgType type, uint32_t table, bool sparse) const {
  const std::string what = std::string(MsgTypeName(type)) + " of table " + std::to_string(table);
  if (table >= tables_.size()) {
    return InvalidArgumentError(what + ": the job has " + std::to_string(tables_.size()) +
                                " tables");
  }
  if (tables_[table].sparse != sparse) {
    return InvalidArgumentError(what + " '" + tables_[table].name + "': the table is " +
                                (sparse ? "dense" : "sparse") + ", the request " +
                                (sparse ? "sparse" : "dense"));
  }
  return Status::Ok();
}

KvHandle KvClient::Dense(MsgType type, uint32_t table, std::span<const float> grads,
                         std::span<float> out, int64_t clock, const std::vector<uint32_t>& group) {
  if (Status s = CheckKind(type, table, /*sparse=*/false); !s.ok()) return Failed(std::move(s));
  const TableSpec& spec = tables_[table];
  const bool pushes = type != MsgType::kPull;
  const bool pulls = type != MsgType::kPush;
  // A span of the wrong length is the caller's bug: refuse it here, naming
  // the table, before a reply could write past the caller's memory.
  const std::string want = "the table holds " + std::to_string(spec.size);
  if (pushes && grads.size() != spec.size) {
    return Failed(WrongLength(type, spec, "carries", grads.size(), want));
  }
  if (pulls && out.size() != spec.size) {
    return Failed(WrongLength(type, spec, "into", out.size(), want));
  }
  auto h = std::make_shared<KvRequest>();
  if (pushes) h->loan_ = std::make_unique<Loan>(grads.data(), grads.size_bytes());
  const Buffer values = pushes ? h->loan_->buffer() : Buffer();
  h->what_ = std::string(MsgTypeName(type)) + " of table '" + spec.name + "' at clock " +
             std::to_string(clock);
  MutexLock lock(&mu_);
  if (layout_.tables.empty()) return Failed(FailedPreconditionError("KvClient has no layout yet"));
  if (Status s = AdmitClock(clock); !s.ok()) return Failed(s);
  ++stats_.requests;
  if (type == MsgType::kPushPull && group.empty() && clock >= 0 && group_.active()) {
    h = HostPushPull(std::move(h), table, values, grads, out, clock);
  } else {
    SendSlices(h, type, table, values, out, clock, group);
  }
  if (h->loan_ != nullptr) h->loan_->Close();  // the parts' messages hold it now
  return h;
}

void KvClient::SendSlices(const KvHandle& h, MsgType type, uint32_t table, const Buffer& values,
                          std::span<float> out, int64_t clock, const std::vector<uint32_t>& group,
                          const std::function<void(const DenseSlice&)>& fill) {
  const bool pushes = type != MsgType::kPull;
  const bool pulls = type != MsgType::kPush;
  const auto& slices = layout_.tables[table].slices;
  {
    MutexLock request_lock(&h->mu_);
    h->pending_ += static_cast<int>(slices.size());
  }
  for (const DenseSlice& s : slices) {
    if (fill) fill(s);
    Part p;
    p.req = h;
    p.partition = s.partition;
    p.msg.type = type;
    if (pushes) p.msg.values = values.Slice(s.begin * sizeof(float), s.size() * sizeof(float));
    if (pulls) {
      p.out = out.subspan(s.begin, s.size());
      p.expect = s.size();
    }
    uint64_t id = next_id_++;
    h->parts_.push_back(id);
    SendPart(id, std::move(p),
             {.table = table,
              .partition = s.partition,
              .clock = clock,
              .offset = s.begin,
              .group = group});
  }
}

KvHandle KvClient::Sparse(MsgType type, uint32_t table, std::span<const uint64_t> keys,
                          std::span<const float> grads, std::span<float> out, int64_t clock,
                          const std::vector<uint32_t>& group) {
  if (Status s = CheckKind(type, table, /*sparse=*/true); !s.ok()) return Failed(std::move(s));
  const TableSpec& spec = tables_[table];
  const uint32_t dim = spec.dim;
  const bool pushes = type != MsgType::kPull;
  const bool pulls = type != MsgType::kPush;
  const uint64_t floats = keys.size() * dim;
  const std::string want = std::to_string(keys.size()) + " keys of dim " + std::to_string(dim) +
                           " take " + std::to_string(floats);
  if (pushes && grads.size() != floats) {
    return Failed(WrongLength(type, spec, "carries", grads.size(), want));
  }
  if (pulls && out.size() != floats) {
    return Failed(WrongLength(type, spec, "into", out.size(), want));
  }
  uint32_t num_parts;
  {
    MutexLock lock(&mu_);
    if (layout_.tables.empty())
      return Failed(FailedPreconditionError("KvClient has no layout yet"));
    if (Status s = AdmitClock(clock); !s.ok()) return Failed(s);
    num_parts = layout_.num_partitions;
  }
  // Merge duplicates and split by server outside the lock: this is the
  // caller's CPU time, not the dispatcher's.
  std::vector<std::vector<uint64_t>> skeys(num_parts);
  std::vector<std::vector<float>> svals(pushes ? num_parts : 0);
  auto plan = std::make_shared<SparsePlan>();
  plan->dim = dim;
  plan->by_partition.resize(num_parts);
  // Hashing spreads keys evenly: reserve each partition's share (plus slack)
  // so the vectors do not grow by doubling (the copies were measurable).
  const size_t share = keys.size() / num_parts + keys.size() / (8 * num_parts) + 64;
  for (uint32_t s = 0; s < num_parts; ++s) {
    skeys[s].reserve(share);
    if (pushes) svals[s].reserve(share * dim);
    if (pulls) plan->by_partition[s].reserve(share);
  }
  // Unique key u -> (its server, its row in that server's request).
  FlatMap seen;
  seen.Reserve(keys.size());
  std::vector<std::pair<uint32_t, uint32_t>> where;
  where.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    auto [slot, fresh] = seen.Insert(keys[i], static_cast<uint32_t>(where.size()));
    if (fresh) {
      uint32_t s = SparsePartitionOf(keys[i], num_parts);
      where.emplace_back(s, static_cast<uint32_t>(skeys[s].size()));
      skeys[s].push_back(keys[i]);
      if (pushes) {
        svals[s].insert(svals[s].end(), grads.begin() + i * dim, grads.begin() + (i + 1) * dim);
      }
    } else if (pushes) {
      auto [s, pos] = where[*slot];
      float* dst = svals[s].data() + static_cast<size_t>(pos) * dim;
      for (uint32_t j = 0; j < dim; ++j) dst[j] += grads[i * dim + j];
    }
    if (pulls) {
      const auto& w = where[*slot];
      plan->by_partition[w.first].push_back({static_cast<uint32_t>(i), w.second});
    }
  }
  auto h = std::make_shared<KvRequest>();
  h->what_ = std::string(MsgTypeName(type)) + " of table '" + spec.name + "' at clock " +
             std::to_string(clock);
  MutexLock lock(&mu_);
  {
    MutexLock request_lock(&h->mu_);  // not shared yet; for the analysis
    h->pending_ = static_cast<int>(num_parts);
  }
  ++stats_.requests;
  for (uint32_t s = 0; s < num_parts; ++s) {
    // Every partition hears from us each clock, keys or not: BSP and SSP
    // count a worker's clocks per partition.
    Part p;
    p.req = h;
    p.partition = s;
    p.msg.type = type;
    p.expect = skeys[s].size() * dim;
    p.msg.keys = Buffer::FromVector(std::move(skeys[s]));
    if (pushes) p.msg.values = Buffer::FromVector(std::move(svals[s]));
    if (pulls) {
      p.out = out;
      p.plan = plan;
    }
    uint64_t id = next_id_++;
    h->parts_.push_back(id);
    SendPart(id, std::move(p),
             {.table = table, .partition = s, .clock = clock, .sparse = true, .group = group});
  }
  return h;
}

Status KvClient::AdmitClock(int64_t clock) {
  if (clock < 0) {
    rejoin_pending_ = false;  // the caller asks where the job is: it knows
    return Status::Ok();
  }
  if (!rejoin_pending_) return Status::Ok();
  // Built before the caller learned of the rollback (its clock and values
  // are of the abandoned past): sent now it would carry the new epoch and
  // be taken for a request of the replay.
  return AbortedError("the job rolled back to checkpoint " + std::to_string(layout_.restore_step) +
                      "; rejoin (a pull at clock -1) before sending more");
}

void KvClient::SendPart(uint64_t id, Part part, KvHeader head) {
  part.msg.request_id = id;
  part.msg.sender = self_id_;
  head.checkpoint = head.clock == checkpoint_clock_ &&
                    (part.msg.type == MsgType::kPush || part.msg.type == MsgType::kPushPull);
  // Encoded once: retries and failovers re-send this body with a new epoch.
  part.msg.body = EncodeKvBody(head);
  part.msg.epoch = epoch_;
  part.sent = options_.env->Now();
  NodeId server = RouteOf(part);
  part.sent_to = server;
  Message copy = part.msg;  // shares the payload buffers
  auto [it, inserted] = inflight_.emplace(id, std::move(part));
  ++stats_.messages;
  if (server == kUnassignedId) return;  // no live server for that rank yet: retried later
  {
    MutexLock request_lock(&it->second.req->mu_);
    it->second.req->sent_to_.push_back(server);
  }
  Status s = transport_->Send(server, std::move(copy));
  if (!s.ok()) {
    KvHandle req = it->second.req;
    inflight_.erase(it);
    Finish(*req, s, 0);
  }
}

void KvClient::OnReply(Message&& m) {
  const Result<KvHeader> head = DecodeKvHeader(m);
  MutexLock lock(&mu_);
  if (!head.ok()) {
    ++stats_.bad_replies;
    log_.Warn("dropped a ", MsgTypeName(m.type), " from node ", m.sender, ": ",
              head.status().message());
    return;
  }
  auto it = inflight_.find(m.request_id);
  if (it == inflight_.end()) {
    ++stats_.stale_replies;
    return;
  }
  Part& p = it->second;
  Status s;
  if (p.to_leader) {
    // Asked again, pushed to the servers, or more slices to come.
    if (!HostReply(it->first, p, m, *head, &s)) return;
  } else if ((m.type == MsgType::kPullReply || m.type == MsgType::kPushAck) &&
             m.epoch < generation_epoch_) {
    // Answered by a server that has not seen the rollback yet (this
    // request overtook the coordinator's word on the way): its values and
    // clock are of the abandoned past. Asked again shortly, by Tick.
    ++stats_.pre_rollback_replies;
    log_.Info("node ", m.sender, " answered the ", p.req->what_, " from epoch ", m.epoch,
              ", before the rollback of epoch ", generation_epoch_, ": asking again");
    p.resend_at = options_.env->Now() + kStaleResendDelay;
    return;
  }
  if (m.type == MsgType::kKvError && m.status == static_cast<uint32_t>(StatusCode::kUnavailable)) {
    // Sent by a stale view to a server that does not serve the partition:
    // it goes to the owner of the next view (or with the next retry).
    log_.Debug("node ", m.sender, " redirects request ", m.request_id, ": ", KvErrorReason(m));
    return;
  }
  if (m.type == MsgType::kKvError) {
    s = Status(static_cast<StatusCode>(m.status),
               Describe(p.partition) + " refused the " + p.req->what_ + ": " + KvErrorReason(m));
  } else if (m.type == MsgType::kPullReply) {
    if (m.num_values() != p.expect) {
      s = InternalError(Describe(p.partition) + " answered the " + p.req->what_ + " with " +
                        std::to_string(m.num_values()) + " floats, expected " +
                        std::to_string(p.expect));
    } else if (p.plan) {
      const float* src = m.values.as<float>().data();
      const uint32_t dim = p.plan->dim;
      // Rows land inside `out`: Sparse checked out.size() == keys x dim.
      // memcpy, not a float copy: a received frame need not be aligned.
      for (auto [row, pos] : p.plan->by_partition[p.partition]) {
        std::memcpy(p.out.data() + static_cast<size_t>(row) * dim,
                    src + static_cast<size_t>(pos) * dim, dim * sizeof(float));
      }
    } else if (!p.out.empty()) {
      // A dense slice: the reply's size equals out.size() (checked above).
      std::memcpy(p.out.data(), m.values.data(), m.values.size());
      ForwardSlice(*p.req, p.out, m, head->clock);
    }
  }
  KvHandle req = std::move(p.req);
  inflight_.erase(it);
  Finish(*req, s, head->clock);
}

void KvClient::Finish(KvRequest& r, const Status& s, int64_t clock) {
  MutexLock lock(&r.mu_);
  if (!s.ok() && r.status_.ok()) r.status_ = s;
  r.clock_ = std::min(r.clock_, clock);
  if (clock != INT64_MAX) r.newest_clock_ = std::max(r.newest_clock_, clock);
  if (--r.pending_ == 0) {
    if (!r.members_.empty()) AnswerMembers(r, r.status_);
    r.done_cv_.SignalAll();
  }
}

Status KvClient::Wait(const KvHandle& h, Deadline deadline) {
  if (WaitDone(h, deadline)) {
    Settle(h);
    MutexLock lock(&h->mu_);
    return h->status_;
  }
  // Timed out: cancel what is left so a late reply cannot write into memory
  // the caller is about to reuse, and say whom we were waiting for.
  const std::string waiting = Forget(h);
  Status s =
      FinishEarly(*h, DeadlineExceededError("the " + h->what_ + " got no answer from " + waiting));
  Settle(h);
  return s;
}

void KvClient::Cancel(const KvHandle& h) {
  Forget(h);
  FinishEarly(*h, AbortedError("the " + h->what_ + " was cancelled")).IgnoreError();
  Settle(h);
}

std::string KvClient::Forget(const KvHandle& h) {
  MutexLock lock(&mu_);
  std::string waiting;
  for (uint64_t id : h->parts_) {
    auto it = inflight_.find(id);
    if (it == inflight_.end()) continue;
    uint32_t p = it->second.partition;
    if (!waiting.empty()) waiting += ", ";
    if (it->second.to_leader) {
      waiting += "worker/" + std::to_string(group_.leader_rank()) + ", the leader of host " +
                 group_.host() + " (node " + std::to_string(it->second.sent_to) + ")";
      inflight_.erase(it);
      continue;
    }
    NodeId node = OwnerNode(p);
    waiting += Describe(p) +
               (node == kUnassignedId ? " (not alive)" : " (node " + std::to_string(node) + ")");
    inflight_.erase(it);
  }
  for (auto it = host_wait_.begin(); it != host_wait_.end();) {
    if (it->second.req != h) {
      ++it;
      continue;
    }
    if (!waiting.empty()) waiting += ", ";
    const auto [table, clock] = it->first;
    waiting += group_.Missing(table, clock) + " (gradients for host " + group_.host() + ")";
    it = host_wait_.erase(it);
    // The members that did send theirs push them to the servers instead.
    for (const HostGroup::Contribution& c : group_.Take(table, clock)) {
      if (c.node == kUnassignedId) continue;  // the leader's own, for an adopted rank
      Message m;
      m.request_id = c.request_id;
      m.sender = c.node;
      RefuseHostPush(
          m, {.table = table, .clock = clock},
          FailedPreconditionError("the leader gave up on clock " + std::to_string(clock)));
    }
  }
  return waiting;
}

Status KvClient::FinishEarly(KvRequest& r, Status s) {
  MutexLock lock(&r.mu_);
  if (r.pending_ <= 0) return r.status_;
  r.pending_ = 0;
  r.status_ = std::move(s);
  if (!r.members_.empty()) AnswerMembers(r, r.status_);
  r.done_cv_.SignalAll();
  return r.status_;
}

bool KvClient::WaitDone(const KvHandle& h, Deadline deadline) {
  MutexLock lock(&h->mu_);
  while (h->pending_ > 0) {
    if (!h->done_cv_.WaitUntil(&h->mu_, deadline)) return h->pending_ <= 0;
  }
  return true;
}

void KvClient::Tick() {
  MutexLock lock(&mu_);
  auto now = options_.env->Now();
  for (auto& [id, p] : inflight_) {
    const bool answered_stale = p.resend_at != SteadyTime() && now >= p.resend_at;
    const bool retry =
        options_.retry_interval > Duration::zero() && now - p.sent >= options_.retry_interval;
    if (!answered_stale && !retry) continue;
    p.resend_at = SteadyTime();
    NodeId server = RouteOf(p);
    p.sent = now;
    p.sent_to = server;
    if (server == kUnassignedId) continue;
    ++stats_.retries;
    SendCopy(p, server);
  }
}

void KvClient::SendCopy(Part& part, NodeId server) {
  part.sent_to = server;
  Message copy = part.msg;
  copy.epoch = epoch_;
  {
    MutexLock request_lock(&part.req->mu_);
    part.req->sent_to_.push_back(server);
  }
  transport_->Send(server, std::move(copy)).IgnoreError();
}

void KvClient::Settle(const KvHandle& h) {
  if (h->loan_ == nullptr) return;
  // Answered in full, the gradient is already written out (a server answers
  // only what it read): the loan comes back at once. What can still hold it
  // is a copy queued to a server that died (the failover sent it again), a
  // retry's duplicate, or the parts of a request that ended early.
  for (int round = 1;; ++round) {
    if (h->loan_->WaitReturned(Deadline::After(round == 1 ? kSettleFirst : kSettleEvery))) return;
    std::vector<NodeId> peers;
    bool answered = false;
    {
      MutexLock request_lock(&h->mu_);
      peers = h->sent_to_;
      answered = h->status_.ok();
    }
    std::sort(peers.begin(), peers.end());
    peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
    MutexLock lock(&mu_);
    std::string names;
    for (NodeId n : peers) {
      const bool live = std::find(server_ids_.begin(), server_ids_.end(), n) != server_ids_.end() ||
                        (group_.active() && n == group_.leader());
      // A live server's queue holds other requests too: dropped only where
      // nobody waits for it (the request ended early: the job is stopping or
      // rolling back) or where retries would send it again.
      if (!live || !answered || options_.retry_interval > Duration::zero()) {
        transport_->DropQueued(n);
      }
      names += (names.empty() ? "" : ", ") + std::to_string(n);
    }
    if (round % kSettleWarnEvery == 0) {
      log_.Warn("the ", h->what_,
                " waits for its gradient to leave the transport (sent to node(s) ", names,
                "): a server in this process still holds it, or a socket cannot write");
    }
  }
}

}  // namespace distopt
