// `distopt bench kv`: push+pull throughput of the parameter server measured
// with separate processes over ZeroMQ tcp on loopback, side by side with a
// raw ZeroMQ round trip of the same bytes between the same processes (the
// ceiling), in one run. `bench-node` is the hidden subcommand the benchmark
// starts its processes with. Both run on the calling thread.
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <future>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "base/subprocess.h"
#include "cli/commands.h"
#include "cluster/role_policy.h"
#include "kv/node.h"
#include "transport/curve_keys.h"
#include "transport/local_peers.h"
#include "transport/zmq_transport.h"

namespace distopt {
namespace {

using Json = nlohmann::json;
using std::chrono::seconds;

constexpr int kWarmup = 3;

// "16MiB", "1M", "4096" -> bytes.
Result<uint64_t> ParseBytes(const std::string& text) {
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || p == text.data()) {
    return InvalidArgumentError("'" + text + "' is not a size (examples: 4096, 1MiB, 16MiB, 2GiB)");
  }
  const std::string unit(p, text.data() + text.size());
  static const std::pair<const char*, uint64_t> kUnits[] = {{"", 1},
                                                            {"B", 1},
                                                            {"K", 1ull << 10},
                                                            {"k", 1ull << 10},
                                                            {"KiB", 1ull << 10},
                                                            {"M", 1ull << 20},
                                                            {"MiB", 1ull << 20},
                                                            {"G", 1ull << 30},
                                                            {"GiB", 1ull << 30},
                                                            {"KB", 1000},
                                                            {"MB", 1000000},
                                                            {"GB", 1000000000}};
  for (const auto& [name, mult] : kUnits) {
    if (unit == name) return n * mult;
  }
  return InvalidArgumentError("unknown size unit '" + unit + "' in '" + text + "'");
}

// One benchmark case as the processes see it.
struct Case {
  std::string kind = "dense";  // dense | sparse
  uint64_t floats = 0;         // dense table size
  uint64_t keys = 100000;      // sparse keys per push
  uint32_t dim = 16;
  uint64_t key_space = 10000000;
  uint32_t servers = 1;
  uint32_t workers = 1;
  int64_t reps = 20;
  // Each worker process also hosts a server (servers == workers): the share
  // of the model it holds never crosses a socket.
  bool colocate = false;
  // Bytes a worker sends and receives per step.
  uint64_t push_bytes() const { return kind == "dense" ? floats * 4 : keys * 8 + keys * dim * 4; }
  uint64_t pull_bytes() const { return kind == "dense" ? floats * 4 : keys * dim * 4; }
  std::vector<std::string> Args() const {
    return {"--kind",     kind,
            "--floats",   std::to_string(floats),
            "--keys",     std::to_string(keys),
            "--dim",      std::to_string(dim),
            "--servers",  std::to_string(servers),
            "--workers",  std::to_string(workers),
            "--reps",     std::to_string(reps),
            "--colocate", colocate ? "1" : "0"};
  }
};

// The options of one benchmark process (the hidden `bench-node` subcommand).
struct BenchNodeArgs {
  std::string role;
  std::string coordinator;
  int64_t rank = -1;
  std::string out;
  std::string peers;
  std::string addr_file;
  std::string keys;  // CURVE: the key folder (empty: plain)
  Case c;
};

// A bench process's transport: plain, or CURVE with its own key.
Result<std::unique_ptr<Transport>> BenchTransport(const BenchNodeArgs& f, Role role, int64_t rank,
                                                  const Logger& log) {
  ZmqOptions o;
  if (!f.keys.empty()) {
    const std::string name = FormatNodeName(role, static_cast<int32_t>(rank));
    ASSIGN_OR_RETURN(o.security.keys, ReadKeyFile(f.keys + "/" + KeyFileName(name)));
    ASSIGN_OR_RETURN(o.security.allowlist, ReadAllowlist(f.keys + "/allowlist"));
    o.security.authorize = MaySend;
  }
  return CreateZmqTransport(o, log);
}

std::vector<TableSpec> BenchTables(const Case& c) {
  TableSpec t;
  t.id = 0;
  t.name = "bench";
  t.sparse = c.kind == "sparse";
  t.size = c.floats;
  t.dim = c.dim;
  t.optimizer.kind = "sgd";
  t.optimizer.lr = 1e-6f;
  return {t};
}

Status WriteResult(const std::string& path, double seconds_elapsed) {
  std::ofstream out(path);
  out << Json{{"seconds", seconds_elapsed}}.dump() << "\n";
  return out.good() ? Status::Ok() : UnavailableError("cannot write " + path);
}

// ---- parameter-server roles ----

NodeOptions BenchNodeOptions(const BenchNodeArgs& f, int64_t rank) {
  NodeOptions n;
  n.coordinator_address = f.coordinator;
  n.rank = static_cast<int32_t>(rank);
  return n;
}

std::unique_ptr<ServerNode> MakeBenchServer(const BenchNodeArgs& f, const Case& c, int64_t rank,
                                            std::unique_ptr<Transport> t, const Logger& log) {
  KvServerOptions kv;
  kv.tables = BenchTables(c);
  return std::make_unique<ServerNode>(BenchNodeOptions(f, rank), kv, std::move(t), log);
}

Status BenchServer(const BenchNodeArgs& f, const Case& c) {
  const int64_t rank = f.rank;
  Logger log = Logger::Stderr("server/" + std::to_string(rank), LogLevel::kWarning);
  ASSIGN_OR_RETURN(auto t, BenchTransport(f, Role::kServer, rank, log));
  return MakeBenchServer(f, c, rank, std::move(t), log)->Run();
}

Status BenchWorker(const BenchNodeArgs& f, const Case& c, std::unique_ptr<Transport> t,
                   int64_t rank, const Logger& log) {
  WorkerNode node(BenchNodeOptions(f, rank), BenchTables(c), {}, std::move(t), log);
  RETURN_IF_ERROR(node.Start(Deadline::After(seconds(60))));
  KvClient& kv = node.kv();
  Deadline step_deadline = Deadline::After(seconds(600));
  double elapsed = 0;
  if (c.kind == "dense") {
    std::vector<float> grads(c.floats, 1e-3f), params(c.floats);
    Buffer g = Buffer::Borrow(grads.data(), grads.size() * 4);
    for (int64_t k = 0; k < kWarmup + c.reps; ++k) {
      if (k == kWarmup) {
        RETURN_IF_ERROR(node.cluster().Barrier("timed", BarrierGroup::kWorkers, step_deadline));
      }
      auto start = std::chrono::steady_clock::now();
      RETURN_IF_ERROR(kv.Wait(kv.PushPull(0, g, params.data(), k), step_deadline));
      if (k >= kWarmup) elapsed += ToSeconds(std::chrono::steady_clock::now() - start);
    }
  } else {
    std::mt19937_64 rng(1234 + rank);
    std::vector<std::vector<uint64_t>> key_sets(4, std::vector<uint64_t>(c.keys));
    for (auto& ks : key_sets) {
      for (auto& k : ks) k = rng() % c.key_space;
    }
    std::vector<float> grads(c.keys * c.dim, 1e-3f), params(c.keys * c.dim);
    for (int64_t k = 0; k < kWarmup + c.reps; ++k) {
      if (k == kWarmup) {
        RETURN_IF_ERROR(node.cluster().Barrier("timed", BarrierGroup::kWorkers, step_deadline));
      }
      auto start = std::chrono::steady_clock::now();
      RETURN_IF_ERROR(
          kv.Wait(kv.PushPullSparse(0, key_sets[k % key_sets.size()], grads, params.data(), k),
                  step_deadline));
      if (k >= kWarmup) elapsed += ToSeconds(std::chrono::steady_clock::now() - start);
    }
  }
  RETURN_IF_ERROR(WriteResult(f.out, elapsed));
  return node.Finish();
}

Status BenchWorker(const BenchNodeArgs& f, const Case& c) {
  const int64_t rank = f.rank;
  Logger log = Logger::Stderr("worker/" + std::to_string(rank), LogLevel::kWarning);
  ASSIGN_OR_RETURN(auto t, BenchTransport(f, Role::kWorker, rank, log));
  return BenchWorker(f, c, std::move(t), rank, log);
}

// A worker and the server of the same rank in one process; they reach each
// other without a socket (WithLocalPeers), everyone else over ZeroMQ.
Status BenchColocated(const BenchNodeArgs& f, const Case& c) {
  const int64_t rank = f.rank;
  Logger slog = Logger::Stderr("server/" + std::to_string(rank), LogLevel::kWarning);
  Logger wlog = Logger::Stderr("worker/" + std::to_string(rank), LogLevel::kWarning);
  ASSIGN_OR_RETURN(auto st, BenchTransport(f, Role::kServer, rank, slog));
  ASSIGN_OR_RETURN(auto wt, BenchTransport(f, Role::kWorker, rank, wlog));
  auto server = MakeBenchServer(f, c, rank, WithLocalPeers(std::move(st)), slog);
  auto served = std::async(std::launch::async, [&] { return server->Run(); });
  Status w = BenchWorker(f, c, WithLocalPeers(std::move(wt)), rank, wlog);
  if (!w.ok()) server->Kill();
  Status s = served.get();
  RETURN_IF_ERROR(w);
  return s;
}

// ---- raw ZeroMQ roles: the ceiling ----

// Echo: answers each request with its last frame (the values), sent back
// zero-copy from the received message.
Status BenchEcho(const BenchNodeArgs& f) {
  void* ctx = zmq_ctx_new();
  void* router = zmq_socket(ctx, ZMQ_ROUTER);
  if (zmq_bind(router, "tcp://127.0.0.1:0") != 0) return UnavailableError("echo: bind failed");
  char ep[256];
  size_t len = sizeof(ep);
  zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &len);
  {
    std::ofstream out(f.addr_file + ".tmp");
    out << ep;
  }
  std::rename((f.addr_file + ".tmp").c_str(), f.addr_file.c_str());
  while (true) {
    std::vector<zmq_msg_t> frames;
    // A zmq_msg_t must not move once initialized (received messages may
    // share a refcounted buffer): never let the vector reallocate.
    frames.reserve(16);
    do {
      if (frames.size() == frames.capacity()) return InternalError("echo: too many frames");
      frames.emplace_back();
      zmq_msg_init(&frames.back());
      if (zmq_msg_recv(&frames.back(), router, 0) < 0) return Status::Ok();
    } while (zmq_msg_more(&frames.back()));
    if (frames.size() == 2 && zmq_msg_size(&frames[1]) == 4 &&
        std::memcmp(zmq_msg_data(&frames[1]), "STOP", 4) == 0) {
      break;
    }
    zmq_msg_send(&frames.front(), router, ZMQ_SNDMORE);
    zmq_msg_send(&frames.back(), router, 0);
    for (size_t i = 1; i + 1 < frames.size(); ++i) zmq_msg_close(&frames[i]);
  }
  zmq_close(router);
  zmq_ctx_term(ctx);
  return Status::Ok();
}

