#include "kv/node.h"

#include <fstream>
#include <iterator>

#include "base/bytes.h"
#include "kv/checkpoint.h"
#include "kv/checkpoint_commit.h"
#include "kv/failover_policy.h"

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

// Writes a complete checkpoint's manifest (last: only complete checkpoints
// ever load), prunes old checkpoints, and hands each server a copy of the
// manifest (servers with folders of their own keep one to verify, prune and
// resume from; in a shared folder they find it already there).
void CommitManifest(const Manifest& man, const CheckpointOptions& ckpt, CheckpointScope scope,
                    const ClusterView& view, Transport* transport, const Logger& log) {
  const std::string dir = CheckpointDir(ckpt.run_dir, man.step);
  if (Status s = WriteManifest(dir, man, scope); !s.ok()) {
    log.Error("checkpoint ", man.step, " is unusable: ", s.message());
    return;
  }
  log.Info("checkpoint ", man.step, " complete: ", dir);
  Status p = PruneCheckpoints(ckpt.run_dir, static_cast<int>(ckpt.keep), scope);
  if (!p.ok()) log.Warn("pruning old checkpoints: ", p.message());
  std::ifstream in(dir + "/" + kManifestName, std::ios::binary);
  ManifestCopy copy;
  copy.step = man.step;
  copy.bytes.assign(std::istreambuf_iterator<char>(in), {});
  const Buffer body = Buffer::FromVector(EncodeManifestCopy(copy));
  for (const Member* srv : view.Live(Role::kServer)) {
    Message mm;
    mm.type = MsgType::kManifest;
    mm.sender = kCoordinatorId;
    mm.clock = man.step;
    mm.body = body;
    transport->Send(srv->id, std::move(mm)).IgnoreError();
  }
}

}  // namespace

// The decisions are FailoverPolicy's and CheckpointCommit's (unit-tested
// without a cluster); this function only connects them to the coordinator's
// callbacks, all of which run on the coordinator's thread.
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
  auto latest_checkpoint = [&]() -> Result<int64_t> {
    ASSIGN_OR_RETURN(std::string dir, FindLatestGoodCheckpoint(ckpt.run_dir, hash, &log, kScope));
    ASSIGN_OR_RETURN(Manifest m, ReadManifest(dir));
    return m.step;
  };
  FailoverPolicyOptions po;
  po.tables = tables;
  po.num_servers = servers;
  po.replication = replication;
  po.checkpoints = !ckpt.run_dir.empty() && ckpt.enabled;
  po.latest_checkpoint = latest_checkpoint;
  if (ckpt.resume) {
    auto step = latest_checkpoint();
    if (!step.ok()) return step.status().WithContext("cannot resume " + ckpt.run_dir);
    po.restore_step = *step;
    log.Info("resuming from ", CheckpointDir(ckpt.run_dir, *step), " (step ", *step, ")");
  }
  options.tolerate_server_loss = po.checkpoints || replication > 1;
  options.server_rejoin_required = replication == 1;
  FailoverPolicy policy(std::move(po));
  CheckpointCommit commit(servers, hash);
  Coordinator* self = nullptr;
  // `epoch`: the view the decision was made on. Callbacks may run under the
  // coordinator's lock (a registration): they must not call self->view().
  auto apply = [&](const FailoverDecision& d, uint32_t epoch) {
    for (const auto& e : d.events) log.Log(e.level, e.text);
    switch (d.kind) {
      case FailoverDecision::kNewLayout:
        return self->SetLayout(d.layout.Encode());
      case FailoverDecision::kRollBack:
        self->SetLayout(d.layout.Encode());  // published in epoch + 1
        // Reports sent before that epoch describe files of the abandoned run.
        return commit.RolledBack(epoch + 1, d.restore_step);
      case FailoverDecision::kFail:
        return self->Fail(d.failure);
      case FailoverDecision::kKeep:
      case FailoverDecision::kWaitForRestart:
        return;
    }
  };
  options.layout = [&](const ClusterView& v) {
    return policy.Start(ServerNodes::FromView(v, servers)).Encode();
  };
  options.on_view_change = [&](const ClusterView& v) {
    if (self != nullptr) apply(policy.OnMembership(ServerNodes::FromView(v, servers)), v.epoch);
  };
  options.on_replica_synced = [&](const Message& m) {
    ByteReader r(m.body.data(), m.body.size());
    uint32_t p = 0;
    if (self != nullptr && r.U32(&p).ok()) {
      apply(policy.OnReplicaSynced(p, m.sender, m.epoch), m.epoch);
    }
  };
  options.on_checkpoint = [&](const Message& m) {
    auto r = DecodeCheckpointReport(m.body.data(), m.body.size());
    if (!r.ok() || ckpt.run_dir.empty()) {
      log.Warn("ignored a bad checkpoint report from node ", m.sender);
      return;
    }
    if (auto man = commit.Add(*r, m.epoch)) {
      CommitManifest(*man, ckpt, kScope, self->view(), transport, log);
    }
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
  KvServerOptions server_options = kv_;
  server_options.on_fatal = [this](const std::string& reason) { cluster_.SendAbort(reason); };
  server_ = std::make_unique<KvServer>(std::move(server_options), transport_.get(), log_);
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
