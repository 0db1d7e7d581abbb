// KvJobPolicy, the coordinator's kv decisions, driven by hand: views and
// reports in, actions, manifest files and manifest copies out. The
// decisions themselves are FailoverPolicy's and CheckpointCommit's (their
// own tests); these tests check they reach the coordinator as actions.
#include "kv/job_policy.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "kv/testing/recording_transport.h"

namespace distopt {
namespace {

std::vector<TableSpec> Tables() {
  TableSpec t;
  t.name = "w";
  t.size = 2 * Layout::kMinSliceFloats;
  return {t};
}

// Servers 0..1 as nodes 10 + rank unless given, a worker as node 20.
ClusterView View(uint32_t epoch, std::vector<bool> server_alive = {true, true}) {
  ClusterView v;
  v.epoch = epoch;
  v.num_servers = 2;
  v.num_workers = 1;
  for (uint32_t r = 0; r < server_alive.size(); ++r) {
    Member m{10 + r, Role::kServer, r, "inproc://s" + std::to_string(r)};
    m.alive = server_alive[r];
    v.members.push_back(m);
  }
  v.members.push_back({20, Role::kWorker, 0, "inproc://w0"});
  return v;
}

Message Report(uint32_t rank, int64_t step, uint32_t epoch) {
  CheckpointReport r;
  r.step = step;
  r.server_rank = rank;
  r.files = {{"server-" + std::to_string(rank) + ".table-0.shard", 64, 7}};
  Message m;
  m.type = MsgType::kCheckpoint;
  m.sender = 10 + rank;
  m.epoch = epoch;
  m.body = Buffer::FromVector(EncodeCheckpointReport(r));
  return m;
}

class KvJobPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() /
            ("job_policy_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<KvJobPolicy> Make(uint32_t replication, bool checkpoints) {
    CheckpointOptions ck;
    ck.run_dir = checkpoints ? dir_ : "";
    ck.enabled = checkpoints;
    auto p = KvJobPolicy::Make(Tables(), 2, replication, ck, &transport_, Logger());
    EXPECT_TRUE(p.ok()) << p.status().message();
    return p.ok() ? std::move(*p) : nullptr;
  }

  std::string dir_;
  RecordingTransport transport_;
};

TEST_F(KvJobPolicyTest, RefusesAReplicationTheServersCannotGive) {
  auto three = KvJobPolicy::Make(Tables(), 2, 3, {}, &transport_, Logger());
  EXPECT_EQ(three.status().code(), StatusCode::kInvalidArgument);
  auto alone = KvJobPolicy::Make(Tables(), 1, 2, {}, &transport_, Logger());
  EXPECT_NE(alone.status().message().find("need 1, or 2 with >= 2"), std::string::npos)
      << alone.status().message();
}

TEST_F(KvJobPolicyTest, ResumingWithoutACheckpointSaysWhereItLooked) {
  CheckpointOptions ck;
  ck.run_dir = dir_;
  ck.enabled = true;
  ck.resume = true;
  auto p = KvJobPolicy::Make(Tables(), 2, 1, ck, &transport_, Logger());
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("cannot resume " + dir_), std::string::npos)
      << p.status().message();
}

TEST_F(KvJobPolicyTest, AnOwnerLostWithItsBackupInSyncIsAPublishedTakeover) {
  auto policy = Make(2, false);
  EXPECT_TRUE(policy->tolerates_server_loss());
  auto first = Layout::Decode(policy->FirstLayout(View(1)));
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->replicas[0].owner, 0u);
  ASSERT_TRUE(first->replicas[0].synced);
  JobAction a = policy->OnViewChange(View(2, {false, true}));
  ASSERT_TRUE(a.failure.ok()) << a.failure.message();
  ASSERT_TRUE(a.layout.has_value());
  auto next = Layout::Decode(*a.layout);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->replicas[0].owner, 1u);
  EXPECT_EQ(next->generation, first->generation);  // a failover, not a rollback
}

TEST_F(KvJobPolicyTest, AServerLostWithoutACopyOrCheckpointEndsTheJob) {
  auto policy = Make(1, false);
  EXPECT_FALSE(policy->tolerates_server_loss());
  policy->FirstLayout(View(1));
  JobAction a = policy->OnViewChange(View(2, {true, false}));
  EXPECT_FALSE(a.failure.ok());
  EXPECT_FALSE(a.layout.has_value());
}

TEST_F(KvJobPolicyTest, ACheckpointReportedByEveryPartitionIsCommittedAndCopiedToServers) {
  auto policy = Make(1, true);
  policy->FirstLayout(View(1));
  const std::string manifest = CheckpointDir(dir_, 50) + "/" + kManifestName;
  EXPECT_FALSE(policy->OnReport(Report(0, 50, 1), View(1)).layout.has_value());
  EXPECT_FALSE(std::filesystem::exists(manifest));  // partition 1 has not reported
  policy->OnReport(Report(1, 50, 1), View(1));
  ASSERT_TRUE(std::filesystem::exists(manifest));
  auto man = ReadManifest(CheckpointDir(dir_, 50));
  ASSERT_TRUE(man.ok()) << man.status().message();
  EXPECT_EQ(man->files.size(), 2u);
  for (NodeId server : {10u, 11u}) {
    std::vector<Message> sent = transport_.SentTo(server);
    ASSERT_EQ(sent.size(), 1u) << "server node " << server;
    EXPECT_EQ(sent[0].type, MsgType::kManifest);
    auto copy = DecodeManifestCopy(sent[0].body.data(), sent[0].body.size());
    ASSERT_TRUE(copy.ok()) << copy.status().message();
    EXPECT_EQ(copy->step, 50);  // the step travels in the copy's body, not the wire header
  }
  EXPECT_TRUE(transport_.SentTo(20).empty());  // workers keep no manifests
}

TEST_F(KvJobPolicyTest, AfterARollbackReportsOfTheAbandonedRunCommitNothing) {
  auto policy = Make(1, true);
  policy->FirstLayout(View(1));
  policy->OnReport(Report(0, 0, 1), View(1));
  policy->OnReport(Report(1, 0, 1), View(1));   // checkpoint 0 committed
  policy->OnReport(Report(0, 50, 1), View(1));  // half of 50, then server/1 dies
  JobAction wait = policy->OnViewChange(View(2, {true, false}));
  EXPECT_FALSE(wait.layout.has_value());  // waits for the restart
  ClusterView back = View(3);
  back.members[1].id = 12;  // the restarted server/1
  JobAction a = policy->OnViewChange(back);
  ASSERT_TRUE(a.failure.ok()) << a.failure.message();
  ASSERT_TRUE(a.layout.has_value());
  auto rolled = Layout::Decode(*a.layout);
  ASSERT_TRUE(rolled.ok());
  EXPECT_EQ(rolled->restore_step, 0);
  EXPECT_EQ(rolled->generation, 1u);
  // server/1's report of 50 from before the rollback (epoch 3, published as
  // 4) must not complete the abandoned run's half.
  Message stale = Report(1, 50, 3);
  stale.sender = 12;
  policy->OnReport(stale, back);
  EXPECT_FALSE(std::filesystem::exists(CheckpointDir(dir_, 50) + "/" + kManifestName));
  // The replay's own reports do.
  policy->OnReport(Report(0, 50, 4), back);
  stale.epoch = 4;
  policy->OnReport(stale, back);
  EXPECT_TRUE(std::filesystem::exists(CheckpointDir(dir_, 50) + "/" + kManifestName));
}

}  // namespace
}  // namespace distopt
