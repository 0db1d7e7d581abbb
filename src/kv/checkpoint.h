// Crash-safe checkpoint files. Each server writes one shard file per table it
// holds (atomically: temp file, fsync, rename, fsync of the directory); the
// coordinator writes the MANIFEST (sizes and CRC32C of every file, its own
// CRC) last. Only a directory whose manifest verifies is ever loaded. Free
// functions over the filesystem; thread-safe for distinct files.
//
//   std::string dir = CheckpointDir(run_dir, step);
//   ManifestEntry e;
//   RETURN_IF_ERROR(WriteShard(dir, rank, snapshot, &e));           // every server
//   RETURN_IF_ERROR(WriteManifest(dir, {step, hash, servers, {e}}));  // coordinator, last
//   ASSIGN_OR_RETURN(std::string good, FindLatestGoodCheckpoint(run_dir, hash, &log));
//   ASSIGN_OR_RETURN(auto shards, LoadServerShards(good, rank));
//
// On disk: <run_dir>/checkpoints/step-<%010d step>/{server-<r>.table-<t>.shard, MANIFEST}.
//
// Shard file, format version 1, little-endian, fixed 60-byte header:
//   0 magic "DOCKPT01" | 8 version u32 | 12 table u32 | 16 kind u8 (0 dense,
//   1 sparse) | 17 three zero bytes | 20 step i64 | 28 dense: begin u64, size
//   u64; sparse: dim u32, zero u32, rows u64 | 44 state slots u32 | 48 payload
//   bytes u64 | 56 CRC32C of bytes [0, 56).
// then the payload: dense: params f32[size], state f32[size*slots], update
// count i64; sparse: keys u64[rows], values f32[rows*dim], state
// f32[rows*dim*slots], row step counts i64[rows]; then CRC32C of the payload.
// The header is fixed-size whatever the kind, so the header CRC always covers
// the same bytes and any single flipped bit in it is caught.
//
// MANIFEST, format version 1, text (readable with `cat`, diffable; it is a
// few lines, so the cost of parsing text does not matter):
//   DOCKPT-MANIFEST 1
//   step 42
//   config_hash 0123456789abcdef        (16 lowercase hex digits)
//   num_servers 2
//   files 3
//   file <size> <crc32c, 8 lowercase hex> <name>     (one per file)
//   crc32c <8 lowercase hex>                           (CRC of all lines above)
// Numbers are canonical (no sign, no leading zeros), hex is lowercase only,
// so a flipped bit in the last line cannot parse to the same value either.
#ifndef DISTOPT_KV_CHECKPOINT_H_
#define DISTOPT_KV_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "base/env.h"
#include "base/logging.h"
#include "distopt/status.h"

