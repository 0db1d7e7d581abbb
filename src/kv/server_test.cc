// Unit tests of KvServer as a whole, without a cluster: one server fed
// messages by hand, its replies read from a RecordingTransport. The cases
// are the ones about epochs and rollbacks, where a message of one membership
// epoch reaching a server still in another must neither be lost nor applied
// to the wrong generation.
#include "kv/server.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "kv/checkpoint.h"
#include "kv/checkpoint_commit.h"
#include "kv/kv_message.h"
#include "kv/testing/recording_transport.h"

namespace distopt {
namespace {

constexpr NodeId kServerNode = 1;
constexpr NodeId kWorker0 = 2;
constexpr NodeId kWorker1 = 3;
constexpr uint64_t kSize = 8;

std::vector<TableSpec> Tables() {
  TableSpec t;
  t.name = "w";
  t.size = kSize;
  t.optimizer.lr = 1.0f;  // plain SGD with step 1: the value moves by the mean gradient
  return {t};
}

ClusterView View(uint32_t epoch, const Layout& layout) {
  ClusterView v;
  v.epoch = epoch;
  v.num_servers = 1;
  v.num_workers = 2;
  v.members = {{kServerNode, Role::kServer, 0, "inproc://s0"},
               {kWorker0, Role::kWorker, 0, "inproc://w0"},
               {kWorker1, Role::kWorker, 1, "inproc://w1"}};
  v.layout = layout.Encode();
  return v;
}

Message Push(NodeId from, uint32_t epoch, int64_t clock, float grad, uint64_t request_id) {
  Message m;
  m.type = MsgType::kPush;
  m.sender = from;
  m.epoch = epoch;
  m.request_id = request_id;
  m.body = EncodeKvBody({.table = 0, .partition = 0, .clock = clock, .offset = 0});
  m.values = Buffer::FromVector(std::vector<float>(kSize, grad));
  return m;
}

Message Pull(NodeId from, uint32_t epoch, int64_t clock, uint64_t request_id) {
  Message m = Push(from, epoch, clock, 0, request_id);
  m.type = MsgType::kPull;
  m.values = Buffer();
  return m;
}

// The last reply to `node`, which must exist.
Message LastTo(const RecordingTransport& t, NodeId node) {
  std::vector<Message> sent = t.SentTo(node);
  EXPECT_FALSE(sent.empty()) << "nothing was sent to node " << node;
  return sent.empty() ? Message() : sent.back();
}

class KvServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() /
            ("kv_server_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    layout_ = Layout::Compute(Tables(), 1);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  KvServerOptions Options(int64_t checkpoint_every) {
    KvServerOptions o;
    o.tables = Tables();
    o.consistency = {Consistency::kBsp, 0};
    o.run_dir = dir_;
    o.checkpoint_every_steps = checkpoint_every;
    o.on_fatal = [this](const std::string& reason) { fatal_.push_back(reason); };
    return o;
  }

  // The layout of the same job rolled back to checkpoint `step`.
  Layout RolledBack(int64_t step) const {
    Layout l = layout_;
    l.restore_step = step;
    l.generation = layout_.generation + 1;
    return l;
  }

  // Does the coordinator's part of a checkpoint: the server's reports so far
  // become the manifest of `step`.
  void CommitCheckpoint(int64_t step) {
    CheckpointCommit commit(1, TablesHash(Tables(), 1));
    for (const Message& m : transport_.SentTo(kCoordinatorId)) {
      if (m.type != MsgType::kCheckpoint) continue;
      auto report = DecodeCheckpointReport(m.body.data(), m.body.size());
      ASSERT_TRUE(report.ok()) << report.status().message();
      if (auto man = commit.Add(*report, m.epoch); man && man->step == step) {
        ASSERT_TRUE(WriteManifest(CheckpointDir(dir_, step), *man).ok());
        return;
      }
    }
    FAIL() << "the server reported no complete checkpoint " << step;
  }

