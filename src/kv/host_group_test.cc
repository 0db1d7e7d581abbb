// Per-host aggregation: the group's bookkeeping (HostGroup), and whole jobs
// as threads of one process whose workers share emulated hosts.
#include "kv/host_group.h"

#include <gtest/gtest.h>

#include <cmath>

#include "kv/testing/in_proc_cluster.h"

namespace distopt {
namespace {

ClusterView ViewOf(const std::vector<std::pair<uint32_t, std::string>>& workers) {
  ClusterView v;
  v.num_workers = static_cast<uint32_t>(workers.size());
  NodeId id = 10;
  for (const auto& [rank, host] : workers) {
    Member m;
    m.id = id++;
    m.role = Role::kWorker;
    m.rank = rank;
    m.host = host;
    v.members.push_back(m);
  }
  return v;
}

HostGroup::Contribution From(uint32_t rank, std::vector<float> grad) {
  HostGroup::Contribution c;
  c.rank = rank;
  c.node = 10 + rank;
  c.push.values = Buffer::FromVector(std::move(grad));
  return c;
}

TEST(HostGroupTest, TheFirstWorkerOfAHostLeadsAndOtherHostsAreNotInIt) {
  ClusterView v = ViewOf({{0, "a"}, {1, "b"}, {2, "a"}, {3, "b"}});
  HostGroup g;
  g.OnView(v, 3, HostAggregation::kOn);
  EXPECT_TRUE(g.active());
  EXPECT_FALSE(g.leading());
  EXPECT_EQ(g.leader_rank(), 1u);
  EXPECT_EQ(g.leader(), 11u);
  EXPECT_EQ(g.RankOf(11), 1u);
  EXPECT_FALSE(g.RankOf(12).has_value());  // worker/2 is on host a
  g.OnView(v, 1, HostAggregation::kOn);
  EXPECT_TRUE(g.leading());
  EXPECT_EQ(g.host(), "b");
  // Off, or alone on its host: a group of one.
  g.OnView(v, 1, HostAggregation::kOff);
  EXPECT_FALSE(g.active());
  g.OnView(ViewOf({{0, "a"}, {1, "b"}}), 1, HostAggregation::kOn);
  EXPECT_FALSE(g.active());
}

// The leader is the host's longest-lived worker: a restarted worker/0 (a
// new, higher node id) joins as a member.
// auto: only a job that spans (or once spanned) hosts aggregates; losing
// the other host does not change how the survivors sum.
TEST(HostGroupTest, AutoAggregatesOnlyAJobThatSpansHosts) {
  HostGroup g;
  g.OnView(ViewOf({{0, "a"}, {1, "a"}}), 0, HostAggregation::kAuto);
  EXPECT_FALSE(g.active());
  ClusterView v = ViewOf({{0, "a"}, {1, "a"}});
  Member server;
  server.id = 99;
  server.role = Role::kServer;
  server.host = "b";
  v.members.push_back(server);
  g.OnView(v, 0, HostAggregation::kAuto);
  EXPECT_TRUE(g.active());
  v.members.back().alive = false;  // the other host's server is gone
  g.OnView(v, 0, HostAggregation::kAuto);
  EXPECT_TRUE(g.active());
  EXPECT_TRUE(HostGroup::Enabled(v, HostAggregation::kAuto));
  EXPECT_FALSE(HostGroup::Enabled(ViewOf({{0, "a"}, {1, "a"}}), HostAggregation::kAuto));
  EXPECT_FALSE(HostGroup::Enabled(v, HostAggregation::kOff));
}

TEST(HostGroupTest, ARestartedWorkerDoesNotDisplaceTheLeader) {
  ClusterView v = ViewOf({{1, "a"}, {0, "a"}});
  HostGroup g;
  g.OnView(v, 0, HostAggregation::kOn);
  EXPECT_FALSE(g.leading());
  EXPECT_EQ(g.leader_rank(), 1u);
  v.members[0].alive = false;  // worker/1 dies: worker/0 leads
  g.OnView(v, 0, HostAggregation::kOn);
  EXPECT_FALSE(g.active());  // alone on its host now
}

TEST(HostGroupTest, TheLeaderWaitsForEveryLiveMemberAndSumsInRankOrder) {
  HostGroup g;
  g.OnView(ViewOf({{0, "a"}, {1, "a"}, {2, "a"}}), 0, HostAggregation::kOn);
  ASSERT_TRUE(g.leading());
  EXPECT_FALSE(g.Complete(0, 5));
  EXPECT_EQ(g.Missing(0, 5), "worker/1, worker/2");
  EXPECT_EQ(g.Contribute(0, 5, From(2, {1e8f, 3})), HostGroup::Added::kStored);
  EXPECT_FALSE(g.Complete(0, 5));
  EXPECT_EQ(g.Missing(0, 5), "worker/1");
  EXPECT_EQ(g.Contribute(0, 5, From(1, {-1e8f, 2})), HostGroup::Added::kStored);
  EXPECT_TRUE(g.Complete(0, 5));
  EXPECT_FALSE(g.Complete(1, 5));  // another table
  auto members = g.Take(0, 5);
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[0].rank, 1u);
  EXPECT_EQ(g.Ranks(members), (std::vector<uint32_t>{0, 1, 2}));
  std::vector<float> own = {1, 1}, out(2);
  HostGroup::Sum(0, own, members, out);
  // ((1 + -1e8) + 1e8) in float is 0; any other order gives 1.
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[1], 6.0f);
  // Led by worker/2 instead (it registered first): still summed by rank,
  // (1e8 + 1) + -1e8 = 0; the leader's own first would give
  // (-1e8 + 1e8) + 1 = 1.
  std::vector<HostGroup::Contribution> others = {From(0, {1e8f, 1}), From(1, {1, 2})};
  std::vector<float> own2 = {-1e8f, 3}, out2(2);
  HostGroup::Sum(2, own2, others, out2);
  EXPECT_EQ(out2[0], 0.0f);
  EXPECT_EQ(out2[1], 6.0f);
  // That clock has gone: a retry of it is late.
  EXPECT_EQ(g.Contribute(0, 5, From(1, {0, 0})), HostGroup::Added::kLate);
}

