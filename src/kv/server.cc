#include "kv/server.h"

#include <algorithm>
#include <limits>

#include "base/bytes.h"
#include "base/file_util.h"
#include "base/flat_map.h"
#include "base/vector_ops.h"
#include "kv/checkpoint.h"

namespace distopt {

Result<std::unique_ptr<KvServer>> KvServer::Create(KvServerOptions options, uint32_t rank,
                                                   const ClusterView& view, Transport* transport,
                                                   Logger log) {
  RETURN_IF_ERROR(ValidateTables(options.tables));
  ASSIGN_OR_RETURN(Layout layout, Layout::Decode(view.layout));
  if (layout.tables.size() != options.tables.size()) {
    return InvalidArgumentError(
        "the coordinator's layout has " + std::to_string(layout.tables.size()) +
        " tables, this server's config " + std::to_string(options.tables.size()) +
        " (do all nodes use the same config?)");
  }
  std::unique_ptr<KvServer> s(
      new KvServer(std::move(options), rank, std::move(layout), transport, std::move(log)));
  RETURN_IF_ERROR(s->Init(view));
  return s;
}

namespace {

// The body of a kReplicate message: what it is, its place in the owner's
// stream, and (updates of SSP/ASP) whose push it was.
enum class ReplKind : uint8_t { kUpdate = 1, kSnapshot = 2 };
struct ReplHeader {
  ReplKind kind = ReplKind::kUpdate;
  uint64_t seq = 0;
  uint32_t generation = 0;
  uint32_t worker = kNoServer;  // SSP/ASP update: the pushing worker's rank
};

void WriteReplHeader(ByteWriter& w, const ReplHeader& h) {
  w.U8(static_cast<uint8_t>(h.kind));
  w.U64(h.seq);
  w.U32(h.generation);
  w.U32(h.worker);
}

Status ReadReplHeader(ByteReader& r, ReplHeader* h) {
  uint8_t kind = 0;
  RETURN_IF_ERROR(r.U8(&kind));
  if (kind != 1 && kind != 2) return InvalidArgumentError("unknown replication message kind");
  h->kind = static_cast<ReplKind>(kind);
  RETURN_IF_ERROR(r.U64(&h->seq));
  RETURN_IF_ERROR(r.U32(&h->generation));
  return r.U32(&h->worker);
}

// A partition's state as one message: per table its clocks and shard
// metadata in the body; sparse keys and row step counts in the keys frame;
// parameters and optimizer state in the values frame.
struct TableClocks {
  int64_t applied = 0;
  std::vector<int64_t> workers;
};

void EncodeSnapshot(const std::vector<TableClocks>& clocks,
                    const std::vector<ShardSnapshot>& shards, ByteWriter& body,
                    std::vector<uint64_t>* keys, std::vector<float>* values) {
  body.U32(static_cast<uint32_t>(clocks.size()));
  for (const TableClocks& c : clocks) {
    body.I64(c.applied);
    body.U32(static_cast<uint32_t>(c.workers.size()));
    for (int64_t w : c.workers) body.I64(w);
  }
  body.U32(static_cast<uint32_t>(shards.size()));
  for (const ShardSnapshot& sh : shards) {
    body.U32(sh.table);
    body.U8(sh.sparse ? 1 : 0);
    body.U64(sh.begin);
    body.U32(sh.dim);
    body.U32(static_cast<uint32_t>(sh.slots));
    body.I64(sh.steps);
    body.U64(sh.params.size());
    body.U64(sh.state.size());
    body.U64(sh.keys.size());
    keys->insert(keys->end(), sh.keys.begin(), sh.keys.end());
    keys->insert(keys->end(), sh.row_steps.begin(), sh.row_steps.end());
    values->insert(values->end(), sh.params.begin(), sh.params.end());
    values->insert(values->end(), sh.state.begin(), sh.state.end());
  }
}

Status DecodeSnapshot(ByteReader& body, const Message& m, size_t num_tables, uint32_t num_workers,
                      std::vector<TableClocks>* clocks, std::vector<ShardSnapshot>* shards) {
  uint32_t n = 0;
  RETURN_IF_ERROR(body.Count(&n, 12, 1 << 20, "snapshot tables"));
  if (n != num_tables) return InvalidArgumentError("snapshot of a different table count");
  clocks->resize(n);
  for (TableClocks& c : *clocks) {
    uint32_t w = 0;
    RETURN_IF_ERROR(body.I64(&c.applied));
    RETURN_IF_ERROR(body.Count(&w, 8, 1 << 20, "snapshot worker clocks"));
    if (w != num_workers) return InvalidArgumentError("snapshot of a different worker count");
    c.workers.resize(w);
    for (int64_t& x : c.workers) RETURN_IF_ERROR(body.I64(&x));
  }
  RETURN_IF_ERROR(body.Count(&n, 45, 1 << 20, "snapshot shards"));
  auto keys = m.keys.as<uint64_t>();
  auto values = m.values.as<float>();
  size_t k = 0, v = 0;
  shards->resize(n);
  for (ShardSnapshot& sh : *shards) {
    uint8_t sparse = 0;
    uint32_t slots = 0;
    uint64_t np = 0, ns = 0, nk = 0;
    RETURN_IF_ERROR(body.U32(&sh.table));
    RETURN_IF_ERROR(body.U8(&sparse));
    RETURN_IF_ERROR(body.U64(&sh.begin));
    RETURN_IF_ERROR(body.U32(&sh.dim));
    RETURN_IF_ERROR(body.U32(&slots));
    RETURN_IF_ERROR(body.I64(&sh.steps));
    RETURN_IF_ERROR(body.U64(&np));
    RETURN_IF_ERROR(body.U64(&ns));
    RETURN_IF_ERROR(body.U64(&nk));
    sh.sparse = sparse != 0;
    sh.slots = static_cast<int>(std::min<uint32_t>(slots, 1u << 16));
    if (np > values.size() - v || ns > values.size() - v - np || nk > (keys.size() - k) / 2) {
      return InvalidArgumentError("snapshot shard larger than its frames");
    }
    sh.params.assign(values.begin() + v, values.begin() + v + np);
    sh.state.assign(values.begin() + v + np, values.begin() + v + np + ns);
    v += np + ns;
    sh.keys.assign(keys.begin() + k, keys.begin() + k + nk);
    sh.row_steps.assign(keys.begin() + k + nk, keys.begin() + k + 2 * nk);
    k += 2 * nk;
  }
  if (k != keys.size() || v != values.size()) {
    return InvalidArgumentError("snapshot frames longer than its shards");
  }
  return body.ExpectEnd("snapshot");
}

}  // namespace

void KvServer::HandleMessage(Message&& m) {
  std::lock_guard<std::mutex> lock(mu_);
  Dispatch(std::move(m));
}

void KvServer::Dispatch(Message&& m) {
  switch (m.type) {
    case MsgType::kPush:
      return HandlePush(std::move(m), false);
    case MsgType::kPushPull:
      return HandlePush(std::move(m), true);
    case MsgType::kPull:
      return HandlePull(std::move(m));
    case MsgType::kClock:
      return HandleClock(std::move(m));
    case MsgType::kReplicate:
      return HandleReplicate(std::move(m));
    case MsgType::kReplicateAck:
      return HandleReplicateAck(m);
    default:
      Reject(m.sender, m,
             InvalidArgumentError(std::string("a server does not handle ") + MsgTypeName(m.type) +
                                  " messages"));
  }
}

KvServer::KvServer(KvServerOptions options, uint32_t rank, Layout layout, Transport* transport,
                   Logger log)
    : options_(std::move(options)),
      rank_(rank),
      transport_(transport),
      log_(std::move(log)),
      layout_(std::move(layout)) {}

Status KvServer::MakePartition(uint32_t p, bool owner) {
  Partition& part = parts_[p];
  part = Partition();
  part.id = p;
  part.held = true;
  part.owner = owner;
  part.tables.resize(options_.tables.size());
  for (size_t i = 0; i < part.tables.size(); ++i) {
    Table& t = part.tables[i];
    t.spec = options_.tables[i];
    t.partition = p;
    auto opt = Optimizer::Create(t.spec.optimizer);
    if (!opt.ok()) return opt.status().WithContext("table '" + t.spec.name + "'");
    t.opt = std::move(*opt);
    if (t.spec.sparse) {
      t.sparse = std::make_unique<SparseShard>(t.spec, t.opt.get());
    } else {
      for (const DenseSlice& s : layout_.tables[i].slices) {
        if (s.partition == p) t.dense = std::make_unique<DenseShard>(t.spec, s, t.opt.get());
      }
    }
    t.worker_clock.assign(num_workers_, 0);
  }
  return Status::Ok();
}

Status KvServer::Init(const ClusterView& view) {
  std::lock_guard<std::mutex> lock(mu_);
  num_workers_ = view.num_workers;
  parts_.resize(layout_.num_servers);
  uint64_t floats = 0;
  std::string held;
  for (uint32_t p = 0; p < layout_.num_servers; ++p) {
    const Replica& rep = layout_.replicas[p];
    if (rep.owner != rank_ && rep.backup != rank_) continue;
    RETURN_IF_ERROR(MakePartition(p, rep.owner == rank_));
    parts_[p].synced = rep.owner == rank_ || rep.synced;
    for (const Table& t : parts_[p].tables) floats += t.dense ? t.dense->size() : 0;
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
  } else if (options_.checkpoint_every_steps > 0 && !options_.run_dir.empty()) {
    // Checkpoint 0 (the initial parameters): a server lost before the first
    // periodic checkpoint can still be rolled back to something.
    for (Partition& part : parts_) {
      if (part.owner) RETURN_IF_ERROR(WriteCheckpoint(part, 0));
    }
  }
  ApplyAssignment();
  return Status::Ok();
}

Status KvServer::ApplyMembers(const ClusterView& view) {
  worker_rank_.clear();
  live_.assign(num_workers_, false);
  Status first;
  for (const Member* w : view.Live(Role::kWorker)) {
    worker_rank_[w->id] = w->rank;
    if (w->rank < live_.size()) live_[w->rank] = true;
    if (Status s = transport_->Connect(w->id, w->address); !s.ok()) {
      log_.Warn("cannot reach worker/", w->rank, " at ", w->address, ": ", s.message());
      if (first.ok()) first = s;
    }
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

void KvServer::ApplyAssignment() {
  for (uint32_t p = 0; p < layout_.num_servers; ++p) {
    const Replica& rep = layout_.replicas[p];
    Partition& part = parts_[p];
    auto node_of = [&](uint32_t rank) {
      auto it = server_ids_.find(rank);
      return rank == kNoServer || it == server_ids_.end() ? kUnassignedId : it->second;
    };
    if (rep.owner == rank_) {
      if (!part.held) {
        log_.Error("assigned partition ", p,
                   " without holding a copy of it (a bug: please report)");
        continue;
      }
      if (!part.owner) {
        // The owner died: this backup holds every update it acknowledged.
        part.owner = true;
        part.confirmed = part.seq;
        part.unconfirmed.clear();
        for (Table& t : part.tables) {
          t.confirmed_clock = t.applied_clock;
          t.pending.clear();
        }
        ++stats_.takeovers;
        log_.Warn("taking over partition ", p, " as its backup (owner gone; at update ", part.seq,
                  ")");
      }
      const NodeId backup = node_of(rep.backup);
      if (rep.backup == part.backup_rank && backup == part.backup_node) continue;
      // Only the backup of the job's start holds the initializers' state;
      // any other node (a new backup, or a restarted process of the same
      // rank, whatever the layout's flag still says) gets a snapshot.
      const bool initial = part.backup_rank == kNoServer && part.backup_node == kUnassignedId &&
                           part.seq == 0 && rep.synced;
      // Whatever the previous backup had not confirmed now has only this
      // copy: release it (degraded until the new backup is in sync).
      Confirm(part, part.seq);
      part.unconfirmed.clear();
      part.backup_rank = rep.backup;
      part.backup_node = backup;
      if (backup == kUnassignedId) {
        if (rep.backup == kNoServer && layout_.replication > 1) {
          log_.Warn("partition ", p, " has no backup: updates are acknowledged with one copy");
        }
        continue;
      }
      if (!initial) SendSnapshot(part);
      log_.Info("partition ", p, ": backup is server/", rep.backup, " (node ", backup, ")",
                rep.synced ? "" : ", syncing");
    } else if (rep.backup == rank_) {
      if (!part.held || part.owner) {
        if (part.owner) {
          log_.Error("partition ", p, " moved to server/", rep.owner,
                     " while this server owned it; keeping a backup copy");
        }
        Status s = MakePartition(p, false);
        if (!s.ok()) log_.Error("cannot hold partition ", p, ": ", s.message());
        log_.Info("backing up partition ", p, " of server/", rep.owner,
                  "; waiting for its snapshot");
      }
      part.owner_node = node_of(rep.owner);
    } else if (part.held) {
      log_.Info("no longer holding partition ", p);
      part = Partition();
      part.id = p;
    }
  }
}

void KvServer::OnViewChange(const ClusterView& view) {
  std::lock_guard<std::mutex> lock(mu_);
  if (view.epoch <= epoch_) return;
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
  if (rollback) {
    // The job rolls back: everything since the checkpoint is forgotten and
    // every copy of every partition restarts from it, in sync.
    generation_ = layout_.generation;
    rollback_epoch_ = view.epoch;
    for (uint32_t p = 0; p < layout_.num_servers; ++p) {
      const Replica& rep = layout_.replicas[p];
      if (rep.owner == rank_ || rep.backup == rank_) {
        Status s = MakePartition(p, rep.owner == rank_);
        if (!s.ok()) log_.Error("cannot hold partition ", p, ": ", s.message());
        parts_[p].synced = true;
      } else {
        parts_[p] = Partition();
        parts_[p].id = p;
      }
    }
    Status s = RestoreCheckpoint(layout_.restore_step);
    if (!s.ok()) {
      log_.Error("cannot roll back to checkpoint ", layout_.restore_step, ": ", s.message());
    }
  }
  ApplyAssignment();
  for (Partition& part : parts_) {
    if (!part.owner) continue;
    for (Table& t : part.tables) {
      if (options_.consistency.mode == Consistency::kBsp) TryApplyBsp(t);
      ServeParked(t);
    }
  }
  // Requests sent by nodes that saw this epoch first.
  std::vector<Message> future;
  future.swap(future_);
  for (Message& m : future) Dispatch(std::move(m));
}

KvServerStats KvServer::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

std::map<uint64_t, std::vector<float>> KvServer::DenseValues(uint32_t table) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<uint64_t, std::vector<float>> out;
  for (const Partition& part : parts_) {
    if (!part.owner || table >= part.tables.size() || !part.tables[table].dense) continue;
    const DenseShard& d = *part.tables[table].dense;
    out[d.begin()] = std::vector<float>(d.data(), d.data() + d.size());
  }
  return out;
}

std::vector<float> KvServer::SparseRow(uint32_t table, uint64_t key) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (table >= options_.tables.size() || !options_.tables[table].sparse) return {};
  const Partition& part = parts_[layout_.SparsePartition(key)];
  if (!part.owner) return {};
  const float* row = part.tables[table].sparse->Find(key);
  if (row == nullptr) return {};
  return std::vector<float>(row, row + options_.tables[table].dim);
}

std::vector<uint32_t> KvServer::Owned() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint32_t> out;
  for (const Partition& part : parts_) {
    if (part.owner) out.push_back(part.id);
  }
  return out;
}

