// The parameter server's roles of a benchmark case, and the dispatch of a
// node process to its role.
#include "node.h"

#include <chrono>
#include <future>
#include <memory>
#include <random>
#include <vector>

#include "base/buffer.h"
#include "base/file_util.h"
#include "base/logging.h"
#include "base/time.h"
#include "cluster/role_policy.h"
#include "kv/client.h"
#include "kv/kv_role_policy.h"
#include "kv/node.h"
#include "transport/curve_keys.h"
#include "transport/local_peers.h"
#include "transport/zmq_transport.h"

namespace distopt::bench {
namespace {

using std::chrono::seconds;

// A bench process's transport: plain, or CURVE with its own key.
Result<std::unique_ptr<Transport>> BenchTransport(const BenchNodeArgs& a, Role role,
                                                  const Logger& log) {
  ZmqOptions o;
  o.bind = a.bind;
  if (!a.keys.empty()) {
    const std::string name = FormatNodeName(role, static_cast<int32_t>(a.rank));
    ASSIGN_OR_RETURN(o.security.keys, ReadKeyFile(a.keys + "/" + KeyFileName(name)));
    ASSIGN_OR_RETURN(o.security.allowlist, ReadAllowlist(a.keys + "/allowlist"));
    o.security.authorize = KvMaySend;
  }
  return CreateZmqTransport(o, log);
}

NodeOptions BenchNodeOptions(const BenchNodeArgs& a) {
  NodeOptions n;
  n.coordinator_address = a.coordinator;
  n.rank = static_cast<int32_t>(a.rank);
  return n;
}

std::unique_ptr<ServerNode> MakeServer(const BenchNodeArgs& a, std::unique_ptr<Transport> t,
                                       const Logger& log) {
  KvServerOptions kv;
  kv.tables = BenchTables(a.c);
  return std::make_unique<ServerNode>(BenchNodeOptions(a), kv, std::move(t), log);
}

// The coordinator of a benchmark whose nodes run on other hosts.
Status RunCoordinatorRole(const BenchNodeArgs& a) {
  Logger log = Logger::Stderr("coordinator", LogLevel::kWarning);
  ASSIGN_OR_RETURN(auto t, BenchTransport(a, Role::kCoordinator, log));
  const std::string endpoint = t->address();
  RETURN_IF_ERROR(WriteFileAtomically(
      a.addr_file,
      {std::span(reinterpret_cast<const uint8_t*>(endpoint.data()), endpoint.size())}));
  CoordinatorOptions co;
  co.num_servers = a.c.servers;
  co.num_workers = a.c.workers;
  co.startup_timeout = seconds(120);
  return RunCoordinator(co, BenchTables(a.c), t.get(), log, {}, 1, a.c.partitions);
}

Status RunServer(const BenchNodeArgs& a) {
  Logger log = Logger::Stderr("server/" + std::to_string(a.rank), LogLevel::kWarning);
  ASSIGN_OR_RETURN(auto t, BenchTransport(a, Role::kServer, log));
  return MakeServer(a, std::move(t), log)->Run();
}

// The timed loop: kWarmupSteps untimed steps, a barrier of all workers, then
// c.reps timed ones; returns their total seconds. `step(k)` runs step k.
template <typename Step>
Result<double> TimeSteps(WorkerNode& node, const Case& c, Deadline deadline, Step step) {
  double elapsed = 0;
  for (int64_t k = 0; k < kWarmupSteps + c.reps; ++k) {
    if (k == kWarmupSteps) {
      RETURN_IF_ERROR(node.cluster().Barrier("timed", BarrierGroup::kWorkers, deadline));
    }
    auto start = std::chrono::steady_clock::now();
    RETURN_IF_ERROR(step(k));
    if (k >= kWarmupSteps) elapsed += ToSeconds(std::chrono::steady_clock::now() - start);
  }
  return elapsed;
}

Result<double> TimeDense(WorkerNode& node, const Case& c, Deadline deadline) {
  KvClient& kv = node.kv();
  std::vector<float> grads(c.floats, 1e-3f), params(c.floats);
  return TimeSteps(node, c, deadline,
                   [&](int64_t k) { return kv.Wait(kv.PushPull(0, grads, params, k), deadline); });
}

Result<double> TimeSparse(WorkerNode& node, const Case& c, int64_t rank, Deadline deadline) {
  KvClient& kv = node.kv();
  std::mt19937_64 rng(1234 + rank);
  std::vector<std::vector<uint64_t>> key_sets(4, std::vector<uint64_t>(c.keys));
  for (auto& ks : key_sets) {
    for (auto& k : ks) k = rng() % c.key_space;
  }
  std::vector<float> grads(c.keys * c.dim, 1e-3f), params(c.keys * c.dim);
  return TimeSteps(node, c, deadline, [&](int64_t k) {
    const auto& keys = key_sets[static_cast<size_t>(k) % key_sets.size()];
    return kv.Wait(kv.PushPullSparse(0, keys, grads, params, k), deadline);
  });
}

Status RunWorker(const BenchNodeArgs& a, std::unique_ptr<Transport> t, const Logger& log) {
  KvClientOptions ko;
  ko.host_aggregation = a.host_aggregation ? HostAggregation::kOn : HostAggregation::kOff;
  WorkerNode node(BenchNodeOptions(a), BenchTables(a.c), ko, std::move(t), log);
  RETURN_IF_ERROR(node.Start(Deadline::After(seconds(60))));
  const Deadline deadline = Deadline::After(seconds(600));
  ASSIGN_OR_RETURN(double elapsed, a.c.kind == "dense" ? TimeDense(node, a.c, deadline)
                                                       : TimeSparse(node, a.c, a.rank, deadline));
  RETURN_IF_ERROR(WriteSecondsFile(a.out, elapsed));
  return node.Finish();
}

Status RunWorker(const BenchNodeArgs& a) {
  Logger log = Logger::Stderr("worker/" + std::to_string(a.rank), LogLevel::kWarning);
  ASSIGN_OR_RETURN(auto t, BenchTransport(a, Role::kWorker, log));
  return RunWorker(a, std::move(t), log);
}

// A worker and the server of the same rank in one process; they reach each
// other without a socket (WithLocalPeers), everyone else over ZeroMQ.
Status RunColocated(const BenchNodeArgs& a) {
  Logger slog = Logger::Stderr("server/" + std::to_string(a.rank), LogLevel::kWarning);
  Logger wlog = Logger::Stderr("worker/" + std::to_string(a.rank), LogLevel::kWarning);
  LocalPeers local;  // declared first: outlives both nodes
  ASSIGN_OR_RETURN(auto st, BenchTransport(a, Role::kServer, slog));
  ASSIGN_OR_RETURN(auto wt, BenchTransport(a, Role::kWorker, wlog));
  ASSIGN_OR_RETURN(auto server_t, WithLocalPeers(local, std::move(st)));
  ASSIGN_OR_RETURN(auto worker_t, WithLocalPeers(local, std::move(wt)));
  auto server = MakeServer(a, std::move(server_t), slog);
  auto served = std::async(std::launch::async, [&] { return server->Run(); });
  Status w = RunWorker(a, std::move(worker_t), wlog);
  if (!w.ok()) server->Kill();
  Status s = served.get();
  RETURN_IF_ERROR(w);
  return s;
}

}  // namespace

Status RunBenchNode(const BenchNodeArgs& args) {
  if (args.role == "coordinator") return RunCoordinatorRole(args);
  if (args.role == "echo") return RunEcho(args);
  if (args.role == "raw-client") return RunRawClient(args);
  if (args.role == "server") return RunServer(args);
  if (args.role == "worker") return RunWorker(args);
  if (args.role == "colocated") return RunColocated(args);
  return InvalidArgumentError("unknown role '" + args.role + "'");
}

}  // namespace distopt::bench
