#include "kv/partition.h"

#include <algorithm>
#include <limits>

namespace distopt {

void TableReplica::Apply(std::span<const uint64_t> keys, const float* values) {
  if (values == nullptr) return;  // nothing pushed (cannot happen for a held slice)
  if (sparse) {
    sparse->ApplyBatch(keys, values);
  } else if (dense) {
    dense->Apply(values);
  }
}

bool TableReplica::Snapshot(int64_t step, ShardSnapshot* out) const {
  ShardSnapshot& snap = *out;
  snap.step = step;
  snap.table = spec.id;
  snap.slots = opt->state_slots();
  if (dense) {
    snap.begin = dense->begin();
    snap.steps = dense->steps();
    snap.params.assign(dense->data(), dense->data() + dense->size());
    snap.state = dense->state();
    return true;
  }
  if (sparse) {
    snap.sparse = true;
    snap.dim = spec.dim;
    snap.keys = sparse->keys();
    snap.params = sparse->values();
    snap.state = sparse->state();
    snap.row_steps = sparse->row_steps();
    return true;
  }
  return false;
}

Result<std::unique_ptr<PartitionReplica>> PartitionReplica::Make(
    uint32_t id, bool owner, const std::vector<TableSpec>& tables, const Layout& layout,
    ConsistencyOptions consistency, uint32_t num_workers, Transport* transport) {
  std::unique_ptr<PartitionReplica> part(new PartitionReplica(id, owner, transport));
  part->tables_.reserve(tables.size());
  for (size_t i = 0; i < tables.size(); ++i) {
    TableReplica& t = part->tables_.emplace_back(tables[i], id, consistency, num_workers);
    auto opt = Optimizer::Create(t.spec.optimizer);
    if (!opt.ok()) return opt.status().WithContext("table '" + t.spec.name + "'");
    t.opt = std::move(*opt);
    if (t.spec.sparse) {
      t.sparse = std::make_unique<SparseShard>(t.spec, t.opt.get());
    } else {
      for (const DenseSlice& s : layout.tables[i].slices) {
        if (s.partition == id) t.dense = std::make_unique<DenseShard>(t.spec, s, t.opt.get());
      }
    }
  }
  return part;
}

int64_t PartitionReplica::Clock(const std::vector<bool>& live) const {
  int64_t clock = std::numeric_limits<int64_t>::max();
  for (const TableReplica& t : tables_) {
    if (!t.holds_data()) continue;
    // Under BSP all tables reach clock c before any sees a push of c + 1.
    clock = std::min(clock, t.gate.bsp() ? t.gate.applied() : t.gate.MinClock(live));
  }
  return clock;
}

bool PartitionReplica::TablesInStep() const {
  int64_t first = -1;
  for (const TableReplica& t : tables_) {
    if (!t.holds_data()) continue;
    if (first < 0) first = t.gate.applied();
    if (t.gate.applied() != first) return false;
  }
  return true;
}

std::vector<ShardSnapshot> PartitionReplica::Snapshot(int64_t step) const {
  std::vector<ShardSnapshot> out;
  for (const TableReplica& t : tables_) {
    ShardSnapshot snap;
    if (t.Snapshot(step, &snap)) out.push_back(std::move(snap));
  }
  return out;
}

Status PartitionReplica::Install(std::vector<ShardSnapshot> shards) {
  for (ShardSnapshot& snap : shards) {
    if (snap.table >= tables_.size()) return DataLossError("a shard of unknown table");
    TableReplica& t = tables_[snap.table];
    if (snap.sparse && t.sparse) {
      RETURN_IF_ERROR(t.sparse->Restore(std::move(snap.keys), std::move(snap.params),
                                        std::move(snap.state), std::move(snap.row_steps)));
    } else if (!snap.sparse && t.dense && snap.begin == t.dense->begin()) {
      RETURN_IF_ERROR(t.dense->Restore(snap.params, snap.state, snap.steps));
    } else {
      return DataLossError("a shard of table '" + t.spec.name + "' does not fit partition " +
                           std::to_string(id_));
    }
  }
  return Status::Ok();
}

void PartitionReplica::Restart(int64_t step) {
  for (TableReplica& t : tables_) {
    t.gate.Restart(step);
    t.bsp.Clear();
  }
  last_checkpoint = step;
  stream_.Reset(0);
}

}  // namespace distopt
