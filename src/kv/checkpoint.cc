#include "kv/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <set>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>

#include "base/bytes.h"
#include "base/crc32c.h"
#include "base/file_util.h"

namespace distopt {
namespace {

constexpr char kShardMagic[8] = {'D', 'O', 'C', 'K', 'P', 'T', '0', '1'};
constexpr size_t kHeaderSize = 60;   // fixed for both kinds; see checkpoint.h
constexpr size_t kHeaderCrcAt = 56;  // the CRC covers [0, kHeaderCrcAt)
constexpr size_t kTrailerSize = 4;   // payload CRC

// The manifest's checksum of a file: CRC32C of all but the 4-byte trailer,
// mixed with the trailer. (A plain CRC over data followed by its own CRC is
// the same constant for every file, so it would tell nothing.)
uint32_t MixTrailer(uint32_t body_crc, uint32_t trailer) {
  return body_crc ^ ((trailer << 7) | (trailer >> 25));
}

constexpr uint8_t kKindDense = 0;
constexpr uint8_t kKindSparse = 1;

constexpr char kManifestMagic[] = "DOCKPT-MANIFEST";
constexpr size_t kMaxManifestBytes = size_t{64} << 20;
constexpr uint64_t kMaxManifestFiles = uint64_t{1} << 20;
constexpr size_t kManifestTail = 16;  // "crc32c " + 8 hex + "\n"

constexpr char kStepPrefix[] = "step-";

std::string ErrnoText(int err) { return std::generic_category().message(err); }

Status Corrupt(const std::string& path, const std::string& what) {
  return DataLossError(path + ": " + what);
}

std::string Hex(uint64_t v, int width) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%0*" PRIx64, width, v);
  return buf;
}

template <typename T>
std::span<const uint8_t> AsBytes(const std::vector<T>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(T)};
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Opens a regular file for reading and returns its size.
Result<uint64_t> OpenForRead(const std::string& path, int* fd_out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return NotFoundError(path + ": no such file");
    return UnavailableError(path + ": cannot open: " + ErrnoText(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return UnavailableError(path + ": stat failed: " + ErrnoText(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return DataLossError(path + ": not a regular file");
  }
  *fd_out = fd;
  return static_cast<uint64_t>(st.st_size);
}

// Reads exactly n bytes at *offset (advancing it), extending *crc over them.
Status ReadAt(int fd, void* out, size_t n, uint64_t* offset, uint32_t* crc,
              const std::string& path) {
  auto* p = static_cast<uint8_t*>(out);
  size_t left = n;
  while (left > 0) {
    ssize_t r = ::pread(fd, p, std::min(left, size_t{1} << 30), static_cast<off_t>(*offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      return UnavailableError(path + ": read failed: " + ErrnoText(errno));
    }
    if (r == 0) return Corrupt(path, "truncated while reading (file shrank?)");
    p += r;
    left -= static_cast<size_t>(r);
    *offset += static_cast<uint64_t>(r);
  }
  if (crc != nullptr) *crc = Crc32c(out, n, *crc);
  return Status::Ok();
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

struct ShardHeader {
  uint32_t table = 0;
  uint8_t kind = 0;
  int64_t step = 0;
  uint64_t begin = 0;  // dense
  uint64_t count = 0;  // dense: size; sparse: rows
  uint32_t dim = 0;    // sparse
  uint32_t slots = 0;
  uint64_t payload_bytes = 0;
};

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

Result<ShardSnapshot> ReadShardImpl(const std::string& path, const ShardReadLimits& limits,
                                    uint32_t* file_crc) {
  int raw_fd = -1;
  ASSIGN_OR_RETURN(const uint64_t file_size, OpenForRead(path, &raw_fd));
  Fd fd(raw_fd);
  if (file_size > limits.max_file_bytes) {
    return ResourceExhaustedError(path + ": " + std::to_string(file_size) +
                                  " bytes exceeds the shard file limit of " +
                                  std::to_string(limits.max_file_bytes));
  }
  if (file_size < kHeaderSize + kTrailerSize) {
    return Corrupt(path, "truncated: " + std::to_string(file_size) +
                             " bytes, a shard file has at least " +
                             std::to_string(kHeaderSize + kTrailerSize));
  }
  uint8_t raw[kHeaderSize];
  uint64_t off = 0;
  uint32_t whole_crc = 0;
  RETURN_IF_ERROR(ReadAt(fd.get(), raw, kHeaderSize, &off, &whole_crc, path));

  if (std::memcmp(raw, kShardMagic, sizeof(kShardMagic)) != 0) {
    return Corrupt(path, "bad magic (not a distopt checkpoint shard)");
  }
  ByteReader r(raw + sizeof(kShardMagic), kHeaderSize - sizeof(kShardMagic));
  uint32_t version = 0;
  RETURN_IF_ERROR(r.U32(&version));
  if (version != kShardFormatVersion) {
    return Corrupt(path, "unsupported shard format version " + std::to_string(version) +
                             " (this build reads " + std::to_string(kShardFormatVersion) + ")");
  }
  uint32_t stored_header_crc = 0;
  std::memcpy(&stored_header_crc, raw + kHeaderCrcAt, 4);
  const uint32_t header_crc = Crc32c(raw, kHeaderCrcAt);
  if (stored_header_crc != header_crc) {
    return Corrupt(path, "header checksum mismatch: stored " + Hex(stored_header_crc, 8) +
                             ", computed " + Hex(header_crc, 8));
  }

  // From here on the header is what a writer produced, unless the file was
  // crafted (or corrupted in a way CRC32C misses), so checks stay strict.
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
  // Every count is checked against the bytes actually present before any
  // vector is sized from it: a flipped high bit must fail here, not in new.
  const uint64_t file_payload = file_size - kHeaderSize - kTrailerSize;
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

  ShardSnapshot s;
  s.step = h.step;
  s.table = h.table;
  s.sparse = h.kind == kKindSparse;
  s.slots = static_cast<int>(h.slots);
  uint32_t payload_crc = 0;
  auto read = [&](void* out, size_t n) -> Status {
    RETURN_IF_ERROR(ReadAt(fd.get(), out, n, &off, &payload_crc, path));
    // A second pass over bytes that are in cache; only LoadServerShards asks.
    if (file_crc != nullptr) whole_crc = Crc32c(out, n, whole_crc);
    return Status::Ok();
  };
  if (!s.sparse) {
    s.begin = h.begin;
    s.params.resize(h.count);
    s.state.resize(h.count * h.slots);
    RETURN_IF_ERROR(read(s.params.data(), s.params.size() * sizeof(float)));
    RETURN_IF_ERROR(read(s.state.data(), s.state.size() * sizeof(float)));
    RETURN_IF_ERROR(read(&s.steps, sizeof(s.steps)));
  } else {
    s.dim = h.dim;
    s.keys.resize(h.count);
    s.params.resize(h.count * h.dim);
    s.state.resize(h.count * h.dim * h.slots);
    s.row_steps.resize(h.count);
    RETURN_IF_ERROR(read(s.keys.data(), s.keys.size() * sizeof(uint64_t)));
    RETURN_IF_ERROR(read(s.params.data(), s.params.size() * sizeof(float)));
    RETURN_IF_ERROR(read(s.state.data(), s.state.size() * sizeof(float)));
    RETURN_IF_ERROR(read(s.row_steps.data(), s.row_steps.size() * sizeof(int64_t)));
  }
  uint32_t stored_payload_crc = 0;
  RETURN_IF_ERROR(ReadAt(fd.get(), &stored_payload_crc, kTrailerSize, &off, nullptr, path));
  if (stored_payload_crc != payload_crc) {
    return Corrupt(path, "payload checksum mismatch: stored " + Hex(stored_payload_crc, 8) +
                             ", computed " + Hex(payload_crc, 8));
  }
  if (file_crc != nullptr) *file_crc = MixTrailer(whole_crc, stored_payload_crc);
  return s;
}

// ---- manifest ----

bool ValidFileName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name[0] == '.' || name == kManifestName) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

// Canonical unsigned decimal: digits only, no leading zero (except "0").
bool ParseDecimal(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) return false;
  if (!std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// Exactly `digits` lowercase hex digits.
bool ParseHex(std::string_view s, size_t digits, uint64_t* out) {
  if (s.size() != digits) return false;
  if (!std::all_of(s.begin(), s.end(),
                   [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); })) {
    return false;
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, 16);
  return ec == std::errc() && p == s.data() + s.size();
}

std::vector<std::string_view> Split(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t sp = line.find(' ', start);
    out.push_back(line.substr(start, sp == std::string_view::npos ? sp : sp - start));
    if (sp == std::string_view::npos) return out;
    start = sp + 1;
  }
}

std::string Quote(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 60)) {
    out += (c >= 0x20 && c < 0x7f) ? std::string(1, c) : "\\x" + Hex(static_cast<uint8_t>(c), 2);
  }
  return out + (s.size() > 60 ? "...'" : "'");
}

Status ValidateManifest(const Manifest& m) {
  if (m.step < 0) return InvalidArgumentError("manifest: negative step " + std::to_string(m.step));
  if (m.num_servers == 0) return InvalidArgumentError("manifest: num_servers is 0");
  if (m.files.size() > kMaxManifestFiles) {
    return InvalidArgumentError("manifest: " + std::to_string(m.files.size()) + " files");
  }
  std::set<std::string_view> seen;
  for (const auto& f : m.files) {
    if (!ValidFileName(f.name)) {
      return InvalidArgumentError("manifest: bad file name " + Quote(f.name) +
                                  " (want [A-Za-z0-9._-]+, not starting with '.')");
    }
    if (!seen.insert(f.name).second) {
      return InvalidArgumentError("manifest: file " + f.name + " listed twice");
    }
  }
  return Status::Ok();
}

std::string SerializeManifest(const Manifest& m) {
  std::string body;
  body += std::string(kManifestMagic) + " " + std::to_string(kManifestFormatVersion) + "\n";
  body += "step " + std::to_string(m.step) + "\n";
  body += "config_hash " + Hex(m.config_hash, 16) + "\n";
  body += "num_servers " + std::to_string(m.num_servers) + "\n";
  body += "files " + std::to_string(m.files.size()) + "\n";
  for (const auto& f : m.files) {
    body += "file " + std::to_string(f.size) + " " + Hex(f.crc32c, 8) + " " + f.name + "\n";
  }
  return body + "crc32c " + Hex(Crc32c(body.data(), body.size()), 8) + "\n";
}

Result<Manifest> ParseManifest(std::string_view text, const std::string& path) {
  if (text.size() < kManifestTail + 1) {
    return Corrupt(path, "truncated: " + std::to_string(text.size()) + " bytes");
  }
  // The last line is checked before anything else is parsed: only bytes the
  // CRC vouches for are interpreted.
  std::string_view tail = text.substr(text.size() - kManifestTail);
  std::string_view body = text.substr(0, text.size() - kManifestTail);
  uint64_t stored = 0;
  if (tail.substr(0, 7) != "crc32c " || tail.back() != '\n' || body.back() != '\n' ||
      !ParseHex(tail.substr(7, 8), 8, &stored)) {
    return Corrupt(path, "last line is not 'crc32c <8 lowercase hex digits>': " + Quote(tail));
  }
  const uint32_t computed = Crc32c(body.data(), body.size());
  if (stored != computed) {
    return Corrupt(path, "manifest checksum mismatch: stored " + Hex(stored, 8) + ", computed " +
                             Hex(computed, 8));
  }

  std::vector<std::string_view> lines;
  for (size_t start = 0; start < body.size();) {
    size_t nl = body.find('\n', start);
    lines.push_back(body.substr(start, nl - start));
    start = nl + 1;
  }
  size_t at = 0;
  auto bad = [&](const std::string& want) {
    std::string found = at < lines.size() ? Quote(lines[at]) : "end of manifest";
    return Corrupt(path,
                   "line " + std::to_string(at + 1) + ": expected " + want + ", found " + found);
  };
  // "key <decimal>" lines.
  auto number = [&](std::string_view key, uint64_t max, uint64_t* out) -> Status {
    if (at >= lines.size()) return bad("'" + std::string(key) + " <number>'");
    auto f = Split(lines[at]);
    if (f.size() != 2 || f[0] != key || !ParseDecimal(f[1], out) || *out > max) {
      return bad("'" + std::string(key) + " <number up to " + std::to_string(max) + ">'");
    }
    ++at;
    return Status::Ok();
  };

  Manifest m;
  uint64_t version = 0, step = 0, servers = 0, count = 0, hash = 0;
  RETURN_IF_ERROR(number(kManifestMagic, UINT32_MAX, &version));
  if (version != kManifestFormatVersion) {
    return Corrupt(path, "unsupported manifest format version " + std::to_string(version) +
                             " (this build reads " + std::to_string(kManifestFormatVersion) + ")");
  }
  RETURN_IF_ERROR(number("step", INT64_MAX, &step));
  {
    auto f = at < lines.size() ? Split(lines[at]) : std::vector<std::string_view>{};
    if (f.size() != 2 || f[0] != "config_hash" || !ParseHex(f[1], 16, &hash)) {
      return bad("'config_hash <16 lowercase hex digits>'");
    }
    ++at;
  }
  RETURN_IF_ERROR(number("num_servers", UINT32_MAX, &servers));
  if (servers == 0) return Corrupt(path, "num_servers is 0");
  RETURN_IF_ERROR(number("files", kMaxManifestFiles, &count));
  if (count != lines.size() - at) {
    return Corrupt(path, "manifest says " + std::to_string(count) + " files but lists " +
                             std::to_string(lines.size() - at));
  }
  m.step = static_cast<int64_t>(step);
  m.config_hash = hash;
  m.num_servers = static_cast<uint32_t>(servers);
  m.files.reserve(count);  // bounded by the lines actually present
  for (; at < lines.size(); ++at) {
    auto f = Split(lines[at]);
    ManifestEntry e;
    uint64_t crc = 0;
    if (f.size() != 4 || f[0] != "file" || !ParseDecimal(f[1], &e.size) ||
        !ParseHex(f[2], 8, &crc) || !ValidFileName(f[3])) {
      return bad("'file <size> <8 hex crc32c> <name>'");
    }
    e.crc32c = static_cast<uint32_t>(crc);
    e.name = std::string(f[3]);
    m.files.push_back(std::move(e));
  }
  Status valid = ValidateManifest(m);
  if (!valid.ok()) return Corrupt(path, valid.message());
  return m;
}

// Size and CRC of a whole file, streamed (memory does not grow with it).
Result<ManifestEntry> Digest(const std::string& path) {
  int raw_fd = -1;
  ASSIGN_OR_RETURN(const uint64_t size, OpenForRead(path, &raw_fd));
  Fd fd(raw_fd);
  std::vector<uint8_t> buf(std::min<uint64_t>(size, uint64_t{1} << 20));
  ManifestEntry e;
  uint64_t off = 0;
  const uint64_t covered = size >= kTrailerSize ? size - kTrailerSize : size;
  while (off < covered) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), covered - off));
    RETURN_IF_ERROR(ReadAt(fd.get(), buf.data(), n, &off, &e.crc32c, path));
  }
  if (covered < size) {
    uint32_t trailer = 0;
    RETURN_IF_ERROR(ReadAt(fd.get(), &trailer, kTrailerSize, &off, nullptr, path));
    e.crc32c = MixTrailer(e.crc32c, trailer);
  }
  e.size = size;
  return e;
}