namespace distopt {

inline constexpr uint32_t kShardFormatVersion = 1;
inline constexpr uint32_t kManifestFormatVersion = 1;
inline constexpr char kManifestName[] = "MANIFEST";

// One server's part of one table at a checkpoint step.
struct ShardSnapshot {
  int64_t step = 0;  // the checkpoint step (stored in the header)
  uint32_t table = 0;
  bool sparse = false;
  uint64_t begin = 0;          // dense: index of params[0] in the table; 0 for sparse
  uint32_t dim = 0;            // sparse: floats per row; 0 for dense
  int slots = 0;               // optimizer state slots
  int64_t steps = 0;           // dense: the shard's update count; 0 for sparse (rows keep theirs)
  std::vector<float> params;   // dense: the slice; sparse: rows * dim values
  std::vector<float> state;    // params.size() * slots (layout as in kv/shard.h)
  std::vector<uint64_t> keys;  // sparse: one per row
  std::vector<int64_t> row_steps;  // sparse: one per row
};

// Bounds on what a reader accepts; everything is also checked against the
// file size before anything is allocated.
struct ShardReadLimits {
  uint64_t max_file_bytes = uint64_t{1} << 40;
  uint32_t max_slots = 16;
  uint32_t max_dim = uint32_t{1} << 24;
};

struct ManifestEntry {
  std::string name;  // a file in the checkpoint directory: [A-Za-z0-9._-]+
  uint64_t size = 0;
  uint32_t crc32c = 0;  // of the whole file
};

struct Manifest {
  int64_t step = 0;
  uint64_t config_hash = 0;  // the caller's hash of everything a restore must match
  uint32_t num_servers = 0;
  std::vector<ManifestEntry> files;
};

// <run_dir>/checkpoints and <run_dir>/checkpoints/step-<%010d>.
std::string CheckpointsDir(const std::string& run_dir);
std::string CheckpointDir(const std::string& run_dir, int64_t step);
// "server-<rank>.table-<table>.shard". The number is the partition's (the
// server rank of the job's first layout when there is one partition per
// server, the name's origin; with cluster.partitions above the servers, a
// server writes one set of files per partition it owns).
std::string ShardFileName(int server_rank, uint32_t table);
// The step of a "step-<digits>" directory name; InvalidArgument otherwise.
Result<int64_t> ParseCheckpointDirName(const std::string& name);

// Writes `shard` to <ckpt_dir>/ShardFileName(server_rank, shard.table)
// atomically, creating ckpt_dir if needed. The parts are written straight
// from the snapshot's vectors. If `entry` is set it receives the file's name,
// size and CRC for the manifest (computed while writing, without a re-read).
// InvalidArgument if the snapshot's sizes are inconsistent.
// Its files go through `env` (base/env.h).
Status WriteShard(const std::string& ckpt_dir, int server_rank, const ShardSnapshot& shard,
                  ManifestEntry* entry = nullptr, Env* env = Env::Default());

// Reads and fully validates a shard file: magic, version, header CRC, every
// count against the file size (before allocating), payload CRC. Corruption is
// DataLoss naming the file and what mismatched; a file over
// limits.max_file_bytes is ResourceExhausted.
Result<ShardSnapshot> ReadShard(const std::string& path, const ShardReadLimits& limits = {});

// Size and CRC32C of <ckpt_dir>/<name> (for a coordinator that describes the
// files on disk rather than trusting what servers reported).
Result<ManifestEntry> DescribeFile(const std::string& ckpt_dir, const std::string& name);

// Which files of a checkpoint a node's run folder holds. kAll: the folder
// is the job's (one filesystem), every listed file must be here. With a
// folder per host the coordinator holds only the manifests
// (kAllOrManifestOnly: every file, or none of them) and each server its own
// shards plus a copy of each manifest (kOwnShards: each server's files all
// here or all absent; partly here is corrupt). Servers check their own files
// against the manifest when they load them.
enum class CheckpointScope { kAll, kAllOrManifestOnly, kOwnShards };

// Writes <ckpt_dir>/MANIFEST atomically. Call only after every listed file
// was written: each must exist with its listed size (checked, cheaply); under
// kAllOrManifestOnly a folder holding none of them gets the manifest alone.
Status WriteManifest(const std::string& ckpt_dir, const Manifest& manifest,
                     CheckpointScope scope = CheckpointScope::kAll, Env* env = Env::Default());
// NotFound when there is no MANIFEST (an incomplete checkpoint), DataLoss
// when it is corrupt.
Result<Manifest> ReadManifest(const std::string& ckpt_dir);

// OK when the manifest is valid, its step matches the directory name, and
// every listed file is present with the listed size and CRC (read in full).
Status VerifyCheckpoint(const std::string& ckpt_dir);

// Every shard of `server_rank` listed in the manifest of a verified
// checkpoint, each validated by ReadShard and checked against the manifest's
// CRC and step.
Result<std::vector<ShardSnapshot>> LoadServerShards(const std::string& ckpt_dir, int server_rank,
                                                    const ShardReadLimits& limits = {});

// Verification under a scope (VerifyCheckpoint is kAll).
Status VerifyCheckpointIn(const std::string& ckpt_dir, CheckpointScope scope);

// The directory of the newest checkpoint under run_dir that verifies and was
// written with `config_hash`; each newer one that does not is logged (to
// `log` if set) with the reason. NotFound when there is none.
Result<std::string> FindLatestGoodCheckpoint(const std::string& run_dir, uint64_t config_hash,
                                             const Logger* log,
                                             CheckpointScope scope = CheckpointScope::kAll);

// Keeps the newest `keep` (>= 1) good checkpoints and deletes every older
// directory, good or not. Directories newer than the newest good one are
// kept: they may be checkpoints still being written. Only the newest ones
// are verified (until `keep` good ones are found).
Status PruneCheckpoints(const std::string& run_dir, int keep,
                        CheckpointScope scope = CheckpointScope::kAll);

// A manifest as the coordinator hands it to each server (kManifest), so a
// server with a folder of its own can verify and prune its checkpoints and
// load them on resume. `bytes` is the MANIFEST file.
struct ManifestCopy {
  int64_t step = 0;
  std::vector<uint8_t> bytes;
};
std::vector<uint8_t> EncodeManifestCopy(const ManifestCopy& m);
Result<ManifestCopy> DecodeManifestCopy(const uint8_t* data, size_t size);
// Writes the copy into run_dir's checkpoint folder of its step (skipped when
// the same file is there: a shared folder), checks it reads back as a
// manifest of that step, then prunes to `keep` under kOwnShards.
Status StoreManifestCopy(const std::string& run_dir, const ManifestCopy& m, int keep);

// A server's report to the coordinator that its files of checkpoint `step`
// are durable (the coordinator writes the manifest once every server has).
struct CheckpointReport {
  int64_t step = 0;
  uint32_t server_rank = 0;
  std::vector<ManifestEntry> files;
};
std::vector<uint8_t> EncodeCheckpointReport(const CheckpointReport& r);
Result<CheckpointReport> DecodeCheckpointReport(const uint8_t* data, size_t size);

}  // namespace distopt

#endif  // DISTOPT_KV_CHECKPOINT_H_
