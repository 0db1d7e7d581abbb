#include "kv/node.h"

#include <map>

#include "kv/checkpoint.h"

namespace distopt {
namespace {

ClusterClientOptions ClientOptions(const NodeOptions& n, Role role) {
  ClusterClientOptions o;
  o.role = role;
  o.rank = n.rank;
  o.coordinator_address = n.coordinator_address;
  o.heartbeat_interval = n.heartbeat_interval;
  o.coordinator_timeout = n.coordinator_timeout;
  return o;
}

}  // namespace

Status RunCoordinator(CoordinatorOptions options, const std::vector<TableSpec>& tables,
                      Transport* transport, Logger log, const CheckpointOptions& ckpt) {
  RETURN_IF_ERROR(ValidateTables(tables));
  const uint32_t servers = options.num_servers;
  const uint64_t hash = TablesHash(tables, servers);
  int64_t restore = -1;
  if (ckpt.resume) {
    auto dir = FindLatestGoodCheckpoint(ckpt.run_dir, hash, &log);
    if (!dir.ok()) return dir.status().WithContext("cannot resume " + ckpt.run_dir);
    ASSIGN_OR_RETURN(Manifest m, ReadManifest(*dir));
    restore = m.step;
    log.Info("resuming from ", *dir, " (step ", restore, ")");
  }
  options.layout = [tables, servers, restore](const ClusterView&) {
    Layout l = Layout::Compute(tables, servers);
    l.restore_step = restore;
    return l.Encode();
  };
  // Checkpoint reports by step; the manifest is written last, once every
  // server's files are durable, so only complete checkpoints ever load.
  std::map<int64_t, std::map<uint32_t, std::vector<ManifestEntry>>> reports;
  options.on_checkpoint = [&](const Message& m) {
    auto r = DecodeCheckpointReport(m.body.data(), m.body.size());
    if (!r.ok() || ckpt.run_dir.empty()) {
      log.Warn("ignored a bad checkpoint report from node ", m.sender);
      return;
    }
    auto& by_server = reports[r->step];
    by_server[r->server_rank] = r->files;
    if (by_server.size() < servers) return;
    Manifest man;
    man.step = r->step;
    man.config_hash = hash;
    man.num_servers = servers;
    for (auto& [rank, files] : by_server) {
      man.files.insert(man.files.end(), files.begin(), files.end());
    }
    std::string dir = CheckpointDir(ckpt.run_dir, r->step);
    Status s = WriteManifest(dir, man);
    if (!s.ok()) {
      log.Error("checkpoint ", r->step, " is unusable: ", s.message());
    } else {
      log.Info("checkpoint ", r->step, " complete: ", dir);
      Status p = PruneCheckpoints(ckpt.run_dir, static_cast<int>(ckpt.keep));
      if (!p.ok()) log.Warn("pruning old checkpoints: ", p.message());
    }
    reports.erase(reports.begin(), reports.upper_bound(r->step));
  };
  // Rollback: a server lost without a replica comes back empty. Once every
  // server rank is live again, the job returns to the newest good
  // checkpoint: a new layout generation tells servers to reload it and
  // workers to drop what was in flight and rejoin at its clock.
  Coordinator* self = nullptr;
  std::map<uint32_t, NodeId> server_ids;
  uint32_t generation = 0;
  const bool can_roll_back = !ckpt.run_dir.empty() && ckpt.enabled;
  options.tolerate_server_loss = can_roll_back;
  options.on_view_change = [&, tables, servers](const ClusterView& v) {
    bool replaced = false, complete = true;
    for (uint32_t r = 0; r < servers; ++r) {
      const Member* m = v.FindRank(Role::kServer, r);
      if (m == nullptr) {
        complete = false;
        continue;
      }
      auto it = server_ids.find(r);
      if (it != server_ids.end() && it->second != m->id) replaced = true;
      server_ids[r] = m->id;
    }
    if (!replaced || !complete || !can_roll_back || self == nullptr) return;
    auto dir = FindLatestGoodCheckpoint(ckpt.run_dir, hash, &log);
    if (!dir.ok()) {
      log.Error("a server was replaced but there is no good checkpoint to roll back to: ",
                dir.status().message());
      return;
    }
    auto m = ReadManifest(*dir);
    if (!m.ok()) return;
    Layout l = Layout::Compute(tables, servers);
    l.restore_step = m->step;
    l.generation = ++generation;
    log.Warn("rolling the job back to checkpoint ", m->step, " (generation ", generation, ")");
    self->SetLayout(l.Encode());
  };
  Coordinator c(std::move(options), transport, log);  // the callbacks above log too
  self = &c;
  return c.Run();
}

ServerNode::ServerNode(NodeOptions node, KvServerOptions kv, std::unique_ptr<Transport> transport,
                       Logger log)
    : node_(std::move(node)),
      kv_(std::move(kv)),
      transport_(std::move(transport)),
      log_(std::move(log)),
      dispatcher_(transport_.get(), log_),
      cluster_(ClientOptions(node_, Role::kServer), transport_.get(), &dispatcher_, log_) {
  for (MsgType t : {MsgType::kPush, MsgType::kPull, MsgType::kPushPull, MsgType::kClock}) {
    dispatcher_.Handle(t, [this](Message&& m) {
      std::lock_guard<std::mutex> lock(mu_);
      if (server_) {
        server_->HandleMessage(std::move(m));
      } else {
        early_.push_back(std::move(m));
      }
    });
  }
  dispatcher_.OnTick(std::chrono::milliseconds(500), [this] {
    if (ready_.load()) server_->Tick();
  });
}

ServerNode::~ServerNode() { Kill(); }

Status ServerNode::Run() {
  dispatcher_.Start();
  Status s = cluster_.Register(Deadline::After(node_.register_timeout));
  if (!s.ok()) {
    Kill();
    return s;
  }
  ClusterView view = cluster_.view();
  // Handlers must be in place before the first request can arrive; the
  // dispatcher runs them in order, so installing them now is safe: requests
  // for an unknown type were never sent before the job started.
  auto server = KvServer::Create(kv_, cluster_.rank(), view, transport_.get(), log_);
  if (!server.ok()) {
    cluster_.SendAbort("server/" + std::to_string(cluster_.rank()) + ": " +
                       server.status().message());
    Kill();
    return server.status();
  }
  KvServer* raw = server->get();
  {
    std::lock_guard<std::mutex> lock(mu_);
    server_ = std::move(*server);
    for (Message& m : early_) server_->HandleMessage(std::move(m));
    early_.clear();
  }
  cluster_.OnViewChange([raw](const ClusterView& v) { raw->OnViewChange(v); });
  raw->OnViewChange(cluster_.view());  // in case the view moved on meanwhile
  ready_.store(true);
  Status end = cluster_.WaitShutdown(Deadline::Never());
  Kill();
  return end;
}

void ServerNode::Kill() {
  cluster_.Stop();
  dispatcher_.Stop();
}

WorkerNode::WorkerNode(NodeOptions node, std::vector<TableSpec> tables, KvClientOptions kv,
                       std::unique_ptr<Transport> transport, Logger log)
    : node_(std::move(node)),
      transport_(std::move(transport)),
      log_(std::move(log)),
      dispatcher_(transport_.get(), log_),
      cluster_(ClientOptions(node_, Role::kWorker), transport_.get(), &dispatcher_, log_),
      kv_(kv, std::move(tables), transport_.get(), &dispatcher_, log_) {}

WorkerNode::~WorkerNode() { Kill(); }

Status WorkerNode::Start(Deadline deadline) {
  dispatcher_.Start();
  RETURN_IF_ERROR(cluster_.Register(deadline));
  RETURN_IF_ERROR(kv_.OnViewChange(cluster_.view()));
  cluster_.OnViewChange([this](const ClusterView& v) {
    Status s = kv_.OnViewChange(v);
    if (!s.ok()) log_.Error("cannot apply membership epoch ", v.epoch, ": ", s.message());
  });
  return Status::Ok();
}

Status WorkerNode::Finish(Deadline deadline, const std::string& end_job_reason) {
  Status s = cluster_.FinishAndWait(end_job_reason, deadline);
  Kill();
  return s;
}

void WorkerNode::Abort(const std::string& reason) { cluster_.SendAbort(reason); }

void WorkerNode::Kill() {
  cluster_.Stop();
  dispatcher_.Stop();
}

}  // namespace distopt
