// Checkpoint files and directories that are whole: shards and manifests
// round-trip bit for bit, names parse strictly, verification and loading
// under each folder layout, finding the newest good checkpoint and pruning.
// Damage is in checkpoint_corruption_test.cc, killed writers in
// checkpoint_kill_test.cc (the same test binary).
#include "kv/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "base/crc32c.h"
#include "base/file_util.h"
#include "base/logging.h"
#include "kv/checkpoint_test_util.h"

namespace distopt {
namespace {

using namespace checkpoint_testing;  // NOLINT: the fixture and data of every test here
namespace fs = std::filesystem;

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

}  // namespace
}  // namespace distopt
