#include "kv/repl_codec.h"

#include <algorithm>

namespace distopt {

void WriteReplHeader(ByteWriter& w, const ReplHeader& h) {
  w.U8(static_cast<uint8_t>(h.kind));
  w.U64(h.seq);
  w.U32(h.generation);
  w.U32(h.worker);
}

Status ReadReplHeader(ByteReader& r, ReplHeader* h) {
  uint8_t kind = 0;
  RETURN_IF_ERROR(r.U8(&kind));
  if (kind != static_cast<uint8_t>(ReplKind::kUpdate) &&
      kind != static_cast<uint8_t>(ReplKind::kSnapshot)) {
    return InvalidArgumentError("unknown replication message kind " + std::to_string(kind));
  }
  h->kind = static_cast<ReplKind>(kind);
  RETURN_IF_ERROR(r.U64(&h->seq));
  RETURN_IF_ERROR(r.U32(&h->generation));
  return r.U32(&h->worker);
}

Result<SnapshotFrames> SnapshotFramesOf(std::span<const uint64_t> words,
                                        std::span<const float> values) {
  if (words.size() % 2 != 0) {
    return InvalidArgumentError("snapshot keys frame of " + std::to_string(words.size()) +
                                " words does not hold keys and as many row steps");
  }
  const size_t rows = words.size() / 2;
  SnapshotFrames f;
  f.keys = words.first(rows);
  // The same 64 bits, read as the int64 they were written as.
  f.row_steps = {reinterpret_cast<const int64_t*>(words.data() + rows), rows};
  f.values = values;
  return f;
}

void EncodeSnapshot(const std::vector<TableClocks>& clocks,
                    const std::vector<ShardSnapshot>& shards, ByteWriter& body,
                    std::vector<uint64_t>* words, std::vector<float>* values) {
  size_t rows = 0, floats = 0;
  for (const ShardSnapshot& sh : shards) {
    rows += sh.keys.size();
    floats += sh.params.size() + sh.state.size();
  }
  words->assign(2 * rows, 0);
  values->clear();
  values->reserve(floats);
  uint64_t* keys = words->data();
  int64_t* steps = reinterpret_cast<int64_t*>(words->data() + rows);
  body.U32(static_cast<uint32_t>(clocks.size()));
  for (const TableClocks& c : clocks) {
    body.I64(c.applied);
    body.U32(static_cast<uint32_t>(c.workers.size()));
    for (int64_t w : c.workers) body.I64(w);
  }
  body.U32(static_cast<uint32_t>(shards.size()));
  for (const ShardSnapshot& sh : shards) {
    body.U32(sh.table);
    body.U8(sh.sparse ? 1 : 0);
    body.U64(sh.begin);
    body.U32(sh.dim);
    body.U32(static_cast<uint32_t>(sh.slots));
    body.I64(sh.steps);
    body.U64(sh.params.size());
    body.U64(sh.state.size());
    body.U64(sh.keys.size());
    // One step count per key (ValidateSnapshot's rule); the frame keeps
    // that shape whatever the snapshot holds (a missing count goes as 0).
    std::copy(sh.keys.begin(), sh.keys.end(), keys);
    std::copy_n(sh.row_steps.begin(), std::min(sh.row_steps.size(), sh.keys.size()), steps);
    keys += sh.keys.size();
    steps += sh.keys.size();
    values->insert(values->end(), sh.params.begin(), sh.params.end());
    values->insert(values->end(), sh.state.begin(), sh.state.end());
  }
}

namespace {

Status DecodeClocks(ByteReader& body, size_t num_tables, uint32_t num_workers,
                    std::vector<TableClocks>* clocks) {
  uint32_t n = 0;
  RETURN_IF_ERROR(body.Count(&n, 12, 1 << 20, "snapshot tables"));
  if (n != num_tables) {
    return InvalidArgumentError("snapshot of " + std::to_string(n) + " tables, this job has " +
                                std::to_string(num_tables));
  }
  clocks->resize(n);
  for (TableClocks& c : *clocks) {
    uint32_t w = 0;
    RETURN_IF_ERROR(body.I64(&c.applied));
    RETURN_IF_ERROR(body.Count(&w, 8, 1 << 20, "snapshot worker clocks"));
    if (w != num_workers) {
      return InvalidArgumentError("snapshot of " + std::to_string(w) + " workers, this job has " +
                                  std::to_string(num_workers));
    }
    c.workers.resize(w);
    for (int64_t& x : c.workers) RETURN_IF_ERROR(body.I64(&x));
  }
  return Status::Ok();
}

}  // namespace

Status DecodeSnapshot(ByteReader& body, SnapshotFrames frames, size_t num_tables,
                      uint32_t num_workers, std::vector<TableClocks>* clocks,
                      std::vector<ShardSnapshot>* shards) {
  RETURN_IF_ERROR(DecodeClocks(body, num_tables, num_workers, clocks));
  uint32_t n = 0;
  RETURN_IF_ERROR(body.Count(&n, 45, 1 << 20, "snapshot shards"));
  const auto keys = frames.keys;
  const auto steps = frames.row_steps;
  const auto values = frames.values;
  size_t k = 0, v = 0;
  shards->resize(n);
  for (ShardSnapshot& sh : *shards) {
    uint8_t sparse = 0;
    uint32_t slots = 0;
    uint64_t np = 0, ns = 0, nk = 0;
    RETURN_IF_ERROR(body.U32(&sh.table));
    RETURN_IF_ERROR(body.U8(&sparse));
    RETURN_IF_ERROR(body.U64(&sh.begin));
    RETURN_IF_ERROR(body.U32(&sh.dim));
    RETURN_IF_ERROR(body.U32(&slots));
    RETURN_IF_ERROR(body.I64(&sh.steps));
    RETURN_IF_ERROR(body.U64(&np));
    RETURN_IF_ERROR(body.U64(&ns));
    RETURN_IF_ERROR(body.U64(&nk));
    sh.sparse = sparse != 0;
    sh.slots = static_cast<int>(std::min<uint32_t>(slots, 1u << 16));
    if (np > values.size() - v || ns > values.size() - v - np || nk > keys.size() - k ||
        steps.size() != keys.size()) {
      return InvalidArgumentError("snapshot shard larger than its frames");
    }
    sh.params.assign(values.begin() + v, values.begin() + v + np);
    sh.state.assign(values.begin() + v + np, values.begin() + v + np + ns);
    v += np + ns;
    sh.keys.assign(keys.begin() + k, keys.begin() + k + nk);
    sh.row_steps.assign(steps.begin() + k, steps.begin() + k + nk);
    k += nk;
  }
  if (k != keys.size() || v != values.size()) {
    return InvalidArgumentError("snapshot frames longer than its shards");
  }
  return body.ExpectEnd("snapshot");
}

}  // namespace distopt
