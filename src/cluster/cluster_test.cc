#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "base/env.h"
#include "cluster/cluster_client.h"
#include "cluster/coordinator.h"
#include "transport/inproc_transport.h"

namespace distopt {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A JobPolicy made of functions; an unset one keeps what is.
struct FnPolicy : JobPolicy {
  std::function<std::string(const ClusterView&)> first;
  std::function<JobAction(const ClusterView&)> on_view;
  std::string FirstLayout(const ClusterView& v) override { return first ? first(v) : ""; }
  JobAction OnViewChange(const ClusterView& v) override {
    return on_view ? on_view(v) : JobAction::Keep();
  }
  JobAction OnReport(const Message&, const ClusterView&) override { return JobAction::Keep(); }
};

struct TestNode {
  std::unique_ptr<Transport> transport;
  std::unique_ptr<Dispatcher> dispatcher;
  std::unique_ptr<ClusterClient> client;
};

class ClusterTest : public ::testing::Test {
 protected:
  std::unique_ptr<Coordinator> MakeCoordinator(CoordinatorOptions o) {
    coord_transport_ = std::move(*hub_->Create("inproc://coordinator", Log("coordinator")));
    return std::make_unique<Coordinator>(std::move(o), coord_transport_.get(), Log("coordinator"));
  }
  TestNode MakeNode(Role role, const std::string& name, Duration hb = milliseconds(50)) {
    TestNode n;
    n.transport = std::move(*hub_->Create("inproc://" + name, Log(name)));
    n.dispatcher = std::make_unique<Dispatcher>(n.transport.get(), Log(name));
    ClusterClientOptions o;
    o.role = role;
    o.coordinator_address = "inproc://coordinator";
    o.heartbeat_interval = hb;
    o.register_retry = milliseconds(50);
    n.client = std::make_unique<ClusterClient>(o, n.transport.get(), n.dispatcher.get(), Log(name));
    n.dispatcher->Start();
    return n;
  }
  // Server s0 and workers w0, w1, registered with a running coordinator;
  // first_change: the first new view s0 is told of after the job starts.
  struct ServerAndTwoWorkers {
    TestNode s0, w0, w1;
    bool registered = false;
    std::future<ClusterView> first_change;
  };
  ServerAndTwoWorkers RegisterServerAndTwoWorkers() {
    ServerAndTwoWorkers job{MakeNode(Role::kServer, "s0"), MakeNode(Role::kWorker, "w0"),
                            MakeNode(Role::kWorker, "w1")};
    auto changed = std::make_shared<std::promise<ClusterView>>();
    job.first_change = changed->get_future();
    auto once = std::make_shared<std::once_flag>();
    job.s0.client->OnViewChange([changed, once](const ClusterView& v) {
      std::call_once(*once, [&] { changed->set_value(v); });
    });
    std::vector<std::future<Status>> regs;
    for (TestNode* n : {&job.s0, &job.w0, &job.w1}) {
      regs.push_back(std::async(std::launch::async,
                                [n] { return n->client->Register(Deadline::After(seconds(10))); }));
    }
    job.registered = true;
    for (auto& r : regs) job.registered = r.get().ok() && job.registered;
    return job;
  }
  Logger Log(const std::string& name) { return Logger(sink_, name, LogLevel::kInfo); }

