#include "kv/checkpoint_commit.h"

namespace distopt {

CheckpointCommit::CheckpointCommit(uint32_t num_partitions, uint64_t config_hash)
    : num_partitions_(num_partitions), config_hash_(config_hash) {}

std::optional<Manifest> CheckpointCommit::Add(const CheckpointReport& report, uint32_t epoch) {
  if (epoch < min_epoch_) {
    ++dropped_;
    return std::nullopt;
  }
  if (report.server_rank >= num_partitions_ || report.step <= last_committed_) return std::nullopt;
  auto& by_partition = pending_[report.step];
  by_partition[report.server_rank] = report.files;  // a resend replaces
  if (by_partition.size() < num_partitions_) return std::nullopt;
  Manifest m;
  m.step = report.step;
  m.config_hash = config_hash_;
  m.num_servers = num_partitions_;
  for (const auto& [partition, files] : by_partition) {
    m.files.insert(m.files.end(), files.begin(), files.end());
  }
  // Older steps still pending can no longer complete usefully: this one is newer.
  pending_.erase(pending_.begin(), pending_.upper_bound(report.step));
  last_committed_ = report.step;
  return m;
}

void CheckpointCommit::RolledBack(uint32_t epoch, int64_t restore_step) {
  min_epoch_ = epoch;
  last_committed_ = restore_step;
  pending_.clear();
}

}  // namespace distopt
