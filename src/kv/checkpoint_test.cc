#include "kv/checkpoint.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <new>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/crc32c.h"
#include "base/file_util.h"
#include "base/logging.h"

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

namespace fs = std::filesystem;

constexpr uint64_t kHash = 0x0123456789abcdefull;

extern "C" void OnHardLimit(int) {
  const char msg[] = "\n*** checkpoint_test: hard time limit exceeded ***\n";
  ssize_t ignored = ::write(2, msg, sizeof(msg) - 1);
  (void)ignored;
  ::_exit(124);
}

// Every test runs under a hard time limit (SIGALRM in this process; forked
// children set their own) on top of ctest's TIMEOUT.
class CheckpointTest : public ::testing::Test {
 protected:
  static constexpr unsigned kHardLimitSeconds = 120;

  void SetUp() override {
    ::signal(SIGALRM, OnHardLimit);
    ::alarm(HardLimitSeconds());
    std::string tmpl = fs::temp_directory_path().string() + "/distopt_ckpt_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    run_dir_ = tmpl;
  }
  void TearDown() override {
    ::alarm(0);
    std::error_code ec;
    fs::remove_all(run_dir_, ec);
  }
  virtual unsigned HardLimitSeconds() const { return kHardLimitSeconds; }

  std::string run_dir_;
};

// ---- deterministic test data ----

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

template <typename T>
bool SameBits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
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

// A whole job's checkpoint: for each server rank, its shards.
using CheckpointData = std::vector<std::vector<ShardSnapshot>>;

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
                       uint64_t hash = kHash) {
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

// Overwrites bytes in place (not atomically: simulating damage on disk).
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

// Replaces a file's contents in place (no fsync: damage simulation only).
void Overwrite(const std::string& path, std::string_view bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  ASSERT_EQ(std::fclose(f), 0);
}

// ---- round trips ----

TEST_F(CheckpointTest, DenseShardRoundTripsBitExactly) {
  const std::string dir = CheckpointDir(run_dir_, 7);
  ShardSnapshot s = MakeDense(7, 3, 1000, 257, 2, 1);
  // Values whose bits a careless writer would not preserve.
  s.params[0] = std::numeric_limits<float>::quiet_NaN();
  uint32_t nan_payload = 0x7fc12345;
  std::memcpy(&s.params[1], &nan_payload, 4);
  s.params[2] = -0.0f;
  s.params[3] = std::numeric_limits<float>::infinity();
  s.params[4] = std::numeric_limits<float>::denorm_min();
  s.steps = 123456789012345;
  ManifestEntry e;
  ASSERT_TRUE(WriteShard(dir, 2, s, &e).ok());
  EXPECT_EQ(e.name, "server-2.table-3.shard");

  Result<ShardSnapshot> back = ReadShard(dir + "/" + e.name);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSameShard(*back, s);
  // 60-byte header + params + 2 state slots + update count + CRC.
  EXPECT_EQ(e.size, 60u + 257 * 4 * 3 + 8 + 4);
  Result<ManifestEntry> described = DescribeFile(dir, e.name);
  ASSERT_TRUE(described.ok());
  EXPECT_EQ(described->size, e.size);
  EXPECT_EQ(described->crc32c, e.crc32c);

  ShardSnapshot empty;
  empty.table = 9;
  empty.begin = 5;
  empty.slots = 3;
  ASSERT_TRUE(WriteShard(dir, 0, empty).ok());
  back = ReadShard(dir + "/server-0.table-9.shard");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSameShard(*back, empty);
}

TEST_F(CheckpointTest, SparseShardRoundTripsBitExactly) {
  const std::string dir = CheckpointDir(run_dir_, 11);
  ShardSnapshot s = MakeSparse(11, 1, 500, 3, 2, 4);
  s.keys[0] = 0;
  s.keys[1] = std::numeric_limits<uint64_t>::max();
  s.row_steps[2] = std::numeric_limits<int64_t>::min();
  ManifestEntry e;
  ASSERT_TRUE(WriteShard(dir, 0, s, &e).ok());
  EXPECT_EQ(e.size, 60u + 500 * (8 + 3 * 4 + 3 * 2 * 4 + 8) + 4);
  Result<ShardSnapshot> back = ReadShard(dir + "/" + e.name);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSameShard(*back, s);

  ShardSnapshot empty;
  empty.sparse = true;
  empty.table = 2;
  empty.dim = 16;
  ASSERT_TRUE(WriteShard(dir, 1, empty).ok());
  back = ReadShard(dir + "/server-1.table-2.shard");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSameShard(*back, empty);
}

TEST_F(CheckpointTest, WriteShardRejectsInconsistentSnapshots) {
  const std::string dir = CheckpointDir(run_dir_, 1);
  ShardSnapshot dense = MakeDense(1, 0, 0, 10, 2, 1);
  dense.state.pop_back();
  Status st = WriteShard(dir, 0, dense);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("state floats"), std::string::npos) << st.message();

  ShardSnapshot sparse = MakeSparse(1, 1, 10, 4, 1, 1);
  sparse.row_steps.pop_back();
  EXPECT_EQ(WriteShard(dir, 0, sparse).code(), StatusCode::kInvalidArgument);
  sparse = MakeSparse(1, 1, 10, 4, 1, 1);
  sparse.steps = 5;  // would be silently lost: sparse files keep per-row counts only
  EXPECT_EQ(WriteShard(dir, 0, sparse).code(), StatusCode::kInvalidArgument);
  sparse = MakeSparse(1, 1, 10, 4, 1, 1);
  sparse.params.pop_back();
  EXPECT_EQ(WriteShard(dir, 0, sparse).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteShard(dir, -1, MakeDense(1, 0, 0, 1, 0, 1)).code(), StatusCode::kInvalidArgument);
  // Nothing was written.
  Result<std::vector<std::string>> names = ListDir(dir);
  EXPECT_TRUE(!names.ok() || names->empty());
}

