#include "cluster/role_policy.h"

#include <gtest/gtest.h>

namespace distopt {
namespace {

Message Of(MsgType t) {
  Message m;
  m.type = t;
  return m;
}

TEST(RolePolicy, AWorkerCannotOrderAShutdownARollbackOrACheckpoint) {
  for (MsgType t : {MsgType::kShutdown, MsgType::kMembership, MsgType::kRegisterReply,
                    MsgType::kBarrierRelease, MsgType::kCheckpoint, MsgType::kReplicate,
                    MsgType::kReplicaSynced, MsgType::kPushAck, MsgType::kPullReply}) {
    EXPECT_FALSE(MaySend("worker/3", Of(t))) << MsgTypeName(t);
  }
  for (MsgType t :
       {MsgType::kRegister, MsgType::kHeartbeat, MsgType::kBarrier, MsgType::kDone, MsgType::kAbort,
        MsgType::kPush, MsgType::kPull, MsgType::kPushPull, MsgType::kClock}) {
    EXPECT_TRUE(MaySend("worker/3", Of(t))) << MsgTypeName(t);
  }
}

// OnlyWorkerZeroMarksTheCheckpointClock moved with the rule to
// kv/kv_message_test.cc: the checkpoint bit lives in kv's header.

TEST(RolePolicy, ServersServeAndReplicateButDoNotPush) {
  for (MsgType t : {MsgType::kPushAck, MsgType::kPullReply, MsgType::kKvError, MsgType::kReplicate,
                    MsgType::kReplicateAck, MsgType::kCheckpoint, MsgType::kReplicaSynced,
                    MsgType::kRegister, MsgType::kHeartbeat}) {
    EXPECT_TRUE(MaySend("server/1", Of(t))) << MsgTypeName(t);
  }
  for (MsgType t :
       {MsgType::kPush, MsgType::kPull, MsgType::kShutdown, MsgType::kMembership, MsgType::kDone}) {
    EXPECT_FALSE(MaySend("server/1", Of(t))) << MsgTypeName(t);
  }
}

TEST(RolePolicy, TheCoordinatorOnlyGovernsAndUnknownNamesSendNothing) {
  for (MsgType t : {MsgType::kShutdown, MsgType::kMembership, MsgType::kRegisterReply,
                    MsgType::kBarrierRelease, MsgType::kHeartbeat}) {
    EXPECT_TRUE(MaySend("coordinator", Of(t))) << MsgTypeName(t);
  }
  EXPECT_FALSE(MaySend("coordinator", Of(MsgType::kPush)));
  EXPECT_FALSE(MaySend("coordinator", Of(MsgType::kRegister)));
  for (const char* bad : {"", "worker", "worker/", "worker/x", "worker/-1", "admin/0",
                          "coordinator/0", "worker/1/2"}) {
    EXPECT_FALSE(MaySend(bad, Of(MsgType::kHeartbeat))) << bad;
  }
}

TEST(NodeName, RoundTrips) {
  EXPECT_EQ(FormatNodeName(Role::kWorker, 3), "worker/3");
  EXPECT_EQ(FormatNodeName(Role::kCoordinator, -1), "coordinator");
  auto n = ParseNodeName("server/12");
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->role, Role::kServer);
  EXPECT_EQ(n->rank, 12);
}

}  // namespace
}  // namespace distopt
