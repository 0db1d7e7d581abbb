// Unit tests of the KV server's parts, each alone: the consistency gate,
// the BSP aggregator, the replication stream, the replication codec, the
// checkpoint writer and the request checks.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include "base/env.h"
#include "kv/bsp_aggregator.h"
#include "kv/checkpoint_writer.h"
#include "kv/consistency_gate.h"
#include "kv/repl_codec.h"
#include "kv/replication_stream.h"
#include "kv/request_check.h"
#include "kv/testing/recording_transport.h"

namespace distopt {
namespace {

const std::vector<bool> kAllLive = {true, true, true};

ParkedRequest Pull(uint32_t rank, int64_t clock, uint64_t seq = 0) {
  ParkedRequest p;
  p.rank = rank;
  p.need_clock = clock;
  p.need_seq = seq;
  p.head.clock = clock;
  return p;
}

// ---- ConsistencyGate ----

TEST(ConsistencyGateTest, BspServesAClockOnceAppliedAndHeldByTheBackup) {
  ConsistencyGate gate({Consistency::kBsp, 0}, 3);
  EXPECT_TRUE(gate.Ready(0, kAllLive));
  EXPECT_FALSE(gate.Ready(1, kAllLive));
  gate.Advance(/*held=*/false);  // applied, the backup has not confirmed
  EXPECT_EQ(gate.applied(), 1);
  EXPECT_FALSE(gate.Ready(1, kAllLive));
  gate.ConfirmUpTo(1);
  EXPECT_TRUE(gate.Ready(1, kAllLive));
  gate.Advance(/*held=*/true);
  EXPECT_TRUE(gate.Ready(2, kAllLive));
}

TEST(ConsistencyGateTest, SspWaitsForTheSlowestLiveWorkerOnly) {
  ConsistencyGate gate({Consistency::kSsp, 2}, 3);
  for (int c = 0; c < 5; ++c) gate.Saw(0, c);  // worker 0 at clock 5
  gate.Saw(1, 3);                              // worker 1 at 4
  // Worker 2 is at 0: a pull for clock 3 (needs min >= 1) waits for it.
  EXPECT_FALSE(gate.Ready(3, kAllLive));
  EXPECT_TRUE(gate.Ready(2, kAllLive));
  EXPECT_EQ(gate.WhoIsSlow(3, kAllLive, {}), "worker/2 (at clock 0)");
  // Worker 2 dies: only the live ones count.
  EXPECT_TRUE(gate.Ready(3, {true, true, false}));
  EXPECT_EQ(gate.MinClock({true, true, false}), 4);
  EXPECT_EQ(gate.MaxClock({false, true, true}), 4);
  gate.Saw(0, 1);  // an old clock never moves a worker back
  EXPECT_EQ(gate.worker_clock(0), 5);
}

TEST(ConsistencyGateTest, AspAnswersAtOnce) {
  ConsistencyGate gate({Consistency::kAsp, 0}, 3);
  EXPECT_TRUE(gate.Ready(1000, kAllLive));
}

TEST(ConsistencyGateTest, ParkedRequestsWaitForTheirClockAndUpdate) {
  ConsistencyGate gate({Consistency::kBsp, 0}, 3);
  gate.Park(Pull(0, 1));
  gate.Park(Pull(1, 2));
  ParkedRequest ack = Pull(2, ConsistencyGate::kAnyClock, /*seq=*/7);
  gate.Park(std::move(ack));
  EXPECT_TRUE(gate.TakeReady(kAllLive, 0).empty());
  gate.Advance(true);
  auto ready = gate.TakeReady(kAllLive, 6);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].rank, 0u);
  ready = gate.TakeReady(kAllLive, 7);  // update 7 confirmed: the ack goes
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].rank, 2u);
  EXPECT_EQ(gate.parked().size(), 1u);
  // Worker 1 dies: its parked pull is dropped, not answered.
  EXPECT_TRUE(gate.TakeReady({true, false, true}, 7).empty());
  EXPECT_TRUE(gate.parked().empty());
}

TEST(ConsistencyGateTest, RestartPutsEveryWorkerAtTheCheckpoint) {
  ConsistencyGate gate({Consistency::kSsp, 1}, 2);
  gate.Saw(0, 9);
  gate.Park(Pull(1, 4));
  gate.Restart(5);
  EXPECT_EQ(gate.applied(), 5);
  EXPECT_EQ(gate.confirmed(), 5);
  EXPECT_EQ(gate.worker_clocks(), (std::vector<int64_t>{5, 5}));
  EXPECT_TRUE(gate.parked().empty());
}

