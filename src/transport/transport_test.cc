#include <gtest/gtest.h>
#include <zmq.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "transport/inproc_transport.h"
#include "transport/local_peers.h"
#include "transport/zmq_transport.h"

namespace distopt {
namespace {

using std::chrono::seconds;

enum class Kind { kInProc, kZmqTcp, kZmqIpc };

class TransportTest : public ::testing::TestWithParam<Kind> {
 protected:
  std::unique_ptr<Transport> Make(const std::string& name) {
    Logger log(sink_, name, LogLevel::kInfo);
    switch (GetParam()) {
      case Kind::kInProc:
        return std::move(*hub_->Create("", log));
      case Kind::kZmqTcp:
        return std::move(*CreateZmqTransport({.bind = "tcp://127.0.0.1:0"}, log));
      case Kind::kZmqIpc: {
        std::string path = "ipc:///tmp/distopt-test-" + std::to_string(getpid()) + "-" + name;
        return std::move(*CreateZmqTransport({.bind = path}, log));
      }
    }
    return nullptr;
  }
  std::shared_ptr<InProcHub> hub_ = std::make_shared<InProcHub>();
  std::shared_ptr<MemorySink> sink_ = std::make_shared<MemorySink>();
};

Message Values(uint64_t id, std::vector<float> v) {
  Message m;
  m.type = MsgType::kPush;
  m.request_id = id;
  m.values = Buffer::FromVector(std::move(v));
  return m;
}

TEST_P(TransportTest, DeliversInOrderBothWays) {
  auto a = Make("a");
  auto b = Make("b");
  ASSERT_TRUE(a->Connect(2, b->address()).ok());
  ASSERT_TRUE(b->Connect(1, a->address()).ok());
  for (uint64_t i = 0; i < 100; ++i) ASSERT_TRUE(a->Send(2, Values(i, {float(i), 1.0f})).ok());
  for (uint64_t i = 0; i < 100; ++i) {
    auto m = b->Recv(Deadline::After(seconds(10)));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->request_id, i);
    EXPECT_EQ(m->values.as<float>()[0], float(i));
  }
  ASSERT_TRUE(b->Send(1, Values(7, {3.0f})).ok());
  auto r = a->Recv(Deadline::After(seconds(10)));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->request_id, 7u);
  EXPECT_EQ(a->Stats().messages_received, 1u);
  EXPECT_EQ(b->Stats().messages_received, 100u);
}

// Dropping a peer's queue closes the connection and dials again at once,
// before the receiver has seen the old connection go. Every message sent
// after the drop must still arrive, in order (a redial that reused the old
// connection's routing id was refused by the receiver's ROUTER, and the
// messages behind it were eaten as routing-id handshakes).
TEST_P(TransportTest, MessagesSentRightAfterADropArrive) {
  auto a = Make("a");
  auto b = Make("b");
  ASSERT_TRUE(a->Connect(2, b->address()).ok());
  for (uint64_t i = 0; i < 40; ++i) {
    a->DropQueued(2);
    ASSERT_TRUE(a->Send(2, Values(i, {float(i)})).ok());
    auto m = b->Recv(Deadline::After(seconds(10)));
    ASSERT_TRUE(m.ok()) << "message " << i << " after drop " << i << ": " << m.status().ToString();
    EXPECT_EQ(m->request_id, i);
  }
}

TEST_P(TransportTest, LargePayloadArrivesIntact) {
  auto a = Make("big-a");
  auto b = Make("big-b");
  ASSERT_TRUE(a->Connect(2, b->address()).ok());
  std::vector<float> v(4 << 20);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 1000) * 0.5f;
  ASSERT_TRUE(a->Send(2, Values(1, v)).ok());
  auto m = b->Recv(Deadline::After(seconds(30)));
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m->num_values(), v.size());
  EXPECT_EQ(std::memcmp(m->values.data(), v.data(), v.size() * 4), 0);
}

TEST_P(TransportTest, RecvTimesOutAndShutdownWakesIt) {
  auto a = Make("t");
  auto r = a->Recv(Deadline::After(std::chrono::milliseconds(20)));
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    a->Shutdown();
  });
  r = a->Recv(Deadline::After(seconds(30)));
  stopper.join();
  EXPECT_EQ(r.status().code(), StatusCode::kAborted);
}

INSTANTIATE_TEST_SUITE_P(All, TransportTest,
                         ::testing::Values(Kind::kInProc, Kind::kZmqTcp, Kind::kZmqIpc),
                         [](const auto& p) {
                           switch (p.param) {
                             case Kind::kInProc:
                               return std::string("InProc");
                             case Kind::kZmqTcp:
                               return std::string("ZmqTcp");
                             case Kind::kZmqIpc:
                               return std::string("ZmqIpc");
                           }
                           return std::string("?");
                         });

