#include "data/file_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>

namespace distopt {
namespace {

// std::strerror may share a static buffer between threads; this does not.
std::string ErrnoText(int err) { return std::generic_category().message(err); }

// Closes a descriptor on every exit path unless released to gzdopen.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

Status TooLarge(const std::string& path, size_t max_bytes, const char* what) {
  return InvalidArgumentError(path + ": expected at most " + std::to_string(max_bytes) + " " +
                              what + " bytes, found more");
}

Result<std::string> ReadPlain(int fd, const std::string& path, size_t file_size, size_t max_bytes) {
  if (file_size > max_bytes) {
    return InvalidArgumentError(path + ": expected at most " + std::to_string(max_bytes) +
                                " bytes, found " + std::to_string(file_size));
  }
  // One spare byte so that a file that grew since fstat is noticed, not cut.
  std::string buf(file_size + 1, '\0');
  size_t used = 0;
  while (used < buf.size()) {
    ssize_t n = ::pread(fd, buf.data() + used, buf.size() - used, static_cast<off_t>(used));
    if (n < 0) {
      if (errno == EINTR) continue;
      return DataLossError(path + ": read failed: " + ErrnoText(errno));
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  if (used > max_bytes) return TooLarge(path, max_bytes, "file");
  buf.resize(used);
  return buf;
}

Result<std::string> ReadGzip(int fd, const std::string& path, size_t file_size, size_t max_bytes) {
  // The gzip trailer stores the uncompressed size mod 2^32 of the last member:
  // good enough as a first guess for the buffer, but it is outside input, so
  // it is bounded by a generous compression ratio as well as by the cap.
  size_t hint = size_t{1} << 20;
  if (file_size >= 18) {
    unsigned char tail[4];
    if (::pread(fd, tail, 4, static_cast<off_t>(file_size - 4)) == 4) {
      size_t isize = static_cast<size_t>(tail[0]) | static_cast<size_t>(tail[1]) << 8 |
                     static_cast<size_t>(tail[2]) << 16 | static_cast<size_t>(tail[3]) << 24;
      hint = std::min(isize, std::max(hint, file_size * 64));
    }
  }
  if (::lseek(fd, 0, SEEK_SET) != 0) {
    return DataLossError(path + ": seek failed: " + ErrnoText(errno));
  }
  gzFile gz = ::gzdopen(fd, "rb");
  if (gz == nullptr) return InternalError(path + ": gzdopen failed");
  struct GzCloser {
    gzFile f;
    ~GzCloser() { ::gzclose(f); }
  } closer{gz};
  ::gzbuffer(gz, 1 << 18);

  std::string buf(std::min(hint, max_bytes) + 1, '\0');
  size_t used = 0;
  while (true) {
    if (used == buf.size()) {
      if (used > max_bytes) return TooLarge(path, max_bytes, "decompressed");
      buf.resize(std::min(std::max(buf.size() * 2, size_t{1} << 20), max_bytes + 1));
    }
    unsigned want = static_cast<unsigned>(std::min<size_t>(buf.size() - used, 1u << 30));
    int n = ::gzread(gz, buf.data() + used, want);
    if (n < 0) {
      int errnum = 0;
      const char* msg = ::gzerror(gz, &errnum);
      return DataLossError(
          path + ": expected a valid gzip stream, found: " + (msg ? msg : "unknown zlib error"));
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  // gzread returns 0 at a cut-off stream without an error; gzerror tells.
  int errnum = Z_OK;
  const char* msg = ::gzerror(gz, &errnum);
  if (errnum != Z_OK && errnum != Z_STREAM_END) {
    return DataLossError(
        path + ": expected a complete gzip stream, found: " + (msg ? msg : "unknown zlib error"));
  }
  if (used > max_bytes) return TooLarge(path, max_bytes, "decompressed");
  buf.resize(used);
  return buf;
}

}  // namespace

bool IsGzip(std::string_view bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
         static_cast<unsigned char>(bytes[1]) == 0x8b;
}

Result<std::string> ReadFileContents(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return NotFoundError(path + ": no such file");
    return InvalidArgumentError(path + ": cannot open: " + ErrnoText(err));
  }
  FdCloser closer(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return DataLossError(path + ": stat failed: " + ErrnoText(errno));
  if (!S_ISREG(st.st_mode)) return InvalidArgumentError(path + ": expected a regular file");
  size_t file_size = static_cast<size_t>(st.st_size);

  char magic[2] = {0, 0};
  ssize_t got = ::pread(fd, magic, 2, 0);
  if (got == 2 && IsGzip(std::string_view(magic, 2))) {
    return ReadGzip(closer.Release() /* owned by gz from here */, path, file_size, max_bytes);
  }
  return ReadPlain(fd, path, file_size, max_bytes);
}

namespace data_internal {

std::string Quote(std::string_view token) {
  constexpr size_t kMax = 48;
  std::string out;
  out.reserve(std::min(token.size(), kMax) + 8);
  size_t i = 0;
  for (; i < token.size() && out.size() < kMax; ++i) {
    auto c = static_cast<unsigned char>(token[i]);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (i < token.size()) out += "...";
  return out;
}

bool ParseFloat(std::string_view s, float* out) {
  if (!s.empty() && s[0] == '+') {
    s.remove_prefix(1);
    if (!s.empty() && (s[0] == '+' || s[0] == '-')) return false;
  }
  if (s.empty()) return false;
  // Parsed as double and then narrowed so that a tiny value such as 1e-50
  // becomes 0 instead of a range error; anything beyond float's range fails.
  double d = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec != std::errc() || ptr != s.data() + s.size()) return false;
  if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max()) return false;
  *out = static_cast<float>(d);
  return true;
}

bool ParseUint(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

size_t CountByte(std::string_view text, char c) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), c));
}

}  // namespace data_internal
}  // namespace distopt
