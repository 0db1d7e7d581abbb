#include "kv/server.h"

#include <algorithm>
#include <limits>

#include "base/file_util.h"
#include "base/flat_map.h"
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

void KvServer::HandleMessage(Message&& m) {
  switch (m.type) {
    case MsgType::kPush:
      return HandlePush(std::move(m), false);
    case MsgType::kPushPull:
      return HandlePush(std::move(m), true);
    case MsgType::kPull:
      return HandlePull(std::move(m));
    case MsgType::kClock:
      return HandleClock(std::move(m));
    default: {
      std::lock_guard<std::mutex> lock(mu_);
      Reject(m.sender, m,
             InvalidArgumentError(std::string("a server does not handle ") + MsgTypeName(m.type) +
                                  " messages"));
    }
  }
}

KvServer::KvServer(KvServerOptions options, uint32_t rank, Layout layout, Transport* transport,
                   Logger log)
    : options_(std::move(options)),
      rank_(rank),
      layout_(std::move(layout)),
      transport_(transport),
      log_(std::move(log)) {}

Status KvServer::Init(const ClusterView& view) {
  std::lock_guard<std::mutex> lock(mu_);
  tables_.resize(options_.tables.size());
  uint64_t floats = 0;
  for (size_t i = 0; i < tables_.size(); ++i) {
    Table& t = tables_[i];
    t.spec = options_.tables[i];
    auto opt = Optimizer::Create(t.spec.optimizer);
    if (!opt.ok()) return opt.status().WithContext("table '" + t.spec.name + "'");
    t.opt = std::move(*opt);
    if (t.spec.sparse) {
      t.sparse = std::make_unique<SparseShard>(t.spec, t.opt.get());
    } else {
      for (const DenseSlice& s : layout_.tables[i].slices) {
        if (s.server == rank_) {
          t.dense = std::make_unique<DenseShard>(t.spec, s, t.opt.get());
          floats += s.size();
        }
      }
    }
  }
  log_.Info("holding ", floats, " dense floats of ", tables_.size(), " table(s); consistency ",
            ConsistencyName(options_.consistency.mode),
            options_.consistency.mode == Consistency::kSsp
                ? " (staleness " + std::to_string(options_.consistency.staleness) + ")"
                : std::string());
  // Apply the view without taking the lock again.
  if (const Member* me = view.FindRank(Role::kServer, rank_)) self_id_ = me->id;
  epoch_ = view.epoch;
  live_.assign(view.num_workers, false);
  for (auto& t : tables_) t.worker_clock.assign(view.num_workers, 0);
  for (const Member* w : view.Live(Role::kWorker)) {
    worker_rank_[w->id] = w->rank;
    if (w->rank < live_.size()) live_[w->rank] = true;
    RETURN_IF_ERROR(transport_->Connect(w->id, w->address));
  }
  generation_ = layout_.generation;
  if (layout_.restore_step >= 0) {
    RETURN_IF_ERROR(RestoreCheckpoint(layout_.restore_step));
  } else if (options_.checkpoint_every_steps > 0 && !options_.run_dir.empty()) {
    // Checkpoint 0 (the initial parameters): a server lost before the first
    // periodic checkpoint can still be rolled back to something.
    RETURN_IF_ERROR(WriteCheckpoint(0));
  }
  return Status::Ok();
}

void KvServer::OnViewChange(const ClusterView& view) {
  std::lock_guard<std::mutex> lock(mu_);
  if (view.epoch <= epoch_) return;
  epoch_ = view.epoch;
  auto layout = Layout::Decode(view.layout);
  if (layout.ok() && layout->generation > generation_ && layout->restore_step >= 0) {
    // The job rolls back: everything since the checkpoint is forgotten.
    generation_ = layout->generation;
    Status s = RestoreCheckpoint(layout->restore_step);
    if (!s.ok())
      log_.Error("cannot roll back to checkpoint ", layout->restore_step, ": ", s.message());
  }
  worker_rank_.clear();
  std::fill(live_.begin(), live_.end(), false);
  for (const Member* w : view.Live(Role::kWorker)) {
    worker_rank_[w->id] = w->rank;
    if (w->rank < live_.size()) live_[w->rank] = true;
    if (Status s = transport_->Connect(w->id, w->address); !s.ok()) {
      log_.Warn("cannot reach worker/", w->rank, " at ", w->address, ": ", s.message());
    }
  }
  for (Table& t : tables_) {
    if (options_.consistency.mode == Consistency::kBsp) TryApplyBsp(t);
    ServeParked(t);
  }
}