// A hostile peer speaking raw ZeroMQ: garbage is logged with its address,
// counted, dropped, and the node keeps serving good messages.
TEST(ZmqTransportTest, BadMessagesAreDroppedAndTheNodeKeepsServing) {
  auto sink = std::make_shared<MemorySink>();
  auto node = std::move(*CreateZmqTransport({}, Logger(sink, "server", LogLevel::kInfo)));
  void* ctx = zmq_ctx_new();
  void* raw = zmq_socket(ctx, ZMQ_DEALER);
  const char* id = "tcp://evil:1";
  zmq_setsockopt(raw, ZMQ_ROUTING_ID, id, std::strlen(id));
  ASSERT_EQ(zmq_connect(raw, node->address().c_str()), 0);
  zmq_send(raw, "garbage", 7, 0);  // one frame
  std::vector<uint8_t> header(kHeaderSize, 0xff);
  zmq_send(raw, header.data(), header.size(), ZMQ_SNDMORE);  // bad magic
  zmq_send(raw, "", 0, ZMQ_SNDMORE);
  zmq_send(raw, "", 0, ZMQ_SNDMORE);
  zmq_send(raw, "", 0, 0);
  // Then a well-formed message.
  auto frames = EncodeFrames(Values(42, {1.0f, 2.0f}));
  for (size_t i = 0; i < frames.size(); ++i) {
    zmq_send(raw, frames[i].data(), frames[i].size(), i + 1 < frames.size() ? ZMQ_SNDMORE : 0);
  }
  auto m = node->Recv(Deadline::After(seconds(10)));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->request_id, 42u);
  EXPECT_EQ(node->Stats().bad_messages, 2u);
  EXPECT_TRUE(sink->Contains("dropped a bad message from tcp://evil:1: expected 4 frames"));
  EXPECT_TRUE(sink->Contains("bad magic"));
  int linger = 0;
  zmq_setsockopt(raw, ZMQ_LINGER, &linger, sizeof(linger));
  zmq_close(raw);
  zmq_ctx_term(ctx);
}

}  // namespace
}  // namespace distopt

namespace distopt {
namespace {

// Two nodes of one process skip the socket: the receiver gets the sender's
// very buffer; a node elsewhere is still reached over ZeroMQ.
TEST(LocalPeersTest, CoLocatedNodesSkipTheSocketAndShareThePayload) {
  Logger log(StderrSink(), "t", LogLevel::kWarning);
  // Borrowed by the messages below: must outlive the transports' queues.
  std::vector<float> values(1 << 18, 1.5f);
  auto stats = std::make_shared<LocalPeerStats>();
  LocalPeers local;
  auto a = WithLocalPeers(local, std::move(*CreateZmqTransport({}, log)), stats);
  auto b = WithLocalPeers(local, std::move(*CreateZmqTransport({}, log)));
  ASSERT_TRUE(a.ok() && b.ok()) << a.status().ToString() << b.status().ToString();
  auto remote = std::move(*CreateZmqTransport({}, log));  // not registered: another process
  ASSERT_TRUE((*a)->Connect(2, (*b)->address()).ok());
  ASSERT_TRUE((*a)->Connect(3, remote->address()).ok());
  Message m;
  m.type = MsgType::kPush;
  m.sender = 1;
  m.values = Buffer::Borrow(values.data(), values.size() * 4);
  ASSERT_TRUE((*a)->Send(2, m).ok());
  auto got = (*b)->Recv(Deadline::After(std::chrono::seconds(5)));
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->values.data(), reinterpret_cast<const uint8_t*>(values.data()));  // no copy
  EXPECT_EQ(got->sender, 1u);
  EXPECT_EQ(stats->local_messages, 1u);
  EXPECT_EQ((*b)->Stats().messages_received, 1u);

  ASSERT_TRUE((*a)->Send(3, m).ok());
  auto far = remote->Recv(Deadline::After(std::chrono::seconds(5)));
  ASSERT_TRUE(far.ok()) << far.status().message();
  EXPECT_NE(far->values.data(), reinterpret_cast<const uint8_t*>(values.data()));  // via socket
  EXPECT_EQ(far->num_values(), values.size());
  EXPECT_EQ(stats->local_messages, 1u);

  // A co-located node that shut down is a dead peer: the message vanishes.
  (*b)->Shutdown();
  EXPECT_TRUE((*a)->Send(2, m).ok());
  EXPECT_EQ(stats->local_messages, 1u);
}

// In-process transports at a chosen address, from hubs of their own (one
// hub refuses a second transport at an address; two hubs do not).
class LocalPeersAddressTest : public ::testing::Test {
 protected:
  std::unique_ptr<Transport> At(const std::string& address) {
    hubs_.push_back(std::make_shared<InProcHub>());
    return std::move(*hubs_.back()->Create(address, log_));
  }
  static Message Ping(NodeId from) {
    Message m;
    m.type = MsgType::kHeartbeat;
    m.sender = from;
    return m;
  }