TEST(HostGroupTest, ADeadMemberIsNotWaitedForAndANewcomerOnlyOnceItSpoke) {
  HostGroup g;
  g.OnView(ViewOf({{0, "a"}, {1, "a"}}), 0, HostAggregation::kOn);
  ASSERT_EQ(g.Contribute(0, 0, From(1, {1})), HostGroup::Added::kStored);
  g.Take(0, 0);
  // worker/1 dies; worker/2 joins the host.
  ClusterView v = ViewOf({{0, "a"}, {1, "a"}, {2, "a"}});
  v.members[1].alive = false;
  g.OnView(v, 0, HostAggregation::kOn);
  EXPECT_TRUE(g.Complete(0, 1)) << g.Missing(0, 1);
  ASSERT_EQ(g.Contribute(0, 2, From(2, {1})), HostGroup::Added::kStored);
  EXPECT_TRUE(g.Complete(0, 2));
  EXPECT_FALSE(g.Complete(0, 3));  // from now on worker/2 is waited for
  EXPECT_EQ(g.Missing(0, 3), "worker/2");
}

// Adopting the dead: the leader keeps waiting for a dead member (its own
// trainer contributes for it), even as the host's last live worker, so the
// host's sum is of the same ranks as before; a member adopts nobody.
TEST(HostGroupTest, WithAdoptionTheLeaderWaitsForItsDeadMembers) {
  ClusterView v = ViewOf({{0, "a"}, {1, "a"}, {2, "a"}});
  v.members[1].alive = false;
  HostGroup g;
  g.OnView(v, 0, HostAggregation::kOn, /*adopt_dead=*/true);
  ASSERT_TRUE(g.leading());
  EXPECT_EQ(g.adopted(), (std::vector<uint32_t>{1}));
  EXPECT_EQ(g.Missing(0, 0), "worker/1, worker/2");
  ASSERT_EQ(g.Contribute(0, 0, From(2, {1})), HostGroup::Added::kStored);
  EXPECT_FALSE(g.Complete(0, 0));
  ASSERT_EQ(g.Contribute(0, 0, From(1, {2})), HostGroup::Added::kStored);
  EXPECT_TRUE(g.Complete(0, 0));
  EXPECT_EQ(g.Ranks(g.Take(0, 0)), (std::vector<uint32_t>{0, 1, 2}));
  v.members[2].alive = false;  // worker/0 is the host's last
  g.OnView(v, 0, HostAggregation::kOn, true);
  EXPECT_TRUE(g.active());
  EXPECT_EQ(g.adopted(), (std::vector<uint32_t>{1, 2}));
  EXPECT_FALSE(g.Complete(0, 1));
  // The leader's own contribution for worker/2, then worker/2's (restarted
  // meanwhile): the first counts, and the worker still gets its answer.
  HostGroup::Contribution adopted = From(2, {5});
  adopted.node = kUnassignedId;
  ASSERT_EQ(g.Contribute(0, 1, std::move(adopted)), HostGroup::Added::kStored);
  HostGroup::Contribution own = From(2, {6});
  own.request_id = 77;
  ASSERT_EQ(g.Contribute(0, 1, std::move(own)), HostGroup::Added::kStored);
  ASSERT_EQ(g.Contribute(0, 1, From(1, {1})), HostGroup::Added::kStored);
  auto took = g.Take(0, 1);
  ASSERT_EQ(took.size(), 2u);
  EXPECT_EQ(took[1].node, 12u);
  EXPECT_EQ(took[1].request_id, 77u);
  EXPECT_EQ(took[1].push.values.as<float>()[0], 5.0f);
  g.OnView(v, 0, HostAggregation::kOn, false);  // without adoption: alone
  EXPECT_FALSE(g.active());
  HostGroup member;
  member.OnView(ViewOf({{0, "a"}, {1, "a"}, {2, "a"}}), 2, HostAggregation::kOn, true);
  ClusterView dead0 = ViewOf({{0, "a"}, {1, "a"}, {2, "a"}});
  dead0.members[2].alive = false;  // worker/2 dies; worker/0 leads, worker/1 is a member
  member.OnView(dead0, 1, HostAggregation::kOn, true);
  EXPECT_FALSE(member.leading());
  EXPECT_TRUE(member.adopted().empty());
  // A restarted worker (a new incarnation, alive) is not adopted.
  dead0.members.push_back(dead0.members[2]);
  dead0.members.back().id = 50;
  dead0.members.back().alive = true;
  g.OnView(dead0, 0, HostAggregation::kOn, true);
  EXPECT_TRUE(g.adopted().empty());
}

