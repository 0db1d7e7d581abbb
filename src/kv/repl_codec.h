// The bodies of the messages a partition's owner sends its backup
// (kReplicate), after their kv header (kv/kv_message.h, which names the
// partition, and for an update its table and clock): a header naming what
// the message is and where it stands in the owner's stream, and, for a
// snapshot, the partition's whole state. Every decoder here reads bytes from
// the network: it validates each count against what the frames hold before
// it allocates (fuzz/wire_fuzz.cc).
//
//   ByteWriter w;
//   WriteKvHeader(w, {.partition = p});
//   WriteReplHeader(w, {ReplKind::kSnapshot, seq, generation});
//   EncodeSnapshot(clocks, shards, w, &keys, &values);
//   ...
//   ByteReader r = KvBodyRest(m);
//   RETURN_IF_ERROR(ReadReplHeader(r, &h));
//   ASSIGN_OR_RETURN(auto frames, SnapshotFramesOf(m.keys.as<uint64_t>(), m.values.as<float>()));
//   RETURN_IF_ERROR(DecodeSnapshot(r, frames, tables, workers, &clocks, &shards));
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

// The arrays of a snapshot beside its body. The message's 64-bit frame
// holds two arrays of the same length back to back: every sparse shard's
// keys (uint64), in shard order, then their rows' step counts (int64), in
// the same order; the values frame holds per shard its parameters then its
// optimizer state.
struct SnapshotFrames {
  std::span<const uint64_t> keys;
  std::span<const int64_t> row_steps;
  std::span<const float> values;
};

// Names the two halves of a snapshot's 64-bit frame `words` (InvalidArgument
// if it cannot hold two arrays of one length). The result views the same
// memory as its arguments.
Result<SnapshotFrames> SnapshotFramesOf(std::span<const uint64_t> words,
                                        std::span<const float> values);

// A partition's state as one message: per table its clocks, per shard its
// metadata in `body`; `words` and `values` become the bulk (their previous
// contents are replaced), laid out as SnapshotFrames says.
void EncodeSnapshot(const std::vector<TableClocks>& clocks,
                    const std::vector<ShardSnapshot>& shards, ByteWriter& body,
                    std::vector<uint64_t>* words, std::vector<float>* values);

// The inverse; a snapshot of another table or worker count is refused, as
// is one whose shards do not exactly fill its frames.
Status DecodeSnapshot(ByteReader& body, SnapshotFrames frames, size_t num_tables,
                      uint32_t num_workers, std::vector<TableClocks>* clocks,
                      std::vector<ShardSnapshot>* shards);

}  // namespace distopt

#endif  // DISTOPT_KV_REPL_CODEC_H_