KvServerStats KvServer::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

std::pair<uint64_t, std::vector<float>> KvServer::DenseValues(uint32_t table) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (table >= tables_.size() || !tables_[table].dense) return {0, {}};
  const DenseShard& d = *tables_[table].dense;
  return {d.begin(), std::vector<float>(d.data(), d.data() + d.size())};
}

std::vector<float> KvServer::SparseRow(uint32_t table, uint64_t key) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (table >= tables_.size() || !tables_[table].sparse) return {};
  const float* row = tables_[table].sparse->Find(key);
  if (row == nullptr) return {};
  return std::vector<float>(row, row + tables_[table].spec.dim);
}

int64_t KvServer::applied_clock(uint32_t table) const {
  std::lock_guard<std::mutex> lock(mu_);
  return table < tables_.size() ? tables_[table].applied_clock : -1;
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
  if (m.table >= tables_.size()) {
    return InvalidArgumentError("unknown table " + std::to_string(m.table) + " (the job has " +
                                std::to_string(tables_.size()) + ")");
  }
  return &tables_[m.table];
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
      if (layout_.SparseServer(k) != rank_) {
        return InvalidArgumentError(where + "key " + std::to_string(k) + " belongs to server " +
                                    std::to_string(layout_.SparseServer(k)) + ", not " +
                                    std::to_string(rank_));
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
  if (!t.dense || m.offset != t.dense->begin()) {
    return InvalidArgumentError(where + "this server holds no slice starting at " +
                                std::to_string(m.offset));
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
  auto r = WorkerRank(m);
  if (!r.ok()) {
    Reject(m.sender, m, r.status());
    return nullptr;
  }
  auto table = FindTable(m);
  if (!table.ok()) {
    Reject(m.sender, m, table.status());
    return nullptr;
  }
  *rank = *r;
  return *table;
}

void KvServer::HandlePush(Message&& m, bool then_pull) {
  std::lock_guard<std::mutex> lock(mu_);
  uint32_t rank = 0;
  Table* found = Admit(m, &rank);
  if (found == nullptr) return;
  Table& t = *found;
  if (Status s = CheckPayload(t, m, true); !s.ok()) return Reject(m.sender, m, s);
  ++stats_.pushes;
  if ((m.flags & kFlagCheckpoint) != 0) {
    requested_checkpoint_ = std::max(requested_checkpoint_, m.clock + 1);
  }
  Accept(t, rank, m);
  if (then_pull) {
    // The pull half asks for the parameters of the next clock; its reply
    // doubles as the push's acknowledgement.
    Message pull = m;
    pull.values = Buffer();
    pull.clock = m.clock + 1;
    ++stats_.pulls;
    if (Ready(t, pull.clock)) {
      Answer(t, pull, rank, m.sender, MsgType::kPullReply, false);
    } else {
      ++stats_.parked_pulls;
      auto now = std::chrono::steady_clock::now();
      t.parked.push_back({std::move(pull), rank, m.sender, MsgType::kPullReply, now, now});
    }
  } else {
    Reply(m.sender, m, MsgType::kPushAck);
  }
}

void KvServer::Accept(Table& t, uint32_t rank, const Message& m) {
  if (options_.consistency.mode != Consistency::kBsp) {
    if (m.clock < t.worker_clock[rank]) {
      ++stats_.duplicate_pushes;  // a retry of a push already applied
      return;
    }
    ApplyNow(t, m);
    t.worker_clock[rank] = m.clock + 1;
    MaybeCheckpoint();
    ServeParked(t);
    return;
  }
  if (m.clock < t.applied_clock) {
    ++stats_.duplicate_pushes;
    return;
  }
  Aggregation& a = t.pending[m.clock];
  if (a.from.empty()) {
    a.from.assign(live_.size(), false);
    a.pushes.resize(live_.size());
  }
  if (a.from[rank]) {
    ++stats_.duplicate_pushes;
    return;
  }
  a.from[rank] = true;
  a.pushes[rank] = m;  // shares the received buffers
  ++a.count;
  t.worker_clock[rank] = std::max(t.worker_clock[rank], m.clock + 1);
  TryApplyBsp(t);
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
    ApplyAggregation(t, a);
    t.pending.erase(it);
    ++t.applied_clock;
    // Before any pull sees the new clock: the checkpoint holds exactly it.
    MaybeCheckpoint();
    ServeParked(t);
  }
}

void KvServer::ApplyAggregation(Table& t, Aggregation& a) {
  ++stats_.updates;
  // The mean over the pushes received (those of workers that died after
  // pushing are kept: they were acknowledged).
  const float scale = 1.0f / static_cast<float>(a.count);
  if (t.spec.sparse) {
    const uint32_t dim = t.spec.dim;
    FlatMap row;
    std::vector<uint64_t> keys;
    std::vector<float> sum;
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
    for (size_t i = 0; i < keys.size(); ++i) t.sparse->Apply(keys[i], sum.data() + i * dim);
    return;
  }
  std::vector<const float*> in;
  for (const Message& p : a.pushes) {
    if (!p.values.empty()) in.push_back(p.values.as<float>().data());
  }
  if (in.size() == 1) {
    t.dense->Apply(in[0]);  // one worker: its push is the update, no copy
    return;
  }
  const size_t n = t.dense->size();
  t.scratch.resize(n);
  float* __restrict out = t.scratch.data();
  // Blocked so each block of the output stays in cache across the inputs.
  constexpr size_t kBlock = 4096;
  for (size_t b = 0; b < n; b += kBlock) {
    const size_t e = std::min(n, b + kBlock);
    const float* __restrict first = in[0];
    for (size_t i = b; i < e; ++i) out[i] = first[i];
    for (size_t k = 1; k < in.size(); ++k) {
      const float* __restrict x = in[k];
      for (size_t i = b; i < e; ++i) out[i] += x[i];
    }
    for (size_t i = b; i < e; ++i) out[i] *= scale;
  }
  t.dense->Apply(out);
}

void KvServer::ApplyNow(Table& t, const Message& m) {
  ++stats_.updates;
  if (t.spec.sparse) {
    auto keys = m.keys.as<uint64_t>();
    const float* v = m.values.as<float>().data();
    for (size_t i = 0; i < keys.size(); ++i) t.sparse->Apply(keys[i], v + i * t.spec.dim);
  } else {
    t.dense->Apply(m.values.as<float>().data());
  }
}

void KvServer::HandlePull(Message&& m) {
  log_.Debug("pull from ", m.sender, " table ", m.table, " clock ", m.clock);
  std::lock_guard<std::mutex> lock(mu_);
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
    }
    Answer(t, m, rank, m.sender, MsgType::kPullReply, false);
    return;
  }
  if (Ready(t, m.clock)) {
    Answer(t, m, rank, m.sender, MsgType::kPullReply, false);
    return;
  }
  ++stats_.parked_pulls;
  auto now = std::chrono::steady_clock::now();
  NodeId node = m.sender;
  t.parked.push_back({std::move(m), rank, node, MsgType::kPullReply, now, now});
}

