// Shard files (format in checkpoint.h): WriteShard encodes a snapshot and
// writes it atomically; ReadShard decodes one in named steps (file size,
// header seal, header fields, their counts against the file size, then the
// payload, CRC'd as it is read). Stateless; thread-safe for distinct files.
#include <array>
#include <cstring>
#include <span>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "base/crc32c.h"
#include "base/file_util.h"
#include "kv/checkpoint.h"
#include "kv/checkpoint_format.h"

namespace distopt {
namespace checkpoint_internal {
namespace {

constexpr char kShardMagic[8] = {'D', 'O', 'C', 'K', 'P', 'T', '0', '1'};

template <typename T>
std::span<const uint8_t> AsBytes(const std::vector<T>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(T)};
}

// a * b + c, false on overflow.
bool MulAdd(uint64_t a, uint64_t b, uint64_t c, uint64_t* out) {
  uint64_t m = 0;
  return !__builtin_mul_overflow(a, b, &m) && !__builtin_add_overflow(m, c, out);
}

// ---- shard files ----

Status ValidateSnapshot(const ShardSnapshot& s) {
  auto bad = [&](const std::string& what) {
    return InvalidArgumentError("shard snapshot of table " + std::to_string(s.table) + ": " + what);
  };
  if (s.step < 0) return bad("negative step " + std::to_string(s.step));
  if (s.slots < 0) return bad("negative slot count " + std::to_string(s.slots));
  const uint64_t slots = static_cast<uint64_t>(s.slots);
  if (s.state.size() != s.params.size() * slots) {
    return bad(std::to_string(s.state.size()) + " state floats, expected params (" +
               std::to_string(s.params.size()) + ") x slots (" + std::to_string(s.slots) + ")");
  }
  if (!s.sparse) {
    if (s.dim != 0 || !s.keys.empty() || !s.row_steps.empty()) {
      return bad("a dense snapshot has no dim, keys or row_steps");
    }
    uint64_t end = 0;
    if (__builtin_add_overflow(s.begin, s.params.size(), &end)) {
      return bad("begin + size overflows");
    }
    return Status::Ok();
  }
  if (s.begin != 0 || s.steps != 0) {
    return bad("a sparse snapshot has no begin or shard-wide steps (rows carry row_steps)");
  }
  if (s.dim == 0) return bad("sparse dim is 0");
  if (s.params.size() != s.keys.size() * s.dim) {
    return bad(std::to_string(s.params.size()) + " values for " + std::to_string(s.keys.size()) +
               " keys of dim " + std::to_string(s.dim));
  }
  if (s.row_steps.size() != s.keys.size()) {
    return bad(std::to_string(s.row_steps.size()) + " row step counts for " +
               std::to_string(s.keys.size()) + " keys");
  }
  return Status::Ok();
}

Status CheckShardFileSize(uint64_t file_size, const ShardReadLimits& limits,
                          const std::string& path) {
  if (file_size > limits.max_file_bytes) {
    return ResourceExhaustedError(path + ": " + std::to_string(file_size) +
                                  " bytes exceeds the shard file limit of " +
                                  std::to_string(limits.max_file_bytes));
  }
  if (file_size < kShardHeaderSize + kTrailerSize) {
    return Corrupt(path, "truncated: " + std::to_string(file_size) +
                             " bytes, a shard file has at least " +
                             std::to_string(kShardHeaderSize + kTrailerSize));
  }
  return Status::Ok();
}

// Magic, version and header CRC: until these hold, no other byte is trusted.
Status CheckHeaderSeal(std::span<const uint8_t, kShardHeaderSize> raw, const std::string& path) {
  if (std::memcmp(raw.data(), kShardMagic, sizeof(kShardMagic)) != 0) {
    return Corrupt(path, "bad magic (not a distopt checkpoint shard)");
  }
  uint32_t version = 0;
  std::memcpy(&version, raw.data() + sizeof(kShardMagic), sizeof(version));
  if (version != kShardFormatVersion) {
    return Corrupt(path, "unsupported shard format version " + std::to_string(version) +
                             " (this build reads " + std::to_string(kShardFormatVersion) + ")");
  }
  uint32_t stored_header_crc = 0;
  std::memcpy(&stored_header_crc, raw.data() + kShardHeaderCrcAt, 4);
  const uint32_t header_crc = Crc32c(raw.data(), kShardHeaderCrcAt);
  if (stored_header_crc != header_crc) {
    return Corrupt(path, "header checksum mismatch: stored " + Hex(stored_header_crc, 8) +
                             ", computed " + Hex(header_crc, 8));
  }
  return Status::Ok();
}

// The fields after the version, in the layout of their kind; the kind byte
// and the reserved bytes are checked here too.
Result<ShardHeader> ReadHeaderFields(std::span<const uint8_t, kShardHeaderSize> raw,
                                     const std::string& path) {
  constexpr size_t kFieldsAt = sizeof(kShardMagic) + sizeof(uint32_t);  // past the version
  ByteReader r(raw.data() + kFieldsAt, kShardHeaderCrcAt - kFieldsAt);
  ShardHeader h;
  uint8_t pad[3] = {0, 0, 0};
  uint32_t zero = 0;
  RETURN_IF_ERROR(r.U32(&h.table));
  RETURN_IF_ERROR(r.U8(&h.kind));
  for (auto& p : pad) RETURN_IF_ERROR(r.U8(&p));
  RETURN_IF_ERROR(r.I64(&h.step));
  if (h.kind == kKindDense) {
    RETURN_IF_ERROR(r.U64(&h.begin));
  } else {
    RETURN_IF_ERROR(r.U32(&h.dim));
    RETURN_IF_ERROR(r.U32(&zero));
  }
  RETURN_IF_ERROR(r.U64(&h.count));
  RETURN_IF_ERROR(r.U32(&h.slots));
  RETURN_IF_ERROR(r.U64(&h.payload_bytes));
  if (h.kind != kKindDense && h.kind != kKindSparse) {
    return Corrupt(path,
                   "kind byte " + std::to_string(h.kind) + " is neither dense (0) nor sparse (1)");
  }
  if (pad[0] != 0 || pad[1] != 0 || pad[2] != 0 || zero != 0) {
    return Corrupt(path, "reserved header bytes are not zero");
  }
  return h;
}

// From here on the header is what a writer produced, unless the file was
// crafted (or corrupted in a way CRC32C misses), so checks stay strict.
Status CheckHeaderLimits(const ShardHeader& h, const ShardReadLimits& limits,
                         const std::string& path) {
  if (h.step < 0) return Corrupt(path, "negative step " + std::to_string(h.step));
  if (h.slots > limits.max_slots) {
    return Corrupt(path, "state slot count " + std::to_string(h.slots) + " exceeds the limit of " +
                             std::to_string(limits.max_slots));
  }
  uint64_t end = 0;
  if (h.kind == kKindDense && __builtin_add_overflow(h.begin, h.count, &end)) {
    return Corrupt(path, "dense slice begin " + std::to_string(h.begin) + " + size " +
                             std::to_string(h.count) + " overflows");
  }
  if (h.kind == kKindSparse && (h.dim == 0 || h.dim > limits.max_dim)) {
    return Corrupt(path, "sparse dim " + std::to_string(h.dim) + " is outside [1, " +
                             std::to_string(limits.max_dim) + "]");
  }
  return Status::Ok();
}

// Every count is checked against the bytes actually present before any
// vector is sized from it: a flipped high bit must fail here, not in new.
Status CheckPayloadSize(const ShardHeader& h, uint64_t file_size, const std::string& path) {
  const uint64_t file_payload = file_size - kShardHeaderSize - kTrailerSize;
  uint64_t need = 0;
  const bool fits = PayloadBytes(h, &need);
  if (!fits || need != file_payload) {
    std::string counts = h.kind == kKindDense ? "dense size " + std::to_string(h.count)
                                              : "sparse rows count " + std::to_string(h.count) +
                                                    " of dim " + std::to_string(h.dim);
    return Corrupt(path, counts + " with " + std::to_string(h.slots) + " state slots needs " +
                             (fits ? std::to_string(need) : std::string("more than 2^64")) +
                             " payload bytes, but the file size leaves " +
                             std::to_string(file_payload));
  }
  if (h.payload_bytes != file_payload) {
    return Corrupt(path, "header payload byte count " + std::to_string(h.payload_bytes) +
                             " does not match the file size, which leaves " +
                             std::to_string(file_payload));
  }
  return Status::Ok();
}

// Reads the payload's parts in file order, extending the payload CRC (checked
// against the trailer) and, when the caller wants the file's manifest
// checksum, `whole_crc` as well.
class PayloadReader {
 public:
  PayloadReader(int fd, const std::string& path, uint64_t offset, uint32_t* whole_crc)
      : fd_(fd), path_(path), offset_(offset), whole_crc_(whole_crc) {}

