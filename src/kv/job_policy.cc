#include "kv/job_policy.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>

#include "base/bytes.h"

namespace distopt {

Result<std::unique_ptr<KvJobPolicy>> KvJobPolicy::Make(std::vector<TableSpec> tables,
                                                       uint32_t num_servers, uint32_t replication,
                                                       CheckpointOptions ckpt, Transport* transport,
                                                       Logger log, uint32_t partitions) {
  RETURN_IF_ERROR(ValidateTables(tables));
  if (replication < 1 || replication > 2 || (replication == 2 && num_servers < 2)) {
    return InvalidArgumentError("replication " + std::to_string(replication) + " with " +
                                std::to_string(num_servers) + " server(s): need 1, or 2 with >= 2");
  }
  FailoverPolicyOptions po;
  po.num_partitions = Layout::Partitions(tables, num_servers, partitions);
  const uint64_t hash = TablesHash(tables, po.num_partitions);
  po.tables = std::move(tables);
  po.num_servers = num_servers;
  po.replication = replication;
  po.checkpoints = !ckpt.run_dir.empty() && ckpt.enabled;
  po.latest_checkpoint = [dir = ckpt.run_dir, hash, log]() -> Result<int64_t> {
    ASSIGN_OR_RETURN(std::string found, FindLatestGoodCheckpoint(dir, hash, &log, kScope));
    ASSIGN_OR_RETURN(Manifest m, ReadManifest(found));
    return m.step;
  };
  if (ckpt.resume) {
    auto step = po.latest_checkpoint();
    if (!step.ok()) return step.status().WithContext("cannot resume " + ckpt.run_dir);
    po.restore_step = *step;
    log.Info("resuming from ", CheckpointDir(ckpt.run_dir, *step), " (step ", *step, ")");
  }
  const uint32_t num_partitions = po.num_partitions;
  return std::unique_ptr<KvJobPolicy>(new KvJobPolicy(std::move(po), num_partitions, hash,
                                                      std::move(ckpt), transport, std::move(log)));
}

KvJobPolicy::KvJobPolicy(FailoverPolicyOptions failover, uint32_t num_partitions, uint64_t hash,
                         CheckpointOptions ckpt, Transport* transport, Logger log)
    : num_servers_(failover.num_servers),
      ckpt_(std::move(ckpt)),
      transport_(transport),
      log_(std::move(log)),
      tolerates_server_loss_(failover.checkpoints || failover.replication > 1),
      failover_(std::move(failover)),
      commit_(num_partitions, hash) {}

std::string KvJobPolicy::FirstLayout(const ClusterView& view) {
  const ServerNodes servers = ServerNodes::FromView(view, num_servers_);
  const Layout& layout = failover_.Start(servers);
  LogPlacement(layout, servers);
  return layout.Encode();
}

void KvJobPolicy::LogPlacement(const Layout& layout, const ServerNodes& servers) const {
  std::vector<uint32_t> owned(num_servers_, 0);
  for (const Replica& rep : layout.replicas) ++owned[rep.owner];
  std::map<std::string, std::string> by_host;
  for (uint32_t r = 0; r < num_servers_; ++r) {
    std::string& line = by_host[servers.host(r)];
    if (line.empty()) line = "capacity " + std::to_string(servers.capacities[r]);
    line += ", server/" + std::to_string(r) + " " + std::to_string(owned[r]);
  }
  std::string text;
  for (const auto& [host, line] : by_host) text += "; host " + host + " (" + line + ")";
  log_.Info(layout.num_partitions, " partition(s) over ", num_servers_, " server(s)", text);
  const std::vector<double> w = servers.Weights();
  if (layout.num_partitions == num_servers_ &&
      std::any_of(w.begin(), w.end(), [&](double x) { return x != w[0]; })) {
    log_.Warn(
        "the hosts differ in capacity but the model has one partition per server, so "
        "each holds an equal share; set cluster.partitions (e.g. ",
        4 * num_servers_, ") to size their shares by capacity");
  }
}

JobAction KvJobPolicy::OnViewChange(const ClusterView& view) {
  return Carry(failover_.OnMembership(ServerNodes::FromView(view, num_servers_)), view.epoch);
}

JobAction KvJobPolicy::OnReport(const Message& m, const ClusterView& view) {
  if (m.type == MsgType::kCheckpoint) {
    OnCheckpointReport(m, view);
    return JobAction::Keep();
  }
  ByteReader r(m.body.data(), m.body.size());
  uint32_t partition = 0;
  if (m.type != MsgType::kReplicaSynced || !r.U32(&partition).ok()) {
    log_.Warn("ignored a bad ", MsgTypeName(m.type), " report from node ", m.sender);
    return JobAction::Keep();
  }
  return Carry(failover_.OnReplicaSynced(partition, m.sender, m.epoch), view.epoch);
}

JobAction KvJobPolicy::Carry(const FailoverDecision& d, uint32_t epoch) {
  for (const auto& e : d.events) log_.Log(e.level, e.text);
  switch (d.kind) {
    case FailoverDecision::kNewLayout:
      return JobAction::Publish(d.layout.Encode());
    case FailoverDecision::kRollBack:
      // Published in epoch + 1: reports sent before it describe files of
      // the abandoned run.
      commit_.RolledBack(epoch + 1, d.restore_step);
      return JobAction::Publish(d.layout.Encode());
    case FailoverDecision::kFail:
      return JobAction::Fail(d.failure);
    case FailoverDecision::kKeep:
    case FailoverDecision::kWaitForRestart:
      return JobAction::Keep();
  }
  return JobAction::Keep();
}

void KvJobPolicy::OnCheckpointReport(const Message& m, const ClusterView& view) {
  auto r = DecodeCheckpointReport(m.body.data(), m.body.size());
  if (!r.ok() || ckpt_.run_dir.empty()) {
    log_.Warn(
        "ignored a bad checkpoint report from node ", m.sender,
        r.ok() ? std::string(" (this job keeps no checkpoints)") : ": " + r.status().message());
    return;
  }
  if (auto man = commit_.Add(*r, m.epoch)) CommitManifest(*man, view);
}

void KvJobPolicy::CommitManifest(const Manifest& man, const ClusterView& view) {
  const std::string dir = CheckpointDir(ckpt_.run_dir, man.step);
  if (Status s = WriteManifest(dir, man, kScope); !s.ok()) {
    log_.Error("checkpoint ", man.step, " is unusable: ", s.message());
    return;
  }
  log_.Info("checkpoint ", man.step, " complete: ", dir);
  Status p = PruneCheckpoints(ckpt_.run_dir, static_cast<int>(ckpt_.keep), kScope);
  if (!p.ok()) log_.Warn("pruning old checkpoints: ", p.message());
  // Servers with folders of their own keep a copy to verify, prune and
  // resume from; in a shared folder they find it already there.
  std::ifstream in(dir + "/" + kManifestName, std::ios::binary);
  ManifestCopy copy;
  copy.step = man.step;
  copy.bytes.assign(std::istreambuf_iterator<char>(in), {});
  const Buffer body = Buffer::FromVector(EncodeManifestCopy(copy));
  for (const Member* srv : view.Live(Role::kServer)) {
    Message mm;
    mm.type = MsgType::kManifest;
    mm.sender = kCoordinatorId;
    mm.body = body;  // names its step
    transport_->Send(srv->id, std::move(mm)).IgnoreError();
  }
}

}  // namespace distopt