// ---- BspAggregator ----

Message DensePush(std::vector<float> v) {
  Message m;
  m.values = Buffer::FromVector(std::move(v));
  return m;
}

TEST(BspAggregatorTest, CompleteOnceEveryLiveWorkerPushedAndDuplicatesRefused) {
  BspAggregator agg(3);
  EXPECT_FALSE(agg.Complete(0, kAllLive));  // nobody pushed
  EXPECT_EQ(agg.Add(0, 2, DensePush({1})), BspAggregator::kAdded);
  EXPECT_EQ(agg.Add(0, 2, DensePush({1})), BspAggregator::kDuplicate);
  EXPECT_EQ(agg.Add(0, 0, DensePush({1})), BspAggregator::kAdded);
  EXPECT_FALSE(agg.Complete(0, kAllLive));
  EXPECT_EQ(agg.Pushed(0), (std::vector<bool>{true, false, true}));
  EXPECT_TRUE(agg.Complete(0, {true, false, true}));                // worker 1 died
  EXPECT_EQ(agg.Add(1, 1, DensePush({1})), BspAggregator::kAdded);  // a later clock apart
  EXPECT_EQ(agg.Take(0).count, 2u);
  EXPECT_FALSE(agg.Complete(0, {true, false, true}));
  EXPECT_TRUE(agg.Pushed(1)[1]);
}

TEST(BspAggregatorTest, DenseMeanIsTheSameWhateverTheArrivalOrder) {
  TableSpec spec{.id = 0, .name = "w", .sparse = false, .size = 3};
  std::vector<std::vector<float>> g = {{0.1f, 1e8f, -3}, {0.2f, 1.f, 5}, {0.3f, -1e8f, 7}};
  std::vector<float> first;
  for (std::vector<int> order : {std::vector<int>{0, 1, 2}, {2, 1, 0}, {1, 2, 0}}) {
    BspAggregator agg(3);
    for (int r : order) agg.Add(4, r, DensePush(g[r]));
    std::vector<float> scratch;
    MeanGradient m = MeanOf(spec, 3, agg.Take(4), /*own_buffers=*/false, &scratch);
    std::vector<float> got(m.values, m.values + 3);
    if (first.empty()) {
      first = got;
      EXPECT_FLOAT_EQ(got[2], 3.0f);
      EXPECT_EQ(m.values, scratch.data());
      EXPECT_TRUE(m.values_buffer.empty());
    } else {
      EXPECT_EQ(got, first);  // bit for bit
    }
  }
}

// A host's sum (ranks 0-3) and a survivor's push for one of its ranks
// (rank 3, adopted) can reach a new owner in either order after a
// failover: the clock's mean is the sum's either way, bit for bit.
TEST(BspAggregatorTest, AHostsSumReplacesThePushesItHoldsWhicheverCameFirst) {
  TableSpec spec{.id = 0, .name = "w", .sparse = false, .size = 2};
  const std::vector<uint32_t> host = {0, 1, 2, 3};
  const std::vector<float> sum = {10, -4};
  std::vector<std::vector<float>> means;
  for (bool sum_first : {true, false}) {
    BspAggregator agg(4);
    if (sum_first) {
      EXPECT_EQ(agg.Add(7, host, DensePush(sum)), BspAggregator::kAdded);
      EXPECT_EQ(agg.Add(7, 3, DensePush({2, 2})), BspAggregator::kDuplicate);
    } else {
      EXPECT_EQ(agg.Add(7, 3, DensePush({2, 2})), BspAggregator::kAdded);
      EXPECT_FALSE(agg.Complete(7, {true, true, true, false}));
      EXPECT_EQ(agg.Add(7, host, DensePush(sum)), BspAggregator::kAdded);
    }
    EXPECT_EQ(agg.Add(7, host, DensePush(sum)), BspAggregator::kDuplicate);  // a retry
    EXPECT_TRUE(agg.Complete(7, {true, true, true, true}));
    BspAggregator::Clock c = agg.Take(7);
    EXPECT_EQ(c.count, 4u);
    std::vector<float> scratch;
    MeanGradient m = MeanOf(spec, 2, c, /*own_buffers=*/false, &scratch);
    means.emplace_back(m.values, m.values + 2);
  }
  EXPECT_EQ(means[0], (std::vector<float>{2.5f, -1}));
  EXPECT_EQ(means[1], means[0]);
}

