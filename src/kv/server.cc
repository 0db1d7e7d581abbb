#include "kv/server.h"

#include <algorithm>
#include <limits>

#include "base/bytes.h"
#include "kv/checkpoint.h"
#include "kv/request_check.h"

namespace distopt {

KvServer::KvServer(KvServerOptions options, Transport* transport, Logger log)
    : options_(std::move(options)), transport_(transport), log_(std::move(log)) {
  if (!options_.run_dir.empty()) {
    writer_ = std::make_unique<CheckpointWriter>(options_.run_dir, transport_, log_,
                                                 /*max_queued=*/2, options_.env);
  }
}

KvServer::~KvServer() = default;

Status KvServer::Start(uint32_t rank, const ClusterView& view) {
  MutexLock lock(&mu_);
  RETURN_IF_ERROR(Init(rank, view));
  started_ = true;
  ReleaseHeld();
  return Status::Ok();
}

void KvServer::HandleMessage(Message&& m) {
  MutexLock lock(&mu_);
  if (!started_) return Hold(std::move(m));
  Dispatch(std::move(m));
}

void KvServer::Dispatch(Message&& m) {
  if (m.epoch > epoch_) {
    // The sender saw a membership epoch this server has not: it may be a
    // rollback (a push of the new generation applied to the old state would
    // be lost with it), a takeover or a new worker. Kept until that view.
    return Hold(std::move(m));
  }
  const MsgType type = m.type;
  const bool served = type == MsgType::kPush || type == MsgType::kPushPull ||
                      type == MsgType::kPull || type == MsgType::kClock ||
                      type == MsgType::kReplicate || type == MsgType::kReplicateAck;
  if (!served) {
    return Reject(m.sender, m, KvHeader{},
                  InvalidArgumentError(std::string("a server does not handle ") +
                                       MsgTypeName(type) + " messages"));
  }
  // Read in place: the body frame is shared with the transport, not copied.
  Result<KvHeader> head = DecodeKvHeader(m);
  if (!head.ok()) return Reject(m.sender, m, KvHeader{}, head.status());
  switch (type) {
    case MsgType::kPush:
      return HandlePush(std::move(m), *head, false);
    case MsgType::kPushPull:
      return HandlePush(std::move(m), *head, true);
    case MsgType::kPull:
      return HandlePull(std::move(m), *head);
    case MsgType::kClock:
      return HandleClock(std::move(m), *head);
    case MsgType::kReplicate:
      return HandleReplicate(std::move(m), *head);
    default:  // kReplicateAck
      return HandleReplicateAck(m, *head);
  }
}

void KvServer::Hold(Message m) {
  if (held_.size() >= kMaxHeld) {
    log_.Warn("dropped a ", MsgTypeName(m.type), " of epoch ", m.epoch, " from node ", m.sender,
              ": ", kMaxHeld, " requests already wait for this server to ",
              started_ ? "see their epoch" : "start");
    return;
  }
  log_.Debug("keeping a ", MsgTypeName(m.type), " of epoch ", m.epoch, " from node ", m.sender,
             started_ ? " until this server sees that epoch" : " until this server starts");
  ++stats_.held;
  held_.push_back(std::move(m));
}

void KvServer::ReleaseHeld() {
  // Requests sent by nodes that saw a later epoch first; those still ahead
  // of this server are held again.
  std::vector<Message> held;
  held.swap(held_);
  for (Message& m : held) Dispatch(std::move(m));
}

Status KvServer::MakePartition(uint32_t p, bool owner) {
  auto part = PartitionReplica::Make(p, owner, options_.tables, layout_, options_.consistency,
                                     num_workers_, transport_);
  if (!part.ok()) {
    parts_[p].reset();
    return part.status();
  }
  parts_[p] = std::move(*part);
  return Status::Ok();
}

Status KvServer::Init(uint32_t rank, const ClusterView& view) {
  RETURN_IF_ERROR(ValidateTables(options_.tables));
  ASSIGN_OR_RETURN(layout_, Layout::Decode(view.layout));
  if (layout_.tables.size() != options_.tables.size()) {
    return InvalidArgumentError(
        "the coordinator's layout has " + std::to_string(layout_.tables.size()) +
        " tables, this server's config " + std::to_string(options_.tables.size()) +
        " (do all nodes use the same config?)");
  }
  rank_ = rank;
  num_workers_ = view.num_workers;
  parts_.clear();
  parts_.resize(layout_.num_partitions);
  uint64_t floats = 0;
  std::string held;
  for (uint32_t p = 0; p < layout_.num_partitions; ++p) {
    const Replica& rep = layout_.replicas[p];
    if (rep.owner != rank_ && rep.backup != rank_) continue;
    RETURN_IF_ERROR(MakePartition(p, rep.owner == rank_));
    parts_[p]->set_synced(rep.owner == rank_ || rep.synced);
    for (const TableReplica& t : parts_[p]->tables()) floats += t.dense ? t.dense->size() : 0;
    held +=
        (held.empty() ? "" : ", ") + std::to_string(p) + (rep.owner == rank_ ? "" : " (backup)");
  }
  log_.Info("holding partition(s) ", held.empty() ? "none" : held, ": ", floats,
            " dense floats of ", options_.tables.size(), " table(s); consistency ",
            ConsistencyName(options_.consistency.mode),
            options_.consistency.mode == Consistency::kSsp
                ? " (staleness " + std::to_string(options_.consistency.staleness) + ")"
                : std::string());
  if (const Member* me = view.FindRank(Role::kServer, rank_)) self_id_ = me->id;
  epoch_ = view.epoch;
  generation_ = layout_.generation;
  if (generation_ > 0) rollback_epoch_ = view.epoch;  // joined a rolled-back job
  RETURN_IF_ERROR(ApplyMembers(view));
  if (layout_.restore_step >= 0) {
    RETURN_IF_ERROR(RestoreCheckpoint(layout_.restore_step));
  } else if (options_.checkpoint_every_steps > 0 && writer_) {
    // Checkpoint 0 (the initial parameters): a server lost before the first
    // periodic checkpoint can still be rolled back to something.
    for (const auto& part : parts_) {
      if (part && part->owner()) TakeCheckpoint(*part, 0);
    }
  }
  ApplyAssignment();
  return Status::Ok();
}

Status KvServer::ApplyMembers(const ClusterView& view) {
  worker_rank_.clear();
  live_.assign(num_workers_, false);
  worker_host_.resize(num_workers_);  // a dead worker's host is kept (CheckGroup)
  Status first;
  for (const Member& w : view.members) {
    // Dead workers' hosts too: a server that starts after a death still
    // knows the rank was the job's (its slot is waited for and adopted). A
    // live incarnation's host wins over a dead one's.
    if (w.role != Role::kWorker || w.rank >= num_workers_) continue;
    if (w.alive || worker_host_[w.rank].empty()) worker_host_[w.rank] = w.host;
  }
  for (const Member* w : view.Live(Role::kWorker)) {
    worker_rank_[w->id] = w->rank;
    if (w->rank < live_.size()) live_[w->rank] = true;
    if (Status s = transport_->Connect(w->id, w->address); !s.ok()) {
      log_.Warn("cannot reach worker/", w->rank, " at ", w->address, ": ", s.message());
      if (first.ok()) first = s;
    }
  }
  waited_ = live_;
  if (options_.consistency.adopt_dead_workers && options_.consistency.mode == Consistency::kBsp) {
    for (uint32_t r = 0; r < num_workers_; ++r) waited_[r] = !worker_host_[r].empty();
  }
  server_ids_.clear();
  for (const Member* s : view.Live(Role::kServer)) {
    server_ids_[s->rank] = s->id;
    if (s->rank == rank_) continue;
    if (Status c = transport_->Connect(s->id, s->address); !c.ok()) {
      log_.Warn("cannot reach server/", s->rank, " at ", s->address, ": ", c.message());
    }
  }
  return first;
}

NodeId KvServer::NodeOfServer(uint32_t rank) const {
  auto it = server_ids_.find(rank);
  return rank == kNoServer || it == server_ids_.end() ? kUnassignedId : it->second;
}

void KvServer::ApplyAssignment() {
  for (uint32_t p = 0; p < layout_.num_partitions; ++p) {
    const Replica& rep = layout_.replicas[p];
    std::unique_ptr<PartitionReplica>& part = parts_[p];
    if (rep.owner == rank_) {
      if (!part) {
        log_.Error("assigned partition ", p,
                   " without holding a copy of it (a bug: please report)");
        continue;
      }
      if (!part->owner()) TakeOver(*part);
      SetBackup(*part, rep, NodeOfServer(rep.backup));
    } else if (rep.backup == rank_) {
      if (!part || part->owner()) {
        if (part) {
          log_.Error("partition ", p, " moved to server/", rep.owner,
                     " while this server owned it; keeping a backup copy");
        }
        Status s = MakePartition(p, false);
        if (!s.ok()) log_.Error("cannot hold partition ", p, ": ", s.message());
        log_.Info("backing up partition ", p, " of server/", rep.owner,
                  "; waiting for its snapshot");
      }
      if (part) part->set_owner_node(NodeOfServer(rep.owner));
    } else if (part) {
      log_.Info("no longer holding partition ", p);
      part.reset();
    }
  }
}

void KvServer::TakeOver(PartitionReplica& part) {
  // The owner died: this backup holds every update it acknowledged.
  part.set_owner(true);
  part.stream().Reset(part.stream().seq());
  for (TableReplica& t : part.tables()) {
    t.gate.ConfirmAll();
    t.bsp.Clear();
  }
  // The clock it stands at may already be a committed checkpoint (the old
  // owner wrote it); a copy whose tables are at different clocks must not
  // write it again.
  part.last_checkpoint = std::max(part.last_checkpoint, part.Clock(live_));
  ++stats_.takeovers;
  log_.Warn("taking over partition ", part.id(), " as its backup (owner gone; at update ",
            part.stream().seq(), ")");
}

void KvServer::SetBackup(PartitionReplica& part, const Replica& rep, NodeId backup) {
  ReplicationStream& stream = part.stream();
  if (rep.backup == stream.backup_rank() && backup == stream.backup_node()) return;
  // Only the backup of the job's start holds the initializers' state; any
  // other node (a new backup, or a restarted process of the same rank,
  // whatever the layout's flag still says) gets a snapshot.
  const bool initial = stream.backup_rank() == kNoServer && stream.backup_node() == kUnassignedId &&
                       stream.seq() == 0 && rep.synced;
  // Whatever the previous backup had not confirmed now has only this copy:
  // released (degraded until the new backup is in sync).
  Confirmed(part, stream.SetBackup(rep.backup, backup));
  if (backup == kUnassignedId) {
    if (rep.backup == kNoServer && layout_.replication > 1) {
      log_.Warn("partition ", part.id(), " has no backup: updates are acknowledged with one copy");
    }
    return;
  }
  if (!initial) SendSnapshot(part);
  log_.Info("partition ", part.id(), ": backup is server/", rep.backup, " (node ", backup, ")",
            rep.synced ? "" : ", syncing");
}

void KvServer::OnViewChange(const ClusterView& view) {
  MutexLock lock(&mu_);
  if (!started_ || view.epoch <= epoch_) return;
  epoch_ = view.epoch;
  auto layout = Layout::Decode(view.layout);
  if (!layout.ok()) {
    log_.Error("membership epoch ", view.epoch,
               " carries a bad layout: ", layout.status().message());
    return;
  }
  const bool rollback = layout->generation > generation_ && layout->restore_step >= 0;
  layout_ = std::move(*layout);
  ApplyMembers(view).IgnoreError();  // logged; a worker we cannot reach gets retried
  if (rollback) RollBack(view.epoch);
  ApplyAssignment();
  for (const auto& part : parts_) {
    if (!part || !part->owner()) continue;
    for (TableReplica& t : part->tables()) {
      if (t.gate.bsp()) TryApplyBsp(t);
      ServeParked(t);
    }
  }
  ReleaseHeld();
}

void KvServer::RollBack(uint32_t epoch) {
  // Everything since the checkpoint is forgotten and every copy of every
  // partition restarts from it, in sync.
  generation_ = layout_.generation;
  rollback_epoch_ = epoch;
  if (writer_) writer_->DropBefore(generation_);
  for (uint32_t p = 0; p < layout_.num_partitions; ++p) {
    const Replica& rep = layout_.replicas[p];
    if (rep.owner == rank_ || rep.backup == rank_) {
      Status s = MakePartition(p, rep.owner == rank_);
      if (!s.ok()) log_.Error("cannot hold partition ", p, ": ", s.message());
      if (parts_[p]) parts_[p]->set_synced(true);
    } else {
      parts_[p].reset();
    }
  }
  Status s = RestoreCheckpoint(layout_.restore_step);
  if (!s.ok()) {
    // Serving the initializers' values as the checkpoint's would train a
    // different model than the one promised: the job stops, saying why.
    const std::string why = "server/" + std::to_string(rank_) + " cannot roll back to checkpoint " +
                            std::to_string(layout_.restore_step) + ": " + s.message();
    log_.Error(why);
    if (options_.on_fatal) options_.on_fatal(why);
  }
}

void KvServer::FlushCheckpoints() {
  if (writer_) writer_->Flush();
}

KvServerStats KvServer::stats() const {
  MutexLock lock(&mu_);
  KvServerStats s = stats_;
  if (writer_) s.checkpoints = writer_->stats();
  return s;
}

std::map<uint64_t, std::vector<float>> KvServer::DenseValues(uint32_t table) const {
  MutexLock lock(&mu_);
  std::map<uint64_t, std::vector<float>> out;
  for (const auto& part : parts_) {
    if (!part || !part->owner() || table >= part->num_tables() || !part->table(table).dense) {
      continue;
    }
    const DenseShard& d = *part->table(table).dense;
    out[d.begin()] = std::vector<float>(d.data(), d.data() + d.size());
  }
  return out;
}

std::vector<float> KvServer::SparseRow(uint32_t table, uint64_t key) const {
  MutexLock lock(&mu_);
  if (!started_ || table >= options_.tables.size() || !options_.tables[table].sparse) return {};
  const auto& part = parts_[layout_.SparsePartition(key)];
  if (!part || !part->owner()) return {};
  const float* row = part->table(table).sparse->Find(key);
  if (row == nullptr) return {};
  return std::vector<float>(row, row + options_.tables[table].dim);
}

std::vector<uint32_t> KvServer::Owned() const {
  MutexLock lock(&mu_);
  std::vector<uint32_t> out;
  for (const auto& part : parts_) {
    if (part && part->owner()) out.push_back(part->id());
  }
  return out;
}

std::vector<uint32_t> KvServer::BackedUp() const {
  MutexLock lock(&mu_);
  std::vector<uint32_t> out;
  for (const auto& part : parts_) {
    if (part && !part->owner()) out.push_back(part->id());
  }
  return out;
}

// ---- validation ----

Result<uint32_t> KvServer::WorkerRank(const Message& m) const {
  auto it = worker_rank_.find(m.sender);
  if (it == worker_rank_.end()) {
    return FailedPreconditionError("node " + std::to_string(m.sender) +
                                   " is not a live worker of epoch " + std::to_string(epoch_));
  }
  return it->second;
}

Status KvServer::CheckGroup(const TableReplica& t, const KvHeader& head, uint32_t sender) const {
  if (head.group.empty()) return Status::Ok();
  const std::string who = "worker/" + std::to_string(sender);
  if (!t.gate.bsp()) {
    return InvalidArgumentError(who +
                                " sent a combined push of several workers; only BSP jobs "
                                "aggregate per host");
  }
  // Either the sum of the sender's host (its rank among them), or dead
  // workers' slots a survivor adopted: ranks of one host, not the sender's.
  // Whether they are dead is not checked: this server's view can lag the
  // sender's, and a live worker's own push of the same clock is the same
  // gradient (the first to arrive counts).
  const bool own = std::binary_search(head.group.begin(), head.group.end(), sender);
  if (!own && !options_.consistency.adopt_dead_workers) {
    return InvalidArgumentError(who + "'s combined push does not include its own rank");
  }
  const uint32_t anchor = own ? sender : head.group.front();
  for (uint32_t r : head.group) {
    // A member that died after its leader summed its gradient still counts
    // (as a worker's own push does when it dies after sending it).
    if (r >= worker_host_.size() || worker_host_[r].empty()) {
      return FailedPreconditionError(who + " pushed for worker/" + std::to_string(r) +
                                     ", which never was a worker of this job");
    }
    if (worker_host_[r] != worker_host_[anchor]) {
      return InvalidArgumentError(who + " pushed for worker/" + std::to_string(r) + " (host " +
                                  worker_host_[r] + ") in one sum with worker/" +
                                  std::to_string(anchor) + " (host " + worker_host_[anchor] + ")");
    }
  }
  return Status::Ok();
}

Result<TableReplica*> KvServer::FindTable(const KvHeader& head) {
  if (head.table >= options_.tables.size()) {
    return InvalidArgumentError("unknown table " + std::to_string(head.table) + " (the job has " +
                                std::to_string(options_.tables.size()) + ")");
  }
  // Every request names its partition; a dense one's must be where its
  // slice starts.
  const TableSpec& spec = options_.tables[head.table];
  const uint32_t p = head.partition;
  if (spec.sparse && p >= layout_.num_partitions) {
    return InvalidArgumentError("table '" + spec.name + "': there is no partition " +
                                std::to_string(p));
  }
  if (!spec.sparse) {
    const uint32_t at = layout_.DensePartition(head.table, head.offset);
    if (at == kNoServer) {
      return InvalidArgumentError("table '" + spec.name +
                                  "': this server holds no slice starting at " +
                                  std::to_string(head.offset) + " (no partition starts there)");
    }
    if (at != p) {
      return InvalidArgumentError("table '" + spec.name + "': the slice at " +
                                  std::to_string(head.offset) + " is in partition " +
                                  std::to_string(at) + ", the request names partition " +
                                  std::to_string(p));
    }
  }
  if (!parts_[p] || !parts_[p]->owner()) {
    return UnavailableError("partition " + std::to_string(p) + " is served by server/" +
                            std::to_string(layout_.OwnerOf(p)) + " in epoch " +
                            std::to_string(epoch_) + ", not by server/" + std::to_string(rank_));
  }
  return &parts_[p]->table(head.table);
}

TableReplica* KvServer::Admit(const Message& m, const KvHeader& head, uint32_t* rank) {
  if (m.epoch < rollback_epoch_) {
    // Sent before the job rolled back (the sender has dropped it since):
    // applying it would replay the checkpoint's steps with a stale push.
    Reject(
        m.sender, m, head,
        AbortedError("sent in epoch " + std::to_string(m.epoch) +
                     ", before the rollback to checkpoint " + std::to_string(layout_.restore_step) +
                     " (epoch " + std::to_string(rollback_epoch_) + ")"));
    return nullptr;
  }
  auto r = WorkerRank(m);
  auto table = r.ok() ? FindTable(head) : Result<TableReplica*>(r.status());
  if (table.ok()) {
    *rank = *r;
    return *table;
  }
  const StatusCode code = table.status().code();
  if (code == StatusCode::kUnavailable) {
    // Misrouted by a stale view: the worker re-sends once it has the new one.
    ++stats_.misrouted;
    Message r2 = Outgoing(MsgType::kKvError, m.request_id);
    r2.status = static_cast<uint32_t>(code);
    r2.body =
        EncodeKvBody({.table = head.table, .partition = head.partition}, table.status().message());
    transport_->Send(m.sender, std::move(r2)).IgnoreError();
    return nullptr;
  }
  Reject(m.sender, m, head, table.status());
  return nullptr;
}

// ---- requests ----

void KvServer::HandlePush(Message&& m, const KvHeader& head, bool then_pull) {
  log_.Debug(MsgTypeName(m.type), " from node ", m.sender, " table ", head.table, " at ",
             head.offset, " clock ", head.clock, " epoch ", m.epoch);
  uint32_t rank = 0;
  TableReplica* found = Admit(m, head, &rank);
  if (found == nullptr) return;
  TableReplica& t = *found;
  if (Status s = CheckPayload(t, layout_, head, m, true); !s.ok()) {
    return Reject(m.sender, m, head, s);
  }
  if (Status s = CheckGroup(t, head, rank); !s.ok()) return Reject(m.sender, m, head, s);
  ++stats_.pushes;
  PartitionReplica& part = *parts_[t.partition];
  if (head.checkpoint) {
    part.requested_checkpoint = std::max(part.requested_checkpoint, head.clock + 1);
  }
  // The update this push became (0: none to wait for).
  const uint64_t seq = Accept(t, rank, head, m);
  const NodeId node = m.sender;
  if (then_pull) {
    // The pull half asks for the parameters of the next clock; its reply
    // doubles as the push's acknowledgement.
    Message pull = m;
    pull.values = Buffer();
    KvHeader pull_head = head;
    pull_head.clock = head.clock + 1;
    pull_head.checkpoint = false;
    pull_head.group.clear();  // the push's; its reply names no workers (nor copies them parked)
    ++stats_.pulls;
    const int64_t need = pull_head.clock;
    if (seq == 0 && t.gate.Ready(need, live_)) {
      Answer(t, pull, pull_head, rank, node, MsgType::kPullReply, false);
    } else {
      Park(t, std::move(pull), pull_head, rank, node, MsgType::kPullReply, need, seq);
    }
    return;
  }
  if (t.gate.bsp() && (Replicated(t) || options_.consistency.adopt_dead_workers)) {
    // Acknowledged once the clock it belongs to is applied and held by the
    // backup. (Where survivors adopt the dead, a worker whose requests of a
    // clock are all answered knows the clock is applied everywhere: only
    // its current clock can lack a dead worker's push.)
    m.values = Buffer();
    m.keys = Buffer();
    const int64_t need = head.clock + 1;
    Park(t, std::move(m), head, rank, node, MsgType::kPushAck, need, 0);
  } else if (seq != 0) {
    m.values = Buffer();
    m.keys = Buffer();
    Park(t, std::move(m), head, rank, node, MsgType::kPushAck, ConsistencyGate::kAnyClock, seq);
  } else {
    Reply(node, m, head, MsgType::kPushAck);
  }
}

uint64_t KvServer::Accept(TableReplica& t, uint32_t rank, const KvHeader& head, const Message& m) {
  const int64_t clock = head.clock;
  if (!t.gate.bsp()) {
    if (clock < t.gate.worker_clock(rank)) {
      // A retry of a push already applied: acknowledged once everything
      // applied so far is with the backup (the original may not be yet).
      ++stats_.duplicate_pushes;
      return Replicated(t) ? parts_[t.partition]->stream().seq() : 0;
    }
    ++stats_.updates;
    t.Apply(m.keys.as<uint64_t>(), m.values.as<float>().data());
    t.gate.Saw(rank, clock);
    const uint64_t seq = Replicate(t, clock, head.sparse, m.keys, m.values, -1, rank);
    MaybeCheckpoint();
    ServeParked(t);
    return seq;
  }
  // A host's combined push counts for each of its workers.
  const std::span<const uint32_t> ranks =
      head.group.empty() ? std::span<const uint32_t>(&rank, 1) : std::span(head.group);
  if (clock < t.gate.applied() || t.bsp.Add(clock, ranks, m) == BspAggregator::kDuplicate) {
    ++stats_.duplicate_pushes;
    return 0;
  }
  for (uint32_t r : ranks) t.gate.Saw(r, clock);
  TryApplyBsp(t);
  return 0;
}

void KvServer::TryApplyBsp(TableReplica& t) {
  // Every live worker may be gone mid-clock; nothing to apply then.
  while (t.bsp.Complete(t.gate.applied(), waited_)) {
    const int64_t clock = t.gate.applied();
    const BspAggregator::Clock pushes = t.bsp.Take(clock);
    ++stats_.updates;
    // The mean over the pushes received (those of workers that died after
    // pushing are kept: they were acknowledged).
    const bool replicated = Replicated(t);
    const size_t dense_size = t.dense ? t.dense->size() : 0;
    MeanGradient mean = MeanOf(t.spec, dense_size, pushes, replicated, &t.scratch);
    t.Apply(mean.keys, mean.values);
    const uint64_t seq = Replicate(t, clock, t.spec.sparse, std::move(mean.keys_buffer),
                                   std::move(mean.values_buffer), clock + 1);
    t.gate.Advance(/*held=*/seq == 0);
    // Before any pull sees the new clock: the checkpoint holds exactly it.
    MaybeCheckpoint();
    ServeParked(t);
  }
}

void KvServer::HandlePull(Message&& m, KvHeader head) {
  uint32_t rank = 0;
  TableReplica* found = Admit(m, head, &rank);
  if (found == nullptr) return;
  TableReplica& t = *found;
  if (Status s = CheckPayload(t, layout_, head, m, false); !s.ok()) {
    return Reject(m.sender, m, head, s);
  }
  ++stats_.pulls;
  const NodeId node = m.sender;
  if (head.clock < 0) {
    // "Where is the job?": a worker (re)joining asks for the current
    // parameters and learns the clock to go on from. Under SSP/ASP that is
    // the fastest live worker's clock, which it takes as its own so nobody
    // waits for it to replay the past.
    if (!t.gate.bsp()) {
      const int64_t frontier = t.gate.MaxClock(live_);
      t.gate.MoveTo(rank, frontier);
      head.clock = frontier;
    } else if (t.gate.confirmed() < t.gate.applied()) {
      // Not before the backup holds that clock: a worker must never go on
      // from parameters a failover could take back.
      const int64_t need = t.gate.applied();
      Park(t, std::move(m), head, rank, node, MsgType::kPullReply, need, 0);
      return;
    }
    Answer(t, m, head, rank, node, MsgType::kPullReply, false);
    return;
  }
  if (t.gate.Ready(head.clock, live_)) {
    Answer(t, m, head, rank, node, MsgType::kPullReply, false);
    return;
  }
  Park(t, std::move(m), head, rank, node, MsgType::kPullReply, head.clock, 0);
}

void KvServer::HandleClock(Message&& m, const KvHeader& head) {
  // A worker announcing it reached a clock without pushing to this server.
  uint32_t rank = 0;
  TableReplica* found = Admit(m, head, &rank);
  if (found == nullptr) return;
  TableReplica& t = *found;
  t.gate.Saw(rank, head.clock);
  ServeParked(t);
  Reply(m.sender, m, head, MsgType::kPushAck);
}

// ---- replies ----

void KvServer::Park(TableReplica& t, Message req, const KvHeader& head, uint32_t rank, NodeId node,
                    MsgType type, int64_t need_clock, uint64_t need_seq) {
  const auto now = options_.env->Now();
  ParkedRequest p{std::move(req), head, rank, node, type, need_clock, need_seq, now, now};
  if (t.gate.Ready(p, live_, parts_[t.partition]->stream().confirmed())) {
    // Nothing to wait for (e.g. a retried push whose update the backup
    // already confirmed): nothing else would wake it.
    return Answer(t, p.request, p.head, rank, node, type, false);
  }
  ++stats_.parked_pulls;
  t.gate.Park(std::move(p));
}

void KvServer::Answer(TableReplica& t, const Message& req, const KvHeader& head, uint32_t rank,
                      NodeId node, MsgType type, bool waited) {
  if (type == MsgType::kPushAck) return Reply(node, req, head, type);
  Message r = Outgoing(type, req.request_id);
  KvHeader served = head;
  served.clock = t.gate.bsp() ? t.gate.applied() : head.clock;
  served.checkpoint = false;
  r.body = EncodeKvBody(served);
  if (t.spec.sparse) {
    auto keys = req.keys.as<uint64_t>();
    uint8_t* out = nullptr;
    r.values = Buffer::Allocate(keys.size() * t.spec.dim * sizeof(float), &out);
    t.sparse->Gather(keys, reinterpret_cast<float*>(out));
  } else {
    r.values = t.dense->Snapshot();  // shared with the socket, not copied
  }
  if (options_.on_pull) {
    options_.on_pull(PullTrace{head.table, rank, head.clock, t.gate.MinClock(live_), waited});
  }
  transport_->Send(node, std::move(r)).IgnoreError();
}

void KvServer::ServeParked(TableReplica& t) {
  if (t.gate.parked().empty()) return;
  const uint64_t confirmed = parts_[t.partition]->stream().confirmed();
  for (ParkedRequest& p : t.gate.TakeReady(live_, confirmed)) {
    Answer(t, p.request, p.head, p.rank, p.node, p.reply_type, true);
  }
}

void KvServer::ServeParked(PartitionReplica& part) {
  if (!part.owner()) return;
  for (TableReplica& t : part.tables()) ServeParked(t);
}

void KvServer::Reply(NodeId node, const Message& req, const KvHeader& head, MsgType type) {
  Message r = Outgoing(type, req.request_id);
  r.body = EncodeKvBody({.table = head.table, .partition = head.partition, .clock = head.clock});
  transport_->Send(node, std::move(r)).IgnoreError();
}

void KvServer::Reject(NodeId node, const Message& req, const KvHeader& head, const Status& s) {
  ++stats_.rejected;
  log_.Warn("rejected a ", MsgTypeName(req.type), " from node ", node, ": ", s.message());
  Message r = Outgoing(MsgType::kKvError, req.request_id);
  r.status = static_cast<uint32_t>(s.code());
  r.body = EncodeKvBody({.table = head.table, .partition = head.partition}, s.message());
  transport_->Send(node, std::move(r)).IgnoreError();
}

Message KvServer::Outgoing(MsgType type, uint64_t request_id) const {
  Message m;
  m.type = type;
  m.sender = self_id_;
  m.epoch = epoch_;
  m.request_id = request_id;
  return m;
}

// ---- checkpoints ----

void KvServer::MaybeCheckpoint() {
  const int64_t every = options_.checkpoint_every_steps;
  if (!writer_) return;
  for (const auto& p : parts_) {
    if (!p || !p->owner() || (every <= 0 && p->requested_checkpoint < 0)) continue;
    PartitionReplica& part = *p;
    const int64_t clock = part.Clock(live_);
    if (options_.consistency.mode == Consistency::kBsp && !part.TablesInStep()) continue;
    const bool periodic = every > 0 && clock % every == 0;
    const bool requested = part.requested_checkpoint >= 0 && clock >= part.requested_checkpoint;
    if (clock == INT64_MAX || clock <= part.last_checkpoint || !(periodic || requested)) continue;
    part.requested_checkpoint = -1;
    part.last_checkpoint = clock;
    TakeCheckpoint(part, clock);
  }
}

void KvServer::TakeCheckpoint(const PartitionReplica& part, int64_t step) {
  CheckpointJob job;
  job.step = step;
  job.partition = part.id();
  job.generation = generation_;
  job.shards = part.Snapshot(step);  // a copy: the writer's thread owns it
  job.report.sender = self_id_;
  job.report.epoch = epoch_;
  writer_->Submit(std::move(job));
}

Status KvServer::RestoreCheckpoint(int64_t step) {
  const std::string dir = CheckpointDir(options_.run_dir, step);
  for (const auto& part : parts_) {
    // A backup still waiting for its snapshot gets that instead.
    if (!part || !part->synced()) continue;
    ASSIGN_OR_RETURN(auto shards, LoadServerShards(dir, static_cast<int>(part->id())));
    RETURN_IF_ERROR(part->Install(std::move(shards)).WithContext(dir));
    part->Restart(step);
  }
  log_.Info("restored checkpoint ", step, " from ", dir);
  return Status::Ok();
}

// ---- housekeeping ----

void KvServer::Tick() {
  MutexLock lock(&mu_);
  const auto now = options_.env->Now();
  for (const auto& p : parts_) {
    if (!p || !p->owner()) continue;
    PartitionReplica& part = *p;
    LogParked(part, now);
    ReplicationStream& stream = part.stream();
    if (!stream.RetryDue(now, options_.replicate_retry)) continue;
    // Go-back-N: the backup applies updates in order and drops gaps.
    log_.Info("re-sending ", stream.in_flight(), " update(s) of partition ", part.id(), " from ",
              stream.first_unconfirmed(), " to backup server/", stream.backup_rank(),
              " (unconfirmed for ", ToMillis(now - stream.last_send()), " ms)");
    stream.Resend(epoch_, now);
  }
}

void KvServer::LogParked(PartitionReplica& part, SteadyTime now) {
  const ReplicationStream& stream = part.stream();
  for (TableReplica& t : part.tables()) {
    for (ParkedRequest& p : t.gate.parked()) {
      if (now - p.last_log < options_.wait_log_interval) continue;
      p.last_log = now;
      const bool bsp_confirm =
          t.gate.bsp() && p.need_clock > t.gate.confirmed() && p.need_clock <= t.gate.applied();
      if (p.need_seq > stream.confirmed() || bsp_confirm) {
        log_.Info("reply to worker/", p.rank, " for table '", t.spec.name, "' has waited ",
                  ToMillis(now - p.since), " ms for backup server/", stream.backup_rank(),
                  " to confirm partition ", part.id(), " up to update ",
                  std::max(p.need_seq, stream.seq()), " (confirmed ", stream.confirmed(), ")");
      } else {
        log_.Info("pull from worker/", p.rank, " for clock ", p.need_clock, " of table '",
                  t.spec.name, "' has waited ", ToMillis(now - p.since), " ms for ",
                  t.gate.WhoIsSlow(p.need_clock, waited_, t.bsp.Pushed(t.gate.applied())));
      }
    }
  }
}

}  // namespace distopt
