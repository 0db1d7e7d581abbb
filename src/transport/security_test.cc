// CURVE on the ZeroMQ transport, in the style of libzmq's own security tests:
// a guarded node beside a good peer, and one offender at a time (wrong server
// key, unknown client key, a revoked key, NULL and PLAIN mechanisms, garbage
// bytes, a message the peer's role may not send). Nothing from an offender
// reaches Recv(), the refusal is counted and logged with the address, and the
// good peer's messages keep arriving.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <thread>

#include "transport/curve_keys.h"
#include "transport/local_lane.h"
#include "transport/net_address.h"
#include "transport/zmq_transport.h"

namespace distopt {
namespace {

using std::chrono::milliseconds;

CurveKeyPair Keys() {
  auto k = GenerateCurveKeyPair();
  EXPECT_TRUE(k.ok()) << k.status().ToString();
  return *k;
}

class CurveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_keys_ = Keys();
    good_keys_ = Keys();
    allow_[good_keys_.public_key] = "worker/0";
    guarded_ = Start(server_keys_, allow_, sink_);
  }

  std::unique_ptr<Transport> Start(const CurveKeyPair& keys, const CurveAllowlist& allow,
                                   std::shared_ptr<MemorySink> sink,
                                   const std::string& bind = "tcp://127.0.0.1:0") {
    ZmqOptions o;
    o.bind = bind;
    // These tests are about CURVE over TCP; LocalLaneTest turns the lane on.
    o.local_lane = !lane_dir_.empty();
    o.local_lane_dir = lane_dir_;
    o.security.keys = keys;
    o.security.allowlist = allow;
    // A worker may push, never order a shutdown.
    o.security.authorize = [](const std::string& peer, const Message& m) {
      return peer.rfind("worker/", 0) == 0 && m.type != MsgType::kShutdown;
    };
    auto t = CreateZmqTransport(o, Logger(std::move(sink), "t", LogLevel::kInfo));
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return std::move(*t);
  }

  std::string Endpoint() const { return SplitCurveAddress(guarded_->address()).first; }

  // A push marked with `tag` (its request id: which sender's message arrived).
  static Message Push(uint64_t tag) {
    Message m;
    m.type = MsgType::kPush;
    m.sender = 7;
    m.request_id = tag;
    return m;
  }

  // The good peer sends a push tagged `tag`; it must arrive, from worker/0.
  void ExpectGoodPeerStillDelivers(uint64_t tag) {
    if (good_ == nullptr) {
      good_ = Start(good_keys_, {}, std::make_shared<MemorySink>());
      ASSERT_TRUE(good_->Connect(1, guarded_->address()).ok());
    }
    ASSERT_TRUE(good_->Send(1, Push(tag)).ok());
    auto m = guarded_->Recv(Deadline::After(std::chrono::seconds(10)));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->request_id, tag) << "a message from an offender got through";
    EXPECT_EQ(m->peer, "worker/0");
    EXPECT_EQ(m->peer_host, "127.0.0.1");
  }

  void ExpectNothingDelivered() {
    auto m = guarded_->Recv(Deadline::After(milliseconds(500)));
    EXPECT_FALSE(m.ok()) << "delivered a " << MsgTypeName(m->type) << " from '" << m->peer << "'";
  }

  // Waits (bounded) until the guarded node has refused `n` connections.
  bool RefusedAtLeast(uint64_t n) {
    for (int i = 0; i < 100; ++i) {
      if (guarded_->Stats().refused_peers >= n) return true;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return false;
  }

  // A raw ZeroMQ DEALER that sends one well-formed distopt message to the
  // guarded node (at `endpoint`, or its TCP one).
  void RawDealerSends(const std::function<void(void*)>& configure,
                      const std::string& endpoint = "") {
    void* ctx = zmq_ctx_new();
    void* s = zmq_socket(ctx, ZMQ_DEALER);
    configure(s);
    ASSERT_EQ(zmq_connect(s, (endpoint.empty() ? Endpoint() : endpoint).c_str()), 0);
    std::vector<Buffer> frames = EncodeFrames(Push(99));
    for (size_t i = 0; i < frames.size(); ++i) {
      zmq_send(s, frames[i].data(), frames[i].size(), i + 1 < frames.size() ? ZMQ_SNDMORE : 0);
    }
    std::this_thread::sleep_for(milliseconds(300));
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_close(s);
    zmq_ctx_term(ctx);
  }

  std::string lane_dir_;  // the local lane's directory; "" = no lane
  CurveKeyPair server_keys_, good_keys_;
  CurveAllowlist allow_;
  std::shared_ptr<MemorySink> sink_ = std::make_shared<MemorySink>();
  std::unique_ptr<Transport> guarded_;
  std::unique_ptr<Transport> good_;
};