TEST_F(CheckpointTest, ManifestIsCanonicalTextAndRoundTrips) {
  const std::string dir = CheckpointDir(run_dir_, 42);
  ASSERT_TRUE(MakeDirs(dir).ok());
  Overwrite(dir + "/a.shard", "0123456789");
  Manifest m{42, 0xdeadbeefull, 2, {{"a.shard", 10, 0xabcu}}};
  ASSERT_TRUE(WriteManifest(dir, m).ok());

  const std::string body =
      "DOCKPT-MANIFEST 1\n"
      "step 42\n"
      "config_hash 00000000deadbeef\n"
      "num_servers 2\n"
      "files 1\n"
      "file 10 00000abc a.shard\n";
  char crc[16];
  std::snprintf(crc, sizeof(crc), "%08x", Crc32c(body.data(), body.size()));
  EXPECT_EQ(ReadAll(dir + "/MANIFEST"), body + "crc32c " + crc + "\n");

  Result<Manifest> back = ReadManifest(dir);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->step, 42);
  EXPECT_EQ(back->config_hash, 0xdeadbeefull);
  EXPECT_EQ(back->num_servers, 2u);
  ASSERT_EQ(back->files.size(), 1u);
  EXPECT_EQ(back->files[0].name, "a.shard");
  EXPECT_EQ(back->files[0].size, 10u);
  EXPECT_EQ(back->files[0].crc32c, 0xabcu);
  // The listed CRC is wrong on purpose, so the checkpoint does not verify.
  EXPECT_EQ(VerifyCheckpoint(dir).code(), StatusCode::kDataLoss);
}

TEST_F(CheckpointTest, WriteManifestRefusesFilesNotYetOnDiskAndUnsafeNames) {
  const std::string dir = CheckpointDir(run_dir_, 1);
  ASSERT_TRUE(MakeDirs(dir).ok());
  Status s = WriteManifest(dir, {1, kHash, 1, {{"server-0.table-0.shard", 100, 0}}});
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("server-0.table-0.shard"), std::string::npos) << s.message();
  for (const char* name : {"../escape", "a/b", ".hidden", "MANIFEST", "", "sp ace", "nl\n"}) {
    EXPECT_EQ(WriteManifest(dir, {1, kHash, 1, {{name, 0, 0}}}).code(),
              StatusCode::kInvalidArgument)
        << name;
  }
  EXPECT_EQ(WriteManifest(dir, {1, kHash, 0, {}}).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(dir + "/MANIFEST"));
}

