// Tests of KvClient's own contract on an in-process cluster: every span is
// checked against the table's shape before anything is sent (the error names
// the table and both lengths), a request on the wrong kind of table is
// refused, a pull writes exactly its span, and duplicate sparse keys are
// merged before they leave. And a push's gradient, lent to the transport
// without a copy, is back from every socket queue when Wait or Cancel
// returns (a QueueTransport stands in for the sockets).
#include "kv/client.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <thread>
#include <vector>

#include "base/queue.h"
#include "kv/testing/in_proc_cluster.h"

namespace distopt {
namespace {

constexpr uint64_t kDenseSize = 10;
constexpr uint32_t kDim = 3;
constexpr uint32_t kDense = 0;   // table "w"
constexpr uint32_t kSparse = 1;  // table "emb"

std::vector<TableSpec> Tables() {
  std::vector<TableSpec> t(2);
  t[kDense] = {
      .id = kDense, .name = "w", .size = kDenseSize, .init = {InitKind::kUniform, 0.5f, 3}};
  t[kSparse] = {.id = kSparse,
                .name = "emb",
                .sparse = true,
                .dim = kDim,
                .init = {InitKind::kUniform, 1.0f, 9}};
  for (auto& spec : t) {
    spec.optimizer.kind = "sgd";
    spec.optimizer.lr = 1.0f;  // a parameter moves by exactly minus the gradient
  }
  return t;
}

// Runs `work` on the single worker of a job with two servers.
Status OnOneWorker(const std::function<Status(WorkerNode&)>& work) {
  InProcClusterOptions o;
  o.servers = 2;
  o.workers = 1;
  o.tables = Tables();
  InProcCluster cluster(o);
  return cluster.Run(work);
}

// The status of a request refused by the client, which must have sent
// nothing for it.
Status Refused(KvClient& kv, const std::function<KvHandle()>& request) {
  const KvClientStats before = kv.stats();
  KvHandle h = request();
  if (!h->done()) return InternalError("a refused request is still pending");
  Status s = kv.Wait(h);
  const KvClientStats after = kv.stats();
  if (after.requests != before.requests || after.messages != before.messages) {
    return InternalError("a refused request sent " +
                         std::to_string(after.messages - before.messages) + " message(s)");
  }
  return s;
}

// Fails unless `s` is an InvalidArgument whose message holds every one of `parts`.
Status ExpectRefusal(const Status& s, std::initializer_list<std::string> parts) {
  if (s.code() != StatusCode::kInvalidArgument) {
    return InternalError("want InvalidArgument, got " + s.ToString());
  }
  for (const std::string& p : parts) {
    if (s.message().find(p) == std::string::npos) {
      return InternalError("'" + s.message() + "' does not say '" + p + "'");
    }
  }
  return Status::Ok();
}

TEST(KvClientTest, SpansOfTheWrongLengthAreRefusedNamingTheTable) {
  Status s = OnOneWorker([](WorkerNode& node) -> Status {
    KvClient& kv = node.kv();
    std::vector<float> short_dense(kDenseSize - 1), dense(kDenseSize), long_dense(kDenseSize + 1);
    RETURN_IF_ERROR(ExpectRefusal(Refused(kv, [&] { return kv.Push(kDense, short_dense, 0); }),
                                  {"push", "'w'", "carries 9 floats", "holds 10"}));
    RETURN_IF_ERROR(ExpectRefusal(Refused(kv, [&] { return kv.Pull(kDense, long_dense, 0); }),
                                  {"pull", "'w'", "into 11 floats", "holds 10"}));
    // Right gradients, wrong destination: the push must not leave either.
    RETURN_IF_ERROR(
        ExpectRefusal(Refused(kv, [&] { return kv.PushPull(kDense, dense, short_dense, 0); }),
                      {"'w'", "into 9 floats", "holds 10"}));
    const std::vector<uint64_t> keys = {4, 7};
    std::vector<float> rows(keys.size() * kDim), short_rows(keys.size() * kDim - 1);
    RETURN_IF_ERROR(
        ExpectRefusal(Refused(kv, [&] { return kv.PushSparse(kSparse, keys, short_rows, 0); }),
                      {"push", "'emb'", "carries 5 floats", "2 keys of dim 3 take 6"}));
    RETURN_IF_ERROR(
        ExpectRefusal(Refused(kv, [&] { return kv.PullSparse(kSparse, keys, short_rows, 0); }),
                      {"pull", "'emb'", "into 5 floats", "2 keys of dim 3 take 6"}));
    RETURN_IF_ERROR(ExpectRefusal(
        Refused(kv, [&] { return kv.PushPullSparse(kSparse, keys, rows, short_rows, 0); }),
        {"'emb'", "into 5 floats"}));
    // The right lengths go through, and nothing refused reached a server:
    // the table is still at its initial values.
    RETURN_IF_ERROR(kv.Wait(kv.Pull(kDense, dense, 0)));
    for (uint64_t i = 0; i < kDenseSize; ++i) {
      if (dense[i] != InitValue(Tables()[kDense].init, kDense, i)) {
        return InternalError("w[" + std::to_string(i) + "] moved: a refused push was applied");
      }
    }
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(KvClientTest, RequestsOnTheWrongKindOfTableAreRefused) {
  Status s = OnOneWorker([](WorkerNode& node) -> Status {
    KvClient& kv = node.kv();
    std::vector<float> dense(kDenseSize), rows(kDim);
    const std::vector<uint64_t> key = {1};
    RETURN_IF_ERROR(ExpectRefusal(Refused(kv, [&] { return kv.Pull(kSparse, dense, 0); }),
                                  {"table 1 'emb'", "is sparse"}));
    RETURN_IF_ERROR(ExpectRefusal(Refused(kv, [&] { return kv.PullSparse(kDense, key, rows, 0); }),
                                  {"table 0 'w'", "is dense"}));
    RETURN_IF_ERROR(ExpectRefusal(Refused(kv, [&] { return kv.Push(7, dense, 0); }),
                                  {"table 7", "the job has 2 tables"}));
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
}

// A pull into a span inside a larger buffer fills the span and nothing
// around it; a push-pull's reply is the parameters after the push.
TEST(KvClientTest, ADensePullWritesExactlyItsSpan) {
  Status s = OnOneWorker([](WorkerNode& node) -> Status {
    KvClient& kv = node.kv();
    const InitSpec init = Tables()[kDense].init;
    constexpr float kGuard = -123.0f;
    std::vector<float> buffer(kDenseSize + 2, kGuard);
    std::span<float> params = std::span(buffer).subspan(1, kDenseSize);
    RETURN_IF_ERROR(kv.Wait(kv.Pull(kDense, params, 0)));
    std::vector<float> grads(kDenseSize);
    for (uint64_t i = 0; i < kDenseSize; ++i) grads[i] = 0.25f * static_cast<float>(i);
    RETURN_IF_ERROR(kv.Wait(kv.PushPull(kDense, grads, params, 0)));
    if (buffer.front() != kGuard || buffer.back() != kGuard) {
      return InternalError("the pull wrote outside its span");
    }
    for (uint64_t i = 0; i < kDenseSize; ++i) {
      float want = InitValue(init, kDense, i) - grads[i];
      if (params[i] != want) {
        return InternalError("w[" + std::to_string(i) + "] is " + std::to_string(params[i]) +
                             ", want " + std::to_string(want));
      }
    }
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
}

// A request nobody waits for any more is cancelled before its buffer is
// freed: the server's late reply is dropped, not written (the Trainer
// cancels what is left when it stops waiting, e.g. at the job's end).
TEST(KvClientTest, ACancelledPullNeverWritesItsBuffer) {
  Status s = OnOneWorker([](WorkerNode& node) -> Status {
    KvClient& kv = node.kv();
    constexpr float kGuard = -123.0f;
    std::vector<float> out(kDenseSize, kGuard);
    KvHandle pull = kv.Pull(kDense, out, 1);  // BSP: waits for clock 0's push
    if (kv.WaitDone(pull, Deadline::After(std::chrono::milliseconds(200)))) {
      return InternalError("a pull of clock 1 was answered before clock 0 was pushed");
    }
    kv.Cancel(pull);
    if (!pull->done()) return InternalError("a cancelled request is still pending");
    if (Status w = kv.Wait(pull); w.code() != StatusCode::kAborted) {
      return InternalError("a cancelled request ends with " + w.ToString());
    }
    const uint64_t stale = kv.stats().stale_replies;
    std::vector<float> grads(kDenseSize, 1.0f);
    RETURN_IF_ERROR(kv.Wait(kv.Push(kDense, grads, 0)));
    // Clock 0 is applied: the server answers the parked pull, too late.
    const Deadline give_up = Deadline::After(std::chrono::seconds(10));
    while (kv.stats().stale_replies == stale && !give_up.expired()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (kv.stats().stale_replies == stale) {
      return InternalError("the cancelled pull's reply never arrived");
    }
    for (float v : out) {
      if (v != kGuard) return InternalError("a cancelled pull wrote into its buffer");
    }
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
}

// Rows pushed twice under one key in one request are summed before they
// leave; a pull of duplicates returns the row at each position.
TEST(KvClientTest, DuplicateSparseKeysArePushedAsTheirSum) {
  Status s = OnOneWorker([](WorkerNode& node) -> Status {
    KvClient& kv = node.kv();
    const InitSpec init = Tables()[kSparse].init;
    const std::vector<uint64_t> keys = {8, 3, 8};
    const std::vector<float> grads = {0.5f, 1.0f, 1.5f, 0.25f, 0.25f, 0.25f, 2.0f, 4.0f, 8.0f};
    RETURN_IF_ERROR(kv.Wait(kv.PushSparse(kSparse, keys, grads, 0)));
    std::vector<float> rows(keys.size() * kDim);
    RETURN_IF_ERROR(kv.Wait(kv.PullSparse(kSparse, keys, rows, 1)));
    for (size_t i = 0; i < keys.size(); ++i) {
      for (uint32_t j = 0; j < kDim; ++j) {
        float pushed = keys[i] == 8 ? grads[j] + grads[2 * kDim + j] : grads[kDim + j];
        float want = InitValue(init, kSparse, keys[i] * kDim + j) - pushed;
        float got = rows[i * kDim + j];
        if (got != want) {
          return InternalError("key " + std::to_string(keys[i]) + " col " + std::to_string(j) +
                               " is " + std::to_string(got) + ", want " + std::to_string(want));
        }
      }
    }
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
}

// A Transport whose sends wait in a queue per peer, as in a socket that has
// not written them yet, until the test takes them ("the server read it") or
// the client drops them. Replies reach the client through Recv.
class QueueTransport : public Transport {
 public:
  std::string address() const override { return "inproc://worker"; }
  Status Connect(NodeId, const std::string&) override { return Status::Ok(); }
  void Disconnect(NodeId) override {}
  void DropQueued(NodeId peer) override {
    MutexLock lock(&mu_);
    queued_[peer].clear();
    ++drops_[peer];
  }
  Status Send(NodeId peer, Message msg) override {
    MutexLock lock(&mu_);
    queued_[peer].push_back(std::move(msg));
    return Status::Ok();
  }
  Result<Message> Recv(Deadline deadline) override { return PopInbox(inbox_, deadline); }
  void Shutdown() override { inbox_.Close(); }
  TransportStats Stats() const override { return {}; }

  // The oldest message queued for `peer`, taken out (the peer read it).
  std::optional<Message> Take(NodeId peer) {
    MutexLock lock(&mu_);
    auto& q = queued_[peer];
    if (q.empty()) return std::nullopt;
    Message m = std::move(q.front());
    q.pop_front();
    return m;
  }
  // A reply from `from` to a message taken earlier.
  void Answer(NodeId from, const Message& request, MsgType type) {
    Message r;
    r.type = type;
    r.sender = from;
    r.epoch = request.epoch;
    r.request_id = request.request_id;
    r.body = request.body;  // the same kv header
    inbox_.Push(std::move(r));
  }
  size_t Queued(NodeId peer) {
    MutexLock lock(&mu_);
    return queued_[peer].size();
  }
  // How many queued messages view bytes of `v`.
  size_t Viewing(const std::vector<float>& v) {
    MutexLock lock(&mu_);
    size_t n = 0;
    const auto* begin = reinterpret_cast<const uint8_t*>(v.data());
    for (const auto& [peer, q] : queued_) {
      for (const Message& m : q) {
        n += m.values.data() >= begin && m.values.data() < begin + v.size() * sizeof(float);
      }
    }
    return n;
  }
  int drops(NodeId peer) {
    MutexLock lock(&mu_);
    return drops_[peer];
  }

 private:
  Mutex mu_;
  std::map<NodeId, std::deque<Message>> queued_ GUARDED_BY(mu_);
  std::map<NodeId, int> drops_ GUARDED_BY(mu_);
  BlockingQueue<Message> inbox_;
};

// One worker (node 20) and one server rank; `server` holds rank 0 (dead
// if `alive` is false).
ClusterView OneServerView(uint32_t epoch, const Layout& layout,
                          std::vector<std::pair<NodeId, bool>> servers) {
  ClusterView v;
  v.epoch = epoch;
  v.num_servers = 1;
  v.num_workers = 1;
  for (auto [id, alive] : servers) v.members.push_back({id, Role::kServer, 0, "inproc://s", alive});
  v.members.push_back({20, Role::kWorker, 0, "inproc://worker"});
  v.layout = layout.Encode();
  return v;
}

class KvClientLoanTest : public ::testing::Test {
 protected:
  static constexpr NodeId kOld = 10, kNew = 12;
  KvClientLoanTest()
      : tables_({Tables()[kDense]}),
        layout_(Layout::Compute(tables_, 1)),
        dispatcher_(&transport_, Logger::Stderr("dispatcher")),
        kv_({}, tables_, &transport_, &dispatcher_, Logger::Stderr("worker")) {
    dispatcher_.Start();
    EXPECT_TRUE(kv_.OnViewChange(OneServerView(1, layout_, {{kOld, true}})).ok());
  }
  ~KvClientLoanTest() override {
    transport_.Shutdown();
    dispatcher_.Stop();
  }

  std::vector<TableSpec> tables_;
  Layout layout_;
  QueueTransport transport_;
  Dispatcher dispatcher_;
  KvClient kv_;
};

// server/0 dies with the push still queued for it; the failover sends it to
// the replacement, which answers. The copy queued for the dead server is
// dropped: once Wait returns no queue holds the caller's gradient, which it
// may now free (a socket would otherwise read freed memory on reconnect).
TEST_F(KvClientLoanTest, APushQueuedToADeadServerIsDroppedBeforeWaitReturns) {
  auto grads = std::make_unique<std::vector<float>>(kDenseSize, 0.5f);
  KvHandle h = kv_.Push(kDense, *grads, 0);
  ASSERT_EQ(transport_.Queued(kOld), 1u);
  ASSERT_TRUE(kv_.OnViewChange(OneServerView(2, layout_, {{kOld, false}, {kNew, true}})).ok());
  std::optional<Message> resent = transport_.Take(kNew);
  ASSERT_TRUE(resent.has_value()) << "the failover did not send the push to the new owner";
  EXPECT_EQ(resent->values.data(), reinterpret_cast<const uint8_t*>(grads->data()))
      << "the push was copied, not lent";
  transport_.Answer(kNew, *resent, MsgType::kPushAck);
  resent.reset();
  ASSERT_TRUE(kv_.Wait(h, Deadline::After(std::chrono::seconds(30))).ok());
  EXPECT_EQ(transport_.Queued(kOld), 0u);
  EXPECT_EQ(transport_.Viewing(*grads), 0u);
  EXPECT_GE(transport_.drops(kOld), 1);
}

// A push nobody waits for (the job stops): Cancel returns with nothing of
// it left in any queue, though its server is alive.
TEST_F(KvClientLoanTest, ACancelledPushLeavesNothingQueued) {
  std::vector<float> grads(kDenseSize, 1.0f);
  KvHandle h = kv_.Push(kDense, grads, 0);
  ASSERT_EQ(transport_.Viewing(grads), 1u);
  kv_.Cancel(h);
  EXPECT_TRUE(h->done());
  EXPECT_EQ(transport_.Viewing(grads), 0u);
}

// An answered push leaves a live server's queue alone: what else is queued
// there (here a pull not yet read) belongs to other requests.
TEST_F(KvClientLoanTest, AnAnsweredPushDropsNoLiveServersQueue) {
  std::vector<float> grads(kDenseSize, 1.0f), params(kDenseSize);
  KvHandle push = kv_.Push(kDense, grads, 0);
  KvHandle pull = kv_.Pull(kDense, params, 0);
  std::optional<Message> m = transport_.Take(kOld);
  ASSERT_TRUE(m.has_value());
  transport_.Answer(kOld, *m, MsgType::kPushAck);
  m.reset();
  ASSERT_TRUE(kv_.Wait(push, Deadline::After(std::chrono::seconds(30))).ok());
  EXPECT_EQ(transport_.drops(kOld), 0);
  EXPECT_EQ(transport_.Queued(kOld), 1u) << "the pull was dropped with the push";
  kv_.Cancel(pull);
}

}  // namespace
}  // namespace distopt