// A push that overlaps one kept without holding all of it (ranks 2-3 kept,
// 1-2 arriving) is a duplicate: neither can be split.
TEST(BspAggregatorTest, APartlyOverlappingPushIsADuplicate) {
  BspAggregator agg(4);
  const std::vector<uint32_t> upper = {2, 3}, middle = {1, 2}, lower = {0, 1};
  EXPECT_EQ(agg.Add(0, upper, DensePush({1})), BspAggregator::kAdded);
  EXPECT_EQ(agg.Add(0, middle, DensePush({1})), BspAggregator::kDuplicate);
  EXPECT_EQ(agg.Pushed(0), (std::vector<bool>{false, false, true, true}));
  EXPECT_EQ(agg.Add(0, lower, DensePush({1})), BspAggregator::kAdded);
  EXPECT_EQ(agg.Take(0).count, 4u);
}

TEST(BspAggregatorTest, OwnBuffersAndASinglePushIsSharedNotCopied) {
  TableSpec spec{.id = 0, .name = "w", .sparse = false, .size = 2};
  BspAggregator agg(2);
  Message only = DensePush({4, 6});
  agg.Add(0, 1, only);
  std::vector<float> scratch;
  MeanGradient m = MeanOf(spec, 2, agg.Take(0), true, &scratch);
  EXPECT_EQ(m.values, only.values.as<float>().data());
  agg.Add(1, 0, DensePush({1, 2}));
  agg.Add(1, 1, DensePush({3, 4}));
  m = MeanOf(spec, 2, agg.Take(1), true, &scratch);
  ASSERT_EQ(m.values_buffer.as<float>().size(), 2u);
  EXPECT_EQ(m.values, m.values_buffer.as<float>().data());
  EXPECT_FLOAT_EQ(m.values[0], 2);
  EXPECT_FLOAT_EQ(m.values[1], 3);
}

TEST(BspAggregatorTest, SparseMeanMergesKeysInFirstSeenOrder) {
  TableSpec spec{.id = 0, .name = "emb", .sparse = true, .dim = 2};
  auto push = [](std::vector<uint64_t> k, std::vector<float> v) {
    Message m;
    m.keys = Buffer::FromVector(std::move(k));
    m.values = Buffer::FromVector(std::move(v));
    return m;
  };
  BspAggregator agg(2);
  agg.Add(0, 1, push({9, 5}, {1, 1, 2, 2}));
  agg.Add(0, 0, push({5}, {4, 6}));
  std::vector<float> scratch;
  MeanGradient m = MeanOf(spec, 0, agg.Take(0), false, &scratch);
  // Rank 0's keys first: 5, then rank 1's new key 9; each row / 2 pushes.
  ASSERT_EQ(m.keys.size(), 2u);
  EXPECT_EQ(m.keys[0], 5u);
  EXPECT_EQ(m.keys[1], 9u);
  std::vector<float> v(m.values, m.values + 4);
  EXPECT_EQ(v, (std::vector<float>{3, 4, 0.5f, 0.5f}));
}

// ---- ReplicationStream ----

constexpr NodeId kBackup = 42;

Message Update(uint64_t seq) {
  Message m;
  m.type = MsgType::kReplicate;
  m.request_id = seq;
  return m;
}

TEST(ReplicationStreamTest, WithoutABackupEveryUpdateIsConfirmedAtOnce) {
  RecordingTransport t;
  ReplicationStream s(&t);
  EXPECT_EQ(s.Next(), 1u);
  EXPECT_EQ(s.Next(), 2u);
  EXPECT_EQ(s.confirmed(), 2u);
  EXPECT_FALSE(s.has_backup());
  EXPECT_TRUE(t.SentTo(kBackup).empty());
}

