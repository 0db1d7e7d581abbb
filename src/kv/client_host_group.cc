// KvClient's per-host aggregation (see client.h and kv/host_group.h): a
// member's dense push-pull goes to its host's leader; the leader's waits for
// the members' gradients, pushes their sum once and answers each member
// with the parameters it got back.
#include <algorithm>
#include <cstring>

#include "kv/client.h"

namespace distopt {

KvHandle KvClient::HostPushPull(KvHandle h, uint32_t table, const Buffer& grads,
                                std::span<const float> grads_span, std::span<float> out,
                                int64_t clock) {
  {
    MutexLock request_lock(&h->mu_);
    h->pending_ = 1;  // the leader's members, or the member's leader
  }
  group_.Submitted(table, clock);
  if (!group_.leading()) {
    ++stats_.host_member_pushes;
    Part p;
    p.req = h;
    p.to_leader = true;
    p.table = table;
    p.clock = clock;
    p.msg.type = MsgType::kHostPush;
    p.msg.values = grads;
    p.out = out;
    p.expect = out.size();
    uint64_t id = next_id_++;
    h->parts_.push_back(id);
    SendPart(id, std::move(p), {.table = table, .clock = clock});
    return h;
  }
  h->table_ = table;
  h->out_ = out;
  host_wait_[{table, clock}] = HostWait{h, grads_span, out};
  TryLaunch(table, clock, /*force=*/false);
  return h;
}

void KvClient::TryLaunch(uint32_t table, int64_t clock, bool force) {
  auto it = host_wait_.find({table, clock});
  if (it == host_wait_.end() || (!force && !group_.Complete(table, clock))) return;
  HostWait wait = std::move(it->second);
  host_wait_.erase(it);
  std::vector<HostGroup::Contribution> members = group_.Take(table, clock);
  ++stats_.host_sums;
  uint8_t* bytes = nullptr;
  Buffer sum = Buffer::Allocate(wait.grads.size_bytes(), &bytes);
  float* const dst = reinterpret_cast<float*>(bytes);
  const uint32_t self = group_.self_rank();
  {
    MutexLock request_lock(&wait.req->mu_);
    for (const auto& c : members) {
      // An adopted dead member's (ContributeFor) is answered by nobody.
      if (c.node != kUnassignedId) wait.req->members_.emplace_back(c.node, c.request_id);
    }
    wait.req->answer_as_ = self_id_;
    wait.req->answer_epoch_ = epoch_;
  }
  // Summed slice by slice, each sent as soon as it is summed.
  SendSlices(wait.req, MsgType::kPushPull, table, sum, wait.out, clock, group_.Ranks(members),
             [&](const DenseSlice& s) {
               HostGroup::Sum(self, wait.grads, members, std::span<float>(dst + s.begin, s.size()),
                              s.begin);
             });
  Finish(*wait.req, Status::Ok(), INT64_MAX);  // the placeholder of HostPushPull
}

std::vector<uint32_t> KvClient::HostAdopted() const {
  MutexLock lock(&mu_);
  return group_.adopted();
}

bool KvClient::HostReply(uint64_t id, Part& p, const Message& m, const KvHeader& head, Status* s) {
  if (m.type == MsgType::kHostParams &&
      m.status == static_cast<uint32_t>(StatusCode::kUnavailable)) {
    // The leader has not seen the view that makes it lead (or this worker
    // a member): asked again shortly, by Tick.
    p.resend_at = options_.env->Now() + kStaleResendDelay;
    return false;
  }
  if (m.type != MsgType::kHostParams || m.status != 0) {
    // The leader sent the clock without it: to the servers.
    log_.Debug("worker/", group_.leader_rank(), " refused the ", p.req->what_, ": ",
               KvErrorReason(m));
    FallBack(id);
    return false;
  }
  if (m.num_values() == p.expect) {  // the whole table at once
    std::memcpy(p.out.data(), m.values.data(), m.values.size());
    return true;
  }
  // One slice, as the leader's servers answered it.
  const std::vector<DenseSlice>& slices = layout_.tables[p.table].slices;
  auto slice = std::find_if(slices.begin(), slices.end(), [&](const DenseSlice& x) {
    return x.begin == head.offset && x.size() == m.num_values();
  });
  if (slice == slices.end()) {
    *s = InternalError("worker/" + std::to_string(group_.leader_rank()) + " answered the " +
                       p.req->what_ + " with " + std::to_string(m.num_values()) +
                       " floats at offset " + std::to_string(head.offset) +
                       ", which is neither the table (" + std::to_string(p.expect) +
                       " floats) nor one of its slices");
    return true;
  }
  if (p.got.empty()) p.got.assign(slices.size(), false);
  const size_t i = static_cast<size_t>(slice - slices.begin());
  if (!p.got[i]) {  // a slice sent by an old leader and the new one counts once
    p.got[i] = true;
    ++p.got_count;
    ++stats_.host_slices_taken;
    std::memcpy(p.out.data() + slice->begin, m.values.data(), m.values.size());
  }
  return p.got_count == slices.size();
}

void KvClient::ForwardSlice(KvRequest& r, std::span<const float> out, const Message& reply,
                            int64_t clock) {
  MutexLock request_lock(&r.mu_);
  if (r.members_.empty()) return;
  Message base;
  base.type = MsgType::kHostParams;
  base.sender = r.answer_as_;
  base.epoch = r.answer_epoch_;
  base.body = EncodeKvBody({.table = r.table_,
                            .clock = clock,
                            .offset = static_cast<uint64_t>(out.data() - r.out_.data())});
  base.values = reply.values;
  for (const auto& [node, request_id] : r.members_) {
    Message m = base;
    m.request_id = request_id;
    transport_->Send(node, std::move(m)).IgnoreError();
    ++stats_.host_slices_forwarded;
  }
  r.forwarded_ = true;
}

void KvClient::OnHostPush(Message&& m) {
  MutexLock lock(&mu_);
  AcceptHostPush(std::move(m));
}

void KvClient::AcceptHostPush(Message&& m) {
  const Result<KvHeader> head = DecodeKvHeader(m);
  if (!head.ok()) {
    ++stats_.bad_replies;
    log_.Warn("dropped a host push from node ", m.sender, ": ", head.status().message());
    return;
  }
  const TableSpec* spec = head->table < tables_.size() ? &tables_[head->table] : nullptr;
  if (spec == nullptr || spec->sparse || m.num_values() != spec->size) {
    return RefuseHostPush(m, *head,
                          InvalidArgumentError("a host push must carry a whole dense table"));
  }
  std::optional<uint32_t> rank = group_.RankOf(m.sender);
  if (rank.has_value() && !group_.active()) {
    // Aggregation went off (the job no longer spans hosts) after what it
    // summed: this one goes to the servers from its sender.
    return RefuseHostPush(
        m, *head,
        FailedPreconditionError("host " + group_.host() + " no longer aggregates (epoch " +
                                std::to_string(epoch_) + ")"));
  }
  if (!rank.has_value()) {
    // Sent by a view this worker has not seen yet (it could not even
    // answer: it may not know the sender's address): kept until the next one.
    if (early_.size() >= kMaxEarlyHostPushes) {
      log_.Warn("dropped a host push from node ", early_.front().sender,
                ": too many from nodes this worker does not know as its host's");
      early_.erase(early_.begin());
    }
    early_.push_back(std::move(m));
    return;
  }
  const uint64_t request_id = m.request_id;
  const NodeId sender = m.sender;
  Status refusal;
  switch (group_.Contribute(
      head->table, head->clock,
      {.rank = *rank, .node = sender, .request_id = request_id, .push = std::move(m)})) {
    case HostGroup::Added::kStored:
      return TryLaunch(head->table, head->clock, /*force=*/false);
    case HostGroup::Added::kLate:
      // Sent without it: the member pushes it to the servers itself.
      refusal = FailedPreconditionError("clock " + std::to_string(head->clock) + " of table '" +
                                        spec->name + "' has gone to the servers already");
      break;
    case HostGroup::Added::kNotLeading:
      // The member's view is older than this worker's: it asks again once
      // it knows the leader.
      refusal = UnavailableError("worker/" + std::to_string(self_rank_) + " does not lead host " +
                                 group_.host() + " in epoch " + std::to_string(epoch_));
      break;
  }
  Message answered;
  answered.request_id = request_id;
  answered.sender = sender;
  RefuseHostPush(answered, *head, refusal);
}

void KvClient::RefuseHostPush(const Message& m, const KvHeader& head, const Status& why) {
  Message r;
  r.type = MsgType::kHostParams;
  r.request_id = m.request_id;
  r.status = static_cast<uint32_t>(why.code());
  r.body = EncodeKvBody({.table = head.table, .clock = head.clock}, why.message());
  r.sender = self_id_;
  r.epoch = epoch_;
  transport_->Send(m.sender, std::move(r)).IgnoreError();
}

void KvClient::AnswerMembers(KvRequest& r, const Status& s) {
  Message base;
  base.type = MsgType::kHostParams;
  base.sender = r.answer_as_;
  base.epoch = r.answer_epoch_;
  if (s.ok() && r.forwarded_) {
    r.members_.clear();  // every slice went to them as it came
    return;
  }
  if (s.ok()) {
    base.body = EncodeKvBody({.table = r.table_, .clock = r.clock_});
    base.values = Buffer::Copy(r.out_.data(), r.out_.size_bytes());  // one copy for all of them
  } else {
    base.status = static_cast<uint32_t>(s.code());
    base.body = EncodeKvBody({.table = r.table_}, s.message());
  }
  for (const auto& [node, request_id] : r.members_) {
    Message m = base;
    m.request_id = request_id;
    transport_->Send(node, std::move(m)).IgnoreError();
  }
  r.members_.clear();
}

void KvClient::FallBack(uint64_t id) {
  auto it = inflight_.find(id);
  if (it == inflight_.end()) return;
  Part p = std::move(it->second);
  inflight_.erase(it);
  ++stats_.host_fallbacks;
  SendSlices(p.req, MsgType::kPushPull, p.table, p.msg.values, p.out, p.clock, {});
  Finish(*p.req, Status::Ok(), INT64_MAX);  // the part sent to the leader
}

void KvClient::OnHostView(const ClusterView& view) {
  const bool was_leading = group_.leading();
  group_.OnView(view, self_rank_, options_.host_aggregation, options_.adopt_dead_workers);
  if (group_.active()) {
    for (const Member* w : view.Live(Role::kWorker)) {
      if (w->host != group_.host() || w->id == self_id_) continue;
      if (Status s = transport_->Connect(w->id, w->address); !s.ok()) {
        log_.Warn("cannot reach worker/", w->rank, " of host ", w->host, ": ", s.message());
      }
    }
  }
  // A member's pushes to a leader that is gone: to the new one, or to the
  // servers if this worker leads now (the group counts those clocks as
  // sent: see host_group.h) or there is no group.
  std::vector<uint64_t> orphaned;
  int resent = 0;
  for (auto& [id, part] : inflight_) {
    if (!part.to_leader) continue;
    const Member* leader = view.Find(part.sent_to);
    // A live leader answers what it summed (and refuses, as late, what it
    // did not), even once aggregation is off: pushing it here too could
    // reach a partition before the leader's sum and make that a duplicate.
    if (leader != nullptr && leader->alive) continue;
    if (!group_.active() || group_.leading()) {
      orphaned.push_back(id);
    } else {
      ++resent;
      SendCopy(part, group_.leader());
    }
  }
  for (uint64_t id : orphaned) FallBack(id);
  if (resent + orphaned.size() > 0) {
    log_.Info("epoch ", epoch_, ": host ", group_.host(), " has a new leader (worker/",
              group_.leader_rank(), "); of the push(es) the old one left unanswered, ", resent,
              " go to it, ", orphaned.size(), " to the servers");
  }
  // A member that died is no longer waited for; one that now leads instead
  // of this worker gets nothing more here: send what is in.
  std::vector<std::pair<uint32_t, int64_t>> keys;
  for (const auto& [key, wait] : host_wait_) keys.push_back(key);
  for (auto [table, clock] : keys)
    TryLaunch(table, clock, /*force=*/was_leading && !group_.leading());
  // Host pushes that came before this view, and perhaps for it.
  std::vector<Message> early = std::move(early_);
  early_.clear();
  for (Message& m : early) AcceptHostPush(std::move(m));
}

}  // namespace distopt