TEST_F(CheckpointTest, DirectoryNamesParseStrictly) {
  EXPECT_EQ(CheckpointDir("/r", 42), "/r/checkpoints/step-0000000042");
  EXPECT_EQ(*ParseCheckpointDirName("step-0000000042"), 42);
  EXPECT_EQ(*ParseCheckpointDirName("step-12345678901"), 12345678901);
  for (const char* bad : {"step-42", "step-00000000042", "step-000000004x", "step--000000042",
                          "step-0000000042.tmp", "latest", "step-99999999999999999999"}) {
    EXPECT_FALSE(ParseCheckpointDirName(bad).ok()) << bad;
  }
}

TEST_F(CheckpointTest, VerifyReportsMissingTruncatedAndMisplacedFiles) {
  CheckpointData data = MakeCheckpoint(5, 2, 100, 10);
  ASSERT_TRUE(WriteCheckpoint(run_dir_, 5, data).ok());
  const std::string dir = CheckpointDir(run_dir_, 5);
  ASSERT_TRUE(VerifyCheckpoint(dir).ok()) << VerifyCheckpoint(dir).ToString();
  ExpectCheckpointHolds(dir, data);
  // A stale temp file from a killed writer is not part of the checkpoint.
  ASSERT_TRUE(WriteFileAtomically(dir + "/server-0.table-0.shard.tmp.99999", {}).ok());
  EXPECT_TRUE(VerifyCheckpoint(dir).ok());

  const std::string shard = dir + "/server-1.table-1.shard";
  const std::string saved = ReadAll(shard);
  ASSERT_EQ(::truncate(shard.c_str(), static_cast<off_t>(saved.size() - 1)), 0);
  Status s = VerifyCheckpoint(dir);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find(shard), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("size"), std::string::npos) << s.message();

  ASSERT_EQ(::unlink(shard.c_str()), 0);
  s = VerifyCheckpoint(dir);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("missing"), std::string::npos) << s.message();

  // A complete checkpoint copied under another step's name is refused.
  CheckpointData d6 = MakeCheckpoint(6, 1, 10, 2);
  ASSERT_TRUE(WriteCheckpoint(run_dir_, 6, d6).ok());
  fs::rename(CheckpointDir(run_dir_, 6), CheckpointDir(run_dir_, 8));
  s = VerifyCheckpoint(CheckpointDir(run_dir_, 8));
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("step 6"), std::string::npos) << s.message();

  ASSERT_EQ(::unlink((CheckpointDir(run_dir_, 8) + "/MANIFEST").c_str()), 0);
  EXPECT_EQ(VerifyCheckpoint(CheckpointDir(run_dir_, 8)).code(), StatusCode::kNotFound);
}

TEST_F(CheckpointTest, LoadServerShardsReturnsOnlyThatRanksShards) {
  CheckpointData data = MakeCheckpoint(3, 3, 50, 7);
  ASSERT_TRUE(WriteCheckpoint(run_dir_, 3, data).ok());
  const std::string dir = CheckpointDir(run_dir_, 3);
  Result<std::vector<ShardSnapshot>> one = LoadServerShards(dir, 1);
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  ASSERT_EQ(one->size(), 2u);
  ExpectSameShard((*one)[0], data[1][0]);
  ExpectSameShard((*one)[1], data[1][1]);
  EXPECT_EQ(LoadServerShards(dir, 3).status().code(), StatusCode::kInvalidArgument);

  // A shard replaced by a valid one of another step: its own CRCs pass,
  // the manifest's does not.
  CheckpointData other = MakeCheckpoint(4, 3, 50, 7);
  ASSERT_TRUE(WriteShard(dir, 1, other[1][0]).ok());
  Result<std::vector<ShardSnapshot>> bad = LoadServerShards(dir, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("manifest"), std::string::npos) << bad.status().message();
}

// ---- a run folder per host ----