TEST(HostGroupTest, OnlyTheLeaderTakesContributions) {
  HostGroup g;
  g.OnView(ViewOf({{0, "a"}, {1, "a"}}), 1, HostAggregation::kOn);
  EXPECT_EQ(g.Contribute(0, 0, From(0, {1})), HostGroup::Added::kNotLeading);
}

// The leader dies mid-clock: it may have answered some members of clock 5
// and not others, and its sum may or may not have reached the servers. The
// new leader (worker/1) gave it table 0's clock 5 and table 1's clock 4, so
// those count as sent: members' and its own adopted contributions to them
// are late (each pushes its own); later clocks are summed as before.
TEST(HostGroupTest, ANewLeaderSumsOnlyTheClocksAfterThoseItGaveTheDeadOne) {
  ClusterView v = ViewOf({{0, "a"}, {1, "a"}, {2, "a"}});
  HostGroup g;
  g.OnView(v, 1, HostAggregation::kOn, /*adopt_dead=*/true);
  ASSERT_FALSE(g.leading());
  for (int64_t clock = 0; clock <= 5; ++clock) g.Submitted(0, clock);
  g.Submitted(1, 4);
  v.members[0].alive = false;  // the leader (node 10)
  g.OnView(v, 1, HostAggregation::kOn, true);
  ASSERT_TRUE(g.leading());
  EXPECT_EQ(g.adopted(), (std::vector<uint32_t>{0}));
  EXPECT_EQ(g.Contribute(0, 5, From(2, {1})), HostGroup::Added::kLate);
  HostGroup::Contribution adopted = From(0, {1});
  adopted.node = kUnassignedId;
  EXPECT_EQ(g.Contribute(0, 5, std::move(adopted)), HostGroup::Added::kLate);
  EXPECT_EQ(g.Contribute(1, 4, From(2, {1})), HostGroup::Added::kLate);
  EXPECT_EQ(g.Contribute(1, 5, From(2, {1})), HostGroup::Added::kStored);
  EXPECT_EQ(g.Contribute(0, 6, From(2, {1})), HostGroup::Added::kStored);
  EXPECT_EQ(g.Missing(0, 6), "worker/0");  // the adopted rank, then complete
  adopted = From(0, {1});
  adopted.node = kUnassignedId;
  ASSERT_EQ(g.Contribute(0, 6, std::move(adopted)), HostGroup::Added::kStored);
  EXPECT_TRUE(g.Complete(0, 6));
  // A rollback forgets the clocks given: the replay is summed again.
  g.Clear();
  EXPECT_EQ(g.Contribute(0, 5, From(2, {1})), HostGroup::Added::kStored);
}