TEST(ReplicationStreamTest, ConfirmReleasesInOrderAndReportsBspClocks) {
  RecordingTransport t;
  ReplicationStream s(&t);
  s.SetBackup(1, kBackup);
  const SteadyTime now = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) {
    const uint64_t seq = s.Next();
    s.Send(seq, Update(seq), /*table=*/i % 2, /*bsp_clock=*/10 + i, now);
  }
  EXPECT_EQ(t.SentTo(kBackup).size(), 3u);
  EXPECT_EQ(s.confirmed(), 0u);
  auto done = s.Confirm(2);
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0], std::make_pair(0u, int64_t{10}));
  EXPECT_EQ(done[1], std::make_pair(1u, int64_t{11}));
  EXPECT_EQ(s.in_flight(), 1u);
  EXPECT_EQ(s.first_unconfirmed(), 3u);
  done = s.Confirm(99);  // never beyond what was sent
  EXPECT_EQ(s.confirmed(), 3u);
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[1].first, ReplicationStream::kAllTables);
  EXPECT_TRUE(s.Confirm(3).empty());  // nothing new
}

TEST(ReplicationStreamTest, GoBackNResendsEverythingUnconfirmedAtMostOncePerGap) {
  RecordingTransport t;
  ReplicationStream s(&t);
  s.SetBackup(1, kBackup);
  const SteadyTime now = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) {
    const uint64_t seq = s.Next();
    s.Send(seq, Update(seq), 0, -1, now);
  }
  s.Confirm(1);
  const auto gap = std::chrono::milliseconds(20);
  const SteadyTime later = now + std::chrono::seconds(1);
  EXPECT_TRUE(s.GoBackDue(1, later, gap));  // an ack of 1 again: the backup saw a gap
  EXPECT_FALSE(s.GoBackDue(1, later + std::chrono::milliseconds(5), gap));
  EXPECT_FALSE(s.GoBackDue(2, later + gap, gap));  // progress: no go-back
  t.Clear();
  s.Resend(/*epoch=*/9, later);
  auto sent = t.SentTo(kBackup);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].request_id, 2u);
  EXPECT_EQ(sent[1].request_id, 3u);
  EXPECT_EQ(sent[0].epoch, 9u);
  EXPECT_FALSE(s.RetryDue(later, std::chrono::milliseconds(500)));
  EXPECT_TRUE(s.RetryDue(later + std::chrono::seconds(1), std::chrono::milliseconds(500)));
}

TEST(ReplicationStreamTest, ANewBackupReleasesWhatTheOldOneNeverConfirmed) {
  RecordingTransport t;
  ReplicationStream s(&t);
  s.SetBackup(1, kBackup);
  const uint64_t seq = s.Next();
  s.Send(seq, Update(seq), 0, 5, std::chrono::steady_clock::now());
  auto released = s.SetBackup(2, kBackup + 1);
  EXPECT_EQ(s.confirmed(), 1u);
  EXPECT_EQ(s.in_flight(), 0u);
  ASSERT_FALSE(released.empty());
  EXPECT_EQ(released[0], std::make_pair(0u, int64_t{5}));
  EXPECT_EQ(s.backup_rank(), 2u);
}

// A new backup's snapshot carries the number of the update the old
// backup's release confirmed: the new backup's ack of it (that number) is
// progress, not a gap to go back for (it was re-sent forever, and the
// partition's clock never confirmed).
TEST(ReplicationStreamTest, TheAckOfANewBackupsSnapshotConfirmsIt) {
  RecordingTransport t;
  ReplicationStream s(&t);
  s.SetBackup(1, kBackup);
  const SteadyTime now = std::chrono::steady_clock::now();
  const uint64_t seq = s.Next();
  s.Send(seq, Update(seq), 0, 5, now);
  s.SetBackup(2, kBackup + 1);                   // releases update 1: confirmed is 1
  s.Send(s.seq(), Update(s.seq()), 0, -1, now);  // the snapshot "at update 1"
  ASSERT_EQ(s.confirmed(), 1u);
  ASSERT_EQ(s.in_flight(), 1u);
  EXPECT_EQ(s.first_unconfirmed(), 1u);
  EXPECT_FALSE(s.GoBackDue(1, now + std::chrono::seconds(1), std::chrono::milliseconds(20)));
  auto done = s.Confirm(1);
  EXPECT_EQ(s.in_flight(), 0u);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].first, ReplicationStream::kAllTables);
}

// ---- replication codec ----