// The job's checkpoint split as it is with a folder per host: the
// coordinator's folder gets the manifest alone, each server's its own shards
// and a copy of the manifest.
TEST_F(CheckpointTest, PerHostFoldersVerifyWhatEachHostHoldsAndNoMore) {
  CheckpointData data = MakeCheckpoint(7, 2, 40, 5);
  const std::string shared = run_dir_ + "/shared";
  ASSERT_TRUE(WriteCheckpoint(shared, 7, data).ok());
  const std::string src = CheckpointDir(shared, 7);
  auto manifest = ReadManifest(src);
  ASSERT_TRUE(manifest.ok());
  const std::string coord = run_dir_ + "/coord", s0 = run_dir_ + "/s0", s1 = run_dir_ + "/s1";
  // The coordinator writes a manifest into a folder that holds none of the files.
  ASSERT_TRUE(
      WriteManifest(CheckpointDir(coord, 7), *manifest, CheckpointScope::kAllOrManifestOnly).ok());
  EXPECT_FALSE(WriteManifest(CheckpointDir(coord, 8), *manifest).ok());  // kAll still checks
  ManifestCopy copy;
  copy.step = 7;
  std::string text = ReadAll(src + "/MANIFEST");
  copy.bytes.assign(text.begin(), text.end());
  for (const auto& [dir, rank] : {std::pair{s0, 0}, {s1, 1}}) {
    ASSERT_TRUE(MakeDirs(CheckpointDir(dir, 7)).ok());
    for (const auto& f : manifest->files) {
      if (f.name.rfind("server-" + std::to_string(rank) + ".", 0) != 0) continue;
      Overwrite(CheckpointDir(dir, 7) + "/" + f.name, ReadAll(src + "/" + f.name));
    }
    ASSERT_TRUE(StoreManifestCopy(dir, copy, 3).ok());
  }
  EXPECT_TRUE(
      VerifyCheckpointIn(CheckpointDir(coord, 7), CheckpointScope::kAllOrManifestOnly).ok());
  EXPECT_FALSE(VerifyCheckpoint(CheckpointDir(coord, 7)).ok());
  EXPECT_TRUE(VerifyCheckpointIn(CheckpointDir(s0, 7), CheckpointScope::kOwnShards).ok());
  // Each server loads its own shards against the copied manifest.
  auto got = LoadServerShards(CheckpointDir(s1, 7), 1);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectSameShard((*got)[0], data[1][0]);
  auto found = FindLatestGoodCheckpoint(coord, kHash, nullptr, CheckpointScope::kAllOrManifestOnly);
  ASSERT_TRUE(found.ok()) << found.status().ToString();

  // Partly here is corrupt under both scopes: a server's file lost.
  std::remove((CheckpointDir(s0, 7) + "/" + ShardFileName(0, 1)).c_str());
  EXPECT_EQ(VerifyCheckpointIn(CheckpointDir(s0, 7), CheckpointScope::kOwnShards).code(),
            StatusCode::kDataLoss);
  Overwrite(CheckpointDir(coord, 7) + "/" + ShardFileName(1, 0),
            ReadAll(src + "/" + ShardFileName(1, 0)));
  EXPECT_EQ(VerifyCheckpointIn(CheckpointDir(coord, 7), CheckpointScope::kAllOrManifestOnly).code(),
            StatusCode::kDataLoss);
}

TEST_F(CheckpointTest, AManifestCopyThatIsNotAManifestOfItsStepIsNotKept) {
  CheckpointData data = MakeCheckpoint(4, 1, 10, 2);
  ASSERT_TRUE(WriteCheckpoint(run_dir_, 4, data).ok());
  ManifestCopy copy;
  copy.step = 9;  // the bytes are step 4's
  std::string text = ReadAll(CheckpointDir(run_dir_, 4) + "/MANIFEST");
  copy.bytes.assign(text.begin(), text.end());
  const std::string other = run_dir_ + "/other";
  EXPECT_FALSE(StoreManifestCopy(other, copy, 3).ok());
  EXPECT_FALSE(ReadManifest(CheckpointDir(other, 9)).ok());  // nothing left behind
  copy.step = 4;
  copy.bytes[10] ^= 1;
  EXPECT_FALSE(StoreManifestCopy(other, copy, 3).ok());
  auto enc = EncodeManifestCopy(copy);
  auto dec = DecodeManifestCopy(enc.data(), enc.size());
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ(dec->step, 4);
  EXPECT_EQ(dec->bytes, copy.bytes);
  EXPECT_FALSE(DecodeManifestCopy(enc.data(), 3).ok());
}

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

// ---- choosing and pruning ----

