// A whole parameter-server job as threads of one process, over servers
// {1,2,3} x workers {1,2,4} x {BSP, SSP, ASP}.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "kv/kv_message.h"
#include "kv/testing/in_proc_cluster.h"
#include "transport/faulty_transport.h"
#include "transport/local_peers.h"

namespace distopt {
namespace {

using Param = std::tuple<uint32_t, uint32_t, Consistency>;

constexpr uint64_t kBig = 40000;  // sliced across up to 2 servers (16384 floats per slice min)
constexpr uint64_t kSmall = 7;
constexpr float kLr = 0.1f;
constexpr int kSteps = 6;
constexpr int64_t kStaleness = 1;

std::vector<TableSpec> DenseTables() {
  std::vector<TableSpec> t(2);
  for (int i = 0; i < 2; ++i) {
    t[i].id = i;
    t[i].name = i == 0 ? "big" : "small";
    t[i].size = i == 0 ? kBig : kSmall;
    t[i].init = {InitKind::kUniform, 0.5f, 42};
    t[i].optimizer.kind = "sgd";
    t[i].optimizer.lr = kLr;
  }
  return t;
}

// The gradient worker w computes at step k from parameters p: depends on
// the parameters, so a pull returning the wrong clock changes the result.
float Grad(uint32_t w, int k, uint64_t i, float p) {
  return 0.5f * p + std::sin(static_cast<float>(w * 13 + k * 7) + static_cast<float>(i) * 0.01f);
}
// A parameter-independent gradient (for ASP/SSP, whose order of
// application is not deterministic).
float FixedGrad(uint32_t w, int k, uint64_t i) {
  return std::cos(static_cast<float>(w * 5 + k * 3) + static_cast<float>(i) * 0.02f);
}

double RelErr(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}

class KvClusterTest : public ::testing::TestWithParam<Param> {
 protected:
  uint32_t servers() const { return std::get<0>(GetParam()); }
  uint32_t workers() const { return std::get<1>(GetParam()); }
  Consistency mode() const { return std::get<2>(GetParam()); }
  InProcClusterOptions Options(std::vector<TableSpec> tables) const {
    InProcClusterOptions o;
    o.servers = servers();
    o.workers = workers();
    o.tables = std::move(tables);
    o.consistency.mode = mode();
    o.consistency.staleness = kStaleness;
    return o;
  }
};

// Trains `tables` (two dense ones) on `o`'s cluster for kSteps and
// expects what one process computes: BSP equals applying the mean gradient
// step by step; under SSP and ASP every push is applied once, so with fixed
// gradients the result is the initial value minus lr times the sum of all
// pushes.
void ExpectDenseTrainingMatchesTheReference(const std::vector<TableSpec>& tables,
                                            const InProcClusterOptions& o) {
  InProcCluster cluster(o);
  const bool bsp = o.consistency.mode == Consistency::kBsp;
  Status s = cluster.Run([&](WorkerNode& node) -> Status {
    KvClient& kv = node.kv();
    uint32_t w = node.rank();
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
          grads[t][i] =
              bsp ? Grad(w, k, i + t * 1000, params[t][i]) : FixedGrad(w, k, i + t * 1000);
        }
        hs.push_back(kv.PushPull(t, grads[t], params[t], k));
      }
      for (auto& h : hs) RETURN_IF_ERROR(kv.Wait(h, Deadline::After(std::chrono::seconds(30))));
    }
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (uint32_t t = 0; t < 2; ++t) {
    // One process applying the mean gradient step by step in the servers'
    // float arithmetic (only the order of the sum over workers may differ).
    std::vector<float> p(tables[t].size);
    for (uint64_t i = 0; i < p.size(); ++i) p[i] = InitValue(tables[t].init, t, i);
    for (int k = 0; k < kSteps; ++k) {
      for (uint64_t i = 0; i < p.size(); ++i) {
        float g = 0;
        for (uint32_t w = 0; w < o.workers; ++w) {
          g += bsp ? Grad(w, k, i + t * 1000, p[i]) : FixedGrad(w, k, i + t * 1000);
        }
        p[i] -= kLr * (bsp ? g * (1.0f / static_cast<float>(o.workers)) : g);
      }
    }
    std::vector<double> ref(p.begin(), p.end());
    double err = RelErr(cluster.DenseTable(t), ref);
    EXPECT_LE(err, 1e-6) << "table " << t;
  }
}

TEST_P(KvClusterTest, DenseTrainingMatchesTheSingleProcessReference) {
  auto tables = DenseTables();
  ExpectDenseTrainingMatchesTheReference(tables, Options(tables));
}

// More partitions than servers (cluster.partitions, or a large table): each
// server owns several slices of the big table, applied one by one, and BSP
// still equals the reference; so do SSP and ASP.
TEST(KvPartitionsTest, MorePartitionsThanServersTrainLikeTheReference) {
  auto tables = DenseTables();
  tables[0].size = 6 * Layout::kMinSliceFloats + 5;  // cut into 6 slices
  const Layout layout = Layout::Compute(tables, 2, 1, 6);
  ASSERT_EQ(layout.tables[0].slices.size(), 6u);
  std::vector<int> owned(2, 0);
  for (const DenseSlice& slice : layout.tables[0].slices) ++owned[layout.OwnerOf(slice.partition)];
  EXPECT_EQ(owned, (std::vector<int>{3, 3}));
  for (Consistency mode : {Consistency::kBsp, Consistency::kSsp, Consistency::kAsp}) {
    SCOPED_TRACE(ConsistencyName(mode));
    InProcClusterOptions o;
    o.servers = 2;
    o.workers = 3;
    o.partitions = 6;
    o.tables = tables;
    o.consistency.mode = mode;
    o.consistency.staleness = kStaleness;
    ExpectDenseTrainingMatchesTheReference(tables, o);
  }
}

// No pull is ever answered more than s clocks ahead of the slowest worker
// (SSP), and under BSP no pull ever sees a clock whose pushes are
// incomplete. Checked from clocks the workers themselves recorded, not from
// the server's bookkeeping. One worker is slowed down on purpose.
TEST_P(KvClusterTest, PullsNeverRunAheadOfTheSlowestWorkerBeyondTheBound) {
  auto tables = DenseTables();
  auto opts = Options(tables);
  std::mutex mu;
  std::vector<int64_t> pushed(workers(), 0);  // pushes sent, per worker
  int64_t max_lead = 0;
  std::atomic<int> waited{0};
  opts.on_pull = [&](const PullTrace& t) {
    if (t.waited) waited.fetch_add(1);
  };
  if (getenv("KVDEBUG")) opts.log_sink = StderrSink();
  InProcCluster cluster(opts);
  Status s = cluster.Run([&](WorkerNode& node) -> Status {
    KvClient& kv = node.kv();
    uint32_t w = node.rank();
    std::vector<float> p(kBig), g(kBig, 0.001f);
    RETURN_IF_ERROR(kv.Wait(kv.Pull(0, p, 0)));
    for (int k = 0; k < 2 * kSteps; ++k) {
      if (w == 0) std::this_thread::sleep_for(std::chrono::milliseconds(15));
      {
        std::lock_guard<std::mutex> lock(mu);
        pushed[w] = k + 1;
      }
      RETURN_IF_ERROR(kv.Wait(kv.PushPull(0, g, p, k), Deadline::After(std::chrono::seconds(30))));
      std::lock_guard<std::mutex> lock(mu);
      int64_t slowest = *std::min_element(pushed.begin(), pushed.end());
      max_lead = std::max(max_lead, (k + 1) - slowest);
    }
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  switch (mode()) {
    case Consistency::kBsp:
      EXPECT_LE(max_lead, 0);
      break;
    case Consistency::kSsp:
      EXPECT_LE(max_lead, kStaleness);
      break;
    case Consistency::kAsp:
      break;  // no bound promised
  }
  // With several workers and one slowed, the bound must actually have bitten.
  if (workers() > 1 && mode() != Consistency::kAsp) {
    EXPECT_GT(waited.load(), 0);
  }
  if (mode() == Consistency::kAsp) {
    EXPECT_EQ(waited.load(), 0);
    for (const auto& sn : cluster.servers()) EXPECT_EQ(sn->server()->stats().parked_pulls, 0u);
  }
}

// Sparse pushes of random keys (with duplicates inside one request) spread
// over the servers and sum exactly (values are small dyadic numbers, so the
// float sums are exact in any order).
TEST_P(KvClusterTest, SparsePushesOfRandomKeysSumExactly) {
  std::vector<TableSpec> tables(1);
  tables[0].id = 0;
  tables[0].name = "emb";
  tables[0].sparse = true;
  tables[0].dim = 4;
  tables[0].optimizer.kind = "sgd";
  tables[0].optimizer.lr = 1.0f;  // row = -(sum of applied gradients)
  InProcCluster cluster(Options(tables));
  std::mutex mu;
  std::map<uint64_t, std::vector<double>> expect;
  const bool bsp = mode() == Consistency::kBsp;
  Status s = cluster.Run([&](WorkerNode& node) -> Status {
    std::mt19937_64 rng(1000 + node.rank());
    for (int k = 0; k < kSteps; ++k) {
      std::vector<uint64_t> keys(300);
      for (auto& key : keys) key = rng() % 500;  // duplicates are certain
      std::vector<float> g(keys.size() * 4);
      for (auto& x : g) x = static_cast<float>(static_cast<int>(rng() % 9) - 4) * 0.25f;
      {
        std::lock_guard<std::mutex> lock(mu);
        for (size_t i = 0; i < keys.size(); ++i) {
          auto& row = expect[keys[i]];
          row.resize(4, 0.0);
          for (int j = 0; j < 4; ++j) row[j] -= g[i * 4 + j] / (bsp ? workers() : 1);
        }
      }
      std::vector<float> out(keys.size() * 4);
      RETURN_IF_ERROR(node.kv().Wait(node.kv().PushPullSparse(0, keys, g, out, k),
                                     Deadline::After(std::chrono::seconds(30))));
    }
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (const auto& [key, row] : expect) {
    auto got = cluster.SparseRow(0, key);
    ASSERT_EQ(got.size(), 4u) << "key " << key;
    for (int j = 0; j < 4; ++j) EXPECT_EQ(got[j], static_cast<float>(row[j])) << "key " << key;
  }
  if (servers() > 1) {
    for (const auto& sn : cluster.servers()) EXPECT_GT(sn->server()->stats().updates, 0u);
  }
}

// Pulling duplicate keys returns each key's row at every position, in the
// caller's order, across servers.
TEST_P(KvClusterTest, SparsePullReassemblesRowsInCallerOrder) {
  std::vector<TableSpec> tables(1);
  tables[0] = {
      .id = 0, .name = "emb", .sparse = true, .dim = 3, .init = {InitKind::kUniform, 1.0f, 7}};
  tables[0].optimizer.kind = "sgd";
  InProcCluster cluster(Options(tables));
  Status s = cluster.Run([&](WorkerNode& node) -> Status {
    std::vector<uint64_t> keys = {99, 5, 1ull << 40, 5, 12345, 99};
    std::vector<float> out(keys.size() * 3);
    RETURN_IF_ERROR(node.kv().Wait(node.kv().PullSparse(0, keys, out, 0)));
    for (size_t i = 0; i < keys.size(); ++i) {
      for (int j = 0; j < 3; ++j) {
        float want = InitValue(tables[0].init, 0, keys[i] * 3 + j);
        if (out[i * 3 + j] != want) {
          return InternalError("row " + std::to_string(i) + " col " + std::to_string(j) + " is " +
                               std::to_string(out[i * 3 + j]) + ", want " + std::to_string(want));
        }
      }
    }
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
}

INSTANTIATE_TEST_SUITE_P(
    Grid, KvClusterTest,
    ::testing::Combine(::testing::Values(1u, 2u, 3u), ::testing::Values(1u, 2u, 4u),
                       ::testing::Values(Consistency::kBsp, Consistency::kSsp, Consistency::kAsp)),
    [](const ::testing::TestParamInfo<Param>& p) {
      return std::to_string(std::get<0>(p.param)) + "servers_" +
             std::to_string(std::get<1>(p.param)) + "workers_" +
             ConsistencyName(std::get<2>(p.param));
    });

// Lost and duplicated messages everywhere (5% each, on every node, control
// messages included): requests are retried, pushes applied exactly once, so
// the BSP result is bit-identical to the fault-free run.
TEST(KvFaultTest, DropAndDuplicateLeaveTheBspResultIdentical) {
  auto tables = DenseTables();
  std::vector<TableSpec> with_sparse = tables;
  with_sparse.push_back({.id = 2, .name = "emb", .sparse = true, .dim = 4});
  with_sparse[2].optimizer.kind = "adagrad";
  with_sparse[2].optimizer.lr = 0.1f;
  auto run = [&](bool faults, uint64_t seed, std::vector<std::vector<float>>* dense,
                 std::map<uint64_t, std::vector<float>>* rows) -> Status {
    InProcClusterOptions o;
    o.servers = 2;
    o.workers = 3;
    o.tables = with_sparse;
    o.client.retry_interval = std::chrono::milliseconds(60);
    auto stats = std::make_shared<FaultStats>();
    if (faults) {
      o.wrap_transport = [&, stats](const std::string& name, std::unique_ptr<Transport> t) {
        FaultOptions f;
        f.drop = 0.05;
        f.duplicate = 0.05;
        f.seed = seed + std::hash<std::string>()(name);
        return WithFaults(std::move(t), f, Logger::Null(), stats);
      };
    }
    InProcCluster cluster(o);
    Status s = cluster.Run([&](WorkerNode& node) -> Status {
      KvClient& kv = node.kv();
      uint32_t w = node.rank();
      std::vector<float> p(kBig), g(kBig);
      RETURN_IF_ERROR(kv.Wait(kv.Pull(0, p, 0), Deadline::After(std::chrono::seconds(60))));
      std::mt19937_64 rng(77 + w);
      for (int k = 0; k < kSteps; ++k) {
        for (uint64_t i = 0; i < kBig; ++i) g[i] = Grad(w, k, i, p[i]);
        std::vector<uint64_t> keys(50);
        for (auto& key : keys) key = rng() % 200;
        std::vector<float> sg(keys.size() * 4, 0.5f), out(keys.size() * 4);
        auto h1 = kv.PushPull(0, g, p, k);
        auto h2 = kv.PushPullSparse(2, keys, sg, out, k);
        RETURN_IF_ERROR(kv.Wait(h1, Deadline::After(std::chrono::seconds(60))));
        RETURN_IF_ERROR(kv.Wait(h2, Deadline::After(std::chrono::seconds(60))));
      }
      return Status::Ok();
    });
    RETURN_IF_ERROR(s);
    if (faults && stats->dropped + stats->duplicated == 0)
      return InternalError("no fault injected");
    dense->push_back(cluster.DenseTable(0));
    for (uint64_t key = 0; key < 200; ++key) (*rows)[key] = cluster.SparseRow(2, key);
    return Status::Ok();
  };
  std::vector<std::vector<float>> clean, faulty;
  std::map<uint64_t, std::vector<float>> clean_rows, faulty_rows;
  ASSERT_TRUE(run(false, 0, &clean, &clean_rows).ok());
  for (uint64_t seed : {1u, 2u}) {
    faulty.clear();
    faulty_rows.clear();
    Status s = run(true, seed, &faulty, &faulty_rows);
    ASSERT_TRUE(s.ok()) << "seed " << seed << ": " << s.ToString();
    EXPECT_EQ(faulty[0], clean[0]) << "seed " << seed;
    EXPECT_EQ(faulty_rows, clean_rows) << "seed " << seed;
  }
}

// Time-based checkpoints: worker 0 marks its pushes of a clock, and every
// server writes its shards once that clock is applied (and only then).
TEST(KvCheckpointTest, AWorkerRequestedCheckpointIsWrittenAtThatClock) {
  char tmpl[] = "/tmp/distopt-kvckpt-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  InProcClusterOptions o;
  o.servers = 2;
  o.workers = 2;
  o.tables = DenseTables();
  o.run_dir = tmpl;
  InProcCluster cluster(o);
  Status s = cluster.Run([&](WorkerNode& node) -> Status {
    KvClient& kv = node.kv();
    if (node.rank() == 0) kv.RequestCheckpointAt(2);
    // Every table, every step (a server checkpoints once all it holds are there).
    std::vector<float> p(kBig), g(kBig, 0.01f), ps(kSmall), gs(kSmall, 0.01f);
    for (int k = 0; k < 4; ++k) {
      auto h0 = kv.PushPull(0, g, p, k);
      auto h1 = kv.PushPull(1, gs, ps, k);
      RETURN_IF_ERROR(kv.Wait(h0, Deadline::After(std::chrono::seconds(30))));
      RETURN_IF_ERROR(kv.Wait(h1, Deadline::After(std::chrono::seconds(30))));
    }
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  const std::string dir = std::string(tmpl) + "/checkpoints/step-0000000003";
  for (int server = 0; server < 2; ++server) {
    EXPECT_TRUE(std::ifstream(dir + "/server-" + std::to_string(server) + ".table-0.shard").good())
        << server;
  }
  EXPECT_FALSE(std::ifstream(std::string(tmpl) + "/checkpoints/step-0000000002").good());
}

// Requests that break the protocol are refused with a reason and the server
// keeps serving.
TEST(KvServerTest, MalformedRequestsAreRejectedAndTheServerKeepsServing) {
  auto tables = DenseTables();
  InProcClusterOptions o;
  o.tables = tables;
  auto sink = std::make_shared<MemorySink>();
  o.log_sink = sink;
  InProcCluster cluster(o);
  Status s = cluster.Run([&](WorkerNode& node) -> Status {
    KvClient& kv = node.kv();
    std::vector<float> wrong(5, 1.0f);
    Status bad = kv.Wait(kv.Push(0, wrong, 0));
    if (bad.ok()) return InternalError("a push of the wrong size was accepted");
    // A raw message with a wrong slice offset, sent past the client's checks.
    Message m;
    m.type = MsgType::kPull;
    m.sender = node.cluster().id();
    m.body = EncodeKvBody({.table = 0, .offset = 3});
    m.request_id = 777;
    RETURN_IF_ERROR(node.transport().Send(node.cluster().view().FindRank(Role::kServer, 0)->id, m));
    std::vector<float> p(kBig);
    RETURN_IF_ERROR(kv.Wait(kv.Pull(0, p, 0), Deadline::After(std::chrono::seconds(10))));
    if (p[0] != InitValue(tables[0].init, 0, 0))
      return InternalError("wrong value after rejection");
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(cluster.servers()[0]->server()->stats().rejected, 1u);
  EXPECT_TRUE(sink->Contains("holds no slice starting at 3"));
}

}  // namespace
}  // namespace distopt

namespace distopt {
namespace {

// Nodes that share a process (WithLocalPeers: messages handed over without
// the transport's wire encoding) train to the very same parameters as nodes
// talking through the transport.
TEST(KvColocatedTest, LocalDeliveryTrainsBitForBitLikeTheTransport) {
  auto run = [](bool local, std::shared_ptr<LocalPeerStats> stats) {
    LocalPeers peers;  // outlives the cluster's transports (declared first)
    InProcClusterOptions o;
    o.servers = 2;
    o.workers = 2;
    o.tables = DenseTables();
    if (local) {
      o.wrap_transport = [&peers, stats](const std::string& name, std::unique_ptr<Transport> t) {
        auto wrapped = WithLocalPeers(peers, std::move(t), stats);
        EXPECT_TRUE(wrapped.ok()) << name << ": " << wrapped.status().ToString();
        return std::move(wrapped).value();  // a failure above ends the test here
      };
    }
    InProcCluster cluster(o);
    auto tables = o.tables;
    Status s = cluster.Run([&](WorkerNode& node) -> Status {
      KvClient& kv = node.kv();
      std::vector<float> params(tables[0].size), grads(tables[0].size);
      RETURN_IF_ERROR(kv.Wait(kv.Pull(0, params, 0), Deadline::After(std::chrono::seconds(30))));
      for (int k = 0; k < kSteps; ++k) {
        for (uint64_t i = 0; i < grads.size(); ++i) grads[i] = Grad(node.rank(), k, i, params[i]);
        RETURN_IF_ERROR(
            kv.Wait(kv.PushPull(0, grads, params, k), Deadline::After(std::chrono::seconds(30))));
      }
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return cluster.DenseTable(0);
  };
  auto stats = std::make_shared<LocalPeerStats>();
  std::vector<float> via_transport = run(false, nullptr);
  std::vector<float> local = run(true, stats);
  EXPECT_GT(stats->local_messages, 0u);
  ASSERT_EQ(local.size(), via_transport.size());
  EXPECT_EQ(std::memcmp(local.data(), via_transport.data(), local.size() * 4), 0);
}

}  // namespace
}  // namespace distopt
