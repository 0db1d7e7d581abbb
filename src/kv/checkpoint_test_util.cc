#include "kv/checkpoint_test_util.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <system_error>

#include "base/file_util.h"

namespace distopt::checkpoint_testing {
namespace {

namespace fs = std::filesystem;

extern "C" void OnHardLimit(int) {
  const char msg[] = "\n*** checkpoint_test: hard time limit exceeded ***\n";
  ssize_t ignored = ::write(2, msg, sizeof(msg) - 1);
  (void)ignored;
  ::_exit(124);
}

}  // namespace

void CheckpointTest::SetUp() {
  ::signal(SIGALRM, OnHardLimit);
  ::alarm(HardLimitSeconds());
  std::string tmpl = fs::temp_directory_path().string() + "/distopt_ckpt_XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  run_dir_ = tmpl;
}

void CheckpointTest::TearDown() {
  ::alarm(0);
  std::error_code ec;
  fs::remove_all(run_dir_, ec);
}

ShardSnapshot MakeDense(int64_t step, uint32_t table, uint64_t begin, size_t size, int slots,
                        uint64_t seed) {
  std::mt19937_64 rng(seed * 1000003 + static_cast<uint64_t>(step) * 7919 + table);
  std::normal_distribution<float> normal;
  ShardSnapshot s;
  s.step = step;
  s.table = table;
  s.begin = begin;
  s.slots = slots;
  s.steps = step * 10 + static_cast<int64_t>(seed);
  s.params.resize(size);
  s.state.resize(size * static_cast<size_t>(slots));
  for (auto& v : s.params) v = normal(rng);
  for (auto& v : s.state) v = std::abs(normal(rng));
  return s;
}

ShardSnapshot MakeSparse(int64_t step, uint32_t table, size_t rows, uint32_t dim, int slots,
                         uint64_t seed) {
  std::mt19937_64 rng(seed * 1000003 + static_cast<uint64_t>(step) * 7919 + table);
  std::normal_distribution<float> normal;
  ShardSnapshot s;
  s.step = step;
  s.table = table;
  s.sparse = true;
  s.dim = dim;
  s.slots = slots;
  for (size_t r = 0; r < rows; ++r) {
    s.keys.push_back(rng());
    s.row_steps.push_back(static_cast<int64_t>(rng() % 1000));
  }
  s.params.resize(rows * dim);
  s.state.resize(rows * dim * static_cast<size_t>(slots));
  for (auto& v : s.params) v = normal(rng);
  for (auto& v : s.state) v = normal(rng);
  return s;
}

void ExpectSameShard(const ShardSnapshot& got, const ShardSnapshot& want) {
  EXPECT_EQ(got.step, want.step);
  EXPECT_EQ(got.table, want.table);
  EXPECT_EQ(got.sparse, want.sparse);
  EXPECT_EQ(got.begin, want.begin);
  EXPECT_EQ(got.dim, want.dim);
  EXPECT_EQ(got.slots, want.slots);
  EXPECT_EQ(got.steps, want.steps);
  EXPECT_TRUE(SameBits(got.params, want.params)) << "params differ";
  EXPECT_TRUE(SameBits(got.state, want.state)) << "state differs";
  EXPECT_TRUE(SameBits(got.keys, want.keys)) << "keys differ";
  EXPECT_TRUE(SameBits(got.row_steps, want.row_steps)) << "row steps differ";
}

// `servers` servers, each holding a slice of dense table 0 and a part of
// sparse table 1. Sizes are per server.
CheckpointData MakeCheckpoint(int64_t step, int servers, size_t dense_per_server,
                              size_t rows_per_server) {
  CheckpointData data(static_cast<size_t>(servers));
  for (int r = 0; r < servers; ++r) {
    const uint64_t seed = static_cast<uint64_t>(r) + 1;
    data[r].push_back(MakeDense(step, 0, r * dense_per_server, dense_per_server, 2, seed));
    data[r].push_back(MakeSparse(step, 1, rows_per_server, 4, 1, seed));
  }
  return data;
}

Status WriteCheckpoint(const std::string& run_dir, int64_t step, const CheckpointData& data,
                       uint64_t hash) {
  const std::string dir = CheckpointDir(run_dir, step);
  Manifest m{step, hash, static_cast<uint32_t>(data.size()), {}};
  for (size_t r = 0; r < data.size(); ++r) {
    for (const auto& shard : data[r]) {
      ManifestEntry e;
      RETURN_IF_ERROR(WriteShard(dir, static_cast<int>(r), shard, &e));
      m.files.push_back(e);
    }
  }
  return WriteManifest(dir, m);
}

void ExpectCheckpointHolds(const std::string& dir, const CheckpointData& want) {
  for (size_t r = 0; r < want.size(); ++r) {
    Result<std::vector<ShardSnapshot>> got = LoadServerShards(dir, static_cast<int>(r));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ASSERT_EQ(got->size(), want[r].size());
    for (size_t i = 0; i < want[r].size(); ++i) ExpectSameShard((*got)[i], want[r][i]);
  }
}

std::string ReadAll(const std::string& path) {
  Result<std::string> r = ReadFile(path, 1 << 30);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : "";
}

void Poke(const std::string& path, uint64_t offset, const void* bytes, size_t n) {
  int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::pwrite(fd, bytes, n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
  ::close(fd);
}

void FlipBit(const std::string& path, uint64_t offset, int bit) {
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << path;
  uint8_t b = 0;
  ASSERT_EQ(::pread(fd, &b, 1, static_cast<off_t>(offset)), 1) << path << " @" << offset;
  b = static_cast<uint8_t>(b ^ (1u << bit));
  ASSERT_EQ(::pwrite(fd, &b, 1, static_cast<off_t>(offset)), 1);
  ::close(fd);
}

void Overwrite(const std::string& path, std::string_view bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  ASSERT_EQ(std::fclose(f), 0);
}

}  // namespace distopt::checkpoint_testing