TEST_F(CheckpointTest, FindSkipsBrokenAndForeignCheckpointsAndSaysWhy) {
  auto memory = std::make_shared<MemorySink>();
  Logger log(memory, "test", LogLevel::kInfo);
  EXPECT_EQ(FindLatestGoodCheckpoint(run_dir_, kHash, &log).status().code(), StatusCode::kNotFound);

  CheckpointData d1 = MakeCheckpoint(1, 2, 20, 3);
  ASSERT_TRUE(WriteCheckpoint(run_dir_, 1, d1).ok());
  ASSERT_TRUE(WriteCheckpoint(run_dir_, 2, MakeCheckpoint(2, 2, 20, 3), /*hash=*/77).ok());
  // Step 3: shards but no manifest (the coordinator died first).
  ASSERT_TRUE(WriteShard(CheckpointDir(run_dir_, 3), 0, MakeDense(3, 0, 0, 20, 2, 1)).ok());
  // Step 4: complete, then a shard damaged.
  ASSERT_TRUE(WriteCheckpoint(run_dir_, 4, MakeCheckpoint(4, 2, 20, 3)).ok());
  FlipBit(CheckpointDir(run_dir_, 4) + "/server-1.table-0.shard", 70, 3);
  // Noise that is not a checkpoint directory.
  ASSERT_TRUE(MakeDirs(CheckpointsDir(run_dir_) + "/latest").ok());

  Result<std::string> found = FindLatestGoodCheckpoint(run_dir_, kHash, &log);
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(*found, CheckpointDir(run_dir_, 1));
  ExpectCheckpointHolds(*found, d1);
  EXPECT_TRUE(memory->Contains("skipping checkpoint " + CheckpointDir(run_dir_, 4) + ": DATA_LOSS"))
      << testing::PrintToString(memory->Lines());
  EXPECT_TRUE(memory->Contains("server-1.table-0.shard: checksum mismatch"));
  EXPECT_TRUE(memory->Contains("skipping checkpoint " + CheckpointDir(run_dir_, 3)));
  EXPECT_TRUE(memory->Contains("no manifest"));
  EXPECT_TRUE(memory->Contains("config hash 000000000000004d, this job's is 0123456789abcdef"));

  found = FindLatestGoodCheckpoint(run_dir_, 77, nullptr);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, CheckpointDir(run_dir_, 2));
  Result<std::string> none = FindLatestGoodCheckpoint(run_dir_, 5, nullptr);
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
}

std::vector<int64_t> StepsOnDisk(const std::string& run_dir) {
  Result<std::vector<std::string>> names = ListDir(CheckpointsDir(run_dir));
  EXPECT_TRUE(names.ok()) << names.status().ToString();
  std::vector<int64_t> steps;
  if (!names.ok()) return steps;
  for (const auto& name : *names) {
    Result<int64_t> s = ParseCheckpointDirName(name);
    if (s.ok()) steps.push_back(*s);
  }
  return steps;
}