std::string BaseName(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The manifest of a checkpoint that verifies completely.
Result<Manifest> Verify(const std::string& ckpt_dir,
                        CheckpointScope scope = CheckpointScope::kAll) {
  ASSIGN_OR_RETURN(Manifest m, ReadManifest(ckpt_dir));
  // Which servers' files are here ("server-3" of "server-3.table-0.shard").
  std::set<std::string> present_servers;
  if (scope != CheckpointScope::kAll) {
    for (const auto& f : m.files) {
      if (access((ckpt_dir + "/" + f.name).c_str(), F_OK) == 0) {
        present_servers.insert(f.name.substr(0, f.name.find('.')));
      }
    }
  }
  // The coordinator's folder of a job with a folder per host: manifests only.
  if (scope == CheckpointScope::kAllOrManifestOnly && present_servers.empty()) return m;
  if (scope == CheckpointScope::kAllOrManifestOnly) scope = CheckpointScope::kAll;
  Result<int64_t> dir_step = ParseCheckpointDirName(BaseName(ckpt_dir));
  if (dir_step.ok() && *dir_step != m.step) {
    return Corrupt(ckpt_dir + "/" + kManifestName,
                   "manifest is for step " + std::to_string(m.step) + " but the directory is " +
                       BaseName(ckpt_dir));
  }
  for (const auto& f : m.files) {
    const std::string path = ckpt_dir + "/" + f.name;
    if (scope == CheckpointScope::kOwnShards &&
        present_servers.count(f.name.substr(0, f.name.find('.'))) == 0) {
      continue;  // that server's files live on its own host
    }
    Result<ManifestEntry> d = Digest(path);
    if (!d.ok()) {
      if (d.status().code() == StatusCode::kNotFound) {
        return Corrupt(path, "listed in the manifest but missing");
      }
      return d.status();
    }
    if (d->size != f.size) {
      return Corrupt(path, "size " + std::to_string(d->size) + " bytes, the manifest says " +
                               std::to_string(f.size));
    }
    if (d->crc32c != f.crc32c) {
      return Corrupt(path, "checksum mismatch: file has " + Hex(d->crc32c, 8) +
                               ", the manifest says " + Hex(f.crc32c, 8));
    }
  }
  return m;
}

// Checkpoint directories under run_dir, newest first.
Result<std::vector<std::pair<int64_t, std::string>>> ListCheckpoints(const std::string& run_dir) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(CheckpointsDir(run_dir)));
  std::vector<std::pair<int64_t, std::string>> out;
  for (auto& name : names) {
    Result<int64_t> step = ParseCheckpointDirName(name);
    if (step.ok()) out.emplace_back(*step, CheckpointsDir(run_dir) + "/" + name);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

}  // namespace

