#include "kv/request_check.h"

#include <string>

namespace distopt {

Status CheckPayload(const TableReplica& t, const Layout& layout, const KvHeader& head,
                    const Message& m, bool has_values) {
  const std::string where = "table '" + t.spec.name + "': ";
  if (head.sparse != t.spec.sparse) {
    return InvalidArgumentError(where + (t.spec.sparse ? "sparse table addressed as dense"
                                                       : "dense table addressed with keys"));
  }
  if (t.spec.sparse) {
    for (uint64_t k : m.keys.as<uint64_t>()) {
      if (layout.SparsePartition(k) != t.partition) {
        return InvalidArgumentError(where + "key " + std::to_string(k) + " belongs to partition " +
                                    std::to_string(layout.SparsePartition(k)) + ", not " +
                                    std::to_string(t.partition));
      }
    }
    const uint64_t want = has_values ? m.num_keys() * t.spec.dim : 0;
    if (m.num_values() != want) {
      return InvalidArgumentError(where + std::to_string(m.num_values()) + " values for " +
                                  std::to_string(m.num_keys()) + " keys of dim " +
                                  std::to_string(t.spec.dim));
    }
    return Status::Ok();
  }
  // Where the slice starts was checked when the partition was found; a
  // replicated update names its partition instead.
  if (!t.dense) {
    return InvalidArgumentError(where + "partition " + std::to_string(t.partition) +
                                " holds no slice of it");
  }
  if (m.num_keys() != 0) return InvalidArgumentError(where + "keys sent to a dense table");
  const uint64_t want = has_values ? t.dense->size() : 0;
  if (m.num_values() != want) {
    return InvalidArgumentError(where + "expected " + std::to_string(want) +
                                " values for the slice at " + std::to_string(t.dense->begin()) +
                                ", got " + std::to_string(m.num_values()));
  }
  return Status::Ok();
}

}  // namespace distopt
