// Small POSIX file helpers for state that must survive crashes: an atomic
// whole-file write (temp file, fsync, rename, fsync of the directory), bounded
// reads, mkdir -p, rm -r and directory listing. Errors name the path and the
// errno text. Thread-safe (no shared state), except that two threads of one
// process must not WriteFileAtomically the same path at once (same temp name).
#ifndef DISTOPT_BASE_FILE_UTIL_H_
#define DISTOPT_BASE_FILE_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "distopt/status.h"

namespace distopt {

// Replaces `path` with the concatenation of `parts` so that after a crash at
// any point the path holds either its old contents (or nothing) or all of the
// new ones: writes `path.tmp.<pid>`, fsyncs it, renames it over `path` and
// fsyncs the directory so the rename itself is durable. On failure the temp
// file is removed. The parts are written straight from the caller's memory.
// Owns a file descriptor: closes it on destruction unless Close() did.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd();
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // close() reports deferred write errors (NFS, quota), so its result counts.
  int Close();

 private:
  int fd_;
};

Status WriteFileAtomically(const std::string& path,
                           const std::vector<std::span<const uint8_t>>& parts);

// The whole file. NotFound when it does not exist; ResourceExhausted when it
// holds more than `max_bytes` (nothing that large is allocated).
Result<std::string> ReadFile(const std::string& path, size_t max_bytes);

// mkdir -p. Each directory it creates is made durable (its parent is
// fsynced), so a file later written inside it cannot vanish with it.
Status MakeDirs(const std::string& path);

// rm -r. A missing path is not an error. Does not follow symlinks.
Status RemoveTree(const std::string& path);

// The names in a directory (no "." or ".."), sorted. NotFound if missing.
Result<std::vector<std::string>> ListDir(const std::string& path);

// "dir" of "dir/name" ("." for a bare name, "/" for "/name").
std::string DirName(const std::string& path);

}  // namespace distopt

#endif  // DISTOPT_BASE_FILE_UTIL_H_
