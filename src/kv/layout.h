// Tables and their placement. A TableSpec is one table of the job (dense
// float vector or sparse key -> row, its initializer and optimizer). The
// Layout cuts the model into partitions: a dense table into contiguous
// slices (at most one per partition, balanced by size; small tables live
// whole in one partition, rotated to spread them), a sparse table into
// contiguous ranges of the 64-bit hash space, so a range can later be split
// or moved without rehashing every key. There is one partition per server
// the job started with, or more when a dense table's slice per server would
// be larger than kMaxSliceFloats: large messages are then cut into slices
// that the servers aggregate, apply and send back one by one, so both
// directions of a link stay busy. Each partition has an owner (the server
// rank that serves it) and, with replication 2, a backup rank that applies
// every update too and takes over when the owner dies. Layouts are computed
// by the coordinator's owner and travel inside the cluster view. Values;
// pure functions; thread-safe.
#ifndef DISTOPT_KV_LAYOUT_H_
#define DISTOPT_KV_LAYOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "base/init.h"
#include "distopt/status.h"
#include "optim/optimizer.h"

namespace distopt {

struct TableSpec {
  uint32_t id = 0;
  std::string name;
  bool sparse = false;
  uint64_t size = 0;  // dense: floats
  uint32_t dim = 0;   // sparse: floats per key
  InitSpec init;
  OptimizerOptions optimizer;
};

// The largest dense table (floats): sizes, and so slice offsets, stay below
// it (ValidateTables; the kv header's decoder, kv/kv_message.h).
inline constexpr uint64_t kMaxDenseSize = 1ull << 34;

Status ValidateTables(const std::vector<TableSpec>& tables);

struct DenseSlice {
  uint32_t partition = 0;
  uint64_t begin = 0;
  uint64_t end = 0;
  uint64_t size() const { return end - begin; }
};

struct TableLayout {
  uint32_t table = 0;
  bool sparse = false;
  std::vector<DenseSlice> slices;  // dense only, ascending, covering [0, size)
};

inline constexpr uint32_t kNoServer = 0xFFFFFFFFu;

// Who holds a partition. A backup is `synced` once it holds everything the
// owner acknowledged (from the start, or after a snapshot); only a synced
// backup may take over.
struct Replica {
  uint32_t owner = 0;
  uint32_t backup = kNoServer;
  bool synced = false;
};

struct Layout {
  uint32_t num_servers = 0;         // the server ranks the job started with
  uint32_t num_partitions = 0;      // >= num_servers
  uint32_t replication = 1;         // 1 or 2 copies of each partition
  std::vector<TableLayout> tables;  // indexed by table id
  std::vector<Replica> replicas;    // by partition
  // The checkpoint every server starts from (-1: the initializers).
  int64_t restore_step = -1;
  // Bumped each time the job rolls back to restore_step (a server was lost
  // without a replica): servers reload, workers drop what was in flight.
  uint32_t generation = 0;

  // Dense tables smaller than this are not cut (a slice per server would
  // cost more in messages than it saves in bandwidth).
  static constexpr uint64_t kMinSliceFloats = 16384;
  // A dense table larger than this per server is cut into more partitions
  // than servers (4 MiB: a slice takes 34 ms on a 1 Gbit/s link, long
  // enough to hide the next one's aggregation, short enough to pipeline).
  static constexpr uint64_t kMaxSliceFloats = uint64_t{1} << 20;
  static constexpr uint32_t kMaxPartitions = 1u << 12;

  // How many partitions `tables` get on `num_servers` servers: `requested`
  // if not 0 (at least num_servers), else num_servers times as many as
  // keep every dense slice within kMaxSliceFloats.
  static uint32_t Partitions(const std::vector<TableSpec>& tables, uint32_t num_servers,
                             uint32_t requested = 0);
  // Partition p owned by server p % num_servers; with replication 2 backed
  // up by the next server. `partitions` 0: Partitions(tables, num_servers).
  static Layout Compute(const std::vector<TableSpec>& tables, uint32_t num_servers,
                        uint32_t replication = 1, uint32_t partitions = 0);

  // The partition holding sparse `key`.
  uint32_t SparsePartition(uint64_t key) const;
  // The partition of dense `table` whose slice starts at `begin`, or kNoServer.
  uint32_t DensePartition(uint32_t table, uint64_t begin) const;
  // The server rank serving partition p.
  uint32_t OwnerOf(uint32_t p) const { return replicas[p].owner; }

  std::string Encode() const;
  static Result<Layout> Decode(const std::string& bytes);
};

// The owner of each of `partitions` partitions, dealt to the servers in
// proportion to `weights` (by server rank, > 0), each server at least one
// when there are enough, interleaved so that consecutive partitions (the
// slices of a table) go to different servers: with equal weights, p % n.
std::vector<uint32_t> DealPartitions(uint32_t partitions, const std::vector<double>& weights);

// What a checkpoint must match to be restored: the tables (names, shapes,
// initializers, optimizers) and the number of partitions.
uint64_t TablesHash(const std::vector<TableSpec>& tables, uint32_t num_partitions);

// The hash that places sparse keys (also spreads keys inside a server's map).
inline uint64_t KeyHash(uint64_t key) {
  key ^= key >> 33;
  key *= 0xff51afd7ed558ccdull;
  key ^= key >> 33;
  key *= 0xc4ceb9fe1a85ec53ull;
  key ^= key >> 33;
  return key;
}

// The partition of sparse `key` among `partitions`: multiply-high maps the
// hash space onto [0, partitions) as contiguous ranges.
__extension__ typedef unsigned __int128 Uint128;
inline uint32_t SparsePartitionOf(uint64_t key, uint32_t partitions) {
  return static_cast<uint32_t>((static_cast<Uint128>(KeyHash(key)) * partitions) >> 64);
}

}  // namespace distopt

#endif  // DISTOPT_KV_LAYOUT_H_