  template <typename T>
  Status Read(std::vector<T>* v) {
    return Read(v->data(), v->size() * sizeof(T));
  }
  Status Read(void* out, size_t n) {
    RETURN_IF_ERROR(ReadAt(fd_, out, n, &offset_, &payload_crc_, path_));
    // A second pass over bytes that are in cache; only LoadServerShards asks.
    if (whole_crc_ != nullptr) *whole_crc_ = Crc32c(out, n, *whole_crc_);
    return Status::Ok();
  }
  // The stored payload CRC, once it matches what was read.
  Result<uint32_t> ReadTrailer() {
    uint32_t stored = 0;
    RETURN_IF_ERROR(ReadAt(fd_, &stored, kTrailerSize, &offset_, nullptr, path_));
    if (stored != payload_crc_) {
      return Corrupt(path_, "payload checksum mismatch: stored " + Hex(stored, 8) + ", computed " +
                                Hex(payload_crc_, 8));
    }
    return stored;
  }

 private:
  const int fd_;
  const std::string& path_;
  uint64_t offset_;
  uint32_t* const whole_crc_;
  uint32_t payload_crc_ = 0;
};

// The snapshot a checked header describes, its vectors sized and filled
// from the payload.
Result<ShardSnapshot> ReadPayload(const ShardHeader& h, PayloadReader& in) {
  ShardSnapshot s;
  s.step = h.step;
  s.table = h.table;
  s.sparse = h.kind == kKindSparse;
  s.slots = static_cast<int>(h.slots);
  if (!s.sparse) {
    s.begin = h.begin;
    s.params.resize(h.count);
    s.state.resize(h.count * h.slots);
    RETURN_IF_ERROR(in.Read(&s.params));
    RETURN_IF_ERROR(in.Read(&s.state));
    RETURN_IF_ERROR(in.Read(&s.steps, sizeof(s.steps)));
  } else {
    s.dim = h.dim;
    s.keys.resize(h.count);
    s.params.resize(h.count * h.dim);
    s.state.resize(h.count * h.dim * h.slots);
    s.row_steps.resize(h.count);
    RETURN_IF_ERROR(in.Read(&s.keys));
    RETURN_IF_ERROR(in.Read(&s.params));
    RETURN_IF_ERROR(in.Read(&s.state));
    RETURN_IF_ERROR(in.Read(&s.row_steps));
  }
  return s;
}

// The header of `shard`, its CRC included.
Result<std::vector<uint8_t>> EncodeShardHeader(const ShardSnapshot& shard) {
  const uint64_t rows = shard.keys.size();
  ByteWriter w;
  w.Raw(kShardMagic, sizeof(kShardMagic));
  w.U32(kShardFormatVersion);
  w.U32(shard.table);
  w.U8(shard.sparse ? kKindSparse : kKindDense);
  for (int i = 0; i < 3; ++i) w.U8(0);
  w.I64(shard.step);
  if (!shard.sparse) {
    w.U64(shard.begin);
    w.U64(shard.params.size());
  } else {
    w.U32(shard.dim);
    w.U32(0);
    w.U64(rows);
  }
  w.U32(static_cast<uint32_t>(shard.slots));
  const uint64_t payload = (shard.params.size() + shard.state.size()) * sizeof(float) +
                           (shard.sparse ? rows * 16 : sizeof(int64_t));
  w.U64(payload);
  if (w.bytes().size() != kShardHeaderCrcAt) return InternalError("shard header layout drifted");
  w.U32(Crc32c(w.bytes().data(), w.bytes().size()));
  return w.Take();
}

// The file's parts after the header, in order (borrowed from `shard`).
std::vector<std::span<const uint8_t>> PayloadParts(const ShardSnapshot& shard) {
  if (!shard.sparse) {
    return {AsBytes(shard.params),
            AsBytes(shard.state),
            {reinterpret_cast<const uint8_t*>(&shard.steps), sizeof(shard.steps)}};
  }
  return {AsBytes(shard.keys), AsBytes(shard.params), AsBytes(shard.state),
          AsBytes(shard.row_steps)};
}

}  // namespace

// The payload size the header's counts imply; false on overflow.
bool PayloadBytes(const ShardHeader& h, uint64_t* out) {
  uint64_t floats = h.count;  // params (dense) or values (sparse)
  if (h.kind == kKindSparse && !MulAdd(h.count, h.dim, 0, &floats)) return false;
  uint64_t state = 0, bytes = 0;
  if (!MulAdd(floats, h.slots, 0, &state) || !MulAdd(floats, 4, 0, &bytes) ||
      !MulAdd(state, 4, bytes, &bytes)) {
    return false;
  }
  if (h.kind == kKindDense) return MulAdd(1, sizeof(int64_t), bytes, out);  // update count
  return MulAdd(h.count, sizeof(uint64_t) + sizeof(int64_t), bytes, out);   // keys, row steps
}

Result<ShardHeader> DecodeShardHeader(std::span<const uint8_t, kShardHeaderSize> raw,
                                      uint64_t file_size, const ShardReadLimits& limits,
                                      const std::string& path) {
  RETURN_IF_ERROR(CheckShardFileSize(file_size, limits, path));
  RETURN_IF_ERROR(CheckHeaderSeal(raw, path));
  ASSIGN_OR_RETURN(ShardHeader h, ReadHeaderFields(raw, path));
  RETURN_IF_ERROR(CheckHeaderLimits(h, limits, path));
  RETURN_IF_ERROR(CheckPayloadSize(h, file_size, path));
  return h;
}

Result<ShardSnapshot> ReadShardFile(const std::string& path, const ShardReadLimits& limits,
                                    uint32_t* file_crc) {
  int raw_fd = -1;
  ASSIGN_OR_RETURN(const uint64_t file_size, OpenForRead(path, &raw_fd));
  Fd fd(raw_fd);
  RETURN_IF_ERROR(CheckShardFileSize(file_size, limits, path));
  std::array<uint8_t, kShardHeaderSize> raw{};
  uint64_t off = 0;
  uint32_t whole_crc = 0;
  RETURN_IF_ERROR(ReadAt(fd.get(), raw.data(), raw.size(), &off, &whole_crc, path));
  ASSIGN_OR_RETURN(const ShardHeader h, DecodeShardHeader(raw, file_size, limits, path));
  PayloadReader in(fd.get(), path, off, file_crc != nullptr ? &whole_crc : nullptr);
  ASSIGN_OR_RETURN(ShardSnapshot s, ReadPayload(h, in));
  ASSIGN_OR_RETURN(const uint32_t trailer, in.ReadTrailer());
  if (file_crc != nullptr) *file_crc = MixTrailer(whole_crc, trailer);
  return s;
}

}  // namespace checkpoint_internal

