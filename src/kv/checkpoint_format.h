// The pieces of checkpoint.h's on-disk formats that its files share, internal
// to kv: reading a file with a running CRC32C, the manifest's checksum of a
// file, the shard file's fixed header, and the two decoders of file bytes
// (DecodeShardHeader, ParseManifest), declared here so fuzz/wire_fuzz.cc can
// feed them bytes without a file. Stateless functions; thread-safe.
//
//   ASSIGN_OR_RETURN(ShardHeader h, DecodeShardHeader(raw, file_size, limits, path));
//   ASSIGN_OR_RETURN(Manifest m, ParseManifest(text, path));
//   ASSIGN_OR_RETURN(ManifestEntry e, Digest(path));   // size and manifest CRC
#ifndef DISTOPT_KV_CHECKPOINT_FORMAT_H_
#define DISTOPT_KV_CHECKPOINT_FORMAT_H_

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/file_util.h"
#include "distopt/status.h"
#include "kv/checkpoint.h"

namespace distopt::checkpoint_internal {

inline constexpr size_t kShardHeaderSize = 60;   // fixed for both kinds; see checkpoint.h
inline constexpr size_t kShardHeaderCrcAt = 56;  // the header CRC covers [0, kShardHeaderCrcAt)
inline constexpr size_t kTrailerSize = 4;        // the payload CRC ending a shard file
inline constexpr uint8_t kKindDense = 0;
inline constexpr uint8_t kKindSparse = 1;

// ---- text for messages ----

std::string ErrnoText(int err);
// DataLoss "<path>: <what>".
Status Corrupt(const std::string& path, const std::string& what);
// `v` as `width` lowercase hex digits (zero-padded).
std::string Hex(uint64_t v, int width);
// Untrusted text for a message: quoted, non-printable bytes as \xNN, cut at 60.
std::string Quote(std::string_view s);

// ---- reading files ----

// Opens a regular file for reading and returns its size.
Result<uint64_t> OpenForRead(const std::string& path, int* fd_out);
// Reads exactly n bytes at *offset (advancing it), extending *crc over them
// unless crc is null. A file that ends early is DataLoss.
Status ReadAt(int fd, void* out, size_t n, uint64_t* offset, uint32_t* crc,
              const std::string& path);

// The manifest's checksum of a file: CRC32C of all but the 4-byte trailer,
// mixed with the trailer. (A plain CRC over data followed by its own CRC is
// the same constant for every file, so it would tell nothing.)
uint32_t MixTrailer(uint32_t body_crc, uint32_t trailer);
// Size and manifest checksum of a whole file, streamed (memory does not grow
// with it). NotFound when it is absent.
Result<ManifestEntry> Digest(const std::string& path);

// ---- shard files ----

// A shard file's fixed header, decoded.
struct ShardHeader {
  uint32_t table = 0;
  uint8_t kind = 0;  // kKindDense or kKindSparse
  int64_t step = 0;
  uint64_t begin = 0;  // dense
  uint64_t count = 0;  // dense: size; sparse: rows
  uint32_t dim = 0;    // sparse
  uint32_t slots = 0;
  uint64_t payload_bytes = 0;
};

// The payload size the header's counts imply; false on overflow.
bool PayloadBytes(const ShardHeader& h, uint64_t* out);

// Decodes the first kShardHeaderSize bytes of a shard file of `file_size`
// bytes: magic, version, header CRC, then every field, each count checked
// against the bytes the file size leaves (so nothing is allocated from a
// count the file cannot hold). Corruption is DataLoss naming `path`; a file
// over limits.max_file_bytes is ResourceExhausted.
Result<ShardHeader> DecodeShardHeader(std::span<const uint8_t, kShardHeaderSize> raw,
                                      uint64_t file_size, const ShardReadLimits& limits,
                                      const std::string& path);

// ReadShard, and if `file_crc` is set the file's manifest checksum too
// (computed on the same pass, for LoadServerShards).
Result<ShardSnapshot> ReadShardFile(const std::string& path, const ShardReadLimits& limits,
                                    uint32_t* file_crc);

// ---- manifests ----

// A name a manifest may list: [A-Za-z0-9._-]+, not starting with '.', not
// the manifest itself.
bool ValidFileName(std::string_view name);
// Parses MANIFEST text (read from `path`, named in messages): the CRC line is
// checked before anything else is interpreted. Corruption is DataLoss.
Result<Manifest> ParseManifest(std::string_view text, const std::string& path);

}  // namespace distopt::checkpoint_internal

#endif  // DISTOPT_KV_CHECKPOINT_FORMAT_H_
