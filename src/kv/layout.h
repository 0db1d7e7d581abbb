// Tables and their placement. A TableSpec is one table of the job (dense
// float vector or sparse key -> row, its initializer and optimizer). The
// Layout says which server rank holds what: a dense table is cut into
// contiguous slices (at most one per server, balanced by size; small tables
// live whole on one server, rotated to spread them), and a sparse table is
// cut into contiguous ranges of the 64-bit hash space, one per server, so a
// range can later be split or moved without rehashing every key. Layouts are
// computed by the coordinator's owner and travel inside the cluster view.
// Values; pure functions; thread-safe.
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

Status ValidateTables(const std::vector<TableSpec>& tables);

struct DenseSlice {
  uint32_t server = 0;  // server rank
  uint64_t begin = 0;
  uint64_t end = 0;
  uint64_t size() const { return end - begin; }
};

struct TableLayout {
  uint32_t table = 0;
  bool sparse = false;
  std::vector<DenseSlice> slices;  // dense only, ascending, covering [0, size)
};

struct Layout {
  uint32_t num_servers = 0;
  std::vector<TableLayout> tables;  // indexed by table id
  // The checkpoint every server starts from (-1: the initializers).
  int64_t restore_step = -1;
  // Bumped each time the job rolls back to restore_step (a server was lost
  // without a replica): servers reload, workers drop what was in flight.
  uint32_t generation = 0;

  // Dense tables smaller than this are not cut (a slice per server would
  // cost more in messages than it saves in bandwidth).
  static constexpr uint64_t kMinSliceFloats = 16384;

  static Layout Compute(const std::vector<TableSpec>& tables, uint32_t num_servers);

  // The server rank owning sparse `key`.
  uint32_t SparseServer(uint64_t key) const;

  std::string Encode() const;
  static Result<Layout> Decode(const std::string& bytes);
};

// What a checkpoint must match to be restored: the tables (names, shapes,
// initializers, optimizers) and the number of servers.
uint64_t TablesHash(const std::vector<TableSpec>& tables, uint32_t num_servers);

// The hash that places sparse keys (also spreads keys inside a server's map).
inline uint64_t KeyHash(uint64_t key) {
  key ^= key >> 33;
  key *= 0xff51afd7ed558ccdull;
  key ^= key >> 33;
  key *= 0xc4ceb9fe1a85ec53ull;
  key ^= key >> 33;
  return key;
}

// The server rank owning sparse `key` among `num_servers`: multiply-high
// maps the hash space onto [0, num_servers) as contiguous ranges.
__extension__ typedef unsigned __int128 Uint128;
inline uint32_t SparseServerOf(uint64_t key, uint32_t num_servers) {
  return static_cast<uint32_t>((static_cast<Uint128>(KeyHash(key)) * num_servers) >> 64);
}

}  // namespace distopt

#endif  // DISTOPT_KV_LAYOUT_H_