  std::shared_ptr<InProcHub> hub_ = std::make_shared<InProcHub>();
  std::shared_ptr<MemorySink> sink_ = std::make_shared<MemorySink>();
  std::unique_ptr<Transport> coord_transport_;
};

TEST_F(ClusterTest, RegistersAssignsRanksRunsBarriersAndEndsCleanly) {
  CoordinatorOptions o;
  o.num_servers = 2;
  o.num_workers = 2;
  FnPolicy policy;
  policy.first = [](const ClusterView& v) {
    return "layout-for-" + std::to_string(v.members.size());
  };
  o.policy = &policy;
  auto coord = MakeCoordinator(o);
  auto result = std::async(std::launch::async, [&] { return coord->Run(); });
  std::vector<TestNode> nodes;
  nodes.push_back(MakeNode(Role::kServer, "s0"));
  nodes.push_back(MakeNode(Role::kServer, "s1"));
  nodes.push_back(MakeNode(Role::kWorker, "w0"));
  nodes.push_back(MakeNode(Role::kWorker, "w1"));
  std::vector<std::future<Status>> regs;
  for (auto& n : nodes) {
    regs.push_back(std::async(std::launch::async,
                              [&n] { return n.client->Register(Deadline::After(seconds(10))); }));
  }
  for (auto& r : regs) ASSERT_TRUE(r.get().ok());
  std::set<std::pair<Role, uint32_t>> ranks;
  std::set<NodeId> ids;
  for (auto& n : nodes) {
    ClusterView v = n.client->view();
    EXPECT_EQ(v.epoch, 1u);
    EXPECT_EQ(v.layout, "layout-for-4");
    const Member* me = v.Find(n.client->id());
    ASSERT_NE(me, nullptr);
    ranks.insert({me->role, me->rank});
    ids.insert(me->id);
  }
  EXPECT_EQ(ranks.size(), 4u);  // (server,0) (server,1) (worker,0) (worker,1)
  EXPECT_EQ(ids.size(), 4u);
  EXPECT_EQ(ranks.count({Role::kWorker, 1}), 1u);

  std::vector<std::future<Status>> bars;
  for (auto& n : nodes) {
    bars.push_back(std::async(std::launch::async, [&n] {
      return n.client->Barrier("start", BarrierGroup::kAll, Deadline::After(seconds(10)));
    }));
  }
  for (auto& b : bars) EXPECT_TRUE(b.get().ok());

  nodes[2].client->SendDone();
  EXPECT_EQ(result.wait_for(milliseconds(200)), std::future_status::timeout);  // w1 not done
  nodes[3].client->SendDone();
  EXPECT_TRUE(result.get().ok());
  for (auto& n : nodes) EXPECT_TRUE(n.client->WaitShutdown(Deadline::After(seconds(10))).ok());
}

TEST_F(ClusterTest, AGatherHandsEveryWorkersValueToAllAndKeepsThemForLateArrivals) {
  CoordinatorOptions o;
  o.num_servers = 1;
  o.num_workers = 2;
  auto coord = MakeCoordinator(o);
  auto result = std::async(std::launch::async, [&] { return coord->Run(); });
  ServerAndTwoWorkers job = RegisterServerAndTwoWorkers();
  ASSERT_TRUE(job.registered);
  auto gather = [](TestNode& n) {
    return std::async(std::launch::async, [&n] {
      return n.client->Gather("rows", BarrierGroup::kWorkers,
                              "rows of " + std::to_string(n.client->rank()),
                              Deadline::After(seconds(10)));
    });
  };
  auto first = gather(job.w0);
  // Not released while worker w1 has not arrived.
  EXPECT_EQ(first.wait_for(milliseconds(200)), std::future_status::timeout);
  auto second = gather(job.w1);
  for (auto* f : {&first, &second}) {
    auto values = f->get();
    ASSERT_TRUE(values.ok()) << values.status().ToString();
    ASSERT_EQ(values->size(), 2u);
    EXPECT_EQ(values->at(0), "rows of 0");
    EXPECT_EQ(values->at(1), "rows of 1");
  }
  // A worker arriving again (restarted) is answered at once, with its new value.
  // (The coordinator deals the ranks: w1 is not necessarily rank 1.)
  const uint32_t r0 = job.w0.client->rank();
  const uint32_t r1 = job.w1.client->rank();
  auto again =
      job.w1.client->Gather("rows", BarrierGroup::kWorkers, "again", Deadline::After(seconds(10)));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->at(r0), "rows of " + std::to_string(r0));
  EXPECT_EQ(again->at(r1), "again");
  EXPECT_FALSE(
      job.w0.client->Gather("x", BarrierGroup::kAll, "", Deadline::After(seconds(1))).ok());
  job.w0.client->SendDone();
  job.w1.client->SendDone();
  EXPECT_TRUE(result.get().ok());
}