TEST_F(CurveTest, AnAllowlistedPeerIsDeliveredWithItsName) {
  EXPECT_NE(guarded_->address().find("?curve=" + server_keys_.public_key), std::string::npos);
  ExpectGoodPeerStillDelivers(1);
  EXPECT_EQ(guarded_->Stats().refused_peers, 0u);
}

TEST_F(CurveTest, WrongServerKeyIsRefused) {
  // A listed client that dials with the wrong idea of the server's key.
  auto other = Keys();
  CurveKeyPair intruder_keys = Keys();
  allow_[intruder_keys.public_key] = "worker/1";  // (the guarded node does not know it anyway)
  auto intruder = Start(good_keys_, {}, std::make_shared<MemorySink>());
  ASSERT_TRUE(intruder->Connect(1, Endpoint() + "?curve=" + other.public_key).ok());
  ASSERT_TRUE(intruder->Send(1, Push(99)).ok());
  EXPECT_TRUE(RefusedAtLeast(1));
  ExpectNothingDelivered();
  ExpectGoodPeerStillDelivers(2);
}

TEST_F(CurveTest, UnknownClientKeyIsRefusedAndItsAddressLogged) {
  auto stranger = Start(Keys(), {}, std::make_shared<MemorySink>());
  ASSERT_TRUE(stranger->Connect(1, guarded_->address()).ok());
  ASSERT_TRUE(stranger->Send(1, Push(99)).ok());
  EXPECT_TRUE(RefusedAtLeast(1));
  ExpectNothingDelivered();
  EXPECT_TRUE(sink_->Contains("from 127.0.0.1: its public key"));
  EXPECT_TRUE(sink_->Contains("is not on the job's allowlist"));
  ExpectGoodPeerStillDelivers(3);
}

TEST_F(CurveTest, ARevokedKeyIsRefusedWhileTheOthersStay) {
  // worker/1 was on the allowlist; the node restarts with it removed.
  CurveKeyPair revoked = Keys();
  CurveAllowlist before = allow_;
  before[revoked.public_key] = "worker/1";
  guarded_ = Start(server_keys_, before, sink_);
  auto w1 = Start(revoked, {}, std::make_shared<MemorySink>());
  ASSERT_TRUE(w1->Connect(1, guarded_->address()).ok());
  ASSERT_TRUE(w1->Send(1, Push(5)).ok());
  auto ok = guarded_->Recv(Deadline::After(std::chrono::seconds(10)));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->peer, "worker/1");

  guarded_ = Start(server_keys_, allow_, sink_);  // revoked
  auto w1again = Start(revoked, {}, std::make_shared<MemorySink>());
  ASSERT_TRUE(w1again->Connect(1, guarded_->address()).ok());
  ASSERT_TRUE(w1again->Send(1, Push(99)).ok());
  EXPECT_TRUE(RefusedAtLeast(1));
  ExpectNothingDelivered();
  ExpectGoodPeerStillDelivers(4);
}

TEST_F(CurveTest, NullMechanismIsRefused) {
  RawDealerSends([](void*) {});
  EXPECT_TRUE(RefusedAtLeast(1));
  ExpectNothingDelivered();
  ExpectGoodPeerStillDelivers(5);
}

TEST_F(CurveTest, PlainMechanismIsRefused) {
  RawDealerSends([](void* s) {
    zmq_setsockopt(s, ZMQ_PLAIN_USERNAME, "admin", 5);
    zmq_setsockopt(s, ZMQ_PLAIN_PASSWORD, "secret", 6);
  });
  EXPECT_TRUE(RefusedAtLeast(1));
  ExpectNothingDelivered();
  ExpectGoodPeerStillDelivers(6);
}

TEST_F(CurveTest, GarbageBytesAreRefused) {
  auto hp = ParseHostPort(Endpoint());
  ASSERT_TRUE(hp.ok());
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(hp->port);
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  std::string junk(4096, '\0');
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>((i * 2654435761u) >> 13);
  junk[0] = static_cast<char>(0xFF);  // looks like a ZMTP greeting start, then nonsense
  ASSERT_GT(write(fd, junk.data(), junk.size()), 0);
  std::this_thread::sleep_for(milliseconds(300));
  close(fd);
  ExpectNothingDelivered();
  ExpectGoodPeerStillDelivers(7);
}