Status BenchRawClient(const BenchNodeArgs& f, const Case& c) {
  std::vector<std::string> peers;
  std::stringstream ss(f.peers);
  for (std::string p; std::getline(ss, p, ',');) peers.push_back(p);
  void* ctx = zmq_ctx_new();
  std::vector<void*> socks;
  for (const auto& p : peers) {
    void* s = zmq_socket(ctx, ZMQ_DEALER);
    int timeout_ms = 60000;  // a lost reply is an error, not a hang
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
    zmq_connect(s, p.c_str());
    socks.push_back(s);
  }
  // The same bytes our client sends: dense slices of floats/S each; sparse
  // keys and rows split by server.
  const size_t n = socks.size();
  std::vector<uint8_t> payload(c.push_bytes() + 64);
  std::vector<uint8_t> sink(c.pull_bytes() + 64);
  double elapsed = 0;
  for (int64_t k = 0; k < kWarmup + c.reps; ++k) {
    auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < n; ++i) {
      if (c.kind == "sparse") {
        size_t kb = c.keys * 8 / n, vb = c.keys * c.dim * 4 / n;
        zmq_msg_t km, vm;
        zmq_msg_init_data(&km, payload.data(), kb, nullptr, nullptr);
        zmq_msg_init_data(&vm, payload.data() + kb, vb, nullptr, nullptr);
        zmq_msg_send(&km, socks[i], ZMQ_SNDMORE);
        zmq_msg_send(&vm, socks[i], 0);
      } else {
        zmq_msg_t m;
        zmq_msg_init_data(&m, payload.data(), c.push_bytes() / n, nullptr, nullptr);
        zmq_msg_send(&m, socks[i], 0);
      }
    }
    for (size_t i = 0; i < n; ++i) {
      zmq_msg_t m;
      zmq_msg_init(&m);
      if (zmq_msg_recv(&m, socks[i], 0) < 0) {
        zmq_msg_close(&m);
        return DeadlineExceededError("raw client: no echo from " + peers[i] + " in 60 s");
      }
      // Like our client, land the reply in the caller's buffer.
      std::memcpy(sink.data(), zmq_msg_data(&m), std::min(zmq_msg_size(&m), sink.size()));
      zmq_msg_close(&m);
    }
    if (k >= kWarmup) elapsed += ToSeconds(std::chrono::steady_clock::now() - start);
  }
  for (void* s : socks) {
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_close(s);
  }
  zmq_ctx_term(ctx);
  return WriteResult(f.out, elapsed);
}