TEST_F(ClusterTest, MissingHeartbeatsDeclareANodeDeadAndPublishANewEpoch) {
  CoordinatorOptions o;
  o.num_servers = 1;
  o.num_workers = 2;
  o.heartbeat_timeout = milliseconds(400);
  auto coord = MakeCoordinator(o);
  auto result = std::async(std::launch::async, [&] { return coord->Run(); });
  ServerAndTwoWorkers job = RegisterServerAndTwoWorkers();
  ASSERT_TRUE(job.registered);
  TestNode& w0 = job.w0;
  TestNode& w1 = job.w1;
  uint32_t dead_rank = w1.client->rank();
  // w1 "crashes": its heartbeats stop and its transport goes away.
  w1.client->Stop();
  w1.dispatcher->Stop();
  auto& fut = job.first_change;
  ASSERT_EQ(fut.wait_for(seconds(10)), std::future_status::ready);
  ClusterView v = fut.get();
  EXPECT_EQ(v.epoch, 2u);
  EXPECT_EQ(v.Live(Role::kWorker).size(), 1u);
  EXPECT_EQ(v.FindRank(Role::kWorker, dead_rank), nullptr);
  EXPECT_TRUE(sink_->Contains("declared worker/" + std::to_string(dead_rank)));
  EXPECT_TRUE(sink_->Contains("no heartbeat for"));
  // The survivor finishing ends the job: nobody waits for the dead worker.
  w0.client->SendDone();
  EXPECT_TRUE(result.get().ok());
}

// The coordinator's heartbeat timeout reads the Env's clock: an hour of
// silence passes in an instant, and only the node that really went quiet is
// declared dead.
TEST_F(ClusterTest, HeartbeatTimeoutsReadTheInjectedClock) {
  FaultyEnv env(Env::Default());
  const SteadyTime t0 = std::chrono::steady_clock::now();
  env.SetTime(t0);
  CoordinatorOptions o;
  o.num_servers = 1;
  o.num_workers = 2;
  o.heartbeat_timeout = std::chrono::hours(1);
  o.env = &env;
  auto coord = MakeCoordinator(o);
  auto result = std::async(std::launch::async, [&] { return coord->Run(); });
  ServerAndTwoWorkers job = RegisterServerAndTwoWorkers();
  ASSERT_TRUE(job.registered);
  TestNode& w0 = job.w0;
  TestNode& w1 = job.w1;
  const uint32_t dead_rank = w1.client->rank();
  w1.client->Stop();
  w1.dispatcher->Stop();
  // 50 minutes on: the live nodes' heartbeats (every 50 ms of real time)
  // are stamped with it; w1's last one is from t0.
  env.SetTime(t0 + std::chrono::minutes(50));
  std::this_thread::sleep_for(seconds(2));
  EXPECT_FALSE(sink_->Contains("declared"));  // 50 min < the hour
  env.SetTime(t0 + std::chrono::minutes(61));
  auto& fut = job.first_change;
  ASSERT_EQ(fut.wait_for(seconds(10)), std::future_status::ready);
  ClusterView v = fut.get();
  EXPECT_EQ(v.FindRank(Role::kWorker, dead_rank), nullptr);
  EXPECT_EQ(v.Live(Role::kWorker).size(), 1u);
  EXPECT_EQ(v.Live(Role::kServer).size(), 1u);
  EXPECT_TRUE(sink_->Contains("declared worker/" + std::to_string(dead_rank) + " ("));
  EXPECT_TRUE(sink_->Contains("dead: no heartbeat for 3660000 ms"));  // 61 min of its clock
  w0.client->SendDone();
  EXPECT_TRUE(result.get().ok());
}

TEST_F(ClusterTest, StartupTimeoutNamesTheMissingRanks) {
  CoordinatorOptions o;
  o.num_servers = 1;
  o.num_workers = 3;
  o.startup_timeout = milliseconds(800);
  o.startup_log_interval = milliseconds(200);
  auto coord = MakeCoordinator(o);
  auto result = std::async(std::launch::async, [&] { return coord->Run(); });
  auto s0 = MakeNode(Role::kServer, "s0");
  auto w0 = MakeNode(Role::kWorker, "w0");
  auto a = std::async(std::launch::async,
                      [&] { return s0.client->Register(Deadline::After(seconds(10))); });
  auto b = std::async(std::launch::async,
                      [&] { return w0.client->Register(Deadline::After(seconds(10))); });
  Status s = result.get();
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(s.message().find("worker ranks 1,2"), std::string::npos) << s.message();
  EXPECT_TRUE(sink_->Contains("waiting for worker ranks 1,2 to register at inproc://coordinator"));
  // The nodes that did come are told to stop, with the reason.
  Status sa = a.get();
  EXPECT_FALSE(sa.ok());
  EXPECT_NE(sa.message().find("start-up timed out"), std::string::npos) << sa.message();
  b.get().IgnoreError();
}

