// Reading checkpoint files (checkpoint_format.h): opening a regular file,
// exact reads with a running CRC32C, the manifest's checksum of a whole file,
// and the text helpers every checkpoint message uses. Stateless; thread-safe.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <system_error>
#include <vector>

#include "base/crc32c.h"
#include "kv/checkpoint_format.h"

namespace distopt::checkpoint_internal {

std::string ErrnoText(int err) { return std::generic_category().message(err); }

Status Corrupt(const std::string& path, const std::string& what) {
  return DataLossError(path + ": " + what);
}

std::string Hex(uint64_t v, int width) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%0*" PRIx64, width, v);
  return buf;
}

std::string Quote(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 60)) {
    out += (c >= 0x20 && c < 0x7f) ? std::string(1, c) : "\\x" + Hex(static_cast<uint8_t>(c), 2);
  }
  return out + (s.size() > 60 ? "...'" : "'");
}

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

uint32_t MixTrailer(uint32_t body_crc, uint32_t trailer) {
  return body_crc ^ ((trailer << 7) | (trailer >> 25));
}

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

}  // namespace distopt::checkpoint_internal
