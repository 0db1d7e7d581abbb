// One node of kv_process_test's scenarios, as its own process:
//   kv_scenario_node coordinator ADDR_FILE SERVERS WORKERS [REPLICATION]
//   kv_scenario_node server COORD_ADDR SERVERS WORKERS
//   kv_scenario_node worker COORD_ADDR SERVERS WORKERS OUT_FILE
//   kv_scenario_node counter-server COORD_ADDR SERVERS WORKERS
//   kv_scenario_node counter-worker COORD_ADDR SERVERS WORKERS OUT_PREFIX STEPS
// The worker trains a dense table with parameter-dependent gradients for a
// few BSP steps and, as rank 0, writes the final table to OUT_FILE.
// The counter scenario (ASP, replication): each counter-worker pushes -1s,
// logs "step K acknowledged" as it goes, writes how many pushes each dense
// entry / sparse key got acknowledged to OUT_PREFIX.w<rank>, and rank 0,
// after every worker is done, the final parameters to OUT_PREFIX.final.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "base/test_time_scale.h"
#include "kv/node.h"
#include "scenario.h"
#include "transport/zmq_transport.h"

using namespace distopt;  // NOLINT: a test program

namespace {

Status WriteCounts(const std::string& path, const std::vector<int64_t>& counts) {
  std::ofstream out(path + ".tmp", std::ios::binary);
  out.write(reinterpret_cast<const char*>(counts.data()),
            static_cast<std::streamsize>(counts.size() * sizeof(int64_t)));
  out.close();
  if (!out || std::rename((path + ".tmp").c_str(), path.c_str()) != 0) {
    return InternalError("cannot write " + path);
  }
  return Status::Ok();
}

// The counter scenario's worker: ASP pushes of -1, one step at a time; a
// step counts once both its pushes are acknowledged.
Status CountPushes(WorkerNode& node, const std::string& prefix, int steps, const Logger& log) {
  using scenario::kCounterDense, scenario::kCounterDim, scenario::kCounterKeys;
  const auto deadline = [] { return Deadline::After(std::chrono::seconds(60)); };
  std::vector<float> grad(kCounterDense, -1.0f), params(kCounterDense);
  // [0]: pushes acknowledged to every dense entry; [1 + key]: rows acknowledged per key.
  std::vector<int64_t> counts(1 + kCounterKeys, 0);
  for (int k = 0; k < steps; ++k) {
    auto keys = scenario::CounterKeys(node.rank(), k);
    std::vector<float> rows(keys.size() * kCounterDim, -1.0f), pulled(rows.size());
    auto hd = node.kv().PushPull(0, grad, params, k);
    auto hs = node.kv().PushPullSparse(1, keys, rows, pulled, k);
    RETURN_IF_ERROR(node.kv().Wait(hd, deadline()));
    RETURN_IF_ERROR(node.kv().Wait(hs, deadline()));
    counts[0] += 1;
    for (uint64_t key : keys) counts[1 + key] += 1;
    if (k % 10 == 0) log.Info("step ", k, " acknowledged");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  RETURN_IF_ERROR(WriteCounts(prefix + ".w" + std::to_string(node.rank()), counts));
  RETURN_IF_ERROR(node.cluster().Barrier("counted", BarrierGroup::kWorkers, deadline()));
  if (node.rank() != 0) return Status::Ok();
  // Every worker's pushes are acknowledged: the parameters must count them.
  std::vector<uint64_t> all(kCounterKeys);
  for (uint64_t key = 0; key < kCounterKeys; ++key) all[key] = key;
  std::vector<float> rows(kCounterKeys * kCounterDim);
  RETURN_IF_ERROR(node.kv().Wait(node.kv().Pull(0, params, steps), deadline()));
  RETURN_IF_ERROR(node.kv().Wait(node.kv().PullSparse(1, all, rows, steps), deadline()));
  std::vector<int64_t> final_counts(1 + kCounterKeys);
  // Every dense entry must agree; a disagreement shows as -1.
  final_counts[0] = static_cast<int64_t>(params[0]);
  for (float v : params) {
    if (v != params[0]) final_counts[0] = -1;
  }
  for (uint64_t key = 0; key < kCounterKeys; ++key) {
    float v = rows[key * kCounterDim];
    final_counts[1 + key] = rows[key * kCounterDim + 1] == v ? static_cast<int64_t>(v) : -1;
  }
  return WriteCounts(prefix + ".final", final_counts);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) return 2;
  std::string role = argv[1];
  uint32_t servers = std::stoul(argv[3]), workers = std::stoul(argv[4]);
  const bool counter = role.rfind("counter-", 0) == 0;
  auto tables = counter ? scenario::CounterTables() : scenario::Tables();
  Logger log = Logger::Stderr(role, LogLevel::kInfo);
  auto transport = CreateZmqTransport({}, log);
  if (!transport.ok()) {
    std::fprintf(stderr, "%s\n", transport.status().ToString().c_str());
    return 1;
  }
  Status s;
  if (role == "coordinator") {
    CoordinatorOptions co;
    co.num_servers = servers;
    co.num_workers = workers;
    co.startup_timeout = std::chrono::seconds(60);
    {
      std::ofstream out(std::string(argv[2]) + ".tmp");
      out << (*transport)->address();
    }
    std::rename((std::string(argv[2]) + ".tmp").c_str(), argv[2]);
    uint32_t replication = argc >= 6 ? std::stoul(argv[5]) : 1;
    if (replication > 1) {
      tables = scenario::CounterTables();
      co.heartbeat_timeout = Scaled(std::chrono::milliseconds(1000));
    }
    s = RunCoordinator(co, tables, transport->get(), log, {}, replication);
  } else if (role == "server" || role == "counter-server") {
    NodeOptions n;
    n.coordinator_address = argv[2];
    n.heartbeat_interval = std::chrono::milliseconds(counter ? 100 : 1000);
    KvServerOptions kv;
    kv.tables = tables;
    if (counter) kv.consistency.mode = Consistency::kAsp;
    ServerNode node(n, kv, std::move(*transport), log);
    s = node.Run();
  } else if (role == "worker" && argc >= 6) {
    NodeOptions n;
    n.coordinator_address = argv[2];
    WorkerNode node(n, tables, {}, std::move(*transport), log);
    s = node.Start(Deadline::After(std::chrono::seconds(60)));
    if (s.ok()) s = scenario::TrainBsp(node, workers);
    if (s.ok() && node.rank() == 0) {
      std::vector<float> p(tables[0].size);
      s = node.kv().Wait(node.kv().Pull(0, p, scenario::kSteps),
                         Deadline::After(std::chrono::seconds(60)));
      std::ofstream out(argv[5], std::ios::binary);
      out.write(reinterpret_cast<const char*>(p.data()), p.size() * 4);
    }
    if (s.ok()) s = node.Finish();
  } else if (role == "counter-worker" && argc >= 7) {
    NodeOptions n;
    n.coordinator_address = argv[2];
    n.heartbeat_interval = std::chrono::milliseconds(100);
    KvClientOptions ko;
    ko.retry_interval = std::chrono::milliseconds(300);
    WorkerNode node(n, tables, ko, std::move(*transport), log);
    s = node.Start(Deadline::After(std::chrono::seconds(60)));
    if (s.ok()) s = CountPushes(node, argv[5], std::stoi(argv[6]), log);
    if (s.ok()) s = node.Finish();
  } else {
    return 2;
  }
  if (!s.ok()) {
    std::fprintf(stderr, "%s failed: %s\n", role.c_str(), s.ToString().c_str());
    return 1;
  }
  return 0;
}