// ---- whole jobs ----

constexpr uint64_t kBig = 40000;
constexpr float kLr = 0.1f;
constexpr int kSteps = 6;

std::vector<TableSpec> Tables() {
  std::vector<TableSpec> t(2);
  for (int i = 0; i < 2; ++i) {
    t[i].id = i;
    t[i].name = i == 0 ? "big" : "small";
    t[i].size = i == 0 ? kBig : 7;
    t[i].init = {InitKind::kUniform, 0.5f, 42};
    t[i].optimizer.kind = "sgd";
    t[i].optimizer.lr = kLr;
  }
  return t;
}

float Grad(uint32_t w, int k, uint64_t i, float p) {
  return 0.5f * p + std::sin(static_cast<float>(w * 13 + k * 7) + static_cast<float>(i) * 0.01f);
}

struct JobResult {
  Status status;
  std::vector<std::vector<float>> tables;
  std::vector<KvClientStats> stats;  // by worker rank
};

// `workers` workers train kSteps BSP steps of Grad; `host_of` places nodes.
JobResult RunJob(uint32_t servers, uint32_t workers, bool aggregate,
                 std::function<std::string(const std::string&)> host_of) {
  InProcClusterOptions o;
  o.servers = servers;
  o.workers = workers;
  o.tables = Tables();
  o.consistency.mode = Consistency::kBsp;
  o.client.host_aggregation = aggregate ? HostAggregation::kOn : HostAggregation::kOff;
  o.host_of = std::move(host_of);
  if (getenv("KVDEBUG")) o.log_sink = StderrSink();
  InProcCluster cluster(o);
  JobResult r;
  r.stats.resize(workers);
  std::mutex mu;
  auto tables = o.tables;
  r.status = cluster.Run([&](WorkerNode& node) -> Status {
    KvClient& kv = node.kv();
    const uint32_t w = node.rank();
    std::vector<std::vector<float>> params(2), grads(2);
    for (uint32_t t = 0; t < 2; ++t) {
      params[t].resize(tables[t].size);
      grads[t].resize(tables[t].size);
      RETURN_IF_ERROR(kv.Wait(kv.Pull(t, params[t], 0), Deadline::After(std::chrono::seconds(30))));
    }
    for (int k = 0; k < kSteps; ++k) {
      std::vector<KvHandle> hs;
      for (uint32_t t = 0; t < 2; ++t) {
        for (uint64_t i = 0; i < tables[t].size; ++i) {
          grads[t][i] = Grad(w, k, i + t * 1000, params[t][i]);
        }
        hs.push_back(kv.PushPull(t, grads[t], params[t], k));
      }
      for (auto& h : hs) RETURN_IF_ERROR(kv.Wait(h, Deadline::After(std::chrono::seconds(30))));
    }
    std::lock_guard<std::mutex> lock(mu);
    r.stats[w] = kv.stats();
    return Status::Ok();
  });
  for (uint32_t t = 0; t < 2; ++t) r.tables.push_back(cluster.DenseTable(t));
  return r;
}

// The single-process reference: the mean gradient, step by step.
std::vector<float> Reference(uint32_t t, uint32_t workers) {
  const auto tables = Tables();
  std::vector<float> p(tables[t].size);
  for (uint64_t i = 0; i < p.size(); ++i) p[i] = InitValue(tables[t].init, t, i);
  for (int k = 0; k < kSteps; ++k) {
    for (uint64_t i = 0; i < p.size(); ++i) {
      float g = 0;
      for (uint32_t w = 0; w < workers; ++w) g += Grad(w, k, i + t * 1000, p[i]);
      p[i] -= kLr * g * (1.0f / static_cast<float>(workers));
    }
  }
  return p;
}

double RelErr(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double{a[i]} - b[i]) * (double{a[i]} - b[i]);
    den += double{b[i]} * b[i];
  }
  return std::sqrt(num / den);
}

// "worker/3" -> host "h1" for workers 2-3 (two to a host), servers by rank.
std::string TwoPerHost(const std::string& name) {
  const auto slash = name.find('/');
  const int rank = std::stoi(name.substr(slash + 1));
  return name.rfind("worker", 0) == 0 ? "h" + std::to_string(rank / 2) : "h" + std::to_string(rank);
}

