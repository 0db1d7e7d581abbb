// The kv header codec (kv/kv_message.h) and kv's role rule on it
// (kv/kv_role_policy.h).
#include "kv/kv_message.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kv/kv_role_policy.h"
#include "kv/layout.h"

namespace distopt {
namespace {

Message Kv(MsgType type, const KvHeader& h, std::string_view rest = {}) {
  Message m;
  m.type = type;
  m.body = EncodeKvBody(h, rest);
  return m;
}

// `m` with its body's bytes [at, at + n) replaced by `v`.
Message Patched(const Message& m, size_t at, const void* v, size_t n) {
  std::vector<uint8_t> b(m.body.data(), m.body.data() + m.body.size());
  std::memcpy(b.data() + at, v, n);
  Message out = m;
  out.body = Buffer::FromVector(std::move(b));
  return out;
}

std::string ErrorOf(const Message& m) {
  auto h = DecodeKvHeader(m);
  EXPECT_FALSE(h.ok()) << "accepted a bad kv header of a " << MsgTypeName(m.type);
  if (h.ok()) return "";
  EXPECT_EQ(h.status().code(), StatusCode::kInvalidArgument);
  return h.status().message();
}

TEST(KvHeaderTest, RoundTripsEveryField) {
  const KvHeader push{.table = 3,
                      .partition = 5,
                      .clock = -1,
                      .offset = kMaxDenseSize - 1,
                      .sparse = false,
                      .checkpoint = true};
  const KvHeader sparse{.table = 0xFFFFFFFFu, .partition = 7, .clock = INT64_MAX, .sparse = true};
  const std::vector<std::pair<MsgType, KvHeader>> cases = {
      {MsgType::kPush, push},        {MsgType::kPushPull, push},        {MsgType::kPull, sparse},
      {MsgType::kPullReply, sparse}, {MsgType::kPushAck, {.clock = 9}}, {MsgType::kClock, {}}};
  for (const auto& [type, in] : cases) {
    auto out = DecodeKvHeader(Kv(type, in));
    ASSERT_TRUE(out.ok()) << MsgTypeName(type) << ": " << out.status().ToString();
    EXPECT_EQ(out->table, in.table);
    EXPECT_EQ(out->partition, in.partition);
    EXPECT_EQ(out->clock, in.clock);
    EXPECT_EQ(out->offset, in.offset);
    EXPECT_EQ(out->sparse, in.sparse);
    EXPECT_EQ(out->checkpoint, in.checkpoint);
  }
}

TEST(KvHeaderTest, LayoutIsTheDocumentedTwentyEightLittleEndianBytes) {
  Message m = Kv(MsgType::kPush, {.table = 0x01020304,
                                  .partition = 0x0A0B0C0D,
                                  .clock = 0x1122334455667788,
                                  .offset = 0x0000000123456789,
                                  .sparse = false,
                                  .checkpoint = true});
  ASSERT_EQ(m.body.size(), kKvHeaderSize);
  ASSERT_EQ(kKvHeaderSize, 28u);
  const uint8_t* b = m.body.data();
  uint32_t table, partition, flags;
  int64_t clock;
  uint64_t offset;
  std::memcpy(&table, b + 0, 4);
  std::memcpy(&partition, b + 4, 4);
  std::memcpy(&clock, b + 8, 8);
  std::memcpy(&offset, b + 16, 8);
  std::memcpy(&flags, b + 24, 4);
  EXPECT_EQ(b[0], 0x04);  // little-endian
  EXPECT_EQ(table, 0x01020304u);
  EXPECT_EQ(partition, 0x0A0B0C0Du);
  EXPECT_EQ(clock, 0x1122334455667788);
  EXPECT_EQ(offset, 0x0000000123456789u);
  EXPECT_EQ(flags, kKvCheckpoint);
}

TEST(KvHeaderTest, TruncatedBodyIsRefused) {
  const Message whole = Kv(MsgType::kPull, {.table = 1, .clock = 4});
  for (size_t cut = 0; cut < kKvHeaderSize; ++cut) {
    Message m = whole;
    m.body = whole.body.Slice(0, cut);
    EXPECT_NE(ErrorOf(m).find("body of " + std::to_string(cut) + " bytes, the header takes 28"),
              std::string::npos)
        << "cut at " << cut;
  }
}

TEST(KvHeaderTest, OnlyTheTypesOwnBytesMayFollowTheHeader) {
  EXPECT_NE(ErrorOf(Kv(MsgType::kPush, {}, "x")).find("1 bytes after the header, expected 0"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Kv(MsgType::kReplicateAck, {}, "1234")).find("expected 8"), std::string::npos);
  EXPECT_TRUE(DecodeKvHeader(Kv(MsgType::kReplicateAck, {}, "12345678")).ok());
  EXPECT_TRUE(DecodeKvHeader(Kv(MsgType::kReplicate, {}, "any replication body")).ok());
  const Message error = Kv(MsgType::kKvError, {.table = 2}, "table 'w': no such slice");
  ASSERT_TRUE(DecodeKvHeader(error).ok());
  EXPECT_EQ(KvErrorReason(error), "table 'w': no such slice");
  const Message ack = Kv(MsgType::kReplicateAck, {}, std::string_view("\x2a\0\0\0\0\0\0\0", 8));
  ByteReader rest = KvBodyRest(ack);
  uint64_t seq = 0;
  ASSERT_TRUE(rest.U64(&seq).ok());
  EXPECT_EQ(seq, 42u);
}

TEST(KvHeaderTest, UnknownFlagBitsAreRefused) {
  const Message m = Kv(MsgType::kPush, {.table = 1});
  for (uint32_t bit = 3; bit < 32; ++bit) {
    const uint32_t flags = 1u << bit;
    EXPECT_NE(ErrorOf(Patched(m, 24, &flags, 4)).find("unknown flag bits " + std::to_string(flags)),
              std::string::npos)
        << "bit " << bit;
  }
}

// A host's combined push names the workers it speaks for after the header;
// so does a survivor's push of dead workers' slots, dense or sparse.
TEST(KvHeaderTest, AGroupRoundTripsOnAPushOnly) {
  for (MsgType t : {MsgType::kPush, MsgType::kPushPull}) {
    auto out = DecodeKvHeader(Kv(t, {.table = 2, .clock = 4, .group = {1, 5, 9}}));
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(out->group, (std::vector<uint32_t>{1, 5, 9}));
    EXPECT_EQ(out->clock, 4);
  }
  auto sparse = DecodeKvHeader(Kv(MsgType::kPush, {.sparse = true, .group = {3}}));
  ASSERT_TRUE(sparse.ok()) << sparse.status().ToString();
  EXPECT_EQ(sparse->group, (std::vector<uint32_t>{3}));
  EXPECT_TRUE(DecodeKvHeader(Kv(MsgType::kPush, {.table = 2}))->group.empty());
  const uint32_t group = kKvGroup;
  for (MsgType t : {MsgType::kPull, MsgType::kPullReply, MsgType::kHostPush}) {
    const Message m = Patched(Kv(t, {}, std::string(8, '\x01')), 24, &group, 4);
    EXPECT_NE(ErrorOf(m).find("only a push may speak for a group"), std::string::npos)
        << MsgTypeName(t);
  }
  EXPECT_NE(ErrorOf(Kv(MsgType::kPushPull, {.sparse = true, .group = {1}}))
                .find("only a push may speak for a group"),
            std::string::npos);
}

TEST(KvHeaderTest, ABadGroupIsRefused) {
  const Message m = Kv(MsgType::kPush, {.group = {1, 2}});  // n at 28, ranks at 32 and 36
  const uint32_t zero = 0, huge = kMaxGroupSize + 1, three = 3, one = 1;
  EXPECT_NE(ErrorOf(Patched(m, 28, &zero, 4)).find("1 to"), std::string::npos);
  EXPECT_NE(ErrorOf(Patched(m, 28, &huge, 4)).find("1 to"), std::string::npos);
  EXPECT_NE(ErrorOf(Patched(m, 28, &three, 4)).find("a group of 3 ranks in 8 bytes"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Patched(m, 36, &one, 4)).find("not ascending (1 then 1)"), std::string::npos);
  // Bytes after the ranks: a push has no more body.
  Message longer = m;
  std::vector<uint8_t> b(m.body.data(), m.body.data() + m.body.size());
  b.push_back(0);
  longer.body = Buffer::FromVector(std::move(b));
  EXPECT_NE(ErrorOf(longer).find("1 bytes after the header"), std::string::npos);
}

TEST(KvHeaderTest, OnlyAPushAsksForACheckpoint) {
  const uint32_t checkpoint = kKvCheckpoint;
  for (MsgType t : {MsgType::kPull, MsgType::kClock, MsgType::kPullReply, MsgType::kPushAck,
                    MsgType::kReplicate, MsgType::kKvError}) {
    const Message m = Patched(Kv(t, {}), 24, &checkpoint, 4);
    EXPECT_NE(ErrorOf(m).find("only a push may ask for a checkpoint"), std::string::npos)
        << MsgTypeName(t);
  }
}

TEST(KvHeaderTest, OutOfRangeOffsetIsRefused) {
  const Message m = Kv(MsgType::kPush, {});
  for (uint64_t offset : {kMaxDenseSize, kMaxDenseSize + 1, UINT64_MAX}) {
    EXPECT_NE(ErrorOf(Patched(m, 16, &offset, 8))
                  .find("offset " + std::to_string(offset) + " is out of range"),
              std::string::npos);
  }
  const uint64_t last = kMaxDenseSize - 1;
  EXPECT_TRUE(DecodeKvHeader(Patched(m, 16, &last, 8)).ok());
  // A sparse message addresses its partition, never a slice.
  EXPECT_NE(ErrorOf(Kv(MsgType::kPull, {.offset = 3, .sparse = true}))
                .find("a sparse message has no slice offset, got 3"),
            std::string::npos);
}

TEST(KvHeaderTest, OnlyKvTypesCarryOne) {
  for (MsgType t : {MsgType::kHeartbeat, MsgType::kShutdown, MsgType::kCheckpoint,
                    MsgType::kReplicaSynced, MsgType::kManifest, MsgType::kInvalid}) {
    EXPECT_FALSE(IsKvMessage(t)) << MsgTypeName(t);
    EXPECT_NE(ErrorOf(Kv(t, {})).find("not a kv message"), std::string::npos);
  }
  EXPECT_TRUE(IsKvMessage(MsgType::kReplicateAck));
}

// Moved from cluster/role_policy_test.cc with the rule (the bit is kv's now).
TEST(KvRolePolicyTest, OnlyWorkerZeroMarksTheCheckpointClock) {
  const Message ask = Kv(MsgType::kPush, {.clock = 4, .checkpoint = true});
  EXPECT_TRUE(KvMaySend("worker/0", ask));
  EXPECT_FALSE(KvMaySend("worker/1", ask));
  EXPECT_FALSE(KvMaySend("worker/1", Kv(MsgType::kPushPull, {.clock = 4, .checkpoint = true})));
  EXPECT_TRUE(KvMaySend("worker/1", Kv(MsgType::kPush, {.clock = 4})));
  EXPECT_TRUE(KvMaySend("worker/1", Kv(MsgType::kPull, {.clock = 4})));
}

TEST(KvRolePolicyTest, KeepsTheClusterRulesAndRefusesAPushItCannotRead) {
  EXPECT_FALSE(KvMaySend("server/0", Kv(MsgType::kPush, {})));  // cluster: workers push
  EXPECT_FALSE(KvMaySend("worker/0", Kv(MsgType::kShutdown, {})));
  EXPECT_TRUE(KvMaySend("server/0", Kv(MsgType::kReplicate, {})));
  Message garbled;
  garbled.type = MsgType::kPush;
  garbled.body = Buffer::FromString("short");
  EXPECT_FALSE(KvMaySend("worker/0", garbled));
}

}  // namespace
}  // namespace distopt