std::string CheckpointsDir(const std::string& run_dir) { return run_dir + "/checkpoints"; }

std::string CheckpointDir(const std::string& run_dir, int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%s%010" PRId64, kStepPrefix, step);
  return CheckpointsDir(run_dir) + "/" + buf;
}

std::string ShardFileName(int server_rank, uint32_t table) {
  return "server-" + std::to_string(server_rank) + ".table-" + std::to_string(table) + ".shard";
}

Result<int64_t> ParseCheckpointDirName(const std::string& name) {
  std::string_view s(name);
  const std::string_view prefix(kStepPrefix);
  uint64_t step = 0;
  // %010d: exactly 10 digits, or more without a leading zero.
  if (s.substr(0, prefix.size()) != prefix) {
    return InvalidArgumentError("not a checkpoint directory name: " + name);
  }
  std::string_view digits = s.substr(prefix.size());
  bool canonical = digits.size() == 10 || (digits.size() > 10 && digits[0] != '0');
  if (!canonical ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return InvalidArgumentError("not a checkpoint directory name: " + name);
  }
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
  if (ec != std::errc() || p != digits.data() + digits.size() || step > INT64_MAX) {
    return InvalidArgumentError("not a checkpoint directory name: " + name);
  }
  return static_cast<int64_t>(step);
}