void KvServer::HandleClock(Message&& m) {
  // A worker announcing it reached a clock without pushing to this server.
  std::lock_guard<std::mutex> lock(mu_);
  uint32_t rank = 0;
  Table* found = Admit(m, &rank);
  if (found == nullptr) return;
  Table& t = *found;
  t.worker_clock[rank] = std::max(t.worker_clock[rank], m.clock + 1);
  ServeParked(t);
  Reply(m.sender, m, MsgType::kPushAck);
}

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
      return clock <= t.applied_clock;
    case Consistency::kSsp:
      return MinClock(t) >= clock - options_.consistency.staleness;
    case Consistency::kAsp:
      return true;
  }
  return true;
}

void KvServer::Answer(Table& t, const Message& req, uint32_t rank, NodeId node, MsgType type,
                      bool waited) {
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
    (Ready(t, p.request.clock) ? ready : still).push_back(std::move(p));
  }
  t.parked = std::move(still);
  for (Parked& p : ready) Answer(t, p.request, p.rank, p.node, p.reply_type, true);
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

void KvServer::MaybeCheckpoint() {
  const int64_t every = options_.checkpoint_every_steps;
  if (options_.run_dir.empty() || (every <= 0 && requested_checkpoint_ < 0)) return;
  // This server's clock: the slowest of the tables it holds (under BSP all
  // of them reach clock t before any sees a push of t + 1).
  int64_t clock = INT64_MAX;
  for (const Table& t : tables_) {
    if (!t.dense && !t.sparse) continue;
    clock = std::min(
        clock, options_.consistency.mode == Consistency::kBsp ? t.applied_clock : MinClock(t));
  }
  const bool periodic = every > 0 && clock % every == 0;
  const bool requested = requested_checkpoint_ >= 0 && clock >= requested_checkpoint_;
  if (clock == INT64_MAX || clock <= last_checkpoint_ || !(periodic || requested)) return;
  requested_checkpoint_ = -1;
  last_checkpoint_ = clock;
  Status s = WriteCheckpoint(clock);
  if (!s.ok()) log_.Error("checkpoint ", clock, " failed: ", s.message());
}