TEST(ReplCodecTest, SnapshotRoundTripsAndRefusesAnotherShape) {
  std::vector<TableClocks> clocks = {{7, {7, 6}}, {3, {2, 3}}};
  std::vector<ShardSnapshot> shards(2);
  shards[0].table = 0;
  shards[0].begin = 10;
  shards[0].slots = 1;
  shards[0].steps = 7;
  shards[0].params = {1, 2};
  shards[0].state = {3, 4};
  shards[1].table = 1;
  shards[1].sparse = true;
  shards[1].dim = 1;
  shards[1].keys = {99};
  shards[1].row_steps = {4};
  shards[1].params = {5};
  ByteWriter w;
  WriteReplHeader(w, {ReplKind::kSnapshot, 12, 3, kNoServer});
  std::vector<uint64_t> keys;
  std::vector<float> values;
  EncodeSnapshot(clocks, shards, w, &keys, &values);
  const std::vector<uint8_t> body = w.Take();
  // The 64-bit frame: the sparse shard's key, then its row step.
  EXPECT_EQ(keys, (std::vector<uint64_t>{99, 4}));
  auto frames = SnapshotFramesOf(keys, values);
  ASSERT_TRUE(frames.ok()) << frames.status().ToString();
  ASSERT_EQ(frames->row_steps.size(), 1u);
  EXPECT_EQ(frames->row_steps[0], 4);

  ByteReader r(body.data(), body.size());
  ReplHeader h;
  ASSERT_TRUE(ReadReplHeader(r, &h).ok());
  EXPECT_EQ(h.kind, ReplKind::kSnapshot);
  EXPECT_EQ(h.seq, 12u);
  EXPECT_EQ(h.generation, 3u);
  std::vector<TableClocks> got_clocks;
  std::vector<ShardSnapshot> got;
  ASSERT_TRUE(DecodeSnapshot(r, *frames, 2, 2, &got_clocks, &got).ok());
  EXPECT_EQ(got_clocks[0].workers, (std::vector<int64_t>{7, 6}));
  EXPECT_EQ(got_clocks[1].applied, 3);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].params, shards[0].params);
  EXPECT_EQ(got[0].state, shards[0].state);
  EXPECT_EQ(got[0].begin, 10u);
  EXPECT_EQ(got[1].keys, shards[1].keys);
  EXPECT_EQ(got[1].row_steps, shards[1].row_steps);

  ByteReader other(body.data() + 17, body.size() - 17);  // past the header
  Status s = DecodeSnapshot(other, *frames, 2, 3, &got_clocks, &got);
  EXPECT_NE(s.message().find("2 workers, this job has 3"), std::string::npos) << s.message();
  ByteReader again(body.data() + 17, body.size() - 17);
  std::vector<float> short_values(values.begin(), values.end() - 1);
  SnapshotFrames short_frames = *frames;
  short_frames.values = short_values;
  s = DecodeSnapshot(again, short_frames, 2, 2, &got_clocks, &got);
  EXPECT_NE(s.message().find("larger than its frames"), std::string::npos) << s.message();
}

// A snapshot's row steps are int64 of their own, not keys: negative and
// extreme counts survive, and a frame that cannot hold keys and as many
// steps is refused before any shard is read.
TEST(ReplCodecTest, RowStepsTravelAsTypedInt64BesideTheKeys) {
  std::vector<ShardSnapshot> shards(2);
  for (int i = 0; i < 2; ++i) {
    shards[i].table = static_cast<uint32_t>(i);
    shards[i].sparse = true;
    shards[i].dim = 1;
  }
  shards[0].keys = {7, 8};
  shards[0].row_steps = {-1, std::numeric_limits<int64_t>::max()};
  shards[0].params = {1, 2};
  shards[1].keys = {UINT64_MAX};
  shards[1].row_steps = {std::numeric_limits<int64_t>::min()};
  shards[1].params = {3};
  ByteWriter w;
  std::vector<uint64_t> words;
  std::vector<float> values;
  EncodeSnapshot({{0, {0}}, {0, {0}}}, shards, w, &words, &values);
  const std::vector<uint8_t> body = w.Take();
  auto frames = SnapshotFramesOf(words, values);
  ASSERT_TRUE(frames.ok());
  EXPECT_EQ(std::vector<uint64_t>(frames->keys.begin(), frames->keys.end()),
            (std::vector<uint64_t>{7, 8, UINT64_MAX}));
  ByteReader r(body.data(), body.size());
  std::vector<TableClocks> clocks;
  std::vector<ShardSnapshot> got;
  ASSERT_TRUE(DecodeSnapshot(r, *frames, 2, 1, &clocks, &got).ok());
  EXPECT_EQ(got[0].keys, shards[0].keys);
  EXPECT_EQ(got[0].row_steps, shards[0].row_steps);
  EXPECT_EQ(got[1].keys, shards[1].keys);
  EXPECT_EQ(got[1].row_steps, shards[1].row_steps);

  words.pop_back();  // three words: not keys and as many steps
  auto odd = SnapshotFramesOf(words, values);
  ASSERT_FALSE(odd.ok());
  EXPECT_NE(odd.status().message().find("as many row steps"), std::string::npos);
}

