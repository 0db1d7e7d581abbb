#include "base/file_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <system_error>

#include "base/env.h"

namespace distopt {

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

int Fd::Close() {
  const int rc = ::close(fd_);
  fd_ = -1;
  return rc;
}

namespace {

std::string ErrnoText(int err) { return std::generic_category().message(err); }

// Status for a failed system call on `path`; ENOENT becomes NotFound so
// callers can tell "missing" from "broken".
Status SysError(const std::string& what, const std::string& path, int err) {
  std::string m = path + ": " + what + " failed: " + ErrnoText(err);
  if (err == ENOENT) return NotFoundError(std::move(m));
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) return ResourceExhaustedError(std::move(m));
  return UnavailableError(std::move(m));
}

Status WriteAll(int fd, const uint8_t* p, size_t n, const std::string& path) {
  // Linux moves at most ~2 GiB per write(); loop over short writes and EINTR.
  constexpr size_t kMaxChunk = size_t{1} << 30;
  while (n > 0) {
    ssize_t w = ::write(fd, p, std::min(n, kMaxChunk));
    if (w < 0) {
      if (errno == EINTR) continue;
      return SysError("write", path, errno);
    }
    if (w == 0) return UnavailableError(path + ": write made no progress");
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return SysError("open directory", dir, errno);
  Fd closer(fd);
  if (::fsync(fd) != 0) return SysError("fsync directory", dir, errno);
  return Status::Ok();
}

// The POSIX file a PosixEnv writes.
class PosixWritableFile : public WritableFile {
 public:
  PosixWritableFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  Status Append(std::span<const uint8_t> data) override {
    return WriteAll(fd_.get(), data.data(), data.size(), path_);
  }
  Status Sync() override {
    if (::fsync(fd_.get()) != 0) return SysError("fsync", path_, errno);
    return Status::Ok();
  }
  Status Close() override {
    if (fd_.get() >= 0 && fd_.Close() != 0) return SysError("close", path_, errno);
    return Status::Ok();
  }

 private:
  Fd fd_;
  const std::string path_;
};

class PosixEnv : public Env {
 public:
  SteadyTime Now() const override { return std::chrono::steady_clock::now(); }
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return SysError("create", path, errno);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(fd, path));
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return SysError("rename to " + to, from, errno);
    return Status::Ok();
  }
  Status SyncDir(const std::string& dir) override { return FsyncDir(dir); }
  Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return SysError("unlink", path, errno);
    return Status::Ok();
  }
  Result<std::string> ReadFile(const std::string& path, size_t max_bytes) override {
    return distopt::ReadFile(path, max_bytes);
  }
  Status MakeDirs(const std::string& path) override { return distopt::MakeDirs(path); }
  Status RemoveTree(const std::string& path) override { return distopt::RemoveTree(path); }
  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    return distopt::ListDir(path);
  }
};

}  // namespace

std::string DirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Env* Env::Default() {
  static Env* const env = new PosixEnv();  // stateless; never destroyed (threads may outlive exit)
  return env;
}

Status WriteFileAtomically(const std::string& path,
                           const std::vector<std::span<const uint8_t>>& parts) {
  return WriteFileAtomically(Env::Default(), path, parts);
}

Result<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return SysError("open", path, errno);
  Fd file(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return SysError("stat", path, errno);
  if (!S_ISREG(st.st_mode)) return FailedPreconditionError(path + ": not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return ResourceExhaustedError(path + ": " + std::to_string(st.st_size) +
                                  " bytes exceeds the limit of " + std::to_string(max_bytes));
  }
  // The size is a hint only (the file may grow meanwhile): read to EOF, but
  // never past the limit.
  // One byte past the limit is enough to tell "too big".
  const size_t cap = max_bytes == SIZE_MAX ? max_bytes : max_bytes + 1;
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t used = 0;
  for (;;) {
    if (used == out.size()) {
      if (out.size() >= cap) break;
      out.resize(std::min(cap, std::max<size_t>(out.size() * 2, 4096)));
    }
    ssize_t r = ::read(fd, out.data() + used, out.size() - used);
    if (r < 0) {
      if (errno == EINTR) continue;
      return SysError("read", path, errno);
    }
    if (r == 0) break;
    used += static_cast<size_t>(r);
  }
  if (used > max_bytes) {
    return ResourceExhaustedError(path + ": more than the limit of " + std::to_string(max_bytes) +
                                  " bytes");
  }
  out.resize(used);
  return out;
}

Status MakeDirs(const std::string& path) {
  if (path.empty()) return InvalidArgumentError("MakeDirs: empty path");
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return Status::Ok();
    return FailedPreconditionError(path + ": exists and is not a directory");
  }
  const std::string parent = DirName(path);
  if (parent != path) RETURN_IF_ERROR(MakeDirs(parent));
  if (::mkdir(path.c_str(), 0755) != 0) {
    if (errno == EEXIST && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      return Status::Ok();  // made concurrently by someone else
    }
    return SysError("mkdir", path, errno);
  }
  return FsyncDir(parent);
}

Status RemoveTree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return SysError("stat", path, errno);
  }
  if (S_ISDIR(st.st_mode)) {
    ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(path));
    for (const auto& name : names) {
      std::string child = path;
      child += '/';
      child += name;
      RETURN_IF_ERROR(RemoveTree(child));
    }
    if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return SysError("rmdir", path, errno);
    return Status::Ok();
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return SysError("unlink", path, errno);
  return Status::Ok();
}

Result<std::vector<std::string>> ListDir(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return SysError("open directory", path, errno);
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    // readdir on a DIR* this call owns is safe; readdir_r is the deprecated one.
    const struct dirent* e = ::readdir(dir);  // NOLINT(concurrency-mt-unsafe)
    if (e == nullptr) break;
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  const int err = errno;
  ::closedir(dir);
  if (err != 0) return SysError("read directory", path, err);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace distopt