using checkpoint_internal::ReadShardFile;

Status WriteShard(const std::string& ckpt_dir, int server_rank, const ShardSnapshot& shard,
                  ManifestEntry* entry, Env* env) {
  using checkpoint_internal::MixTrailer;
  if (server_rank < 0) return InvalidArgumentError("negative server rank");
  RETURN_IF_ERROR(checkpoint_internal::ValidateSnapshot(shard));
  ASSIGN_OR_RETURN(const std::vector<uint8_t> header,
                   checkpoint_internal::EncodeShardHeader(shard));
  std::vector<std::span<const uint8_t>> parts = {header};
  uint32_t payload_crc = 0;
  for (const std::span<const uint8_t> part : checkpoint_internal::PayloadParts(shard)) {
    parts.push_back(part);
    payload_crc = Crc32c(part.data(), part.size(), payload_crc);
  }
  parts.push_back({reinterpret_cast<const uint8_t*>(&payload_crc), sizeof(payload_crc)});

  const std::string name = ShardFileName(server_rank, shard.table);
  RETURN_IF_ERROR(env->MakeDirs(ckpt_dir));
  RETURN_IF_ERROR(WriteFileAtomically(env, ckpt_dir + "/" + name, parts));
  if (entry != nullptr) {
    entry->name = name;
    entry->size = 0;
    entry->crc32c = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      entry->size += parts[i].size();
      // The manifest's checksum: all but the trailer, mixed with it (see Digest).
      if (i + 1 < parts.size()) {
        entry->crc32c = Crc32c(parts[i].data(), parts[i].size(), entry->crc32c);
      }
    }
    entry->crc32c = MixTrailer(entry->crc32c, payload_crc);
  }
  return Status::Ok();
}

Result<ShardSnapshot> ReadShard(const std::string& path, const ShardReadLimits& limits) {
  return ReadShardFile(path, limits, nullptr);
}

}  // namespace distopt