  Logger log_{StderrSink(), "t", LogLevel::kWarning};
  std::vector<std::shared_ptr<InProcHub>> hubs_;
};

// A second node at a taken address is refused, naming the address; the
// first keeps it and still gets its messages (it used to be overwritten).
TEST_F(LocalPeersAddressTest, AnAddressTakenIsAnErrorAndTheFirstNodeKeepsIt) {
  LocalPeers local;
  auto stats = std::make_shared<LocalPeerStats>();
  auto first = WithLocalPeers(local, At("inproc://taken"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = WithLocalPeers(local, At("inproc://taken"));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(second.status().message().find("inproc://taken"), std::string::npos)
      << second.status().message();

  auto sender = WithLocalPeers(local, At("inproc://sender"), stats);
  ASSERT_TRUE(sender.ok());
  ASSERT_TRUE((*sender)->Connect(7, "inproc://taken").ok());
  ASSERT_TRUE((*sender)->Send(7, Ping(3)).ok());
  auto got = (*first)->Recv(Deadline::After(std::chrono::seconds(5)));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->sender, 3u);
  EXPECT_EQ(stats->local_messages, 1u);
}

TEST_F(LocalPeersAddressTest, AnEmptyAddressIsRefused) {
  struct NoAddress : Transport {
    std::string address() const override { return ""; }
    Status Connect(NodeId, const std::string&) override { return Status::Ok(); }
    void Disconnect(NodeId) override {}
    Status Send(NodeId, Message) override { return Status::Ok(); }
    Result<Message> Recv(Deadline) override { return AbortedError("none"); }
    void Shutdown() override {}
    TransportStats Stats() const override { return {}; }
  };
  LocalPeers local;
  auto t = WithLocalPeers(local, std::make_unique<NoAddress>());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
}

// Two LocalPeers are two tables: the same address may be in both, and a
// node of one reaches a node of the other only through its transport.
TEST_F(LocalPeersAddressTest, SeparateLocalPeersDoNotSeeEachOthersNodes) {
  LocalPeers one, two;
  auto stats = std::make_shared<LocalPeerStats>();
  auto in_one = WithLocalPeers(one, At("inproc://same"));
  auto in_two = WithLocalPeers(two, At("inproc://same"));
  ASSERT_TRUE(in_one.ok() && in_two.ok()) << in_two.status().ToString();

  Logger log(StderrSink(), "t", LogLevel::kWarning);
  std::vector<float> values(1024, 2.5f);
  auto a = WithLocalPeers(one, std::move(*CreateZmqTransport({}, log)), stats);
  auto b = WithLocalPeers(two, std::move(*CreateZmqTransport({}, log)));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->Connect(2, (*b)->address()).ok());
  Message m = Ping(1);
  m.values = Buffer::Borrow(values.data(), values.size() * 4);
  ASSERT_TRUE((*a)->Send(2, m).ok());
  auto got = (*b)->Recv(Deadline::After(std::chrono::seconds(5)));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_NE(got->values.data(), reinterpret_cast<const uint8_t*>(values.data()));  // via socket
  EXPECT_EQ(got->num_values(), values.size());
  EXPECT_EQ(stats->local_messages, 0u);
  EXPECT_EQ((*a)->Stats().messages_sent, 1u);
}

// A node that is destroyed, or only shut down, frees its address; a node
// shut down and destroyed later does not take the entry of the one that
// took the address after it.
TEST_F(LocalPeersAddressTest, AShutDownOrDestroyedNodesAddressIsFreeAgain) {
  LocalPeers local;
  auto stats = std::make_shared<LocalPeerStats>();
  {
    auto gone = WithLocalPeers(local, At("inproc://a"));
    ASSERT_TRUE(gone.ok());
  }
  auto again = WithLocalPeers(local, At("inproc://a"));
  ASSERT_TRUE(again.ok()) << again.status().ToString();

  auto old = WithLocalPeers(local, At("inproc://b"));
  ASSERT_TRUE(old.ok());
  (*old)->Shutdown();
  auto successor = WithLocalPeers(local, At("inproc://b"));
  ASSERT_TRUE(successor.ok()) << successor.status().ToString();
  old->reset();  // its destructor shuts it down again: the successor's entry stays

  auto sender = WithLocalPeers(local, At("inproc://sender"), stats);
  ASSERT_TRUE(sender.ok());
  ASSERT_TRUE((*sender)->Connect(5, "inproc://b").ok());
  ASSERT_TRUE((*sender)->Send(5, Ping(9)).ok());
  auto got = (*successor)->Recv(Deadline::After(std::chrono::seconds(5)));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->sender, 9u);
  EXPECT_EQ(stats->local_messages, 1u);
}

// The decorators share the table: they keep delivering to each other after
// the LocalPeers that made them is gone.
TEST_F(LocalPeersAddressTest, DecoratorsMayOutliveTheirLocalPeers) {
  auto stats = std::make_shared<LocalPeerStats>();
  auto local = std::make_unique<LocalPeers>();
  auto a = WithLocalPeers(*local, At("inproc://x"), stats);
  auto b = WithLocalPeers(*local, At("inproc://y"));
  ASSERT_TRUE(a.ok() && b.ok());
  local.reset();
  ASSERT_TRUE((*a)->Connect(2, "inproc://y").ok());
  ASSERT_TRUE((*a)->Send(2, Ping(1)).ok());
  auto got = (*b)->Recv(Deadline::After(std::chrono::seconds(5)));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(stats->local_messages, 1u);
}

}  // namespace
}  // namespace distopt
