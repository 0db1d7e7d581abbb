// MANIFEST files (format in checkpoint.h): validating a manifest, its text
// (written with a CRC line last, parsed only after that line checks), and
// writing and reading it in a checkpoint directory. Stateless; thread-safe.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <set>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "base/crc32c.h"
#include "base/file_util.h"
#include "kv/checkpoint.h"
#include "kv/checkpoint_format.h"

namespace distopt {
namespace checkpoint_internal {
namespace {

constexpr char kManifestMagic[] = "DOCKPT-MANIFEST";
constexpr size_t kMaxManifestBytes = size_t{64} << 20;
constexpr uint64_t kMaxManifestFiles = uint64_t{1} << 20;
constexpr size_t kManifestTail = 16;  // "crc32c " + 8 hex + "\n"

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

// The lines of a manifest's body, read in order; an error names the line and
// what was expected there.
class ManifestLines {
 public:
  ManifestLines(std::string_view body, const std::string& path) : path_(path) {
    for (size_t start = 0; start < body.size();) {
      size_t nl = body.find('\n', start);
      lines_.push_back(body.substr(start, nl - start));
      start = nl + 1;
    }
  }

  size_t left() const { return lines_.size() - at_; }

  Status Expected(const std::string& want) const {
    std::string found = at_ < lines_.size() ? Quote(lines_[at_]) : "end of manifest";
    return Corrupt(path_,
                   "line " + std::to_string(at_ + 1) + ": expected " + want + ", found " + found);
  }

  // "<key> <canonical decimal, at most max>".
  Status Number(std::string_view key, uint64_t max, uint64_t* out) {
    if (at_ >= lines_.size()) return Expected("'" + std::string(key) + " <number>'");
    auto f = Split(lines_[at_]);
    if (f.size() != 2 || f[0] != key || !ParseDecimal(f[1], out) || *out > max) {
      return Expected("'" + std::string(key) + " <number up to " + std::to_string(max) + ">'");
    }
    ++at_;
    return Status::Ok();
  }

  // "<key> <exactly `digits` lowercase hex digits>".
  Status HexNumber(std::string_view key, size_t digits, uint64_t* out) {
    auto f = at_ < lines_.size() ? Split(lines_[at_]) : std::vector<std::string_view>{};
    if (f.size() != 2 || f[0] != key || !ParseHex(f[1], digits, out)) {
      return Expected("'" + std::string(key) + " <" + std::to_string(digits) +
                      " lowercase hex digits>'");
    }
    ++at_;
    return Status::Ok();
  }

  // "file <size> <crc32c, 8 lowercase hex> <name>".
  Result<ManifestEntry> File() {
    auto f = Split(lines_[at_]);
    ManifestEntry e;
    uint64_t crc = 0;
    if (f.size() != 4 || f[0] != "file" || !ParseDecimal(f[1], &e.size) ||
        !ParseHex(f[2], 8, &crc) || !ValidFileName(f[3])) {
      return Expected("'file <size> <8 hex crc32c> <name>'");
    }
    e.crc32c = static_cast<uint32_t>(crc);
    e.name = std::string(f[3]);
    ++at_;
    return e;
  }

 private:
  const std::string& path_;
  std::vector<std::string_view> lines_;
  size_t at_ = 0;
};

// The manifest text without its last line, once that line is a CRC32C
// matching the rest: only bytes the CRC vouches for are interpreted.
Result<std::string_view> SealedBody(std::string_view text, const std::string& path) {
  if (text.size() < kManifestTail + 1) {
    return Corrupt(path, "truncated: " + std::to_string(text.size()) + " bytes");
  }
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
  return body;
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

}  // namespace

bool ValidFileName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name[0] == '.' || name == kManifestName) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

Result<Manifest> ParseManifest(std::string_view text, const std::string& path) {
  ASSIGN_OR_RETURN(const std::string_view body, SealedBody(text, path));
  ManifestLines lines(body, path);
  uint64_t version = 0, step = 0, servers = 0, count = 0, hash = 0;
  RETURN_IF_ERROR(lines.Number(kManifestMagic, UINT32_MAX, &version));
  if (version != kManifestFormatVersion) {
    return Corrupt(path, "unsupported manifest format version " + std::to_string(version) +
                             " (this build reads " + std::to_string(kManifestFormatVersion) + ")");
  }
  RETURN_IF_ERROR(lines.Number("step", INT64_MAX, &step));
  RETURN_IF_ERROR(lines.HexNumber("config_hash", 16, &hash));
  RETURN_IF_ERROR(lines.Number("num_servers", UINT32_MAX, &servers));
  if (servers == 0) return Corrupt(path, "num_servers is 0");
  RETURN_IF_ERROR(lines.Number("files", kMaxManifestFiles, &count));
  if (count != lines.left()) {
    return Corrupt(path, "manifest says " + std::to_string(count) + " files but lists " +
                             std::to_string(lines.left()));
  }
  Manifest m;
  m.step = static_cast<int64_t>(step);
  m.config_hash = hash;
  m.num_servers = static_cast<uint32_t>(servers);
  m.files.reserve(count);  // bounded by the lines actually present
  while (lines.left() > 0) {
    ASSIGN_OR_RETURN(ManifestEntry e, lines.File());
    m.files.push_back(std::move(e));
  }
  Status valid = ValidateManifest(m);
  if (!valid.ok()) return Corrupt(path, valid.message());
  return m;
}

}  // namespace checkpoint_internal

using checkpoint_internal::ErrnoText;

Status WriteManifest(const std::string& ckpt_dir, const Manifest& manifest, CheckpointScope scope,
                     Env* env) {
  RETURN_IF_ERROR(checkpoint_internal::ValidateManifest(manifest));
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
  const std::string text = checkpoint_internal::SerializeManifest(manifest);
  return WriteFileAtomically(
      env, ckpt_dir + "/" + kManifestName,
      {std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size())});
}

Result<Manifest> ReadManifest(const std::string& ckpt_dir) {
  using checkpoint_internal::kMaxManifestBytes;
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
  return checkpoint_internal::ParseManifest(*text, path);
}

}  // namespace distopt
