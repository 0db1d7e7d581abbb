// Checkpoint directories (checkpoint.h): their names under a run folder,
// verifying one against its manifest under a scope, loading a server's
// shards from a verified one, finding the newest good one, and pruning.
// The file formats are in checkpoint_shard_file.cc and
// checkpoint_manifest.cc. Free functions over the filesystem; thread-safe
// for distinct directories.
#include "kv/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <set>
#include <string_view>
#include <system_error>
#include <utility>

#include "base/file_util.h"
#include "kv/checkpoint_format.h"

namespace distopt {
namespace {

using checkpoint_internal::Corrupt;
using checkpoint_internal::Digest;
using checkpoint_internal::Hex;

constexpr char kStepPrefix[] = "step-";

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

Result<ManifestEntry> DescribeFile(const std::string& ckpt_dir, const std::string& name) {
  if (!checkpoint_internal::ValidFileName(name)) {
    return InvalidArgumentError("bad checkpoint file name " + checkpoint_internal::Quote(name));
  }
  ASSIGN_OR_RETURN(ManifestEntry e, Digest(ckpt_dir + "/" + name));
  e.name = name;
  return e;
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
    ASSIGN_OR_RETURN(ShardSnapshot s, checkpoint_internal::ReadShardFile(path, limits, &crc));
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
