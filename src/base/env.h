// Env: what distopt asks of the operating system for the state it keeps on
// disk and for time, behind one interface (the shape of leveldb's Env), so
// a test can make the Nth write or fsync fail, cut a write short, or read a
// clock it controls, without forking a process to kill. Code that writes
// durable files (checkpoints, manifests, models) takes an Env* in its
// options; Env::Default() is the POSIX one: stateless, thread-safe and
// never destroyed. A FaultyEnv wraps another Env and injects faults.
//
//   Env* env = options.env;                       // Env::Default() unless a test set one
//   RETURN_IF_ERROR(WriteFileAtomically(env, path, {bytes}));
//   const SteadyTime now = env->Now();
#ifndef DISTOPT_BASE_ENV_H_
#define DISTOPT_BASE_ENV_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/time.h"
#include "distopt/status.h"

namespace distopt {

// A file being written, from its start. Not thread-safe.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::span<const uint8_t> data) = 0;
  // Makes what was appended durable (fsync).
  virtual Status Sync() = 0;
  // Reports deferred write errors (NFS, quota); the destructor closes silently.
  virtual Status Close() = 0;
};

class Env {
 public:
  virtual ~Env() = default;
  // The process's POSIX Env (stateless).
  static Env* Default();

  // The monotonic clock that deadlines and timeouts read.
  virtual SteadyTime Now() const = 0;

  // Creates or truncates `path` for writing.
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // rename(2): atomic replacement of `to`.
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  // Makes a directory's entries (a rename into it) durable.
  virtual Status SyncDir(const std::string& dir) = 0;
  // A missing file is not an error.
  virtual Status RemoveFile(const std::string& path) = 0;
  // See base/file_util.h for these.
  virtual Result<std::string> ReadFile(const std::string& path, size_t max_bytes) = 0;
  virtual Status MakeDirs(const std::string& path) = 0;
  virtual Status RemoveTree(const std::string& path) = 0;
  virtual Result<std::vector<std::string>> ListDir(const std::string& path) = 0;
};

// Replaces `path` with the concatenation of `parts` so that after a crash at
// any point it holds its old contents (or nothing) or all of the new ones:
// writes a temp file beside it, syncs it, renames it over `path` and syncs
// the directory. On failure the temp file is removed.
Status WriteFileAtomically(Env* env, const std::string& path,
                           const std::vector<std::span<const uint8_t>>& parts);

// Faults a FaultyEnv injects; calls are counted from 1 over every file it
// opened, and 0 means never.
struct FaultPlan {
  uint64_t fail_append = 0;   // the Nth Append fails (nothing written)
  uint64_t short_append = 0;  // the Nth Append writes half its bytes and reports success
  uint64_t fail_sync = 0;     // the Nth Sync fails
  uint64_t fail_rename = 0;   // the Nth RenameFile fails
};

// An Env that passes everything to `base` except the faults of its plan,
// and, with SetTime, reads a manual clock. Thread-safe.
class FaultyEnv : public Env {
 public:
  explicit FaultyEnv(Env* base, FaultPlan plan = {}) : base_(base), plan_(plan) {}

  // From now on Now() returns `t` (advance it with SetTime again).
  void SetTime(SteadyTime t);
  uint64_t appends() const { return appends_.load(); }
  uint64_t syncs() const { return syncs_.load(); }
  uint64_t faults() const { return faults_.load(); }

  SteadyTime Now() const override;
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  Status RenameFile(const std::string& from, const std::string& to) override;
  Status SyncDir(const std::string& dir) override { return base_->SyncDir(dir); }
  Status RemoveFile(const std::string& path) override { return base_->RemoveFile(path); }
  Result<std::string> ReadFile(const std::string& path, size_t max_bytes) override {
    return base_->ReadFile(path, max_bytes);
  }
  Status MakeDirs(const std::string& path) override { return base_->MakeDirs(path); }
  Status RemoveTree(const std::string& path) override { return base_->RemoveTree(path); }
  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    return base_->ListDir(path);
  }

 private:
  class File;
  bool Hit(std::atomic<uint64_t>& counter, uint64_t at);

  Env* const base_;
  const FaultPlan plan_;
  std::atomic<uint64_t> appends_{0}, syncs_{0}, renames_{0}, faults_{0};
  std::atomic<bool> manual_time_{false};
  std::atomic<int64_t> now_ns_{0};
};

}  // namespace distopt

#endif  // DISTOPT_BASE_ENV_H_