Status StopEcho(const std::string& addr) {
  void* ctx = zmq_ctx_new();
  void* s = zmq_socket(ctx, ZMQ_DEALER);
  zmq_connect(s, addr.c_str());
  zmq_send(s, "STOP", 4, 0);
  int linger = 1000;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
  zmq_close(s);
  zmq_ctx_term(ctx);
  return Status::Ok();
}

// ---- the driver ----

Result<double> ReadSeconds(const std::string& path) {
  std::ifstream in(path);
  if (!in) return UnavailableError("no result at " + path);
  Json j = Json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.contains("seconds")) return DataLossError("bad result in " + path);
  return j["seconds"].get<double>();
}

Status WaitAll(std::vector<Subprocess>& procs, const std::string& what, const std::string& dir) {
  for (auto& p : procs) {
    auto code = p.Wait(Deadline::After(seconds(600)));
    if (!code.ok()) return code.status().WithContext(what);
    if (*code != 0) {
      return InternalError(what + " process " + std::to_string(p.pid()) + " exited with " +
                           std::to_string(*code) + " (logs in " + dir + ")");
    }
  }
  return Status::Ok();
}

// Seconds per step of the slowest worker.
// `keys`: a key folder for CURVE, empty for plain.
Result<double> RunOurs(const Case& c, const std::string& dir, const std::string& keys = "") {
  Logger log = Logger::Stderr("bench/coordinator", LogLevel::kWarning);
  ZmqOptions zo;
  if (!keys.empty()) {
    ASSIGN_OR_RETURN(zo.security.keys, ReadKeyFile(keys + "/coordinator.key"));
    ASSIGN_OR_RETURN(zo.security.allowlist, ReadAllowlist(keys + "/allowlist"));
    zo.security.authorize = MaySend;
  }
  ASSIGN_OR_RETURN(auto transport, CreateZmqTransport(zo, log));
  CoordinatorOptions co;
  co.num_servers = c.servers;
  co.num_workers = c.workers;
  co.startup_timeout = seconds(60);
  auto tables = BenchTables(c);
  auto coord = std::async(std::launch::async,
                          [&] { return RunCoordinator(co, tables, transport.get(), log); });
  std::string self = SelfExecutable();
  std::vector<Subprocess> servers, workers;
  auto spawn = [&](const std::string& role, uint32_t rank,
                   std::vector<Subprocess>* into) -> Status {
    std::vector<std::string> argv = {self,
                                     "bench-node",
                                     "--role",
                                     role,
                                     "--coordinator",
                                     transport->address(),
                                     "--rank",
                                     std::to_string(rank),
                                     "--out",
                                     dir + "/" + role + std::to_string(rank) + ".json"};
    for (auto& a : c.Args()) argv.push_back(a);
    if (!keys.empty()) argv.insert(argv.end(), {"--key-dir", keys});
    ASSIGN_OR_RETURN(
        auto p, Subprocess::Spawn(argv, {.log = dir + "/" + role + std::to_string(rank) + ".log"}));
    into->push_back(std::move(p));
    return Status::Ok();
  };
  if (!c.colocate) {
    for (uint32_t s = 0; s < c.servers; ++s) RETURN_IF_ERROR(spawn("server", s, &servers));
  }
  for (uint32_t w = 0; w < c.workers; ++w) {
    RETURN_IF_ERROR(spawn(c.colocate ? "colocated" : "worker", w, &workers));
  }
  Status ws = WaitAll(workers, "worker", dir);
  Status ss = WaitAll(servers, "server", dir);
  Status cs = coord.get();
  RETURN_IF_ERROR(ws);
  RETURN_IF_ERROR(ss);
  RETURN_IF_ERROR(cs);
  double worst = 0;
  for (uint32_t w = 0; w < c.workers; ++w) {
    ASSIGN_OR_RETURN(double s, ReadSeconds(dir + (c.colocate ? "/colocated" : "/worker") +
                                           std::to_string(w) + ".json"));
    worst = std::max(worst, s);
  }
  return worst / static_cast<double>(c.reps);
}

