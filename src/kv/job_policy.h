// KvJobPolicy: the kv layer's JobPolicy, what the coordinator of a
// parameter-server job decides. The layout and its failover, rollback and
// failure decisions are FailoverPolicy's; checkpoint reports become manifests
// through CheckpointCommit. This class only connects them to the
// coordinator's events, and does the I/O they call for: it writes a complete
// checkpoint's manifest (last, so only complete checkpoints ever load),
// prunes old checkpoints and hands each live server a copy of the manifest.
// Coordinator thread only.
//
//   ASSIGN_OR_RETURN(auto policy, KvJobPolicy::Make(tables, servers, replication, ckpt,
//                                                   transport, log));
//   options.policy = policy.get();
//   Coordinator(options, transport, log).Run();
#ifndef DISTOPT_KV_JOB_POLICY_H_
#define DISTOPT_KV_JOB_POLICY_H_

#include <memory>
#include <string>
#include <vector>

#include "base/logging.h"
#include "cluster/coordinator.h"
#include "kv/checkpoint.h"
#include "kv/checkpoint_commit.h"
#include "kv/failover_policy.h"
#include "kv/layout.h"
#include "transport/transport.h"

namespace distopt {

// Where checkpoints go and whether the job starts from one.
struct CheckpointOptions {
  std::string run_dir;   // empty: no checkpoints
  bool enabled = false;  // servers write checkpoints (by steps or by time)
  int64_t keep = 3;      // the newest K good ones are kept
  bool resume = false;   // start from the newest good checkpoint
};

class KvJobPolicy final : public JobPolicy {
 public:
  // InvalidArgument for tables that do not validate or a replication the
  // servers cannot give (1, or 2 with >= 2 servers); with ckpt.resume, the
  // error of finding no good checkpoint to resume from. `partitions`: as
  // Layout::Partitions's `requested` (0: by the tables' sizes).
  static Result<std::unique_ptr<KvJobPolicy>> Make(std::vector<TableSpec> tables,
                                                   uint32_t num_servers, uint32_t replication,
                                                   CheckpointOptions ckpt, Transport* transport,
                                                   Logger log, uint32_t partitions = 0);

  std::string FirstLayout(const ClusterView& view) override;
  JobAction OnViewChange(const ClusterView& view) override;
  JobAction OnReport(const Message& m, const ClusterView& view) override;

  // Whether the job can lose a server and go on (a replica or a checkpoint
  // holds its partitions).
  bool tolerates_server_loss() const { return tolerates_server_loss_; }

 private:
  KvJobPolicy(FailoverPolicyOptions failover, uint32_t num_partitions, uint64_t hash,
              CheckpointOptions ckpt, Transport* transport, Logger log);
  // Logs the decision's reasons; a rollback also tells the checkpoint
  // commit which reports now describe an abandoned run.
  JobAction Carry(const FailoverDecision& d, uint32_t epoch);
  // Says how many partitions each host's servers own, and warns when the
  // hosts' capacities cannot shape the shares.
  void LogPlacement(const Layout& layout, const ServerNodes& servers) const;
  void OnCheckpointReport(const Message& m, const ClusterView& view);
  void CommitManifest(const Manifest& man, const ClusterView& view);

  // The coordinator's folder holds every checkpoint file (one filesystem
  // with the servers) or only the manifests (a folder per host).
  static constexpr CheckpointScope kScope = CheckpointScope::kAllOrManifestOnly;

  const uint32_t num_servers_;
  const CheckpointOptions ckpt_;
  Transport* const transport_;
  const Logger log_;
  const bool tolerates_server_loss_;
  FailoverPolicy failover_;
  CheckpointCommit commit_;
};

}  // namespace distopt

#endif  // DISTOPT_KV_JOB_POLICY_H_