Status WriteShard(const std::string& ckpt_dir, int server_rank, const ShardSnapshot& shard,
                  ManifestEntry* entry, Env* env) {
  if (server_rank < 0) return InvalidArgumentError("negative server rank");
  RETURN_IF_ERROR(ValidateSnapshot(shard));
  const uint64_t slots = static_cast<uint64_t>(shard.slots);
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
  w.U32(static_cast<uint32_t>(slots));
  const uint64_t payload = (shard.params.size() + shard.state.size()) * sizeof(float) +
                           (shard.sparse ? rows * 16 : sizeof(int64_t));
  w.U64(payload);
  if (w.bytes().size() != kHeaderCrcAt) return InternalError("shard header layout drifted");
  w.U32(Crc32c(w.bytes().data(), w.bytes().size()));
  std::vector<uint8_t> header = w.Take();

  std::vector<std::span<const uint8_t>> parts;
  parts.push_back(header);
  if (!shard.sparse) {
    parts.push_back(AsBytes(shard.params));
    parts.push_back(AsBytes(shard.state));
    parts.push_back({reinterpret_cast<const uint8_t*>(&shard.steps), sizeof(shard.steps)});
  } else {
    parts.push_back(AsBytes(shard.keys));
    parts.push_back(AsBytes(shard.params));
    parts.push_back(AsBytes(shard.state));
    parts.push_back(AsBytes(shard.row_steps));
  }
  uint32_t payload_crc = 0;
  for (size_t i = 1; i < parts.size(); ++i) {
    payload_crc = Crc32c(parts[i].data(), parts[i].size(), payload_crc);
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
  return ReadShardImpl(path, limits, nullptr);
}

Result<ManifestEntry> DescribeFile(const std::string& ckpt_dir, const std::string& name) {
  if (!ValidFileName(name)) return InvalidArgumentError("bad checkpoint file name " + Quote(name));
  ASSIGN_OR_RETURN(ManifestEntry e, Digest(ckpt_dir + "/" + name));
  e.name = name;
  return e;
}

Status WriteManifest(const std::string& ckpt_dir, const Manifest& manifest, CheckpointScope scope,
                     Env* env) {
  RETURN_IF_ERROR(ValidateManifest(manifest));
  bool any_here = false;
  for (const auto& f : manifest.files) {
    any_here = any_here || access((ckpt_dir + "/" + f.name).c_str(), F_OK) == 0;
  }
  if (scope == CheckpointScope::kAllOrManifestOnly && !any_here) {
    // A folder per host: the servers reported their files durable on their
    // own hosts; this folder gets the manifest alone.
    RETURN_IF_ERROR(env->MakeDirs(ckpt_dir));
  } else {
    scope = CheckpointScope::kAll;
  }
  // A cheap guard against the one ordering bug that matters: a manifest
  // written before a server's file landed.
  for (const auto& f : manifest.files) {
    if (scope != CheckpointScope::kAll) break;
    const std::string path = ckpt_dir + "/" + f.name;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      return FailedPreconditionError(path + ": listed in the manifest but " + ErrnoText(errno));
    }
    if (static_cast<uint64_t>(st.st_size) != f.size) {
      return FailedPreconditionError(path + ": " + std::to_string(st.st_size) +
                                     " bytes on disk, the manifest says " + std::to_string(f.size));
    }
  }
  const std::string text = SerializeManifest(manifest);
  return WriteFileAtomically(
      env, ckpt_dir + "/" + kManifestName,
      {std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size())});
}