TEST(ReplCodecTest, UnknownKindIsRefused) {
  ByteWriter w;
  WriteReplHeader(w, {ReplKind::kUpdate, 1, 0, 2});
  std::vector<uint8_t> body = w.Take();
  body[0] = 9;
  ByteReader r(body.data(), body.size());
  ReplHeader h;
  EXPECT_FALSE(ReadReplHeader(r, &h).ok());
}

// ---- CheckpointWriter ----

class CheckpointWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("distopt-ckpt-writer-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static CheckpointJob Job(int64_t step, uint32_t generation) {
    CheckpointJob job;
    job.step = step;
    job.partition = 1;
    job.generation = generation;
    ShardSnapshot snap;
    snap.step = step;
    snap.params = {1, 2, 3};
    job.shards.push_back(snap);
    job.report.sender = 7;
    job.report.epoch = 4;
    return job;
  }
  std::filesystem::path dir_;
};

TEST_F(CheckpointWriterTest, WritesInOrderThenReportsWithTheSnapshotsEpoch) {
  RecordingTransport t;
  {
    CheckpointWriter w(dir_.string(), &t, Logger());
    w.Submit(Job(50, 0));
    w.Submit(Job(100, 0));
    w.Flush();
    EXPECT_EQ(w.stats().written, 2u);
  }
  auto reports = t.SentTo(kCoordinatorId);
  ASSERT_EQ(reports.size(), 2u);
  int64_t prev = -1;
  for (const Message& m : reports) {
    EXPECT_EQ(m.type, MsgType::kCheckpoint);
    EXPECT_EQ(m.epoch, 4u);
    auto r = DecodeCheckpointReport(m.body.data(), m.body.size());
    ASSERT_TRUE(r.ok());
    EXPECT_GT(r->step, prev);
    prev = r->step;
    ASSERT_EQ(r->files.size(), 1u);
    auto shard = ReadShard(CheckpointDir(dir_.string(), r->step) + "/" + r->files[0].name);
    ASSERT_TRUE(shard.ok()) << shard.status().message();
    EXPECT_EQ(shard->params, (std::vector<float>{1, 2, 3}));
  }
}

TEST_F(CheckpointWriterTest, AFailedWriteIsCountedAndNotReported) {
  RecordingTransport t;
  std::filesystem::create_directories(dir_.parent_path());
  std::ofstream(dir_) << "a file where the run folder should be";
  CheckpointWriter w(dir_.string(), &t, Logger());
  w.Submit(Job(50, 0));
  w.Flush();
  EXPECT_EQ(w.stats().failed, 1u);
  EXPECT_TRUE(t.SentTo(kCoordinatorId).empty());
}

TEST_F(CheckpointWriterTest, JobsOfARolledBackGenerationAreDroppedUnwritten) {
  RecordingTransport t;
  CheckpointWriter w(dir_.string(), &t, Logger(), /*max_queued=*/8);
  for (int i = 1; i <= 6; ++i) w.Submit(Job(i * 10, i <= 3 ? 0 : 1));
  w.DropBefore(1);
  w.Flush();
  const CheckpointWriterStats s = w.stats();
  // The first job may have been taken before the rollback: it is written.
  EXPECT_EQ(s.written + s.dropped, 6u);
  EXPECT_GE(s.dropped, 2u);
  EXPECT_EQ(t.SentTo(kCoordinatorId).size(), s.written);
  for (const Message& m : t.SentTo(kCoordinatorId)) {
    auto r = DecodeCheckpointReport(m.body.data(), m.body.size());
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->step <= 10 || r->step >= 40) << r->step;
  }
}

