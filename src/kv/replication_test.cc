// Replication (replication = 2) as threads of one process: owners of
// partitions are killed mid-training and every acknowledged push must
// survive. Each worker pushes a gradient of -1 (SGD, lr 1: a parameter
// counts the pushes applied to it) and counts the pushes it got
// acknowledged, key by key; after the last push the parameters must equal
// those counts exactly: none lost, none applied twice.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <random>
#include <thread>

#include "kv/testing/counting.h"
#include "kv/testing/in_proc_cluster.h"
#include "transport/faulty_transport.h"

namespace distopt {
namespace {

constexpr uint64_t kDense = 3 * 16384 + 5;  // one slice per partition of 3
constexpr uint32_t kDim = 4;
constexpr uint64_t kKeySpace = 2000;
constexpr int kKeysPerPush = 300;

std::vector<TableSpec> Tables() { return CountingTables(kDense, kDim); }

// The sparse keys of step k: the same for every worker under BSP (so the
// mean of the pushes is -1 per key), per worker under ASP.
std::vector<uint64_t> KeysOf(uint32_t worker, int k, bool same_for_all) {
  std::mt19937_64 rng(static_cast<uint64_t>(k) * 7919 + (same_for_all ? 0 : worker + 1));
  std::vector<uint64_t> keys(kKeysPerPush);
  for (auto& key : keys) key = rng() % kKeySpace;  // duplicates within a push on purpose
  return keys;
}

bool EveryPartitionHasASyncedBackup(const ClusterView& v) {
  auto l = Layout::Decode(v.layout);
  if (!l.ok()) return false;
  for (const Replica& r : l->replicas) {
    if (r.backup == kNoServer || !r.synced) return false;
  }
  return true;
}

struct Counters {
  std::vector<std::atomic<int64_t>> dense_acked;  // pushes acknowledged (per worker count)
  std::vector<std::atomic<int64_t>> key_acked;    // per sparse key: rows acknowledged
  Counters() : dense_acked(1), key_acked(kKeySpace) {}
};

struct Case {
  Consistency mode;
  bool faults;  // 5% of every node's KV and replication messages dropped, 5% duplicated
};

class ReplicationTest : public ::testing::TestWithParam<Case> {};

TEST_P(ReplicationTest, KillingOwnersLosesNoAcknowledgedPush) {
  const Consistency mode = GetParam().mode;
  const bool bsp = mode == Consistency::kBsp;
  constexpr uint32_t kWorkers = 3;
  const int kSteps = GetParam().faults ? 30 : 60;
  InProcClusterOptions o;
  o.servers = 3;
  o.workers = kWorkers;
  o.replication = 2;
  o.tables = Tables();
  o.consistency.mode = mode;
  o.heartbeat_interval = std::chrono::milliseconds(50);
  o.heartbeat_timeout = std::chrono::milliseconds(400);
  // Without faults BSP relies on the re-send at the view change alone.
  o.client.retry_interval =
      bsp && !GetParam().faults ? Duration::zero() : std::chrono::milliseconds(200);
  if (GetParam().faults) {
    o.wrap_transport = [](const std::string& name, std::unique_ptr<Transport> t) {
      if (name == "coordinator") return t;
      FaultOptions f;
      f.drop = 0.05;
      f.duplicate = 0.05;
      f.kv_only = true;
      f.seed = std::hash<std::string>()(name);
      return WithFaults(std::move(t), f, Logger(StderrSink(), name, LogLevel::kError));
    };
  }
  // Every node's log, written out if the test fails.
  auto sink = std::make_shared<MemorySink>();
  o.log_sink = sink;
  struct DumpOnFailure {
    std::shared_ptr<MemorySink> sink;
    ~DumpOnFailure() {
      if (!::testing::Test::HasFailure()) return;
      std::string path = ::testing::TempDir() + "replication_test.log";
      std::ofstream out(path);
      for (const auto& line : sink->Lines()) out << line << "\n";
      std::fprintf(stderr, "node logs: %s\n", path.c_str());
    }
  } dump{sink};
  InProcCluster cluster(o);
  Counters c;
  std::atomic<bool> killed_first{false}, killed_second{false};
  std::vector<float> final_dense;
  std::vector<std::vector<float>> final_rows(kKeySpace);
  Status s = cluster.Run([&](WorkerNode& w) -> Status {
    const auto deadline = [] { return Deadline::After(std::chrono::seconds(30)); };
    std::vector<float> grad(kDense, -1.0f), params(kDense);
    for (int k = 0; k < kSteps; ++k) {
      if (w.rank() == 0 && k == kSteps / 3) {
        cluster.servers()[0]->Kill();  // owner of partition 0, backup of 2
        killed_first = true;
      }
      if (w.rank() == 0 && k == 2 * kSteps / 3) {
        // Once the survivors back each other up again (snapshots sent to
        // the new backups), the owner of the partitions it took over dies too.
        Deadline d = Deadline::After(std::chrono::seconds(30));
        while (!EveryPartitionHasASyncedBackup(w.cluster().view())) {
          if (d.expired()) return DeadlineExceededError("no synced backups after the first kill");
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        cluster.servers()[1]->Kill();
        killed_second = true;
      }
      auto keys = KeysOf(w.rank(), k, bsp);
      std::vector<float> rows(keys.size() * kDim, -1.0f);
      std::vector<float> pulled(keys.size() * kDim);
      auto hd = w.kv().PushPull(0, grad, params, k);
      auto hs = w.kv().PushPullSparse(1, keys, rows, pulled, k);
      RETURN_IF_ERROR(w.kv().Wait(hd, deadline()));
      RETURN_IF_ERROR(w.kv().Wait(hs, deadline()));
      // Acknowledged: count what this push must have added.
      if (bsp) {
        if (w.rank() == 0) {
          // Every worker pushed the same rows: their mean is one worker's push
          // (a key twice in it counts twice).
          c.dense_acked[0] += 1;
          for (uint64_t key : keys) c.key_acked[key] += 1;
        }
      } else {
        c.dense_acked[0] += 1;
        for (uint64_t key : keys) c.key_acked[key] += 1;
      }
    }
    RETURN_IF_ERROR(w.cluster().Barrier("pushed", BarrierGroup::kWorkers, deadline()));
    if (w.rank() == 0) {
      final_dense.resize(kDense);
      std::vector<uint64_t> all(kKeySpace);
      for (uint64_t k = 0; k < kKeySpace; ++k) all[k] = k;
      std::vector<float> rows(kKeySpace * kDim);
      auto hd = w.kv().Pull(0, final_dense, kSteps);
      auto hs = w.kv().PullSparse(1, all, rows, kSteps);
      RETURN_IF_ERROR(w.kv().Wait(hd, deadline()));
      RETURN_IF_ERROR(w.kv().Wait(hs, deadline()));
      for (uint64_t k = 0; k < kKeySpace; ++k) {
        final_rows[k].assign(rows.begin() + k * kDim, rows.begin() + (k + 1) * kDim);
      }
    }
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_TRUE(killed_first && killed_second);
  // The survivor took over every partition; the others did real work first.
  const KvServerStats last = cluster.servers()[2]->server()->stats();
  EXPECT_EQ(cluster.servers()[2]->server()->Owned(), (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_GE(last.takeovers, 2u);
  EXPECT_GE(cluster.servers()[1]->server()->stats().takeovers, 1u);
  EXPECT_GE(last.snapshots_installed + cluster.servers()[1]->server()->stats().snapshots_installed,
            1u);
  EXPECT_GT(cluster.servers()[0]->server()->stats().replicated, 0u);
  EXPECT_GT(last.replica_applied, 0u);
  // Every acknowledged push is in the model, exactly once.
  const float want_dense = static_cast<float>(c.dense_acked[0].load());
  EXPECT_EQ(want_dense, bsp ? kSteps : kSteps * kWorkers);
  ASSERT_EQ(final_dense.size(), kDense);
  int64_t dense_bad = 0;
  for (uint64_t i = 0; i < kDense; ++i) dense_bad += final_dense[i] != want_dense;
  EXPECT_EQ(dense_bad, 0) << "e.g. dense[0] = " << final_dense[0] << ", acknowledged " << want_dense
                          << "; dense[" << kDense - 1 << "] = " << final_dense[kDense - 1];
  int64_t rows_bad = 0;
  for (uint64_t k = 0; k < kKeySpace; ++k) {
    for (float v : final_rows[k]) {
      if (v != static_cast<float>(c.key_acked[k].load())) {
        if (rows_bad++ < 5) {
          ADD_FAILURE() << "key " << k << " (partition " << SparsePartitionOf(k, 3) << "): " << v
                        << " applied, " << c.key_acked[k].load() << " acknowledged";
        }
      }
    }
  }
  EXPECT_EQ(rows_bad, 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, ReplicationTest,
                         ::testing::Values(Case{Consistency::kBsp, false},
                                           Case{Consistency::kAsp, false},
                                           Case{Consistency::kBsp, true},
                                           Case{Consistency::kAsp, true}),
                         [](const auto& param_info) {
                           return std::string(ConsistencyName(param_info.param.mode)) +
                                  (param_info.param.faults ? "_drop_dup" : "");
                         });

}  // namespace
}  // namespace distopt