Status KvServer::WriteCheckpoint(int64_t step) {
  const std::string dir = CheckpointDir(options_.run_dir, step);
  RETURN_IF_ERROR(MakeDirs(dir));
  CheckpointReport report;
  report.step = step;
  report.server_rank = rank_;
  for (const Table& t : tables_) {
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
    ManifestEntry entry;
    RETURN_IF_ERROR(WriteShard(dir, static_cast<int>(rank_), snap, &entry));
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
  ASSIGN_OR_RETURN(auto shards, LoadServerShards(dir, static_cast<int>(rank_)));
  for (ShardSnapshot& snap : shards) {
    if (snap.table >= tables_.size()) return DataLossError(dir + ": shard of unknown table");
    Table& t = tables_[snap.table];
    if (snap.sparse && t.sparse) {
      RETURN_IF_ERROR(t.sparse->Restore(std::move(snap.keys), std::move(snap.params),
                                        std::move(snap.state), std::move(snap.row_steps)));
    } else if (!snap.sparse && t.dense && snap.begin == t.dense->begin()) {
      RETURN_IF_ERROR(t.dense->Restore(snap.params, snap.state, snap.steps));
    } else {
      return DataLossError(dir + ": a shard of table '" + t.spec.name +
                           "' does not fit this server's layout");
    }
  }
  for (Table& t : tables_) {
    t.applied_clock = step;
    std::fill(t.worker_clock.begin(), t.worker_clock.end(), step);
    t.pending.clear();
    t.parked.clear();
  }
  last_checkpoint_ = step;
  log_.Info("restored checkpoint ", step, " from ", dir);
  return Status::Ok();
}

void KvServer::Tick() {
  std::lock_guard<std::mutex> lock(mu_);
  auto now = std::chrono::steady_clock::now();
  for (Table& t : tables_) {
    for (Parked& p : t.parked) {
      if (now - p.last_log < options_.wait_log_interval) continue;
      p.last_log = now;
      log_.Info("pull from worker/", p.rank, " for clock ", p.request.clock, " of table '",
                t.spec.name, "' has waited ", ToMillis(now - p.since), " ms for ",
                WhoIsSlow(t, p.request.clock));
    }
  }
}

}  // namespace distopt