TEST_F(ClusterTest, AbortFromANodeStopsTheJobWithItsReason) {
  CoordinatorOptions o;
  o.num_servers = 1;
  o.num_workers = 1;
  auto coord = MakeCoordinator(o);
  auto result = std::async(std::launch::async, [&] { return coord->Run(); });
  auto s0 = MakeNode(Role::kServer, "s0");
  auto w0 = MakeNode(Role::kWorker, "w0");
  auto a = std::async(std::launch::async,
                      [&] { return s0.client->Register(Deadline::After(seconds(10))); });
  ASSERT_TRUE(w0.client->Register(Deadline::After(seconds(10))).ok());
  ASSERT_TRUE(a.get().ok());
  w0.client->SendAbort("data file corrupt");
  Status s = result.get();
  EXPECT_EQ(s.code(), StatusCode::kAborted);
  EXPECT_NE(s.message().find("data file corrupt"), std::string::npos);
  Status ss = s0.client->WaitShutdown(Deadline::After(seconds(10)));
  EXPECT_FALSE(ss.ok());
  EXPECT_NE(ss.message().find("data file corrupt"), std::string::npos);
}

// SetLayout used to write the view that view() read under its mutex without
// taking it (a data race under TSan); now view() returns a copy the
// coordinator thread refreshes on every change, a policy's new layout's included.
TEST_F(ClusterTest, CoordinatorViewOnAnotherThreadSeesANewLayout) {
  CoordinatorOptions o;
  o.num_servers = 1;
  o.num_workers = 1;
  FnPolicy policy;
  policy.first = [](const ClusterView&) { return std::string("first"); };
  policy.on_view = [](const ClusterView& v) {  // on the coordinator thread
    return v.layout == "first" ? JobAction::Publish("second") : JobAction::Keep();
  };
  o.policy = &policy;
  auto coord = MakeCoordinator(o);
  EXPECT_EQ(coord->view().members.size(), 0u);
  EXPECT_EQ(coord->view().num_workers, 1u);
  auto result = std::async(std::launch::async, [&] { return coord->Run(); });
  auto s0 = MakeNode(Role::kServer, "s0");
  auto w0 = MakeNode(Role::kWorker, "w0");
  auto a = std::async(std::launch::async,
                      [&] { return s0.client->Register(Deadline::After(seconds(10))); });
  ASSERT_TRUE(w0.client->Register(Deadline::After(seconds(10))).ok());
  ASSERT_TRUE(a.get().ok());
  // Read while the coordinator thread runs: it publishes epoch 2 right after
  // the job starts.
  const Deadline give_up = Deadline::After(seconds(10));
  ClusterView v = coord->view();
  while (v.layout != "second" && !give_up.expired()) {
    std::this_thread::sleep_for(milliseconds(5));
    v = coord->view();
  }
  EXPECT_EQ(v.layout, "second");
  EXPECT_EQ(v.epoch, 2u);
  EXPECT_EQ(v.Live(Role::kServer).size(), 1u);
  EXPECT_EQ(v.Live(Role::kWorker).size(), 1u);
  w0.client->SendDone();
  EXPECT_TRUE(result.get().ok());
}

TEST_F(ClusterTest, APolicyThatFailsTheJobEndsItWithItsReason) {
  CoordinatorOptions o;
  o.num_servers = 1;
  o.num_workers = 1;
  FnPolicy policy;
  policy.on_view = [](const ClusterView& v) {
    return v.epoch >= 1 ? JobAction::Fail(UnavailableError("no copy of partition 3 is left"))
                        : JobAction::Keep();
  };
  o.policy = &policy;
  auto coord = MakeCoordinator(o);
  auto result = std::async(std::launch::async, [&] { return coord->Run(); });
  auto s0 = MakeNode(Role::kServer, "s0");
  auto w0 = MakeNode(Role::kWorker, "w0");
  auto a = std::async(std::launch::async,
                      [&] { return s0.client->Register(Deadline::After(seconds(10))); });
  w0.client->Register(Deadline::After(seconds(10))).IgnoreError();
  a.get().IgnoreError();
  Status s = result.get();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("no copy of partition 3 is left"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace distopt