TEST_F(CheckpointWriterTest, AFailedFsyncLosesOnlyThatCheckpointAndLeavesNoTempFile) {
  RecordingTransport t;
  FaultyEnv env(Env::Default(), FaultPlan{.fail_sync = 1});
  CheckpointWriter w(dir_.string(), &t, Logger(), 2, &env);
  w.Submit(Job(50, 0));
  w.Submit(Job(100, 0));
  w.Flush();
  EXPECT_EQ(env.faults(), 1u);
  EXPECT_EQ(w.stats().failed, 1u);
  EXPECT_EQ(w.stats().written, 1u);
  auto reports = t.SentTo(kCoordinatorId);
  ASSERT_EQ(reports.size(), 1u);
  auto r = DecodeCheckpointReport(reports[0].body.data(), reports[0].body.size());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->step, 100);  // the failed one is never reported
  for (const auto& e : std::filesystem::directory_iterator(CheckpointDir(dir_.string(), 50))) {
    ADD_FAILURE() << "left behind: " << e.path();
  }
}

TEST_F(CheckpointWriterTest, AShortWriteIsCaughtWhenTheShardIsRead) {
  RecordingTransport t;
  // Appends: header, params, state, steps, trailer; cut the params short.
  FaultyEnv env(Env::Default(), FaultPlan{.short_append = 2});
  CheckpointWriter w(dir_.string(), &t, Logger(), 2, &env);
  w.Submit(Job(50, 0));
  w.Flush();
  ASSERT_EQ(env.faults(), 1u);
  auto reports = t.SentTo(kCoordinatorId);
  ASSERT_EQ(reports.size(), 1u);  // the writer cannot tell ...
  auto r = DecodeCheckpointReport(reports[0].body.data(), reports[0].body.size());
  ASSERT_TRUE(r.ok());
  const std::string path = CheckpointDir(dir_.string(), 50) + "/" + r->files[0].name;
  auto shard = ReadShard(path);  // ... but the reader can: never trusted
  EXPECT_FALSE(shard.ok());
  EXPECT_EQ(shard.status().code(), StatusCode::kDataLoss) << shard.status().message();
}

TEST_F(CheckpointWriterTest, AFailedRenameKeepsTheFileThatWasThere) {
  RecordingTransport t;
  {
    CheckpointWriter w(dir_.string(), &t, Logger());
    w.Submit(Job(50, 0));
  }
  FaultyEnv env(Env::Default(), FaultPlan{.fail_rename = 1});
  CheckpointWriter w(dir_.string(), &t, Logger(), 2, &env);
  CheckpointJob again = Job(50, 0);
  again.shards[0].params = {9, 9, 9};
  w.Submit(std::move(again));
  w.Flush();
  EXPECT_EQ(w.stats().failed, 1u);
  auto reports = t.SentTo(kCoordinatorId);
  ASSERT_EQ(reports.size(), 1u);
  auto r = DecodeCheckpointReport(reports[0].body.data(), reports[0].body.size());
  auto shard = ReadShard(CheckpointDir(dir_.string(), 50) + "/" + r->files[0].name);
  ASSERT_TRUE(shard.ok()) << shard.status().message();
  EXPECT_EQ(shard->params, (std::vector<float>{1, 2, 3}));
}

TEST(FaultyEnvTest, ManualClock) {
  FaultyEnv env(Env::Default());
  const SteadyTime t0 = SteadyTime() + std::chrono::hours(1);
  env.SetTime(t0);
  EXPECT_EQ(env.Now(), t0);
  env.SetTime(t0 + std::chrono::seconds(5));
  EXPECT_EQ(env.Now() - t0, std::chrono::seconds(5));
}

TEST_F(CheckpointWriterTest, DestructionWritesWhatIsQueued) {
  RecordingTransport t;
  {
    CheckpointWriter w(dir_.string(), &t, Logger(), /*max_queued=*/8);
    for (int i = 1; i <= 5; ++i) w.Submit(Job(i * 10, 0));
  }
  EXPECT_EQ(t.SentTo(kCoordinatorId).size(), 5u);
}

// ---- CheckPayload ----