  std::string dir_;
  Layout layout_;
  RecordingTransport transport_;
  std::vector<std::string> fatal_;
};

TEST_F(KvServerTest, RequestsBeforeStartAreAnsweredOnceTheServerStarts) {
  KvServer server(Options(0), &transport_, Logger());
  server.HandleMessage(Pull(kWorker0, 1, 0, 7));
  EXPECT_TRUE(transport_.SentTo(kWorker0).empty());
  ASSERT_TRUE(server.Start(0, View(1, layout_)).ok());
  Message reply = LastTo(transport_, kWorker0);
  EXPECT_EQ(reply.type, MsgType::kPullReply);
  EXPECT_EQ(reply.request_id, 7u);
  EXPECT_EQ(reply.num_values(), kSize);
  EXPECT_EQ(server.stats().held, 1u);
}

TEST_F(KvServerTest, APushOfAnEpochTheServerHasNotSeenWaitsForThatView) {
  KvServer server(Options(0), &transport_, Logger());
  ASSERT_TRUE(server.Start(0, View(1, layout_)).ok());
  const float before = server.DenseValues(0).at(0)[0];
  // Worker 0 already saw epoch 2 (which may be a rollback): its push must not
  // touch the state of epoch 1.
  server.HandleMessage(Push(kWorker0, 2, 0, 1.0f, 11));
  server.HandleMessage(Push(kWorker1, 1, 0, 3.0f, 12));
  EXPECT_EQ(server.stats().pushes, 1u);
  EXPECT_EQ(server.stats().updates, 0u);
  EXPECT_EQ(server.DenseValues(0).at(0)[0], before);
  server.OnViewChange(View(2, layout_));
  EXPECT_EQ(server.stats().pushes, 2u);
  EXPECT_EQ(server.stats().updates, 1u);
  EXPECT_FLOAT_EQ(server.DenseValues(0).at(0)[0], before - 2.0f);  // mean of 1 and 3
  EXPECT_EQ(LastTo(transport_, kWorker0).type, MsgType::kPushAck);
  EXPECT_EQ(LastTo(transport_, kWorker0).request_id, 11u);
}

TEST_F(KvServerTest, AfterARollbackPushesOfTheAbandonedEpochsAreRefused) {
  KvServer server(Options(1), &transport_, Logger());
  ASSERT_TRUE(server.Start(0, View(1, layout_)).ok());
  server.FlushCheckpoints();  // checkpoint 0: the initial values
  CommitCheckpoint(0);
  const float initial = server.DenseValues(0).at(0)[0];
  server.HandleMessage(Push(kWorker0, 1, 0, 1.0f, 1));
  server.HandleMessage(Push(kWorker1, 1, 0, 1.0f, 2));
  ASSERT_EQ(server.stats().updates, 1u);
  ASSERT_NE(server.DenseValues(0).at(0)[0], initial);

  server.OnViewChange(View(2, RolledBack(0)));
  EXPECT_TRUE(fatal_.empty()) << fatal_.front();
  EXPECT_EQ(server.DenseValues(0).at(0)[0], initial);
  transport_.Clear();
  // A push of clock 0 sent in epoch 1 (before the worker learnt of the
  // rollback) would replay clock 0 with a gradient of the old generation.
  server.HandleMessage(Push(kWorker0, 1, 0, 5.0f, 3));
  Message refused = LastTo(transport_, kWorker0);
  EXPECT_EQ(refused.type, MsgType::kKvError);
  EXPECT_EQ(refused.status, static_cast<uint32_t>(StatusCode::kAborted));
  EXPECT_EQ(refused.request_id, 3u);
  // The same clock sent again in epoch 2 is applied.
  server.HandleMessage(Push(kWorker0, 2, 0, 2.0f, 4));
  server.HandleMessage(Push(kWorker1, 2, 0, 2.0f, 5));
  EXPECT_EQ(LastTo(transport_, kWorker0).type, MsgType::kPushAck);
  EXPECT_FLOAT_EQ(server.DenseValues(0).at(0)[0], initial - 2.0f);
}

TEST_F(KvServerTest, ARollbackWhoseCheckpointDoesNotLoadStopsTheJob) {
  KvServer server(Options(0), &transport_, Logger());
  ASSERT_TRUE(server.Start(0, View(1, layout_)).ok());
  server.OnViewChange(View(2, RolledBack(40)));  // no checkpoint 40 exists
  ASSERT_EQ(fatal_.size(), 1u);
  EXPECT_NE(fatal_[0].find("server/0 cannot roll back to checkpoint 40"), std::string::npos)
      << fatal_[0];
  EXPECT_NE(fatal_[0].find(CheckpointDir(dir_, 40)), std::string::npos) << fatal_[0];
}

}  // namespace
}  // namespace distopt
