#include "kv/node.h"

#include "kv/checkpoint.h"
#include "kv/job_policy.h"

namespace distopt {
namespace {

ClusterClientOptions ClientOptions(const NodeOptions& n, Role role) {
  ClusterClientOptions o;
  o.role = role;
  o.rank = n.rank;
  o.coordinator_address = n.coordinator_address;
  o.host_label = n.host_label;
  o.capacity = n.capacity;
  o.heartbeat_interval = n.heartbeat_interval;
  o.coordinator_timeout = n.coordinator_timeout;
  return o;
}

}  // namespace

Status RunCoordinator(CoordinatorOptions options, const std::vector<TableSpec>& tables,
                      Transport* transport, Logger log, const CheckpointOptions& ckpt,
                      uint32_t replication, uint32_t partitions) {
  ASSIGN_OR_RETURN(auto policy, KvJobPolicy::Make(tables, options.num_servers, replication, ckpt,
                                                  transport, log, partitions));
  options.policy = policy.get();
  options.tolerate_server_loss = policy->tolerates_server_loss();
  options.server_rejoin_required = replication == 1;
  Coordinator c(std::move(options), transport, log);
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
    if (!s.ok()) {
      log_.Warn("could not keep the manifest of checkpoint ",
                copy.ok() ? std::to_string(copy->step) : std::string("(unreadable)"), ": ",
                s.message());
    }
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