TEST_F(CheckpointTest, PruneKeepsTheNewestKGoodAndNeverTheNewestGood) {
  for (int64_t step = 1; step <= 6; ++step) {
    ASSERT_TRUE(WriteCheckpoint(run_dir_, step, MakeCheckpoint(step, 1, 8, 2)).ok());
  }
  ASSERT_EQ(::unlink((CheckpointDir(run_dir_, 3) + "/MANIFEST").c_str()), 0);  // incomplete
  FlipBit(CheckpointDir(run_dir_, 5) + "/server-0.table-1.shard", 80, 0);      // corrupt
  // Step 7 is still being written (no manifest yet).
  ASSERT_TRUE(WriteShard(CheckpointDir(run_dir_, 7), 0, MakeDense(7, 0, 0, 8, 2, 1)).ok());
  ASSERT_TRUE(MakeDirs(CheckpointsDir(run_dir_) + "/not-a-step").ok());

  EXPECT_EQ(PruneCheckpoints(run_dir_, 0).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(PruneCheckpoints(run_dir_, 2).ok());
  // Good: 6, 4 kept; 5 (corrupt, older than good 6) and everything older
  // than 4 removed; 7 (newer than the newest good) kept.
  EXPECT_EQ(StepsOnDisk(run_dir_), (std::vector<int64_t>{4, 6, 7}));
  EXPECT_TRUE(fs::exists(CheckpointsDir(run_dir_) + "/not-a-step"));
  ASSERT_TRUE(PruneCheckpoints(run_dir_, 1).ok());
  EXPECT_EQ(StepsOnDisk(run_dir_), (std::vector<int64_t>{6, 7}));
  EXPECT_EQ(*FindLatestGoodCheckpoint(run_dir_, kHash, nullptr), CheckpointDir(run_dir_, 6));

  // Only broken ones newer than the single good one: the good one stays.
  FlipBit(CheckpointDir(run_dir_, 6) + "/MANIFEST", 3, 1);
  ASSERT_TRUE(PruneCheckpoints(run_dir_, 1).ok());
  EXPECT_EQ(StepsOnDisk(run_dir_), (std::vector<int64_t>{6, 7}));
  ASSERT_TRUE(PruneCheckpoints(run_dir_, 3).ok());
  EXPECT_EQ(StepsOnDisk(run_dir_), (std::vector<int64_t>{6, 7}));
  EXPECT_TRUE(PruneCheckpoints(run_dir_ + "/nothing-here", 1).ok());
}

// ---- the writer killed mid-checkpoint ----

class CheckpointKillTest : public CheckpointTest {
 protected:
  unsigned HardLimitSeconds() const override { return 240; }
};

// What a killed writer left in the directory of the step it was writing.
std::string DescribeLeftovers(const std::string& dir, size_t shards_total) {
  Result<std::vector<std::string>> names = ListDir(dir);
  if (!names.ok() || names->empty()) return "nothing";
  size_t shards = 0, temps = 0;
  bool manifest = false;
  for (const auto& n : *names) {
    if (n == "MANIFEST") manifest = true;
    if (n.find(".tmp.") != std::string::npos) {
      ++temps;
    } else if (n.size() > 6 && n.compare(n.size() - 6, 6, ".shard") == 0) {
      ++shards;
    }
  }
  if (manifest) return "complete";
  return std::to_string(shards) + "/" + std::to_string(shards_total) + " shards" +
         (temps > 0 ? " + temp" : "");
}

TEST_F(CheckpointKillTest, WriterKilledAtRandomPointsNeverLeavesABrokenCheckpoint) {
  constexpr int kServers = 3;
  constexpr size_t kDense = 30000, kRows = 1500;  // ~0.5 MB per checkpoint, 6 files + manifest
  // Aim for 40 kills; 20 is the requirement if the machine is too busy.
  constexpr int kTargetKills = 40, kMinKills = 20, kMaxIterations = 400;
  constexpr size_t kFiles = size_t{kServers} * 2;
  const auto budget = std::chrono::seconds(150);  // hard limit is 240 s
  const auto started = std::chrono::steady_clock::now();
  std::mt19937_64 rng(20240611);

  // Forks a child that writes checkpoint `step` and, if delay_us >= 0, kills
  // it after that long. Returns true if the child was killed before exiting.
  auto run_writer = [&](int64_t step, const CheckpointData& data, int64_t delay_us,
                        std::chrono::microseconds* took) -> bool {
    auto t0 = std::chrono::steady_clock::now();
    pid_t pid = ::fork();
    if (pid < 0) {
      ADD_FAILURE() << "fork failed";  // and never kill(-1, ...)
      return false;
    }
    if (pid == 0) {
      ::alarm(60);  // a wedged child dies on its own
      ::_exit(WriteCheckpoint(run_dir_, step, data).ok() ? 0 : 3);
    }
    if (delay_us >= 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
      ::kill(pid, SIGKILL);
    }
    int status = 0;
    EXPECT_EQ(::waitpid(pid, &status, 0), pid);
    *took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                  t0);
    if (WIFEXITED(status)) {
      EXPECT_EQ(WEXITSTATUS(status), 0) << "writer of step " << step << " failed";
      return false;
    }
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    return true;
  };

  // Calibrate: two complete, unkilled writes (steps 1 and 2) give the time a
  // whole checkpoint takes on this machine, fork to exit.
  std::map<int64_t, CheckpointData> written;
  std::vector<int64_t> recent_us;  // durations of the last few unkilled writes
  for (int64_t step = 1; step <= 2; ++step) {
    written[step] = MakeCheckpoint(step, kServers, kDense, kRows);
    std::chrono::microseconds took{0};
    ASSERT_FALSE(run_writer(step, written[step], -1, &took));
    recent_us.push_back(took.count());
  }
  // The median of recent full writes: robust to one slow fsync, and follows
  // a machine that gets busier (other builds share these cores).
  auto typical_us = [&] {
    std::vector<int64_t> v(recent_us.end() - std::min<size_t>(recent_us.size(), 5),
                           recent_us.end());
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  int64_t good = 2;
  ASSERT_EQ(*FindLatestGoodCheckpoint(run_dir_, kHash, nullptr), CheckpointDir(run_dir_, good));

  std::map<std::string, int> outcomes;  // "fresh|reused: what the kill left" -> count
  std::set<std::string> fresh_outcomes;
  int kills = 0, iterations = 0, advanced = 0;
  auto memory = std::make_shared<MemorySink>();
  Logger log(memory, "test", LogLevel::kInfo);
  // Prints every kill; a test may read env (the no-env rule is for the library).
  const bool verbose = std::getenv("DISTOPT_CKPT_TEST_VERBOSE") != nullptr;  // NOLINT

  while (iterations < kMaxIterations && std::chrono::steady_clock::now() - started < budget &&
         (kills < kTargetKills || fresh_outcomes.size() < 3 || advanced < 2)) {
    ++iterations;
    const int64_t next = good + 1;
    const std::string next_dir = CheckpointDir(run_dir_, next);
    if (written.find(next) == written.end()) {
      written[next] = MakeCheckpoint(next, kServers, kDense, kRows);
    }
    // Half the attempts start from an empty directory (so what is left says
    // where the kill landed), half rewrite over what the last killed writer
    // left (stale temp files, some finished shards), as a restart would.
    const bool fresh = rng() % 2 == 0;
    if (fresh) {
      ASSERT_TRUE(RemoveTree(next_dir).ok());
    }
    // Uniform over the time a full write takes, plus a margin so some
    // writers finish: kills land before, between and inside every file.
    const int64_t delay =
        static_cast<int64_t>(rng() % static_cast<uint64_t>(typical_us() * 5 / 4 + 1));
    std::chrono::microseconds took{0};
    const bool killed = run_writer(next, written[next], delay, &took);
    if (HasFailure()) return;
    if (killed) {
      ++kills;
    } else {
      recent_us.push_back(took.count());
    }
    const std::string left = killed ? DescribeLeftovers(next_dir, kFiles) : "finished";
    ++outcomes[(fresh ? "fresh: " : "reused: ") + left];
    if (fresh) fresh_outcomes.insert(left);
    if (verbose) {
      std::printf("delay %6lld us, took %6lld us: %s%s\n", static_cast<long long>(delay),
                  static_cast<long long>(took.count()),
                  fresh ? "fresh: " : "reused: ", left.c_str());
    }

    Result<std::string> found = FindLatestGoodCheckpoint(run_dir_, kHash, &log);
    ASSERT_TRUE(found.ok()) << found.status().ToString();
    // The new checkpoint counts exactly when its manifest landed; otherwise
    // the previous good one is chosen. Never anything else.
    const bool complete = fs::exists(next_dir + "/MANIFEST");
    const int64_t found_step = complete ? next : good;
    ASSERT_EQ(*found, CheckpointDir(run_dir_, found_step))
        << "iteration " << iterations << ", delay " << delay << " us, left " << left;
    // ... and it holds exactly what was written for that step.
    ExpectCheckpointHolds(*found, written[found_step]);
    if (HasFatalFailure()) return;
    if (complete) {
      good = next;
      ++advanced;
    }
    // Pruning beside half-written directories never touches the good one.
    ASSERT_TRUE(PruneCheckpoints(run_dir_, 2).ok());
    ASSERT_EQ(*FindLatestGoodCheckpoint(run_dir_, kHash, nullptr), *found);
  }
  std::string summary;
  for (const auto& [what, n] : outcomes) summary += " [" + what + "]=" + std::to_string(n);
  const auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started);
  std::printf(
      "kill test: %d iterations, %d kills, %d checkpoints completed, typical write %.1f ms, "
      "%.1f s total; outcomes:%s\n",
      iterations, kills, advanced, typical_us() / 1000.0, secs.count(), summary.c_str());
  RecordProperty("outcomes", summary);
  EXPECT_GE(kills, kMinKills) << summary;
  // The kills landed at different points of the write, not all before it.
  EXPECT_GE(fresh_outcomes.size(), 3u) << summary;
  EXPECT_GE(advanced, 1) << summary;
}

}  // namespace
}  // namespace distopt
