// Damaged checkpoint files are refused, never loaded: every single bit
// flipped, truncation at every length, counts that would allocate huge
// buffers (caught before allocating), bad magic, version and kind.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "base/crc32c.h"
#include "kv/checkpoint.h"
#include "kv/checkpoint_test_util.h"

// Allocation probe: the test binary replaces operator new so a test can ask
// "what was the largest single allocation while this ran?". Test-only global.
namespace {
std::atomic<bool> g_track_allocs{false};
std::atomic<size_t> g_largest_alloc{0};
}  // namespace

// noinline: keeps GCC from pairing the inlined free() with this new and
// warning about a mismatch (they match: both are malloc-based).
__attribute__((noinline)) void* operator new(size_t n) {
  if (g_track_allocs.load(std::memory_order_relaxed)) {
    size_t prev = g_largest_alloc.load(std::memory_order_relaxed);
    while (n > prev && !g_largest_alloc.compare_exchange_weak(prev, n)) {
    }
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void operator delete(void* p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace distopt {
namespace {

using namespace checkpoint_testing;  // NOLINT: the fixture and data of every test here

// ---- corruption ----

TEST_F(CheckpointTest, EverySingleBitFlipInShardsAndManifestIsDetected) {
  CheckpointData good = MakeCheckpoint(1, 1, 6, 2);
  ASSERT_TRUE(WriteCheckpoint(run_dir_, 1, good).ok());
  CheckpointData next = MakeCheckpoint(2, 1, 6, 2);  // tiny: every bit is tried
  ASSERT_TRUE(WriteCheckpoint(run_dir_, 2, next).ok());
  const std::string good_dir = CheckpointDir(run_dir_, 1);
  const std::string dir = CheckpointDir(run_dir_, 2);
  ASSERT_TRUE(VerifyCheckpoint(dir).ok());

  auto memory = std::make_shared<MemorySink>();
  Logger log(memory, "test", LogLevel::kInfo);
  int flips = 0;
  for (const char* name : {"server-0.table-0.shard", "server-0.table-1.shard", "MANIFEST"}) {
    const std::string path = dir + "/" + name;
    const bool is_shard = std::string(name) != "MANIFEST";
    const std::string clean = ReadAll(path);
    ASSERT_GT(clean.size(), 60u);
    for (uint64_t i = 0; i < clean.size(); ++i) {
      for (int bit = 0; bit < 8; ++bit) {
        FlipBit(path, i, bit);
        ++flips;
        Status v = VerifyCheckpoint(dir);
        ASSERT_EQ(v.code(), StatusCode::kDataLoss)
            << name << " byte " << i << " bit " << bit << ": " << v.ToString();
        if (is_shard) {
          Result<ShardSnapshot> r = ReadShard(path);
          ASSERT_EQ(r.status().code(), StatusCode::kDataLoss)
              << name << " byte " << i << " bit " << bit << ": " << r.status().ToString();
          ASSERT_NE(r.status().message().find(path), std::string::npos) << r.status().message();
        }
        Result<std::string> found = FindLatestGoodCheckpoint(run_dir_, kHash, &log);
        ASSERT_TRUE(found.ok()) << found.status().ToString();
        ASSERT_EQ(*found, good_dir) << name << " byte " << i << " bit " << bit;
        FlipBit(path, i, bit);  // restore
      }
    }
    ASSERT_EQ(ReadAll(path), clean);
  }
  EXPECT_GT(flips, 8 * 400);
  EXPECT_TRUE(memory->Contains("skipping checkpoint " + dir));
  ASSERT_TRUE(VerifyCheckpoint(dir).ok());
  ExpectCheckpointHolds(*FindLatestGoodCheckpoint(run_dir_, kHash, nullptr), next);
  ExpectCheckpointHolds(good_dir, good);
}

TEST_F(CheckpointTest, SampledBitFlipsInALargeShardAreDetected) {
  CheckpointData data = MakeCheckpoint(1, 1, 200000, 5000);  // ~3 MB of shards
  ASSERT_TRUE(WriteCheckpoint(run_dir_, 1, data).ok());
  const std::string dir = CheckpointDir(run_dir_, 1);
  std::mt19937_64 rng(99);
  for (const char* name : {"server-0.table-0.shard", "server-0.table-1.shard"}) {
    const std::string path = dir + "/" + name;
    const uint64_t size = ReadAll(path).size();
    std::vector<uint64_t> offsets;
    for (uint64_t i = 0; i < 64; ++i) offsets.push_back(i);         // the whole header
    for (uint64_t i = 1; i <= 8; ++i) offsets.push_back(size - i);  // ... and the tail
    for (int i = 0; i < 300; ++i) offsets.push_back(rng() % size);
    for (uint64_t off : offsets) {
      const int bit = static_cast<int>(rng() % 8);
      FlipBit(path, off, bit);
      Result<ShardSnapshot> r = ReadShard(path);
      ASSERT_EQ(r.status().code(), StatusCode::kDataLoss) << name << " byte " << off;
      ASSERT_EQ(VerifyCheckpoint(dir).code(), StatusCode::kDataLoss) << name << " byte " << off;
      FlipBit(path, off, bit);
    }
  }
  ASSERT_TRUE(VerifyCheckpoint(dir).ok());
}

TEST_F(CheckpointTest, TruncationAtEveryLengthIsDataLoss) {
  const std::string dir = CheckpointDir(run_dir_, 1);
  ManifestEntry e;
  ASSERT_TRUE(WriteShard(dir, 0, MakeSparse(1, 0, 4, 2, 1, 1), &e).ok());
  const std::string path = dir + "/" + e.name;
  const std::string clean = ReadAll(path);
  for (size_t len = 0; len < clean.size(); ++len) {
    Overwrite(path, clean.substr(0, len));
    ASSERT_EQ(ReadShard(path).status().code(), StatusCode::kDataLoss) << "length " << len;
  }
  std::string longer = clean + "x";
  Overwrite(path, longer);
  EXPECT_EQ(ReadShard(path).status().code(), StatusCode::kDataLoss);
}

// Rewrites a header field and, if asked, re-seals the header CRC: a file that
// is damaged in exactly the way a checksum cannot see.
void PatchHeader(const std::string& path, uint64_t offset, const void* value, size_t n,
                 bool fix_crc) {
  Poke(path, offset, value, n);
  if (!fix_crc) return;
  std::string all = ReadAll(path);
  uint32_t crc = Crc32c(all.data(), 56);
  Poke(path, 56, &crc, 4);
}

// The largest single allocation made by `f`.
template <typename F>
size_t LargestAllocation(F f) {
  g_largest_alloc.store(0);
  g_track_allocs.store(true);
  f();
  g_track_allocs.store(false);
  return g_largest_alloc.load();
}

TEST_F(CheckpointTest, HugeCountsAreRejectedBeforeAllocating) {
  const std::string dir = CheckpointDir(run_dir_, 1);
  ManifestEntry se, de;
  ASSERT_TRUE(WriteShard(dir, 0, MakeSparse(1, 1, 100, 4, 1, 1), &se).ok());
  ASSERT_TRUE(WriteShard(dir, 0, MakeDense(1, 0, 0, 100, 1, 1), &de).ok());
  const std::string sparse = dir + "/" + se.name;
  const std::string dense = dir + "/" + de.name;
  const std::string sparse_clean = ReadAll(sparse);
  const std::string dense_clean = ReadAll(dense);
  constexpr size_t kSmall = 1 << 20;  // nothing near the claimed sizes

  auto expect = [&](const std::string& path, const std::string& needle) {
    Result<ShardSnapshot> r(InternalError("unset"));
    size_t largest = LargestAllocation([&] { r = ReadShard(path); });
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
    EXPECT_LT(largest, kSmall) << r.status().message();
  };
  auto restore = [&](const std::string& path, const std::string& clean) { Overwrite(path, clean); };

  // Sparse rows count (offset 36) -> 2^60 with a valid header CRC.
  uint64_t huge = uint64_t{1} << 60;
  PatchHeader(sparse, 36, &huge, 8, /*fix_crc=*/true);
  expect(sparse,
         "sparse rows count 1152921504606846976 of dim 4 with 1 state slots needs more "
         "than 2^64 payload bytes, but the file size leaves");
  // A single flipped high bit (still a valid CRC): the count no longer fits.
  restore(sparse, sparse_clean);
  uint64_t rows = 100 | (uint64_t{1} << 40);
  PatchHeader(sparse, 36, &rows, 8, true);
  expect(sparse, "sparse rows count 1099511627876");
  // The same flip without re-sealing: caught by the header CRC first.
  restore(sparse, sparse_clean);
  PatchHeader(sparse, 36, &rows, 8, false);
  expect(sparse, "header checksum mismatch");
  // Sparse dim (offset 28) beyond the limit; slots (offset 44) beyond the limit.
  restore(sparse, sparse_clean);
  uint32_t dim = 0x80000000u;
  PatchHeader(sparse, 28, &dim, 4, true);
  expect(sparse, "sparse dim 2147483648 is outside [1, 16777216]");
  restore(sparse, sparse_clean);
  uint32_t slots = 0xffffffffu;
  PatchHeader(sparse, 44, &slots, 4, true);
  expect(sparse, "state slot count 4294967295 exceeds the limit of 16");

  // Dense size (offset 36) and the payload byte count (offset 48).
  uint64_t size = (uint64_t{1} << 62) + 100;
  PatchHeader(dense, 36, &size, 8, true);
  expect(dense, "dense size 4611686018427388004");
  restore(dense, dense_clean);
  uint64_t payload = uint64_t{1} << 50;
  PatchHeader(dense, 48, &payload, 8, true);
  expect(dense, "header payload byte count 1125899906842624 does not match the file size");

  // A file larger than the caller's limit is refused before reading it.
  restore(dense, dense_clean);
  ShardReadLimits limits;
  limits.max_file_bytes = 100;
  EXPECT_EQ(ReadShard(dense, limits).status().code(), StatusCode::kResourceExhausted);
  // Control: the clean files read back, so the probes above meant something.
  EXPECT_TRUE(ReadShard(dense).ok());
  restore(sparse, sparse_clean);
  EXPECT_TRUE(ReadShard(sparse).ok());
}

TEST_F(CheckpointTest, BadMagicVersionAndKindAreNamed) {
  const std::string dir = CheckpointDir(run_dir_, 1);
  ManifestEntry e;
  ASSERT_TRUE(WriteShard(dir, 0, MakeDense(1, 0, 0, 10, 1, 1), &e).ok());
  const std::string path = dir + "/" + e.name;
  const std::string clean = ReadAll(path);
  auto restore = [&] { Overwrite(path, clean); };
  PatchHeader(path, 0, "XOCKPT01", 8, true);
  EXPECT_NE(ReadShard(path).status().message().find("bad magic"), std::string::npos);
  restore();
  uint32_t version = 2;
  PatchHeader(path, 8, &version, 4, true);
  EXPECT_NE(ReadShard(path).status().message().find("unsupported shard format version 2"),
            std::string::npos);
  restore();
  uint8_t kind = 7;
  PatchHeader(path, 16, &kind, 1, true);
  EXPECT_NE(ReadShard(path).status().message().find("kind byte 7"), std::string::npos);
  EXPECT_EQ(ReadShard(dir + "/nope.shard").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace distopt