TEST_F(CurveTest, AMessageTheRoleMayNotSendIsDroppedAndTheNextOneArrives) {
  ExpectGoodPeerStillDelivers(8);
  Message bye;
  bye.type = MsgType::kShutdown;
  ASSERT_TRUE(good_->Send(1, std::move(bye)).ok());
  ExpectGoodPeerStillDelivers(9);  // the shutdown never arrived; the push after it did
  EXPECT_EQ(guarded_->Stats().unauthorized, 1u);
  EXPECT_TRUE(sink_->Contains("dropped a shutdown from worker/0 at 127.0.0.1"));
}

TEST_F(CurveTest, ACurveNodeRefusesToDialAnAddressWithoutAKey) {
  auto t = Start(good_keys_, {}, sink_);
  ASSERT_TRUE(t->Connect(1, Endpoint()).ok());
  ASSERT_TRUE(t->Send(1, Push(1)).ok());
  ExpectNothingDelivered();
  EXPECT_TRUE(sink_->Contains("carries no public key"));
}

// ---- the local lane (local_lane.h): nodes of one host skip the encryption ----

class LocalLaneTest : public CurveTest {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/distopt-lane-XXXXXX";  // mkdtemp makes it 0700
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    lane_dir_ = tmpl;
    CurveTest::SetUp();
  }
  void TearDown() override {
    good_.reset();
    guarded_.reset();  // removes its socket
    std::filesystem::remove_all(lane_dir_);
  }
  std::string Lane() const { return LocalLaneOf(guarded_->address()); }
};

TEST_F(LocalLaneTest, NodesOfOneHostTalkOverTheLaneWithTheirNamesAndRoleRules) {
  EXPECT_EQ(Lane().rfind(lane_dir_ + "/", 0), 0u) << guarded_->address();
  EXPECT_EQ(SplitCurveAddress(guarded_->address()).second, server_keys_.public_key);
  ExpectGoodPeerStillDelivers(1);
  EXPECT_EQ(good_->Stats().local_lane_dials, 1u);
  Message bye;
  bye.type = MsgType::kShutdown;
  ASSERT_TRUE(good_->Send(1, std::move(bye)).ok());
  ExpectGoodPeerStillDelivers(2);  // the role rules hold on the lane too
  EXPECT_EQ(guarded_->Stats().unauthorized, 1u);
  EXPECT_EQ(guarded_->Stats().refused_peers, 0u);
}

TEST_F(LocalLaneTest, AnUnknownKeyIsRefusedOnTheLane) {
  auto stranger = Start(Keys(), {}, std::make_shared<MemorySink>());
  ASSERT_TRUE(stranger->Connect(1, guarded_->address()).ok());
  ASSERT_TRUE(stranger->Send(1, Push(99)).ok());
  EXPECT_TRUE(RefusedAtLeast(1));
  ExpectNothingDelivered();
  EXPECT_EQ(stranger->Stats().local_lane_dials, 1u);
  EXPECT_TRUE(sink_->Contains("a local-lane connection: its public key"));
  ExpectGoodPeerStillDelivers(3);
}

TEST_F(LocalLaneTest, ClaimingAnAllowedKeyWithoutItsSecretIsRefused) {
  const CurveKeyPair mine = Keys();
  RawDealerSends(
      [&](void* s) {
        zmq_setsockopt(s, ZMQ_PLAIN_USERNAME, good_keys_.public_key.data(), kCurveKeyChars);
        zmq_setsockopt(s, ZMQ_PLAIN_PASSWORD, mine.secret_key.data(), kCurveKeyChars);
      },
      "ipc://" + Lane());
  EXPECT_TRUE(RefusedAtLeast(1));
  ExpectNothingDelivered();
  EXPECT_TRUE(sink_->Contains("with a secret key not its own"));
  ExpectGoodPeerStillDelivers(4);
}

