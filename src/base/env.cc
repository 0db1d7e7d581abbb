#include "base/env.h"

#include <unistd.h>

namespace distopt {

Status WriteFileAtomically(Env* env, const std::string& path,
                           const std::vector<std::span<const uint8_t>>& parts) {
  // The pid keeps two processes sharing a folder apart; O_TRUNC makes a
  // temp file left by a killed process of a reused pid ours to overwrite.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  Status s = [&]() -> Status {
    ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> f, env->NewWritableFile(tmp));
    for (const auto& part : parts) RETURN_IF_ERROR(f->Append(part));
    RETURN_IF_ERROR(f->Sync());
    RETURN_IF_ERROR(f->Close());
    return env->RenameFile(tmp, path);
  }();
  if (!s.ok()) {
    env->RemoveFile(tmp).IgnoreError();
    return s.WithContext("writing " + path);
  }
  // Without this the rename can be lost on power failure even though the
  // file's data was synced; then an older manifest could point at nothing.
  const size_t slash = path.find_last_of('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  return env->SyncDir(dir).WithContext("writing " + path);
}

// ---- FaultyEnv ----

class FaultyEnv::File : public WritableFile {
 public:
  File(FaultyEnv* env, std::unique_ptr<WritableFile> base, std::string path)
      : env_(env), base_(std::move(base)), path_(std::move(path)) {}
  Status Append(std::span<const uint8_t> data) override {
    const uint64_t n = ++env_->appends_;
    if (n == env_->plan_.fail_append) {
      ++env_->faults_;
      return UnavailableError(path_ + ": write failed: injected fault (append " +
                              std::to_string(n) + ")");
    }
    if (n == env_->plan_.short_append) {
      ++env_->faults_;
      return base_->Append(data.first(data.size() / 2));  // and says nothing
    }
    return base_->Append(data);
  }
  Status Sync() override {
    if (env_->Hit(env_->syncs_, env_->plan_.fail_sync)) {
      return UnavailableError(path_ + ": fsync failed: injected fault");
    }
    return base_->Sync();
  }
  Status Close() override { return base_->Close(); }

 private:
  FaultyEnv* const env_;
  std::unique_ptr<WritableFile> base_;
  const std::string path_;
};

bool FaultyEnv::Hit(std::atomic<uint64_t>& counter, uint64_t at) {
  const uint64_t n = ++counter;
  if (n != at) return false;
  ++faults_;
  return true;
}

void FaultyEnv::SetTime(SteadyTime t) {
  now_ns_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
  manual_time_.store(true);
}

SteadyTime FaultyEnv::Now() const {
  if (!manual_time_.load()) return base_->Now();
  return SteadyTime(std::chrono::duration_cast<Duration>(std::chrono::nanoseconds(now_ns_.load())));
}

Result<std::unique_ptr<WritableFile>> FaultyEnv::NewWritableFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> f, base_->NewWritableFile(path));
  return std::unique_ptr<WritableFile>(new File(this, std::move(f), path));
}

Status FaultyEnv::RenameFile(const std::string& from, const std::string& to) {
  if (Hit(renames_, plan_.fail_rename)) {
    return UnavailableError(from + ": rename to " + to + " failed: injected fault");
  }
  return base_->RenameFile(from, to);
}

}  // namespace distopt