std::vector<uint32_t> KvServer::BackedUp() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint32_t> out;
  for (const Partition& part : parts_) {
    if (part.held && !part.owner) out.push_back(part.id);
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

Result<KvServer::Table*> KvServer::FindTable(const Message& m) {
  if (m.table >= options_.tables.size()) {
    return InvalidArgumentError("unknown table " + std::to_string(m.table) + " (the job has " +
                                std::to_string(options_.tables.size()) + ")");
  }
  // Sparse requests name their partition in `offset`; dense ones by where
  // their slice starts.
  uint32_t p = kNoServer;
  if (options_.tables[m.table].sparse) {
    if (m.offset < layout_.num_servers) p = static_cast<uint32_t>(m.offset);
  } else {
    p = layout_.DensePartition(m.table, m.offset);
  }
  if (p == kNoServer) {
    const TableSpec& spec = options_.tables[m.table];
    return InvalidArgumentError("table '" + spec.name + "': " +
                                (spec.sparse ? "there is no partition " + std::to_string(m.offset)
                                             : "this server holds no slice starting at " +
                                                   std::to_string(m.offset) +
                                                   " (no partition starts there)"));
  }
  if (!parts_[p].owner) {
    return UnavailableError("partition " + std::to_string(p) + " is served by server/" +
                            std::to_string(layout_.OwnerOf(p)) + " in epoch " +
                            std::to_string(epoch_) + ", not by server/" + std::to_string(rank_));
  }
  return &parts_[p].tables[m.table];
}

Status KvServer::CheckPayload(const Table& t, const Message& m, bool has_values) const {
  const std::string where = "table '" + t.spec.name + "': ";
  bool sparse_msg = (m.flags & kFlagSparse) != 0;
  if (sparse_msg != t.spec.sparse) {
    return InvalidArgumentError(where + (t.spec.sparse ? "sparse table addressed as dense"
                                                       : "dense table addressed with keys"));
  }
  if (t.spec.sparse) {
    for (uint64_t k : m.keys.as<uint64_t>()) {
      if (layout_.SparsePartition(k) != t.partition) {
        return InvalidArgumentError(where + "key " + std::to_string(k) + " belongs to partition " +
                                    std::to_string(layout_.SparsePartition(k)) + ", not " +
                                    std::to_string(t.partition));
      }
    }
    uint64_t want = has_values ? m.num_keys() * t.spec.dim : 0;
    if (m.num_values() != want) {
      return InvalidArgumentError(where + std::to_string(m.num_values()) + " values for " +
                                  std::to_string(m.num_keys()) + " keys of dim " +
                                  std::to_string(t.spec.dim));
    }
    return Status::Ok();
  }
  // Where the slice starts was checked when the partition was found
  // (FindTable); a replicated update names its partition instead.
  if (!t.dense) {
    return InvalidArgumentError(where + "partition " + std::to_string(t.partition) +
                                " holds no slice of it");
  }
  if (m.num_keys() != 0) return InvalidArgumentError(where + "keys sent to a dense table");
  uint64_t want = has_values ? t.dense->size() : 0;
  if (m.num_values() != want) {
    return InvalidArgumentError(where + "expected " + std::to_string(want) +
                                " values for the slice at " + std::to_string(m.offset) + ", got " +
                                std::to_string(m.num_values()));
  }
  return Status::Ok();
}

// ---- requests ----

KvServer::Table* KvServer::Admit(const Message& m, uint32_t* rank) {
  if (m.epoch < rollback_epoch_) {
    // Sent before the job rolled back (the sender has dropped it since):
    // applying it would replay the checkpoint's steps with a stale push.
    Reject(
        m.sender, m,
        AbortedError("sent in epoch " + std::to_string(m.epoch) +
                     ", before the rollback to checkpoint " + std::to_string(layout_.restore_step) +
                     " (epoch " + std::to_string(rollback_epoch_) + ")"));
    return nullptr;
  }
  auto r = WorkerRank(m);
  auto table = r.ok() ? FindTable(m) : Result<Table*>(r.status());
  if (table.ok()) {
    *rank = *r;
    return *table;
  }
  const StatusCode code = table.status().code();
  const bool routing = code == StatusCode::kUnavailable || code == StatusCode::kFailedPrecondition;
  if (routing && m.epoch > epoch_ && future_.size() < kMaxFuture) {
    // The sender knows a membership epoch this server has not seen yet (a
    // new worker, or this server taking over a partition): keep the request
    // until that view arrives.
    log_.Debug("keeping a ", MsgTypeName(m.type), " of epoch ", m.epoch, " from node ", m.sender,
               " until this server sees that epoch");
    future_.push_back(m);
    return nullptr;
  }
  if (code == StatusCode::kUnavailable) {
    // Misrouted by a stale view: the worker re-sends once it has the new one.
    ++stats_.misrouted;
    Message r2;
    r2.type = MsgType::kKvError;
    r2.sender = self_id_;
    r2.request_id = m.request_id;
    r2.table = m.table;
    r2.epoch = epoch_;
    r2.status = static_cast<uint32_t>(code);
    r2.body = Buffer::FromString(table.status().message());
    transport_->Send(m.sender, std::move(r2)).IgnoreError();
    return nullptr;
  }
  Reject(m.sender, m, table.status());
  return nullptr;
}

void KvServer::HandlePush(Message&& m, bool then_pull) {
  log_.Debug(MsgTypeName(m.type), " from node ", m.sender, " table ", m.table, " at ", m.offset,
             " clock ", m.clock, " epoch ", m.epoch);
  uint32_t rank = 0;
  Table* found = Admit(m, &rank);
  if (found == nullptr) return;
  Table& t = *found;
  if (Status s = CheckPayload(t, m, true); !s.ok()) return Reject(m.sender, m, s);
  ++stats_.pushes;
  Partition& part = parts_[t.partition];
  if ((m.flags & kFlagCheckpoint) != 0) {
    part.requested_checkpoint = std::max(part.requested_checkpoint, m.clock + 1);
  }
  // The update this push became (0: none to wait for).
  const uint64_t seq = Accept(t, rank, m);
  const bool bsp = options_.consistency.mode == Consistency::kBsp;
  if (then_pull) {
    // The pull half asks for the parameters of the next clock; its reply
    // doubles as the push's acknowledgement.
    Message pull = m;
    pull.values = Buffer();
    pull.clock = m.clock + 1;
    ++stats_.pulls;
    const int64_t need = pull.clock;
    if (seq == 0 && Ready(t, need)) {
      Answer(t, pull, rank, m.sender, MsgType::kPullReply, false);
    } else {
      NodeId node = m.sender;
      Park(t, std::move(pull), rank, node, MsgType::kPullReply, need, seq);
    }
    return;
  }
  if (bsp && Replicated(t)) {
    // Acknowledged once the clock it belongs to is applied and held by the backup.
    m.values = Buffer();
    m.keys = Buffer();
    NodeId node = m.sender;
    const int64_t need = m.clock + 1;
    Park(t, std::move(m), rank, node, MsgType::kPushAck, need, 0);
  } else if (seq != 0) {
    m.values = Buffer();
    m.keys = Buffer();
    NodeId node = m.sender;
    Park(t, std::move(m), rank, node, MsgType::kPushAck, INT64_MIN, seq);
  } else {
    Reply(m.sender, m, MsgType::kPushAck);
  }
}

uint64_t KvServer::Accept(Table& t, uint32_t rank, const Message& m) {
  Partition& part = parts_[t.partition];
  if (options_.consistency.mode != Consistency::kBsp) {
    if (m.clock < t.worker_clock[rank]) {
      // A retry of a push already applied: acknowledged once everything
      // applied so far is with the backup (the original may not be yet).
      ++stats_.duplicate_pushes;
      return Replicated(t) ? part.seq : 0;
    }
    ApplyNow(t, m);
    t.worker_clock[rank] = m.clock + 1;
    const uint64_t seq = Replicate(t, m, -1, rank);
    MaybeCheckpoint();
    ServeParked(t);
    return seq;
  }
  if (m.clock < t.applied_clock) {
    ++stats_.duplicate_pushes;
    return 0;
  }
  Aggregation& a = t.pending[m.clock];
  if (a.from.empty()) {
    a.from.assign(live_.size(), false);
    a.pushes.resize(live_.size());
  }
  if (a.from[rank]) {
    ++stats_.duplicate_pushes;
    return 0;
  }
  a.from[rank] = true;
  a.pushes[rank] = m;  // shares the received buffers
  ++a.count;
  t.worker_clock[rank] = std::max(t.worker_clock[rank], m.clock + 1);
  TryApplyBsp(t);
  return 0;
}

void KvServer::TryApplyBsp(Table& t) {
  while (true) {
    auto it = t.pending.find(t.applied_clock);
    if (it == t.pending.end()) {
      // Every live worker may be gone mid-clock; nothing to apply then.
      return;
    }
    Aggregation& a = it->second;
    for (uint32_t r = 0; r < live_.size(); ++r) {
      if (live_[r] && !a.from[r]) return;  // still waiting for worker r
    }
    Message update = ApplyAggregation(t, a);
    t.pending.erase(it);
    ++t.applied_clock;
    update.clock = t.applied_clock - 1;
    if (Replicate(t, update, t.applied_clock) == 0) t.confirmed_clock = t.applied_clock;
    // Before any pull sees the new clock: the checkpoint holds exactly it.
    MaybeCheckpoint();
    ServeParked(t);
  }
}

Message KvServer::ApplyAggregation(Table& t, Aggregation& a) {
  ++stats_.updates;
  const bool replicated = Replicated(t);
  Message update;
  // The mean over the pushes received (those of workers that died after
  // pushing are kept: they were acknowledged).
  const float scale = 1.0f / static_cast<float>(a.count);
  if (t.spec.sparse) {
    const uint32_t dim = t.spec.dim;
    if (a.count == 1) {
      // One push: it is the update as it came (ApplyBatch takes repeated keys).
      for (const Message& p : a.pushes) {
        if (p.keys.empty()) continue;
        t.sparse->ApplyBatch(p.keys.as<uint64_t>(), p.values.as<float>().data());
        if (replicated) {
          update.flags = kFlagSparse;
          update.keys = p.keys;
          update.values = p.values;
        }
      }
      return update;
    }
    FlatMap row;
    size_t total = 0;
    for (const Message& p : a.pushes) total += p.keys.as<uint64_t>().size();
    row.Reserve(total);  // no rehash while merging (it grew 16 -> 256k slots every step)
    std::vector<uint64_t> keys;
    std::vector<float> sum;
    keys.reserve(total);
    sum.reserve(total * dim);
    for (const Message& p : a.pushes) {
      auto pk = p.keys.as<uint64_t>();
      const float* v = p.values.as<float>().data();
      for (size_t i = 0; i < pk.size(); ++i) {
        auto [slot, fresh] = row.Insert(pk[i], static_cast<uint32_t>(keys.size()));
        if (fresh) {
          keys.push_back(pk[i]);
          sum.insert(sum.end(), v + i * dim, v + (i + 1) * dim);
        } else {
          float* dst = sum.data() + static_cast<size_t>(*slot) * dim;
          for (uint32_t j = 0; j < dim; ++j) dst[j] += v[i * dim + j];
        }
      }
    }
    if (a.count > 1) {
      for (float& x : sum) x *= scale;
    }
    t.sparse->ApplyBatch(keys, sum.data());
    if (replicated) {
      update.flags = kFlagSparse;
      update.keys = Buffer::FromVector(std::move(keys));
      update.values = Buffer::FromVector(std::move(sum));
    }
    return update;
  }
  std::vector<const Message*> in;  // the pushes with values, in rank order
  std::vector<const float*> grads;
  for (const Message& p : a.pushes) {
    if (p.values.empty()) continue;
    in.push_back(&p);
    grads.push_back(p.values.as<float>().data());
  }
  if (in.size() == 1) {
    t.dense->Apply(grads[0]);  // one worker: its push is the update, no copy
    if (replicated) update.values = in[0]->values;
    return update;
  }
  const size_t n = t.dense->size();
  float* out = nullptr;
  if (replicated) {
    // The backup gets the mean itself: a buffer of its own, not the scratch.
    uint8_t* bytes = nullptr;
    update.values = Buffer::Allocate(n * sizeof(float), &bytes);
    out = reinterpret_cast<float*>(bytes);
  } else {
    t.scratch.resize(n);
    out = t.scratch.data();
  }
  SumScaled(grads, n, scale, out);  // in rank order: bit-reproducible
  t.dense->Apply(out);
  return update;
}

void KvServer::ApplyNow(Table& t, const Message& m) {
  ++stats_.updates;
  if (t.spec.sparse) {
    auto keys = m.keys.as<uint64_t>();
    const float* v = m.values.as<float>().data();
    t.sparse->ApplyBatch(keys, v);
  } else {
    t.dense->Apply(m.values.as<float>().data());
  }
}

void KvServer::HandlePull(Message&& m) {
  uint32_t rank = 0;
  Table* found = Admit(m, &rank);
  if (found == nullptr) return;
  Table& t = *found;
  if (Status s = CheckPayload(t, m, false); !s.ok()) return Reject(m.sender, m, s);
  ++stats_.pulls;
  if (m.clock < 0) {
    // "Where is the job?": a worker (re)joining asks for the current
    // parameters and learns the clock to go on from. Under SSP/ASP that is
    // the fastest live worker's clock, which it takes as its own so nobody
    // waits for it to replay the past.
    if (options_.consistency.mode != Consistency::kBsp) {
      int64_t frontier = 0;
      for (uint32_t r = 0; r < live_.size(); ++r) {
        if (live_[r]) frontier = std::max(frontier, t.worker_clock[r]);
      }
      t.worker_clock[rank] = std::max(t.worker_clock[rank], frontier);
      m.clock = frontier;
    } else if (t.confirmed_clock < t.applied_clock) {
      // Not before the backup holds that clock: a worker must never go on
      // from parameters a failover could take back.
      NodeId node = m.sender;
      const int64_t need = t.applied_clock;
      Park(t, std::move(m), rank, node, MsgType::kPullReply, need, 0);
      return;
    }
    Answer(t, m, rank, m.sender, MsgType::kPullReply, false);
    return;
  }
  if (Ready(t, m.clock)) {
    Answer(t, m, rank, m.sender, MsgType::kPullReply, false);
    return;
  }
  NodeId node = m.sender;
  const int64_t need = m.clock;
  Park(t, std::move(m), rank, node, MsgType::kPullReply, need, 0);
}

void KvServer::HandleClock(Message&& m) {
  // A worker announcing it reached a clock without pushing to this server.
  uint32_t rank = 0;
  Table* found = Admit(m, &rank);
  if (found == nullptr) return;
  Table& t = *found;
  t.worker_clock[rank] = std::max(t.worker_clock[rank], m.clock + 1);
  ServeParked(t);
  Reply(m.sender, m, MsgType::kPushAck);
}

// ---- replication ----

bool KvServer::Replicated(const Table& t) const {
  return parts_[t.partition].backup_node != kUnassignedId;
}

uint64_t KvServer::Replicate(Table& t, const Message& update, int64_t bsp_clock, uint32_t worker) {
  Partition& part = parts_[t.partition];
  const uint64_t seq = ++part.seq;
  if (part.backup_node == kUnassignedId) {
    part.confirmed = seq;
    return 0;
  }
  ReplHeader h;
  h.seq = seq;
  h.generation = generation_;
  h.worker = worker;
  ByteWriter w;
  WriteReplHeader(w, h);
  Message m;  // the update's payload buffers are shared, not copied
  m.type = MsgType::kReplicate;
  m.flags = update.flags & kFlagSparse;
  m.sender = self_id_;
  m.epoch = epoch_;
  m.request_id = seq;
  m.clock = update.clock;
  m.table = t.spec.id;
  m.offset = part.id;
  m.body = Buffer::FromVector(w.Take());
  m.keys = update.keys;
  m.values = update.values;
  part.unconfirmed.push_back({seq, m, bsp_clock});
  part.last_send = std::chrono::steady_clock::now();
  ++stats_.replicated;
  transport_->Send(part.backup_node, std::move(m)).IgnoreError();
  return seq;
}

std::vector<ShardSnapshot> KvServer::SnapshotOf(const Partition& part, int64_t step) const {
  std::vector<ShardSnapshot> out;
  for (const Table& t : part.tables) {
    ShardSnapshot snap;
    snap.step = step;
    snap.table = t.spec.id;
    snap.slots = t.opt->state_slots();
    if (t.dense) {
      snap.begin = t.dense->begin();
      snap.steps = t.dense->steps();
      snap.params.assign(t.dense->data(), t.dense->data() + t.dense->size());
      snap.state = t.dense->state();
    } else if (t.sparse) {
      snap.sparse = true;
      snap.dim = t.spec.dim;
      snap.keys = t.sparse->keys();
      snap.params = t.sparse->values();
      snap.state = t.sparse->state();
      snap.row_steps = t.sparse->row_steps();
    } else {
      continue;
    }
    out.push_back(std::move(snap));
  }
  return out;
}

Status KvServer::Install(Partition& part, std::vector<ShardSnapshot> shards) {
  for (ShardSnapshot& snap : shards) {
    if (snap.table >= part.tables.size()) return DataLossError("a shard of unknown table");
    Table& t = part.tables[snap.table];
    if (snap.sparse && t.sparse) {
      RETURN_IF_ERROR(t.sparse->Restore(std::move(snap.keys), std::move(snap.params),
                                        std::move(snap.state), std::move(snap.row_steps)));
    } else if (!snap.sparse && t.dense && snap.begin == t.dense->begin()) {
      RETURN_IF_ERROR(t.dense->Restore(snap.params, snap.state, snap.steps));
    } else {
      return DataLossError("a shard of table '" + t.spec.name + "' does not fit partition " +
                           std::to_string(part.id));
    }
  }
  return Status::Ok();
}

void KvServer::SendSnapshot(Partition& part) {
  std::vector<TableClocks> clocks;
  for (const Table& t : part.tables) clocks.push_back({t.applied_clock, t.worker_clock});
  ReplHeader h;
  h.kind = ReplKind::kSnapshot;
  h.seq = part.seq;
  h.generation = generation_;
  ByteWriter w;
  WriteReplHeader(w, h);
  std::vector<uint64_t> keys;
  std::vector<float> values;
  EncodeSnapshot(clocks, SnapshotOf(part, 0), w, &keys, &values);
  Message m;
  m.type = MsgType::kReplicate;
  m.sender = self_id_;
  m.epoch = epoch_;
  m.request_id = part.seq;
  m.offset = part.id;
  m.body = Buffer::FromVector(w.Take());
  m.keys = Buffer::FromVector(std::move(keys));
  m.values = Buffer::FromVector(std::move(values));
  log_.Info("sending partition ", part.id, " to its new backup server/", part.backup_rank, " (",
            m.ByteSize() >> 10, " KiB at update ", part.seq, ")");
  Message copy = m;
  part.unconfirmed.push_back({part.seq, std::move(m), -1});
  part.last_send = std::chrono::steady_clock::now();
  ++stats_.snapshots_sent;
  transport_->Send(part.backup_node, std::move(copy)).IgnoreError();
}

void KvServer::HandleReplicate(Message&& m) {
  const NodeId from = m.sender;
  if (m.offset >= parts_.size() || m.table >= options_.tables.size()) {
    return Reject(from, m, InvalidArgumentError("replication of an unknown partition or table"));
  }
  Partition& part = parts_[m.offset];
  ByteReader r(m.body.data(), m.body.size());
  ReplHeader h;
  if (Status s = ReadReplHeader(r, &h); !s.ok()) return Reject(from, m, s);
  if (!part.held || part.owner || from != part.owner_node || h.generation != generation_) {
    // Not (yet) this server's view of who owns what; the owner re-sends.
    log_.Debug("ignored a replication of partition ", m.offset, " from node ", from);
    return;
  }
  auto ack = [&](uint64_t seq) {
    ByteWriter w;
    w.U64(seq);
    SendAbout(part, from, MsgType::kReplicateAck, w);
  };
  if (h.kind == ReplKind::kSnapshot) {
    if (part.synced && h.seq <= part.seq) return ack(part.seq);  // a re-send
    std::vector<TableClocks> clocks;
    std::vector<ShardSnapshot> shards;
    Status s = DecodeSnapshot(r, m, part.tables.size(), num_workers_, &clocks, &shards);
    if (s.ok()) s = Install(part, std::move(shards));
    if (!s.ok())
      return Reject(from, m, s.WithContext("snapshot of partition " + std::to_string(part.id)));
    for (size_t i = 0; i < part.tables.size(); ++i) {
      Table& t = part.tables[i];
      t.applied_clock = t.confirmed_clock = clocks[i].applied;
      t.worker_clock = clocks[i].workers;
    }
    part.seq = h.seq;
    part.synced = true;
    ++stats_.snapshots_installed;
    log_.Info("partition ", part.id, " in sync with its owner (update ", h.seq, ")");
    ack(part.seq);
    // The coordinator may now count this copy for a failover.
    ByteWriter w;
    w.U32(part.id);
    SendAbout(part, kCoordinatorId, MsgType::kReplicaSynced, w);
    return;
  }
  if (!part.synced) return;                         // the snapshot comes first (it is re-sent)
  if (h.seq <= part.seq) return ack(part.seq);      // a re-send of an applied update
  if (h.seq != part.seq + 1) return ack(part.seq);  // a gap: the owner re-sends from it
  Table& t = part.tables[m.table];
  const bool bsp = options_.consistency.mode == Consistency::kBsp;
  if (!bsp && h.worker >= t.worker_clock.size()) {
    return Reject(from, m, InvalidArgumentError("replicated update of unknown worker"));
  }
  if (Status s = CheckPayload(t, m, true); !s.ok()) return Reject(from, m, s);
  ApplyNow(t, m);
  if (bsp) {
    t.applied_clock = t.confirmed_clock = m.clock + 1;
  } else {
    t.worker_clock[h.worker] = std::max(t.worker_clock[h.worker], m.clock + 1);
  }
  part.seq = h.seq;
  ++stats_.replica_applied;
  ack(part.seq);
}

void KvServer::SendAbout(const Partition& part, NodeId to, MsgType type, ByteWriter& body) {
  Message m;
  m.type = type;
  m.sender = self_id_;
  m.epoch = epoch_;
  m.offset = part.id;
  m.body = Buffer::FromVector(body.Take());
  transport_->Send(to, std::move(m)).IgnoreError();
}

void KvServer::HandleReplicateAck(const Message& m) {
  if (m.offset >= parts_.size()) return;
  Partition& part = parts_[m.offset];
  if (!part.owner || m.sender != part.backup_node) return;  // a former backup's
  ByteReader r(m.body.data(), m.body.size());
  uint64_t seq = 0;
  if (!r.U64(&seq).ok()) return;
  if (seq <= part.confirmed && !part.unconfirmed.empty()) {
    // No progress while updates are out: the backup saw a gap (a lost
    // update). Go back to the first unconfirmed one now rather than at the
    // next retry tick, at most once per round trip's worth of time.
    auto now = std::chrono::steady_clock::now();
    if (now - part.last_resend >= kFastResendGap) {
      part.last_resend = now;
      ResendUnconfirmed(part);
    }
    return;
  }
  Confirm(part, seq);
}

void KvServer::ResendUnconfirmed(Partition& part) {
  part.last_send = std::chrono::steady_clock::now();
  for (const ReplEntry& e : part.unconfirmed) {
    Message copy = e.msg;
    copy.epoch = epoch_;
    transport_->Send(part.backup_node, std::move(copy)).IgnoreError();
  }
}

void KvServer::Confirm(Partition& part, uint64_t seq) {
  seq = std::min(seq, part.seq);
  if (seq <= part.confirmed && part.unconfirmed.empty()) return;
  part.confirmed = std::max(part.confirmed, seq);
  size_t done = 0;
  for (; done < part.unconfirmed.size() && part.unconfirmed[done].seq <= part.confirmed; ++done) {
    const ReplEntry& e = part.unconfirmed[done];
    if (e.bsp_clock >= 0) {
      Table& t = part.tables[e.msg.table];
      t.confirmed_clock = std::max(t.confirmed_clock, e.bsp_clock);
    }
  }
  part.unconfirmed.erase(part.unconfirmed.begin(), part.unconfirmed.begin() + done);
  if (part.unconfirmed.empty()) {
    for (Table& t : part.tables) t.confirmed_clock = t.applied_clock;
  }
  ServeParked(part);
}

// ---- replies ----

int64_t KvServer::MinClock(const Table& t) const {
  int64_t min = std::numeric_limits<int64_t>::max();
  for (uint32_t r = 0; r < live_.size(); ++r) {
    if (live_[r]) min = std::min(min, t.worker_clock[r]);
  }
  return min;
}

bool KvServer::Ready(const Table& t, int64_t clock) const {
  switch (options_.consistency.mode) {
    case Consistency::kBsp:
      return clock <= t.confirmed_clock;
    case Consistency::kSsp:
      return MinClock(t) >= clock - options_.consistency.staleness;
    case Consistency::kAsp:
      return true;
  }
  return true;
}

bool KvServer::Ready(const Table& t, const Parked& p) const {
  if (p.need_seq > parts_[t.partition].confirmed) return false;
  return p.need_clock == INT64_MIN || Ready(t, p.need_clock);
}

void KvServer::Park(Table& t, Message req, uint32_t rank, NodeId node, MsgType type,
                    int64_t need_clock, uint64_t need_seq) {
  auto now = std::chrono::steady_clock::now();
  Parked p{std::move(req), rank, node, type, need_clock, need_seq, now, now};
  if (Ready(t, p)) {
    // Nothing to wait for (e.g. a retried push whose update the backup
    // already confirmed): nothing else would wake it.
    return Answer(t, p.request, rank, node, type, false);
  }
  ++stats_.parked_pulls;
  t.parked.push_back(std::move(p));
}

void KvServer::Answer(Table& t, const Message& req, uint32_t rank, NodeId node, MsgType type,
                      bool waited) {
  if (type == MsgType::kPushAck) return Reply(node, req, type);
  Message r;
  r.type = type;
  r.sender = self_id_;
  r.request_id = req.request_id;
  r.table = req.table;
  r.flags = req.flags;
  r.offset = req.offset;
  r.epoch = epoch_;
  r.clock = options_.consistency.mode == Consistency::kBsp ? t.applied_clock : req.clock;
  if (t.spec.sparse) {
    auto keys = req.keys.as<uint64_t>();
    uint8_t* out = nullptr;
    r.values = Buffer::Allocate(keys.size() * t.spec.dim * sizeof(float), &out);
    t.sparse->Gather(keys, reinterpret_cast<float*>(out));
  } else {
    r.values = t.dense->Snapshot();  // shared with the socket, not copied
  }
  if (options_.on_pull) {
    options_.on_pull(PullTrace{req.table, rank, req.clock, MinClock(t), waited});
  }
  transport_->Send(node, std::move(r)).IgnoreError();
}

void KvServer::ServeParked(Table& t) {
  if (t.parked.empty()) return;
  std::vector<Parked> still;
  std::vector<Parked> ready;
  for (Parked& p : t.parked) {
    // A parked pull of a worker that died is dropped: nobody waits for it.
    if (p.rank >= live_.size() || !live_[p.rank]) continue;
    (Ready(t, p) ? ready : still).push_back(std::move(p));
  }
  t.parked = std::move(still);
  for (Parked& p : ready) Answer(t, p.request, p.rank, p.node, p.reply_type, true);
}

void KvServer::ServeParked(Partition& part) {
  if (!part.owner) return;
  for (Table& t : part.tables) ServeParked(t);
}

void KvServer::Reply(NodeId node, const Message& req, MsgType type) {
  Message r;
  r.type = type;
  r.sender = self_id_;
  r.request_id = req.request_id;
  r.table = req.table;
  r.clock = req.clock;
  r.epoch = epoch_;
  transport_->Send(node, std::move(r)).IgnoreError();
}

void KvServer::Reject(NodeId node, const Message& req, const Status& s) {
  ++stats_.rejected;
  log_.Warn("rejected a ", MsgTypeName(req.type), " from node ", node, ": ", s.message());
  Message r;
  r.type = MsgType::kKvError;
  r.sender = self_id_;
  r.request_id = req.request_id;
  r.table = req.table;
  r.status = static_cast<uint32_t>(s.code());
  r.body = Buffer::FromString(s.message());
  transport_->Send(node, std::move(r)).IgnoreError();
}

std::string KvServer::WhoIsSlow(const Table& t, int64_t clock) const {
  std::string out;
  for (uint32_t r = 0; r < live_.size(); ++r) {
    if (!live_[r]) continue;
    bool behind = false;
    if (options_.consistency.mode == Consistency::kBsp) {
      auto it = t.pending.find(t.applied_clock);
      behind = it == t.pending.end() || !it->second.from[r];
    } else {
      behind = t.worker_clock[r] < clock - options_.consistency.staleness;
    }
    if (behind) {
      if (!out.empty()) out += ", ";
      out +=
          "worker/" + std::to_string(r) + " (at clock " + std::to_string(t.worker_clock[r]) + ")";
    }
  }
  return out.empty() ? "nobody (a bug: please report)" : out;
}

// ---- checkpoints ----

void KvServer::MaybeCheckpoint() {
  const int64_t every = options_.checkpoint_every_steps;
  if (options_.run_dir.empty()) return;
  for (Partition& part : parts_) {
    if (!part.owner || (every <= 0 && part.requested_checkpoint < 0)) continue;
    // The partition's clock: the slowest of its tables (under BSP all of
    // them reach clock t before any sees a push of t + 1).
    int64_t clock = INT64_MAX;
    for (const Table& t : part.tables) {
      if (!t.dense && !t.sparse) continue;
      clock = std::min(
          clock, options_.consistency.mode == Consistency::kBsp ? t.applied_clock : MinClock(t));
    }
    const bool periodic = every > 0 && clock % every == 0;
    const bool requested = part.requested_checkpoint >= 0 && clock >= part.requested_checkpoint;
    if (clock == INT64_MAX || clock <= part.last_checkpoint || !(periodic || requested)) continue;
    part.requested_checkpoint = -1;
    part.last_checkpoint = clock;
    Status s = WriteCheckpoint(part, clock);
    if (!s.ok()) log_.Error("checkpoint ", clock, " failed: ", s.message());
  }
}

Status KvServer::WriteCheckpoint(Partition& part, int64_t step) {
  const std::string dir = CheckpointDir(options_.run_dir, step);
  RETURN_IF_ERROR(MakeDirs(dir));
  CheckpointReport report;
  report.step = step;
  report.server_rank = part.id;  // files are named by partition
  for (const ShardSnapshot& snap : SnapshotOf(part, step)) {
    ManifestEntry entry;
    RETURN_IF_ERROR(WriteShard(dir, static_cast<int>(part.id), snap, &entry));
    report.files.push_back(entry);
  }
  Message m;
  m.type = MsgType::kCheckpoint;
  m.sender = self_id_;
  m.epoch = epoch_;
  m.body = Buffer::FromVector(EncodeCheckpointReport(report));
  return transport_->Send(kCoordinatorId, std::move(m));
}

Status KvServer::RestoreCheckpoint(int64_t step) {
  const std::string dir = CheckpointDir(options_.run_dir, step);
  for (Partition& part : parts_) {
    // A backup still waiting for its snapshot gets that instead.
    if (!part.held || !part.synced) continue;
    ASSIGN_OR_RETURN(auto shards, LoadServerShards(dir, static_cast<int>(part.id)));
    RETURN_IF_ERROR(Install(part, std::move(shards)).WithContext(dir));
    for (Table& t : part.tables) {
      t.applied_clock = t.confirmed_clock = step;
      std::fill(t.worker_clock.begin(), t.worker_clock.end(), step);
      t.pending.clear();
      t.parked.clear();
    }
    part.last_checkpoint = step;
    part.seq = part.confirmed = 0;
    part.unconfirmed.clear();
  }
  log_.Info("restored checkpoint ", step, " from ", dir);
  return Status::Ok();
}

void KvServer::Tick() {
  std::lock_guard<std::mutex> lock(mu_);
  auto now = std::chrono::steady_clock::now();
  for (Partition& part : parts_) {
    if (!part.owner) continue;
    for (Table& t : part.tables) {
      for (Parked& p : t.parked) {
        if (now - p.last_log < options_.wait_log_interval) continue;
        p.last_log = now;
        const bool bsp_confirm = options_.consistency.mode == Consistency::kBsp &&
                                 p.need_clock > t.confirmed_clock &&
                                 p.need_clock <= t.applied_clock;
        if (p.need_seq > part.confirmed || bsp_confirm) {
          log_.Info("reply to worker/", p.rank, " for table '", t.spec.name, "' has waited ",
                    ToMillis(now - p.since), " ms for backup server/", part.backup_rank,
                    " to confirm partition ", part.id, " up to update ",
                    std::max(p.need_seq, part.seq), " (confirmed ", part.confirmed, ")");
        } else {
          log_.Info("pull from worker/", p.rank, " for clock ", p.need_clock, " of table '",
                    t.spec.name, "' has waited ", ToMillis(now - p.since), " ms for ",
                    WhoIsSlow(t, p.need_clock));
        }
      }
    }
    if (part.unconfirmed.empty() || part.backup_node == kUnassignedId ||
        now - part.last_send < options_.replicate_retry) {
      continue;
    }
    // Go-back-N: the backup applies updates in order and drops gaps.
    log_.Info("re-sending ", part.unconfirmed.size(), " update(s) of partition ", part.id, " from ",
              part.unconfirmed.front().seq, " to backup server/", part.backup_rank,
              " (unconfirmed for ", ToMillis(now - part.last_send), " ms)");
    ResendUnconfirmed(part);
  }
}

}  // namespace distopt