Result<Manifest> ReadManifest(const std::string& ckpt_dir) {
  const std::string path = ckpt_dir + "/" + kManifestName;
  Result<std::string> text = ReadFile(path, kMaxManifestBytes);
  if (!text.ok()) {
    const Status& s = text.status();
    if (s.code() == StatusCode::kNotFound) {
      return NotFoundError(path + ": no manifest (checkpoint incomplete or not a checkpoint)");
    }
    if (s.code() == StatusCode::kResourceExhausted || s.code() == StatusCode::kFailedPrecondition) {
      return DataLossError(s.message());
    }
    return s;
  }
  return ParseManifest(*text, path);
}

Status VerifyCheckpoint(const std::string& ckpt_dir) { return Verify(ckpt_dir).status(); }

Status VerifyCheckpointIn(const std::string& ckpt_dir, CheckpointScope scope) {
  return Verify(ckpt_dir, scope).status();
}

Result<std::vector<ShardSnapshot>> LoadServerShards(const std::string& ckpt_dir, int server_rank,
                                                    const ShardReadLimits& limits) {
  ASSIGN_OR_RETURN(Manifest m, ReadManifest(ckpt_dir));
  if (server_rank < 0 || static_cast<uint32_t>(server_rank) >= m.num_servers) {
    return InvalidArgumentError(ckpt_dir + ": server rank " + std::to_string(server_rank) +
                                " outside the checkpoint's " + std::to_string(m.num_servers) +
                                " servers");
  }
  const std::string prefix = "server-" + std::to_string(server_rank) + ".";
  std::vector<ShardSnapshot> out;
  for (const auto& f : m.files) {
    if (f.name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string path = ckpt_dir + "/" + f.name;
    uint32_t crc = 0;
    ASSIGN_OR_RETURN(ShardSnapshot s, ReadShardImpl(path, limits, &crc));
    if (crc != f.crc32c) {
      return Corrupt(
          path, "checksum " + Hex(crc, 8) + " differs from the manifest's " + Hex(f.crc32c, 8));
    }
    if (s.step != m.step) {
      return Corrupt(path, "shard is for step " + std::to_string(s.step) +
                               ", the manifest for step " + std::to_string(m.step));
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::string> FindLatestGoodCheckpoint(const std::string& run_dir, uint64_t config_hash,
                                             const Logger* log, CheckpointScope scope) {
  auto dirs = ListCheckpoints(run_dir);
  if (!dirs.ok()) {
    if (dirs.status().code() == StatusCode::kNotFound) {
      return NotFoundError("no checkpoints under " + CheckpointsDir(run_dir));
    }
    return dirs.status();
  }
  for (const auto& [step, dir] : *dirs) {
    Result<Manifest> m = Verify(dir, scope);
    if (!m.ok()) {
      if (log != nullptr) log->Warn("skipping checkpoint ", dir, ": ", m.status().ToString());
      continue;
    }
    if (m->config_hash != config_hash) {
      if (log != nullptr) {
        log->Warn("skipping checkpoint ", dir, ": written with config hash ",
                  Hex(m->config_hash, 16), ", this job's is ", Hex(config_hash, 16));
      }
      continue;
    }
    return dir;
  }
  return NotFoundError("no good checkpoint among the " + std::to_string(dirs->size()) + " under " +
                       CheckpointsDir(run_dir));
}

Status PruneCheckpoints(const std::string& run_dir, int keep, CheckpointScope scope) {
  if (keep < 1) {
    return InvalidArgumentError("PruneCheckpoints: keep must be >= 1, got " + std::to_string(keep));
  }
  auto dirs = ListCheckpoints(run_dir);
  if (!dirs.ok()) {
    if (dirs.status().code() == StatusCode::kNotFound) return Status::Ok();
    return dirs.status();
  }
  int good = 0;
  for (const auto& [step, dir] : *dirs) {
    bool remove = false;
    if (good >= keep) {
      remove = true;  // older than the keep-th good one: no need to verify
    } else if (Verify(dir, scope).ok()) {
      ++good;
    } else {
      remove = good > 0;  // broken and older than a good one; newer may be in progress
    }
    if (!remove) continue;
    // The manifest goes first, so a prune killed half-way leaves a directory
    // that is plainly incomplete rather than one whose manifest lists ghosts.
    RETURN_IF_ERROR(RemoveTree(dir + "/" + kManifestName));
    RETURN_IF_ERROR(RemoveTree(dir));
  }
  return Status::Ok();
}

}  // namespace distopt
