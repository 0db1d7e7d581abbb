// PartitionReplica: a server's copy of one partition of the model: per
// table its shard (a dense slice or sparse rows), the table's optimizer,
// its consistency gate and BSP aggregator, and, as owner, the replication
// stream to the partition's backup. The KvServer holds one per partition
// (most empty) and drives them under its lock; a replica is not
// thread-safe itself.
//
//   ASSIGN_OR_RETURN(auto part, PartitionReplica::Make(p, owner, tables, layout, c, workers, t));
//   part->table(i).Apply(keys, values);            // an optimizer step
//   std::vector<ShardSnapshot> snap = part->Snapshot(step);
#ifndef DISTOPT_KV_PARTITION_H_
#define DISTOPT_KV_PARTITION_H_

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "distopt/status.h"
#include "kv/bsp_aggregator.h"
#include "kv/checkpoint.h"
#include "kv/consistency_gate.h"
#include "kv/layout.h"
#include "kv/replication_stream.h"
#include "kv/shard.h"
#include "optim/optimizer.h"

namespace distopt {

// One table's share of a partition.
struct TableReplica {
  TableReplica(TableSpec s, uint32_t p, ConsistencyOptions c, uint32_t num_workers)
      : spec(std::move(s)), partition(p), gate(c, num_workers), bsp(num_workers) {}

  // Whether the partition holds any of the table (a dense table's slices
  // fall in some partitions only).
  bool holds_data() const { return dense != nullptr || sparse != nullptr; }
  // One optimizer step: `values` are the gradient of the rows `keys`
  // (sparse; repeated keys are summed) or of the whole slice (dense).
  void Apply(std::span<const uint64_t> keys, const float* values);
  // The slice's or the rows' values, optimizer state and step counts.
  bool Snapshot(int64_t step, ShardSnapshot* out) const;

  TableSpec spec;
  uint32_t partition = 0;
  std::unique_ptr<Optimizer> opt;
  std::unique_ptr<DenseShard> dense;  // null if the partition holds no slice
  std::unique_ptr<SparseShard> sparse;
  ConsistencyGate gate;
  BspAggregator bsp;
  std::vector<float> scratch;  // BSP: the mean gradient, when not sent on
};

class PartitionReplica {
 public:
  // Fresh tables (their initializers' values) for partition `id`.
  static Result<std::unique_ptr<PartitionReplica>> Make(uint32_t id, bool owner,
                                                        const std::vector<TableSpec>& tables,
                                                        const Layout& layout,
                                                        ConsistencyOptions consistency,
                                                        uint32_t num_workers, Transport* transport);

  uint32_t id() const { return id_; }
  bool owner() const { return owner_; }
  // The backup became the owner (its owner died), or the reverse.
  void set_owner(bool owner) { owner_ = owner; }
  // As backup: whether the copy is complete (the owner's snapshot arrived).
  bool synced() const { return synced_; }
  void set_synced(bool synced) { synced_ = synced; }
  // As backup: whose updates count.
  NodeId owner_node() const { return owner_node_; }
  void set_owner_node(NodeId node) { owner_node_ = node; }

  size_t num_tables() const { return tables_.size(); }
  TableReplica& table(size_t i) { return tables_[i]; }
  const TableReplica& table(size_t i) const { return tables_[i]; }
  std::vector<TableReplica>& tables() { return tables_; }
  const std::vector<TableReplica>& tables() const { return tables_; }
  ReplicationStream& stream() { return stream_; }
  const ReplicationStream& stream() const { return stream_; }

  // The partition's clock: the slowest of its tables that hold data (BSP:
  // applied clocks; otherwise the slowest live worker's). INT64_MAX if no
  // table holds data here.
  int64_t Clock(const std::vector<bool>& live) const;
  // BSP: whether every table holding data applied the same clock (a
  // checkpoint holds one clock of the whole partition, never a mix).
  bool TablesInStep() const;
  // Every table's shard as of now, for a checkpoint (`step`) or a snapshot.
  std::vector<ShardSnapshot> Snapshot(int64_t step) const;
  // Replaces the tables' contents with `shards` (DataLoss if one does not fit).
  Status Install(std::vector<ShardSnapshot> shards);
  // Every table's clocks restart from `step` (a checkpoint was restored).
  void Restart(int64_t step);

  // Checkpoints: the last one written, and a clock worker 0 asked for (-1: none).
  int64_t last_checkpoint = 0;
  int64_t requested_checkpoint = -1;

 private:
  PartitionReplica(uint32_t id, bool owner, Transport* transport)
      : id_(id), owner_(owner), stream_(transport) {}

  const uint32_t id_;
  bool owner_;
  bool synced_ = false;
  NodeId owner_node_ = kUnassignedId;
  std::vector<TableReplica> tables_;
  ReplicationStream stream_;
};

}  // namespace distopt

#endif  // DISTOPT_KV_PARTITION_H_