// A dense table "w" of 40000 floats (sliced over 3 partitions) and a sparse
// table "emb" of dim 3, held by partitions of a 3-server layout.
class RequestCheckTest : public ::testing::Test {
 protected:
  RequestCheckTest() {
    tables_.resize(2);
    tables_[0].id = 0;
    tables_[0].name = "w";
    tables_[0].size = 40000;
    tables_[1].id = 1;
    tables_[1].name = "emb";
    tables_[1].sparse = true;
    tables_[1].dim = 3;
    layout_ = Layout::Compute(tables_, 3);
    for (uint32_t p = 0; p < layout_.replicas.size(); ++p) {
      auto part =
          PartitionReplica::Make(p, false, tables_, layout_, {Consistency::kBsp, 0}, 1, nullptr);
      EXPECT_TRUE(part.ok()) << part.status().ToString();
      parts_.push_back(std::move(*part));
    }
  }
  // The partition holding a slice of "w", and one holding none (if any).
  const PartitionReplica* WithSlice(bool with) const {
    for (const auto& p : parts_) {
      if ((p->table(0).dense != nullptr) == with) return p.get();
    }
    return nullptr;
  }
  static Message Payload(size_t keys, size_t values) {
    Message m;
    m.type = MsgType::kPush;
    std::vector<uint64_t> k(keys);
    for (size_t i = 0; i < keys; ++i) k[i] = i;
    if (keys > 0) m.keys = Buffer::FromVector(std::move(k));
    if (values > 0) m.values = Buffer::FromVector(std::vector<float>(values, 1.0f));
    return m;
  }
  std::string Error(const TableReplica& t, const KvHeader& head, const Message& m,
                    bool has_values) const {
    return CheckPayload(t, layout_, head, m, has_values).message();
  }

  std::vector<TableSpec> tables_;
  Layout layout_;
  std::vector<std::unique_ptr<PartitionReplica>> parts_;
};

TEST_F(RequestCheckTest, ADensePushCarriesExactlyItsSliceAndNoKeys) {
  const PartitionReplica* p = WithSlice(true);
  ASSERT_NE(p, nullptr);
  const TableReplica& w = p->table(0);
  const size_t n = w.dense->size();
  EXPECT_TRUE(CheckPayload(w, layout_, {}, Payload(0, n), true).ok());
  EXPECT_TRUE(CheckPayload(w, layout_, {}, Payload(0, 0), false).ok());  // a pull
  EXPECT_NE(Error(w, {}, Payload(0, n - 1), true)
                .find("table 'w': expected " + std::to_string(n) + " values for the slice at " +
                      std::to_string(w.dense->begin()) + ", got " + std::to_string(n - 1)),
            std::string::npos);
  EXPECT_NE(Error(w, {}, Payload(0, n), false).find("expected 0 values"), std::string::npos);
  EXPECT_NE(Error(w, {}, Payload(2, n), true).find("keys sent to a dense table"),
            std::string::npos);
  EXPECT_NE(Error(w, {.sparse = true}, Payload(2, 6), true).find("dense table addressed with keys"),
            std::string::npos);
  if (const PartitionReplica* none = WithSlice(false)) {
    EXPECT_NE(Error(none->table(0), {}, Payload(0, n), true).find("holds no slice of it"),
              std::string::npos);
  }
}

TEST_F(RequestCheckTest, ASparsePushCarriesDimValuesPerKeyOfItsOwnPartition) {
  const TableReplica& emb = parts_[0]->table(1);
  // Keys of partition 0 only, and one of another partition.
  std::vector<uint64_t> mine, other;
  for (uint64_t k = 0; mine.size() < 4 || other.empty(); ++k) {
    (layout_.SparsePartition(k) == 0 ? mine : other).push_back(k);
  }
  Message m;
  m.keys = Buffer::FromVector(mine);
  m.values = Buffer::FromVector(std::vector<float>(mine.size() * 3, 1.0f));
  const KvHeader sparse{.table = 1, .sparse = true};
  EXPECT_TRUE(CheckPayload(emb, layout_, sparse, m, true).ok());
  Message pull = m;
  pull.values = Buffer();
  EXPECT_TRUE(CheckPayload(emb, layout_, sparse, pull, false).ok());
  Message short_rows = m;
  short_rows.values = Buffer::FromVector(std::vector<float>(mine.size() * 3 - 1, 1.0f));
  EXPECT_NE(Error(emb, sparse, short_rows, true).find("table 'emb': 11 values for 4 keys of dim 3"),
            std::string::npos);
  Message stray = m;
  std::vector<uint64_t> keys = mine;
  keys.back() = other.front();
  stray.keys = Buffer::FromVector(keys);
  EXPECT_NE(Error(emb, sparse, stray, true)
                .find("key " + std::to_string(other.front()) + " belongs to partition " +
                      std::to_string(layout_.SparsePartition(other.front())) + ", not 0"),
            std::string::npos);
  EXPECT_NE(Error(emb, {.table = 1}, m, true).find("sparse table addressed as dense"),
            std::string::npos);
}

}  // namespace
}  // namespace distopt
