// CheckpointCommit: the coordinator's bookkeeping from servers' checkpoint
// reports to a checkpoint's manifest. Each partition's owner reports the
// files it wrote for a step; once every partition has reported a step, that
// step's manifest is complete (the caller writes it, last, so only complete
// checkpoints ever load). Reports sent before the job last rolled back
// describe files of the abandoned run and are dropped, so a replayed step is
// committed from the replay's files alone. A plain value; no I/O; not
// thread-safe (the coordinator's thread).
//
//   CheckpointCommit commit(num_partitions, config_hash);
//   if (auto m = commit.Add(report, msg.epoch)) WriteManifest(dir, *m, scope);
//   commit.RolledBack(rollback_epoch, restore_step);  // after publishing a rollback
#ifndef DISTOPT_KV_CHECKPOINT_COMMIT_H_
#define DISTOPT_KV_CHECKPOINT_COMMIT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "kv/checkpoint.h"

namespace distopt {

class CheckpointCommit {
 public:
  CheckpointCommit(uint32_t num_partitions, uint64_t config_hash);

  // Partition report.server_rank's files of report.step, sent by a server in
  // membership epoch `epoch`. Returns the step's manifest when this report
  // completes it (files in partition order); nothing otherwise, and nothing
  // for a report of a step already committed, of an unknown partition, or
  // sent before the last rollback.
  std::optional<Manifest> Add(const CheckpointReport& report, uint32_t epoch);

  // The job rolled back to `restore_step`, published in membership epoch
  // `epoch`: every report pending is of the abandoned run, and so is any
  // sent before `epoch`; steps after `restore_step` will be committed anew.
  void RolledBack(uint32_t epoch, int64_t restore_step);

  // Steps some partition reported that are not complete yet.
  size_t pending_steps() const { return pending_.size(); }
  // Reports dropped because they were sent before the last rollback.
  uint64_t dropped_reports() const { return dropped_; }

 private:
  const uint32_t num_partitions_;
  const uint64_t config_hash_;
  uint32_t min_epoch_ = 0;       // reports sent before this epoch are of a rolled-back run
  int64_t last_committed_ = -1;  // steps up to here are committed (or rolled back to)
  std::map<int64_t, std::map<uint32_t, std::vector<ManifestEntry>>> pending_;
  uint64_t dropped_ = 0;
};

}  // namespace distopt

#endif  // DISTOPT_KV_CHECKPOINT_COMMIT_H_
