// Shared by the checkpoint tests (checkpoint_test.cc, checkpoint_corruption_test.cc,
// checkpoint_kill_test.cc, one test binary): a fixture with a scratch run folder
// and a hard time limit, deterministic shard and checkpoint data with exact
// comparisons, and in-place damage to files (not atomic, no fsync: simulating
// a disk, not a writer). Single-threaded test code.
//
//   TEST_F(CheckpointTest, X) {
//     CheckpointData data = MakeCheckpoint(1, 2, 100, 10);
//     ASSERT_TRUE(WriteCheckpoint(run_dir_, 1, data).ok());
//     ExpectCheckpointHolds(CheckpointDir(run_dir_, 1), data);
//   }
#ifndef DISTOPT_KV_CHECKPOINT_TEST_UTIL_H_
#define DISTOPT_KV_CHECKPOINT_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "kv/checkpoint.h"

namespace distopt::checkpoint_testing {

inline constexpr uint64_t kHash = 0x0123456789abcdefull;

// Every test runs under a hard time limit (SIGALRM in this process; forked
// children set their own) on top of ctest's TIMEOUT.
class CheckpointTest : public ::testing::Test {
 protected:
  static constexpr unsigned kHardLimitSeconds = 120;

  void SetUp() override;
  void TearDown() override;
  virtual unsigned HardLimitSeconds() const { return kHardLimitSeconds; }

  std::string run_dir_;
};

// ---- deterministic test data ----

ShardSnapshot MakeDense(int64_t step, uint32_t table, uint64_t begin, size_t size, int slots,
                        uint64_t seed);
ShardSnapshot MakeSparse(int64_t step, uint32_t table, size_t rows, uint32_t dim, int slots,
                         uint64_t seed);

template <typename T>
bool SameBits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

void ExpectSameShard(const ShardSnapshot& got, const ShardSnapshot& want);

// A whole job's checkpoint: for each server rank, its shards.
using CheckpointData = std::vector<std::vector<ShardSnapshot>>;

// `servers` servers, each holding a slice of dense table 0 and a part of
// sparse table 1. Sizes are per server.
CheckpointData MakeCheckpoint(int64_t step, int servers, size_t dense_per_server,
                              size_t rows_per_server);
Status WriteCheckpoint(const std::string& run_dir, int64_t step, const CheckpointData& data,
                       uint64_t hash = kHash);
void ExpectCheckpointHolds(const std::string& dir, const CheckpointData& want);

// ---- files ----

std::string ReadAll(const std::string& path);
// Overwrites bytes in place (not atomically: simulating damage on disk).
void Poke(const std::string& path, uint64_t offset, const void* bytes, size_t n);
// Flips bit `bit` (0-7) of the byte at `offset`, in place.
void FlipBit(const std::string& path, uint64_t offset, int bit);
// Replaces a file's contents in place (no fsync: damage simulation only).
void Overwrite(const std::string& path, std::string_view bytes);

}  // namespace distopt::checkpoint_testing

#endif  // DISTOPT_KV_CHECKPOINT_TEST_UTIL_H_