Result<double> RunRaw(const Case& c, const std::string& dir) {
  std::string self = SelfExecutable();
  std::vector<Subprocess> echoes, clients;
  std::vector<std::string> addrs;
  for (uint32_t s = 0; s < c.servers; ++s) {
    std::string af = dir + "/echo" + std::to_string(s) + ".addr";
    std::remove(af.c_str());  // the previous case's echo left its address here
    ASSIGN_OR_RETURN(auto p,
                     Subprocess::Spawn({self, "bench-node", "--role", "echo", "--addr-file", af},
                                       {.log = dir + "/echo" + std::to_string(s) + ".log"}));
    echoes.push_back(std::move(p));
    Deadline d = Deadline::After(seconds(30));
    std::string addr;
    while (addr.empty()) {
      std::ifstream in(af);
      if (in) std::getline(in, addr);
      if (addr.empty()) {
        if (d.expired()) return DeadlineExceededError("echo process did not start");
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    addrs.push_back(addr);
  }
  std::string peers;
  for (auto& a : addrs) peers += (peers.empty() ? "" : ",") + a;
  for (uint32_t w = 0; w < c.workers; ++w) {
    std::vector<std::string> argv = {
        self,      "bench-node", "--role", "raw-client",
        "--peers", peers,        "--out",  dir + "/raw" + std::to_string(w) + ".json"};
    for (auto& a : c.Args()) argv.push_back(a);
    ASSIGN_OR_RETURN(auto p,
                     Subprocess::Spawn(argv, {.log = dir + "/raw" + std::to_string(w) + ".log"}));
    clients.push_back(std::move(p));
  }
  RETURN_IF_ERROR(WaitAll(clients, "raw client", dir));
  for (auto& a : addrs) StopEcho(a).IgnoreError();
  RETURN_IF_ERROR(WaitAll(echoes, "echo", dir));
  double worst = 0;
  for (uint32_t w = 0; w < c.workers; ++w) {
    ASSIGN_OR_RETURN(double s, ReadSeconds(dir + "/raw" + std::to_string(w) + ".json"));
    worst = std::max(worst, s);
  }
  return worst / static_cast<double>(c.reps);
}

std::string CaseName(const Case& c) {
  std::string size = c.kind == "dense"
                         ? (c.floats * 4 >= (1u << 20) ? std::to_string(c.floats * 4 >> 20) + "MiB"
                                                       : std::to_string(c.floats * 4 >> 10) + "KiB")
                         : std::to_string(c.keys / 1000) + "kx" + std::to_string(c.dim);
  return c.kind + "-" + size + "-s" + std::to_string(c.servers) + "w" + std::to_string(c.workers) +
         (c.colocate ? "-colo" : "");
}

Status RunBenchNode(const BenchNodeArgs& f) {
  if (f.role == "echo") return BenchEcho(f);
  if (f.role == "server") return BenchServer(f, f.c);
  if (f.role == "worker") return BenchWorker(f, f.c);
  if (f.role == "colocated") return BenchColocated(f, f.c);
  return BenchRawClient(f, f.c);
}

struct KvBenchArgs {
  std::vector<std::string> sizes;
  std::vector<int64_t> servers = {1, 2};
  std::vector<int64_t> workers = {1, 2, 4};
  int64_t reps = 0;
  std::string json;
  int64_t sparse_keys = 100000;
  int64_t sparse_dim = 16;
  bool no_sparse = false;
  bool no_dense = false;
  bool colocate = false;
  std::string security = "none";
};

Status RunKvBench(const KvBenchArgs& f) {
  std::vector<uint64_t> sizes;
  for (const auto& s : f.sizes) {
    auto b = ParseBytes(s);
    if (!b.ok()) return b.status().WithContext("--size");
    sizes.push_back(*b);
  }
  if (sizes.empty()) sizes = {1ull << 20, 16ull << 20};
  std::vector<int64_t> servers = f.servers;
  const std::vector<int64_t>& workers = f.workers;
  const int64_t reps = f.reps, sparse_keys = f.sparse_keys, sparse_dim = f.sparse_dim;
  const bool colocate = f.colocate;
  std::vector<Case> cases;
  if (colocate) servers = {0};  // one per worker, in the workers' processes
  for (int64_t s : servers) {
    for (int64_t w : workers) {
      if (colocate) s = w;
      if (s < 1 || w < 1) return InvalidArgumentError("--servers and --workers must be >= 1");
      if (!f.no_dense) {
        for (uint64_t b : sizes) {
          Case c;
          c.kind = "dense";
          c.floats = b / 4;
          c.servers = s;
          c.workers = w;
          c.colocate = colocate;
          c.reps = reps > 0 ? reps : (b >= (8u << 20) ? 15 : 60);
          cases.push_back(c);
        }
      }
      if (!f.no_sparse) {
        Case c;
        c.kind = "sparse";
        c.keys = sparse_keys;
        c.dim = static_cast<uint32_t>(sparse_dim);
        c.servers = s;
        c.workers = w;
        c.colocate = colocate;
        c.reps = reps > 0 ? reps : 15;
        cases.push_back(c);
      }
    }
  }
  char tmpl[] = "/tmp/distopt-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return UnavailableError("mkdtemp failed");
  std::string dir = tmpl;
  std::string keys;
  if (f.security == "curve") {
    int64_t max_s = 1, max_w = 1;
    for (const Case& c : cases) {
      max_s = std::max<int64_t>(max_s, c.servers);
      max_w = std::max<int64_t>(max_w, c.workers);
    }
    keys = dir + "/keys";
    auto written =
        WriteJobKeys(keys, static_cast<uint32_t>(max_s), static_cast<uint32_t>(max_w), true);
    if (!written.ok()) return written.status();
  }
  std::printf("distopt bench kv: separate processes over ZeroMQ tcp on 127.0.0.1, %u cores\n",
              std::thread::hardware_concurrency());
  std::printf(
      "ours = push+pull through distopt (BSP, SGD on the server); raw = ZeroMQ round trip\n"
      "of the same bytes between the same number of processes (the ceiling). GB/s = 1e9 B/s\n"
      "of push+pull payload over all workers.\n\n");
  std::printf("%-26s %10s %10s %10s %7s %14s\n", "case", "ours GB/s", "raw GB/s", "ours ms",
              "ratio", "keys/s");
  Json results = Json::array();
  for (const Case& c : cases) {
    ASSIGN_OR_RETURN(double ours, RunOurs(c, dir));
    double curve = std::numeric_limits<double>::quiet_NaN();
    if (!keys.empty()) {
      ASSIGN_OR_RETURN(curve, RunOurs(c, dir, keys));
    }
    // Co-located cases have no raw twin (echo servers are separate processes).
    double raw = std::numeric_limits<double>::quiet_NaN();
    if (!c.colocate) {
      ASSIGN_OR_RETURN(raw, RunRaw(c, dir));
    }
    double bytes = static_cast<double>(c.push_bytes() + c.pull_bytes()) * c.workers;
    double gbps = bytes / ours / 1e9, ceiling = bytes / raw / 1e9;
    Json j = {{"name", CaseName(c)},  {"kind", c.kind},          {"servers", c.servers},
              {"workers", c.workers}, {"bytes_per_step", bytes}, {"step_ms", ours * 1e3},
              {"gbps", gbps},         {"colocated", c.colocate}, {"reps", c.reps}};
    if (!c.colocate) {
      j["raw_step_ms"] = raw * 1e3;
      j["ceiling_gbps"] = ceiling;
      j["ratio"] = gbps / ceiling;
    }
    std::string keys_col = "-";
    if (c.kind == "sparse") {
      double kps = static_cast<double>(c.keys) * c.workers / ours;
      j["keys_per_s"] = kps;
      j["ceiling_keys_per_s"] = static_cast<double>(c.keys) * c.workers / raw;
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.3g", kps);
      keys_col = buf;
    }
    std::printf("%-26s %10.3f %10.3f %10.2f %7.2f %14s\n", CaseName(c).c_str(), gbps, ceiling,
                ours * 1e3, gbps / ceiling, keys_col.c_str());
    if (!keys.empty()) {
      // The cost of encryption: the same case with CURVE on every socket.
      j["curve_step_ms"] = curve * 1e3;
      j["curve_gbps"] = bytes / curve / 1e9;
      j["curve_vs_plain"] = ours / curve;
      std::printf("%-26s %10.3f %10s %10.2f %7.2f   (CURVE / plain)\n", "  with CURVE",
                  bytes / curve / 1e9, "", curve * 1e3, ours / curve);
    }
    std::fflush(stdout);
    results.push_back(j);
  }
  if (!f.json.empty()) {
    std::ofstream out(f.json);
    out << Json{{"benchmark", "kv"},
                {"cores", std::thread::hardware_concurrency()},
                {"cases", results}}
               .dump(2)
        << "\n";
    if (!out) return UnavailableError("cannot write " + f.json);
    std::printf("\nwrote %s\n", f.json.c_str());
  }
  return Status::Ok();
}

}  // namespace

void AddBenchCommands(CLI::App& app, Action* action) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks of this build");
  bench->require_subcommand(1);
  auto kv = std::make_shared<KvBenchArgs>();
  CLI::App* c = bench->add_subcommand(
      "kv", "Push+pull throughput over ZeroMQ tcp on loopback, beside a raw ZeroMQ round trip");
  c->add_option("--size", kv->sizes, "dense payload per worker (repeatable; default 1MiB, 16MiB)")
      ->allow_extra_args(false);
  c->add_option("--servers", kv->servers, "server counts, e.g. 1,2")
      ->delimiter(',')
      ->check(IntIn(1, 64));
  c->add_option("--workers", kv->workers, "worker counts, e.g. 1,2,4")
      ->delimiter(',')
      ->check(IntIn(1, 64));
  c->add_option("--reps", kv->reps, "timed steps per case (default by size)")
      ->check(IntIn(0, 1 << 30));
  c->add_option("--json", kv->json, "write the results here");
  c->add_option("--sparse-keys", kv->sparse_keys, "keys per sparse push")->check(IntIn(1, 1 << 30));
  c->add_option("--sparse-dim", kv->sparse_dim, "sparse row width")->check(IntIn(1, 65536));
  c->add_flag("--no-sparse", kv->no_sparse, "skip the sparse cases");
  c->add_flag("--no-dense", kv->no_dense, "skip the dense cases");
  c->add_flag("--colocate", kv->colocate, "one server in each worker's process");
  c->add_option("--security", kv->security,
                "curve: run every case again with CURVE on every socket and print the ratio")
      ->check(CLI::IsMember({"none", "curve"}));
  c->callback([kv, action] { *action = [kv] { return RunKvBench(*kv); }; });

  // The processes the benchmark starts (not for users: hidden from --help).
  auto node = std::make_shared<BenchNodeArgs>();
  CLI::App* n = app.add_subcommand("bench-node", "one process of `distopt bench kv`");
  n->group("");
  n->add_option("--role", node->role)
      ->required()
      ->check(CLI::IsMember({"server", "worker", "colocated", "echo", "raw-client"}));
  n->add_option("--coordinator", node->coordinator);
  n->add_option("--rank", node->rank);
  n->add_option("--out", node->out);
  n->add_option("--peers", node->peers);
  n->add_option("--addr-file", node->addr_file);
  n->add_option("--key-dir", node->keys);
  Case& k = node->c;
  n->add_option("--kind", k.kind)->check(CLI::IsMember({"dense", "sparse"}));
  n->add_option("--floats", k.floats);
  n->add_option("--keys", k.keys);
  n->add_option("--dim", k.dim);
  n->add_option("--servers", k.servers);
  n->add_option("--workers", k.workers);
  n->add_option("--reps", k.reps);
  n->add_option("--colocate", k.colocate);
  n->callback([node, action] { *action = [node] { return RunBenchNode(*node); }; });
}

}  // namespace distopt