class HostAggregationTest : public ::testing::TestWithParam<std::tuple<uint32_t, uint32_t>> {};

// Two workers to a host, servers on the workers' hosts: the leaders push for
// their hosts, and BSP still equals the single-process reference.
TEST_P(HostAggregationTest, BspMatchesTheSingleProcessReference) {
  const auto [servers, workers] = GetParam();
  JobResult r = RunJob(servers, workers, /*aggregate=*/true, TwoPerHost);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  for (uint32_t t = 0; t < 2; ++t) {
    EXPECT_LE(RelErr(r.tables[t], Reference(t, workers)), 1e-6) << "table " << t;
  }
  // On each shared host one worker led (whichever registered first) and
  // the other sent it every push-pull of its kSteps x 2 tables.
  for (uint32_t w = 0; w + 1 < workers; w += 2) {
    const KvClientStats& a = r.stats[w];
    const KvClientStats& b = r.stats[w + 1];
    const bool a_leads = a.host_sums > 0;
    const KvClientStats& leader = a_leads ? a : b;
    const KvClientStats& member = a_leads ? b : a;
    EXPECT_EQ(leader.host_sums, 2u * kSteps) << "host h" << w / 2;
    EXPECT_EQ(leader.host_member_pushes, 0u) << "host h" << w / 2;
    EXPECT_EQ(member.host_sums, 0u) << "host h" << w / 2;
    EXPECT_EQ(member.host_member_pushes, 2u * kSteps) << "host h" << w / 2;
    EXPECT_EQ(a.host_fallbacks + b.host_fallbacks, 0u) << "host h" << w / 2;
    // The parameters came back to the member slice by slice, as the
    // leader's servers answered: the big table's min(servers, 2) slices
    // (one whole slice is the table), the small table whole.
    const uint64_t big_slices = std::min<uint64_t>(servers, kBig / Layout::kMinSliceFloats);
    EXPECT_EQ(leader.host_slices_forwarded, kSteps * (big_slices + 1)) << "host h" << w / 2;
    EXPECT_EQ(member.host_slices_taken, big_slices > 1 ? kSteps * big_slices : 0u)
        << "host h" << w / 2;
  }
  if (workers % 2 == 1) {  // alone on its host
    EXPECT_EQ(r.stats.back().host_sums + r.stats.back().host_member_pushes, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, HostAggregationTest,
                         ::testing::Values(std::make_tuple(1u, 2u), std::make_tuple(2u, 4u),
                                           std::make_tuple(3u, 5u)));

// Off, or every worker on a host of its own: nobody aggregates.
TEST(HostAggregationOffTest, NoGroupWithoutTheOptionOrWithoutASharedHost) {
  JobResult off = RunJob(2, 4, /*aggregate=*/false, TwoPerHost);
  JobResult alone = RunJob(2, 4, /*aggregate=*/true, nullptr);
  for (const JobResult* r : {&off, &alone}) {
    ASSERT_TRUE(r->status.ok()) << r->status.ToString();
    for (const auto& s : r->stats) EXPECT_EQ(s.host_sums + s.host_member_pushes, 0u);
    EXPECT_LE(RelErr(r->tables[0], Reference(0, 4)), 1e-6);
  }
}

// A worker may speak only for the workers of its own host.
TEST(HostAggregationOffTest, ACombinedPushForAWorkerOfAnotherHostIsRefused) {
  InProcClusterOptions o;
  o.servers = 1;
  o.workers = 2;
  o.tables = Tables();
  o.consistency.mode = Consistency::kBsp;
  o.host_of = [](const std::string& name) { return name == "worker/1" ? "b" : "a"; };
  o.log_sink = std::make_shared<MemorySink>();
  InProcCluster cluster(o);
  Status refused;
  Status s = cluster.Run([&](WorkerNode& node) -> Status {
    if (node.rank() != 0) return Status::Ok();
    KvClient& kv = node.kv();
    std::vector<float> g(kBig, 1.0f), p(kBig);
    refused =
        kv.Wait(kv.PushPullGroup(0, g, p, 0, {0, 1}), Deadline::After(std::chrono::seconds(30)));
    return Status::Ok();
  });
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument) << refused.ToString();
  EXPECT_NE(refused.message().find("worker/1 (host b) in one sum with worker/0 (host a)"),
            std::string::npos)
      << refused.ToString();
}

}  // namespace
}  // namespace distopt
