#include "kv/layout.h"

#include <algorithm>

#include "base/bytes.h"

namespace distopt {

Status ValidateTables(const std::vector<TableSpec>& tables) {
  for (size_t i = 0; i < tables.size(); ++i) {
    const TableSpec& t = tables[i];
    if (t.id != i) {
      return InvalidArgumentError("table '" + t.name + "' has id " + std::to_string(t.id) +
                                  ", expected " + std::to_string(i) + " (ids are positions)");
    }
    if (t.sparse && (t.dim == 0 || t.dim > (1u << 20))) {
      return InvalidArgumentError("sparse table '" + t.name + "' needs a dim in 1..2^20, got " +
                                  std::to_string(t.dim));
    }
    if (!t.sparse && (t.size == 0 || t.size > kMaxDenseSize)) {
      return InvalidArgumentError("dense table '" + t.name + "' needs a size in 1..2^34, got " +
                                  std::to_string(t.size));
    }
  }
  return Status::Ok();
}

uint32_t Layout::Partitions(const std::vector<TableSpec>& tables, uint32_t num_servers,
                            uint32_t requested) {
  if (requested != 0)
    return std::clamp(requested, num_servers, std::max(num_servers, kMaxPartitions));
  uint64_t per_server = 1;  // partitions per server
  for (const TableSpec& t : tables) {
    if (t.sparse) continue;
    const uint64_t slice = (t.size + num_servers - 1) / num_servers;
    per_server = std::max(per_server, (slice + kMaxSliceFloats - 1) / kMaxSliceFloats);
  }
  return static_cast<uint32_t>(
      std::min<uint64_t>(per_server * num_servers, std::max(num_servers, kMaxPartitions)));
}

Layout Layout::Compute(const std::vector<TableSpec>& tables, uint32_t num_servers,
                       uint32_t replication, uint32_t partitions) {
  Layout l;
  l.num_servers = num_servers;
  l.num_partitions = Partitions(tables, num_servers, partitions);
  l.replication = replication;
  l.replicas.resize(l.num_partitions);
  for (uint32_t p = 0; p < l.num_partitions; ++p) {
    l.replicas[p].owner = p % num_servers;
    if (replication > 1 && num_servers > 1) {
      // Every replica starts from the same initializers: in sync from step 0.
      l.replicas[p].backup = (p + 1) % num_servers;
      l.replicas[p].synced = true;
    }
  }
  // Floats already placed per partition, so whole small tables go where there is least.
  std::vector<uint64_t> load(l.num_partitions, 0);
  for (const TableSpec& t : tables) {
    TableLayout tl;
    tl.table = t.id;
    tl.sparse = t.sparse;
    if (!t.sparse) {
      uint64_t parts =
          std::min<uint64_t>(l.num_partitions, std::max<uint64_t>(1, t.size / kMinSliceFloats));
      if (parts == 1) {
        uint32_t s =
            static_cast<uint32_t>(std::min_element(load.begin(), load.end()) - load.begin());
        tl.slices.push_back({s, 0, t.size});
        load[s] += t.size;
      } else {
        // Balanced contiguous slices; the first `rem` get one extra float.
        uint64_t base = t.size / parts, rem = t.size % parts, begin = 0;
        for (uint64_t p = 0; p < parts; ++p) {
          uint64_t len = base + (p < rem ? 1 : 0);
          uint32_t s = static_cast<uint32_t>((t.id + p) % l.num_partitions);
          tl.slices.push_back({s, begin, begin + len});
          load[s] += len;
          begin += len;
        }
      }
    }
    l.tables.push_back(std::move(tl));
  }
  return l;
}

std::vector<uint32_t> DealPartitions(uint32_t partitions, const std::vector<double>& weights) {
  const size_t n = weights.size();
  double total = 0;
  for (double w : weights) total += w;
  // Largest remainder, after one each where there are enough to go round.
  const uint32_t floor_each = partitions >= n ? 1 : 0;
  std::vector<uint32_t> count(n, floor_each);
  uint32_t left = partitions - floor_each * static_cast<uint32_t>(n);
  std::vector<std::pair<double, size_t>> rest;
  uint32_t dealt = 0;
  for (size_t r = 0; r < n; ++r) {
    const double share = left * weights[r] / total;
    const auto whole = static_cast<uint32_t>(share);
    count[r] += whole;
    dealt += whole;
    rest.emplace_back(share - whole, r);
  }
  std::stable_sort(rest.begin(), rest.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t i = 0; dealt < left; ++i, ++dealt) ++count[rest[i % n].second];
  // Smooth weighted round robin: each turn every server earns its count and
  // the richest (the lowest rank on ties) takes the partition, paying for it.
  std::vector<int64_t> credit(n, 0);
  std::vector<uint32_t> owner(partitions);
  for (uint32_t p = 0; p < partitions; ++p) {
    size_t best = 0;
    for (size_t r = 0; r < n; ++r) {
      credit[r] += count[r];
      if (credit[r] > credit[best]) best = r;
    }
    credit[best] -= partitions;
    owner[p] = static_cast<uint32_t>(best);
  }
  return owner;
}

uint32_t Layout::SparsePartition(uint64_t key) const {
  return SparsePartitionOf(key, num_partitions);
}

uint32_t Layout::DensePartition(uint32_t table, uint64_t begin) const {
  if (table >= tables.size()) return kNoServer;
  for (const DenseSlice& s : tables[table].slices) {
    if (s.begin == begin) return s.partition;
  }
  return kNoServer;
}

std::string Layout::Encode() const {
  ByteWriter w;
  w.U32(num_servers);
  w.U32(num_partitions);
  w.U32(replication);
  for (const Replica& r : replicas) {
    w.U32(r.owner);
    w.U32(r.backup);
    w.U8(r.synced ? 1 : 0);
  }
  w.U32(static_cast<uint32_t>(tables.size()));
  for (const auto& t : tables) {
    w.U32(t.table);
    w.U8(t.sparse ? 1 : 0);
    w.U32(static_cast<uint32_t>(t.slices.size()));
    for (const auto& s : t.slices) {
      w.U32(s.partition);
      w.U64(s.begin);
      w.U64(s.end);
    }
  }
  w.I64(restore_step);
  w.U32(generation);
  auto b = w.Take();
  return std::string(b.begin(), b.end());
}

Result<Layout> Layout::Decode(const std::string& bytes) {
  ByteReader r(bytes.data(), bytes.size());
  Layout l;
  uint32_t n = 0;
  RETURN_IF_ERROR(r.U32(&l.num_servers));
  if (l.num_servers == 0 || l.num_servers > (1u << 16)) {
    return InvalidArgumentError("layout with " + std::to_string(l.num_servers) + " servers");
  }
  RETURN_IF_ERROR(r.U32(&l.num_partitions));
  if (l.num_partitions < l.num_servers ||
      l.num_partitions > std::max(l.num_servers, kMaxPartitions)) {
    return InvalidArgumentError("layout with " + std::to_string(l.num_partitions) +
                                " partitions for " + std::to_string(l.num_servers) + " servers");
  }
  RETURN_IF_ERROR(r.U32(&l.replication));
  if (l.replication < 1 || l.replication > 2) {
    return InvalidArgumentError("layout with replication " + std::to_string(l.replication));
  }
  l.replicas.resize(l.num_partitions);
  for (Replica& rep : l.replicas) {
    uint8_t synced = 0;
    RETURN_IF_ERROR(r.U32(&rep.owner));
    RETURN_IF_ERROR(r.U32(&rep.backup));
    RETURN_IF_ERROR(r.U8(&synced));
    rep.synced = synced != 0;
    if (rep.owner >= l.num_servers || (rep.backup != kNoServer && rep.backup >= l.num_servers) ||
        rep.backup == rep.owner) {
      return InvalidArgumentError("layout replica out of range");
    }
  }
  RETURN_IF_ERROR(r.Count(&n, 9, 1 << 20, "tables"));
  l.tables.resize(n);
  for (auto& t : l.tables) {
    uint8_t sparse = 0;
    uint32_t ns = 0;
    RETURN_IF_ERROR(r.U32(&t.table));
    RETURN_IF_ERROR(r.U8(&sparse));
    t.sparse = sparse != 0;
    RETURN_IF_ERROR(r.Count(&ns, 20, 1 << 20, "slices"));
    t.slices.resize(ns);
    for (auto& s : t.slices) {
      RETURN_IF_ERROR(r.U32(&s.partition));
      RETURN_IF_ERROR(r.U64(&s.begin));
      RETURN_IF_ERROR(r.U64(&s.end));
      if (s.partition >= l.num_partitions || s.end < s.begin) {
        return InvalidArgumentError("layout slice out of range");
      }
    }
  }
  RETURN_IF_ERROR(r.I64(&l.restore_step));
  RETURN_IF_ERROR(r.U32(&l.generation));
  RETURN_IF_ERROR(r.ExpectEnd("layout"));
  return l;
}

}  // namespace distopt

namespace distopt {

uint64_t TablesHash(const std::vector<TableSpec>& tables, uint32_t num_partitions) {
  // FNV-1a over a canonical encoding: stable across runs and builds.
  ByteWriter w;
  w.U32(num_partitions);
  for (const TableSpec& t : tables) {
    w.Str(t.name);
    w.U8(t.sparse ? 1 : 0);
    w.U64(t.size);
    w.U32(t.dim);
    w.U8(static_cast<uint8_t>(t.init.kind));
    w.F32(t.init.scale);
    w.U64(t.init.seed);
    w.Str(t.optimizer.kind);
  }
  uint64_t h = 1469598103934665603ull;
  for (uint8_t b : w.bytes()) {
    h ^= b;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace distopt
