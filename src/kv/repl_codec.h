// The bodies of the messages a partition's owner sends its backup
// (kReplicate): a header naming what the message is and where it stands in
// the owner's stream, and, for a snapshot, the partition's whole state.
// Every decoder here reads bytes from the network: it validates each count
// against what the frames hold before it allocates (fuzz/wire_fuzz.cc).
//
//   ByteWriter w;
//   WriteReplHeader(w, {ReplKind::kSnapshot, seq, generation});
//   EncodeSnapshot(clocks, shards, w, &keys, &values);
//   ...
//   ByteReader r(body.data(), body.size());
//   RETURN_IF_ERROR(ReadReplHeader(r, &h));
//   RETURN_IF_ERROR(DecodeSnapshot(r, {keys, values}, tables, workers, &clocks, &shards));
#ifndef DISTOPT_KV_REPL_CODEC_H_
#define DISTOPT_KV_REPL_CODEC_H_

#include <cstdint>
#include <span>
#include <vector>

#include "base/bytes.h"
#include "distopt/status.h"
#include "kv/checkpoint.h"
#include "kv/layout.h"

namespace distopt {

enum class ReplKind : uint8_t { kUpdate = 1, kSnapshot = 2 };

// What a kReplicate message is, its place in the owner's stream, and
// (updates of SSP/ASP) whose push it was.
struct ReplHeader {
  ReplKind kind = ReplKind::kUpdate;
  uint64_t seq = 0;
  uint32_t generation = 0;      // the layout generation it was sent in
  uint32_t worker = kNoServer;  // SSP/ASP update: the pushing worker's rank
};

void WriteReplHeader(ByteWriter& w, const ReplHeader& h);
Status ReadReplHeader(ByteReader& r, ReplHeader* h);

// A table's consistency clocks as a snapshot carries them.
struct TableClocks {
  int64_t applied = 0;
  std::vector<int64_t> workers;  // by worker rank
};

// The frames of a snapshot beside its body: sparse keys then row step
// counts (as uint64) in one, parameters then optimizer state in the other.
struct SnapshotFrames {
  std::span<const uint64_t> keys;
  std::span<const float> values;
};

// A partition's state as one message: per table its clocks, per shard its
// metadata in `body`; the bulk is appended to `keys` and `values`.
void EncodeSnapshot(const std::vector<TableClocks>& clocks,
                    const std::vector<ShardSnapshot>& shards, ByteWriter& body,
                    std::vector<uint64_t>* keys, std::vector<float>* values);

// The inverse; a snapshot of another table or worker count is refused, as
// is one whose shards do not exactly fill its frames.
Status DecodeSnapshot(ByteReader& body, SnapshotFrames frames, size_t num_tables,
                      uint32_t num_workers, std::vector<TableClocks>* clocks,
                      std::vector<ShardSnapshot>* shards);

}  // namespace distopt

#endif  // DISTOPT_KV_REPL_CODEC_H_
