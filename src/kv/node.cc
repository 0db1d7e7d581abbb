#include "kv/node.h"

#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "base/bytes.h"
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
                      Transport* transport, Logger log, const CheckpointOptions& ckpt,
                      uint32_t replication) {
  RETURN_IF_ERROR(ValidateTables(tables));
  const uint32_t servers = options.num_servers;
  if (replication < 1 || replication > 2 || (replication == 2 && servers < 2)) {
    return InvalidArgumentError("replication " + std::to_string(replication) + " with " +
                                std::to_string(servers) + " server(s): need 1, or 2 with >= 2");
  }
  const uint64_t hash = TablesHash(tables, servers);
  // The coordinator's folder holds every checkpoint file (one filesystem
  // with the servers) or only the manifests (a folder per host).
  constexpr CheckpointScope kScope = CheckpointScope::kAllOrManifestOnly;
  int64_t restore = -1;
  if (ckpt.resume) {
    auto dir = FindLatestGoodCheckpoint(ckpt.run_dir, hash, &log, kScope);
    if (!dir.ok()) return dir.status().WithContext("cannot resume " + ckpt.run_dir);
    ASSIGN_OR_RETURN(Manifest m, ReadManifest(*dir));
    restore = m.step;
    log.Info("resuming from ", *dir, " (step ", restore, ")");
  }
  // The layout as last published; the callbacks below (all on the
  // coordinator thread) keep it current.
  Layout current;
  options.layout = [&](const ClusterView&) {
    current = Layout::Compute(tables, servers, replication);
    current.restore_step = restore;
    return current.Encode();
  };
  Coordinator* self = nullptr;
  // Checkpoint reports by step; the manifest is written last, once every
  // partition's files are durable, so only complete checkpoints ever load.
  std::map<int64_t, std::map<uint32_t, std::vector<ManifestEntry>>> reports;
  options.on_checkpoint = [&](const Message& m) {
    auto r = DecodeCheckpointReport(m.body.data(), m.body.size());
    if (!r.ok() || ckpt.run_dir.empty()) {
      log.Warn("ignored a bad checkpoint report from node ", m.sender);
      return;
    }
    auto& by_partition = reports[r->step];
    by_partition[r->server_rank] = r->files;
    if (by_partition.size() < servers) return;
    Manifest man;
    man.step = r->step;
    man.config_hash = hash;
    man.num_servers = servers;
    for (auto& [rank, files] : by_partition) {
      man.files.insert(man.files.end(), files.begin(), files.end());
    }
    std::string dir = CheckpointDir(ckpt.run_dir, r->step);
    Status s = WriteManifest(dir, man, kScope);
    if (!s.ok()) {
      log.Error("checkpoint ", r->step, " is unusable: ", s.message());
    } else {
      log.Info("checkpoint ", r->step, " complete: ", dir);
      Status p = PruneCheckpoints(ckpt.run_dir, static_cast<int>(ckpt.keep), kScope);
      if (!p.ok()) log.Warn("pruning old checkpoints: ", p.message());
      // Servers with folders of their own keep a copy (to verify, prune and
      // resume from); in a shared folder they find it already there.
      std::ifstream in(dir + "/" + kManifestName, std::ios::binary);
      ManifestCopy copy;
      copy.step = r->step;
      copy.bytes.assign(std::istreambuf_iterator<char>(in), {});
      const Buffer body = Buffer::FromVector(EncodeManifestCopy(copy));
      const ClusterView view = self->view();
      for (const Member* srv : view.Live(Role::kServer)) {
        Message mm;
        mm.type = MsgType::kManifest;
        mm.sender = kCoordinatorId;
        mm.clock = r->step;
        mm.body = body;
        transport->Send(srv->id, std::move(mm)).IgnoreError();
      }
    }
    reports.erase(reports.begin(), reports.upper_bound(r->step));
  };
  std::map<uint32_t, NodeId> server_ids;  // the node last seen holding each rank
  uint32_t generation = 0;
  const bool can_roll_back = !ckpt.run_dir.empty() && ckpt.enabled;
  options.tolerate_server_loss = can_roll_back || replication > 1;
  options.server_rejoin_required = replication == 1;
  // Rollback: when a partition lost every copy (a server died without a
  // replica, it comes back empty) and every server rank is live again, the
  // job returns to the newest good checkpoint: a new layout generation
  // tells servers to reload it and workers to drop what was in flight and
  // rejoin at its clock.
  auto roll_back = [&]() {
    auto dir = FindLatestGoodCheckpoint(ckpt.run_dir, hash, &log, kScope);
    if (!dir.ok()) {
      self->Fail(
          DataLossError("a partition lost every copy and there is no good checkpoint to "
                        "roll back to: " +
                        dir.status().message()));
      return;
    }
    auto m = ReadManifest(*dir);
    if (!m.ok()) return;
    current = Layout::Compute(tables, servers, replication);
    current.restore_step = m->step;
    current.generation = ++generation;
    log.Warn("rolling the job back to checkpoint ", m->step, " (generation ", generation, ")");
    self->SetLayout(current.Encode());
  };
  options.on_view_change = [&](const ClusterView& v) {
    if (self == nullptr) return;
    // Ranks whose data is here: live, and the same process as before (a
    // restarted server holds nothing until it is given a copy).
    std::set<uint32_t> up;
    bool complete = true;
    for (uint32_t r = 0; r < servers; ++r) {
      const Member* m = v.FindRank(Role::kServer, r);
      if (m == nullptr) {
        complete = false;
        continue;
      }
      auto it = server_ids.find(r);
      if (it == server_ids.end() || it->second == m->id) up.insert(r);
      server_ids[r] = m->id;
    }
    bool changed = false;
    std::vector<uint32_t> lost;
    for (uint32_t p = 0; p < servers; ++p) {
      Replica& rep = current.replicas[p];
      if (!up.count(rep.owner)) {
        if (rep.backup != kNoServer && up.count(rep.backup) && rep.synced) {
          log.Warn("partition ", p, " fails over from server/", rep.owner, " to its backup server/",
                   rep.backup);
          rep.owner = rep.backup;
          rep.backup = kNoServer;
          rep.synced = false;
          changed = true;
        } else {
          lost.push_back(p);
        }
      } else if (rep.backup != kNoServer && !up.count(rep.backup)) {
        log.Warn("partition ", p, " lost its backup server/", rep.backup);
        rep.backup = kNoServer;
        rep.synced = false;
        changed = true;
      }
    }
    if (!lost.empty()) {
      std::string which;
      for (uint32_t p : lost) which += (which.empty() ? "" : ", ") + std::to_string(p);
      if (!can_roll_back) {
        self->Fail(UnavailableError("partition(s) " + which +
                                    " lost every copy (no live replica and no checkpoints); the "
                                    "job stops"));
      } else if (complete) {
        roll_back();
      } else {
        log.Warn("partition(s) ", which,
                 " lost every copy; waiting for the servers to be "
                 "restarted to roll back to the last checkpoint");
      }
      return;
    }
    if (replication > 1) {
      // A partition without a backup gets one on the live server that
      // holds the fewest copies (a restarted server, typically).
      std::map<uint32_t, int> load;  // live ranks (restarted ones included)
      for (uint32_t r = 0; r < servers; ++r) {
        if (v.FindRank(Role::kServer, r) != nullptr) load.emplace(r, 0);
      }
      for (const Replica& rep : current.replicas) {
        if (load.count(rep.owner)) ++load[rep.owner];
        if (rep.backup != kNoServer && load.count(rep.backup)) ++load[rep.backup];
      }
      for (uint32_t p = 0; p < servers; ++p) {
        Replica& rep = current.replicas[p];
        if (rep.backup != kNoServer) continue;
        uint32_t best = kNoServer;
        for (auto [r, n] : load) {
          if (r != rep.owner && (best == kNoServer || n < load[best])) best = r;
        }
        if (best == kNoServer) continue;
        log.Info("partition ", p, " gets a new backup: server/", best, " (syncing from server/",
                 rep.owner, ")");
        rep.backup = best;
        rep.synced = false;
        ++load[best];
        changed = true;
      }
    }
    if (changed) self->SetLayout(current.Encode());
  };
  options.on_replica_synced = [&](const Message& m) {
    ByteReader r(m.body.data(), m.body.size());
    uint32_t p = 0;
    if (!r.U32(&p).ok() || p >= current.replicas.size()) return;
    Replica& rep = current.replicas[p];
    auto it = server_ids.find(rep.backup);
    if (rep.synced || it == server_ids.end() || it->second != m.sender) return;
    rep.synced = true;
    log.Info("partition ", p, ": backup server/", rep.backup, " is in sync");
    self->SetLayout(current.Encode());
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
  server_ = std::make_unique<KvServer>(kv_, transport_.get(), log_);
  // Requests that arrive before the server has joined (a fast worker can
  // send its first pull before this node has built its tables) are held by
  // the server itself until Start.
  for (MsgType t : {MsgType::kPush, MsgType::kPull, MsgType::kPushPull, MsgType::kClock,
                    MsgType::kReplicate, MsgType::kReplicateAck}) {
    dispatcher_.Handle(t, [this](Message&& m) { server_->HandleMessage(std::move(m)); });
  }
  // The coordinator's copy of each complete checkpoint's manifest. A small
  // file once per checkpoint, written on the dispatcher thread.
  dispatcher_.Handle(MsgType::kManifest, [this](Message&& m) {
    if (kv_.run_dir.empty()) return;
    auto copy = DecodeManifestCopy(m.body.data(), m.body.size());
    Status s = copy.ok()
                   ? StoreManifestCopy(kv_.run_dir, *copy, static_cast<int>(kv_.keep_checkpoints))
                   : copy.status();
    if (!s.ok())
      log_.Warn("could not keep the manifest of checkpoint ", m.clock, ": ", s.message());
  });
  dispatcher_.OnTick(std::chrono::milliseconds(500), [this] {
    if (ready_.load()) server_->Tick();
  });
}

ServerNode::~ServerNode() { Stop(); }

Status ServerNode::Run() {
  dispatcher_.Start();
  Status s = cluster_.Register(Deadline::After(node_.register_timeout));
  if (!s.ok()) {
    Stop();
    return s;
  }
  ClusterView view = cluster_.view();
  if (Status started = server_->Start(cluster_.rank(), view); !started.ok()) {
    cluster_.SendAbort("server/" + std::to_string(cluster_.rank()) + ": " + started.message());
    Stop();
    return started;
  }
  KvServer* raw = server_.get();
  cluster_.OnViewChange([raw](const ClusterView& v) { raw->OnViewChange(v); });
  raw->OnViewChange(cluster_.view());  // in case the view moved on meanwhile
  ready_.store(true);
  Status end = cluster_.WaitShutdown(Deadline::Never());
  Stop();
  return end;
}

void ServerNode::Kill() {
  killed_.store(true);
  Stop();
}

void ServerNode::Stop() {
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
