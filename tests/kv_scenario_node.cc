// One node of the BSP scenario of kv_process_test, as its own process:
//   kv_scenario_node coordinator ADDR_FILE SERVERS WORKERS
//   kv_scenario_node server COORD_ADDR SERVERS WORKERS
//   kv_scenario_node worker COORD_ADDR SERVERS WORKERS OUT_FILE
// The worker trains a dense table with parameter-dependent gradients for a
// few BSP steps and, as rank 0, writes the final table to OUT_FILE.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

#include "kv/node.h"
#include "scenario.h"
#include "transport/zmq_transport.h"

using namespace distopt;  // NOLINT: a test program

int main(int argc, char** argv) {
  if (argc < 5) return 2;
  std::string role = argv[1];
  uint32_t servers = std::stoul(argv[3]), workers = std::stoul(argv[4]);
  auto tables = scenario::Tables();
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
    s = RunCoordinator(co, tables, transport->get(), log);
  } else if (role == "server") {
    NodeOptions n;
    n.coordinator_address = argv[2];
    KvServerOptions kv;
    kv.tables = tables;
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
      s = node.kv().Wait(node.kv().Pull(0, p.data(), scenario::kSteps),
                         Deadline::After(std::chrono::seconds(60)));
      std::ofstream out(argv[5], std::ios::binary);
      out.write(reinterpret_cast<const char*>(p.data()), p.size() * 4);
    }
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