TEST_F(LocalLaneTest, APeerOfAnotherHostIsDialledOverCurve) {
  // 127.0.0.2 is this machine too, but another host by its address.
  guarded_ = Start(server_keys_, allow_, sink_, "tcp://127.0.0.2:0");
  ASSERT_FALSE(Lane().empty());
  good_ = Start(good_keys_, {}, std::make_shared<MemorySink>());
  ASSERT_TRUE(good_->Connect(1, guarded_->address()).ok());
  ASSERT_TRUE(good_->Send(1, Push(5)).ok());
  auto m = guarded_->Recv(Deadline::After(std::chrono::seconds(10)));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->peer, "worker/0");
  EXPECT_EQ(good_->Stats().local_lane_dials, 0u);
}

TEST_F(LocalLaneTest, ADirectoryOthersMayEnterIsRefusedAndTheNodeUsesCurve) {
  ASSERT_EQ(chmod(lane_dir_.c_str(), 0755), 0);
  guarded_ = Start(server_keys_, allow_, sink_);
  EXPECT_EQ(Lane(), "") << guarded_->address();
  EXPECT_TRUE(sink_->Contains("no local lane"));
  EXPECT_TRUE(sink_->Contains("has mode 0755"));
  ExpectGoodPeerStillDelivers(6);
  EXPECT_EQ(good_->Stats().local_lane_dials, 0u);
  // Nor is a socket in such a directory trusted by a dialler.
  EXPECT_FALSE(LocalLaneUsable(lane_dir_ + "/nothing.sock"));
  EXPECT_FALSE(LocalLaneUsable(""));
}

TEST_F(LocalLaneTest, ANodeRemovesItsSocketAndSweepsTheOnesKilledNodesLeft) {
  const std::string mine = Lane();
  struct stat st {};
  ASSERT_EQ(stat(mine.c_str(), &st), 0);
  // A killed node's socket: bound, then the process gone without removing it.
  const std::string stale = lane_dir_ + "/deadbeef.sock";
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, stale.c_str(), stale.size() + 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  close(fd);
  ASSERT_EQ(stat(stale.c_str(), &st), 0);
  guarded_.reset();
  EXPECT_NE(stat(mine.c_str(), &st), 0) << mine << " outlived its node";
  guarded_ = Start(server_keys_, allow_, sink_);
  EXPECT_NE(stat(stale.c_str(), &st), 0) << stale << " was not swept";
  ExpectGoodPeerStillDelivers(7);
}

// ---- key files ----

std::string TempDir() {
  char tmpl[] = "/tmp/distopt-keys-XXXXXX";
  EXPECT_NE(mkdtemp(tmpl), nullptr);
  return tmpl;
}

TEST(CurveKeyFiles, RoundTripAndRefuseReadableSecretKeys) {
  std::string dir = TempDir();
  CurveKeyPair k = Keys();
  ASSERT_TRUE(WriteKeyFile(dir + "/w.key", k).ok());
  struct stat st {};
  ASSERT_EQ(stat((dir + "/w.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto back = ReadKeyFile(dir + "/w.key");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->public_key, k.public_key);
  EXPECT_EQ(back->secret_key, k.secret_key);
  chmod((dir + "/w.key").c_str(), 0644);
  auto refused = ReadKeyFile(dir + "/w.key");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find(dir + "/w.key has mode 0644"), std::string::npos)
      << refused.status().message();
  std::system(("rm -rf " + dir).c_str());
}

TEST(CurveKeyFiles, AMismatchedOrMalformedKeyFileIsNamedWithItsLine) {
  std::string dir = TempDir();
  CurveKeyPair a = Keys(), b = Keys();
  ASSERT_TRUE(WriteKeyFile(dir + "/x.key", {a.public_key, b.secret_key}).ok());
  auto mismatch = ReadKeyFile(dir + "/x.key");
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.status().message().find("does not match"), std::string::npos);
  CurveAllowlist allow{{a.public_key, "worker/0"}, {b.public_key, "server/0"}};
  ASSERT_TRUE(WriteAllowlist(dir + "/allowlist", allow).ok());
  auto read = ReadAllowlist(dir + "/allowlist");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(*read, allow);
  EXPECT_EQ(*AllowlistKeyOf(*read, "server/0"), b.public_key);
  FILE* f = std::fopen((dir + "/allowlist").c_str(), "a");
  std::fputs("worker/9 not-a-key\n", f);
  std::fclose(f);
  auto bad = ReadAllowlist(dir + "/allowlist");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("/allowlist:5:"), std::string::npos)
      << bad.status().message();
  chmod((dir + "/allowlist").c_str(), 0666);
  EXPECT_NE(ReadAllowlist(dir + "/allowlist").status().message().find("mode 0666"),
            std::string::npos);
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace distopt
