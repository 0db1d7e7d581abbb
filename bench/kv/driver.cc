#include "driver.h"

#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <future>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <thread>
#include <vector>

#include "base/file_util.h"
#include "base/logging.h"
#include "base/subprocess.h"
#include "base/time.h"
#include "cli/commands.h"
#include "kv/kv_role_policy.h"
#include "kv/node.h"
#include "node.h"
#include "transport/curve_keys.h"
#include "transport/zmq_transport.h"

namespace distopt::bench {
namespace {

using Json = nlohmann::json;
using std::chrono::seconds;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The scratch folder of one run: removed when the run ends, whichever way it
// ends, unless the user asked to keep it. Node processes must be gone first
// (their Subprocess owners, which kill them, live in narrower scopes).
class ScratchDir {
 public:
  static Result<ScratchDir> Create(const std::string& parent, bool keep) {
    std::string tmpl = parent + "/distopt-bench-kv-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      return UnavailableError(tmpl + ": mkdtemp failed: " + std::strerror(errno));
    }
    return ScratchDir(std::move(tmpl), keep);
  }
  ScratchDir(ScratchDir&& o) noexcept : path_(std::move(o.path_)), keep_(o.keep_) {
    o.path_.clear();
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ScratchDir& operator=(ScratchDir&&) = delete;
  ~ScratchDir() {
    if (path_.empty()) return;
    if (keep_) {
      std::fprintf(stderr, "distopt-bench-kv: kept the scratch folder %s\n", path_.c_str());
      return;
    }
    Status s = RemoveTree(path_);
    if (!s.ok()) std::fprintf(stderr, "distopt-bench-kv: %s\n", s.ToString().c_str());
  }
  const std::string& path() const { return path_; }

 private:
  ScratchDir(std::string path, bool keep) : path_(std::move(path)), keep_(keep) {}
  std::string path_;
  bool keep_;
};

// ---- node processes ----

struct Child {
  Subprocess proc;
  std::string log;
};

// The last lines of a node's log: its error has to be in the message, since
// the scratch folder with the log is removed when the run ends.
std::string LogTail(const std::string& path) {
  constexpr size_t kLines = 20;
  auto text = ReadFile(path, 64 << 20);
  if (!text.ok()) return "(no log: " + text.status().ToString() + ")";
  size_t begin = text->size(), lines = 0;
  while (begin > 0 && lines <= kLines) {
    if ((*text)[--begin] == '\n') ++lines;
  }
  return text->substr(begin == 0 ? 0 : begin + 1);
}

// `self node ARGS...`, stdout and stderr to `log`.
Result<Child> SpawnNode(const std::string& self, const std::vector<std::string>& args,
                        const std::string& log) {
  std::vector<std::string> argv = {self, "node"};
  argv.insert(argv.end(), args.begin(), args.end());
  ASSIGN_OR_RETURN(Subprocess p, Subprocess::Spawn(argv, {.log = log}));
  return Child{std::move(p), log};
}

Status WaitAll(std::vector<Child>& children, const std::string& what) {
  for (auto& c : children) {
    auto code = c.proc.Wait(Deadline::After(seconds(600)));
    if (!code.ok())
      return code.status().WithContext(what + " process " + std::to_string(c.proc.pid()));
    if (*code != 0) {
      return InternalError(what + " process " + std::to_string(c.proc.pid()) + " exited with " +
                           std::to_string(*code) + "; the end of its log:\n" + LogTail(c.log));
    }
  }
  return Status::Ok();
}

// Seconds per timed step of the slowest of the case's `prefix`<rank> processes.
Result<double> SlowestStep(const Case& c, const std::string& dir, const std::string& prefix) {
  double worst = 0;
  for (uint32_t w = 0; w < c.workers; ++w) {
    ASSIGN_OR_RETURN(double s, ReadSecondsFile(dir + "/" + prefix + std::to_string(w) + ".json"));
    worst = std::max(worst, s);
  }
  return worst / static_cast<double>(c.reps);
}

// ---- one measurement ----

// distopt's push+pull. `keys`: a key folder for CURVE, empty for plain.
Result<double> RunOurs(const Case& c, const std::string& dir, const std::string& keys,
                       const std::string& self) {
  Logger log = Logger::Stderr("bench/coordinator", LogLevel::kWarning);
  ZmqOptions zo;
  if (!keys.empty()) {
    ASSIGN_OR_RETURN(zo.security.keys, ReadKeyFile(keys + "/coordinator.key"));
    ASSIGN_OR_RETURN(zo.security.allowlist, ReadAllowlist(keys + "/allowlist"));
    zo.security.authorize = KvMaySend;
  }
  ASSIGN_OR_RETURN(auto transport, CreateZmqTransport(zo, log));
  CoordinatorOptions co;
  co.num_servers = c.servers;
  co.num_workers = c.workers;
  co.startup_timeout = seconds(60);
  const auto tables = BenchTables(c);
  auto coord = std::async(std::launch::async, [&] {
    return RunCoordinator(co, tables, transport.get(), log, {}, 1, c.partitions);
  });
  std::vector<Child> servers, workers;
  auto spawn = [&](const std::string& role, uint32_t rank) -> Result<Child> {
    const std::string name = dir + "/" + role + std::to_string(rank);
    std::vector<std::string> args = {"--role",        role,
                                     "--coordinator", transport->address(),
                                     "--rank",        std::to_string(rank),
                                     "--out",         name + ".json"};
    for (auto& a : c.Args()) args.push_back(a);
    if (!keys.empty()) args.insert(args.end(), {"--key-dir", keys});
    return SpawnNode(self, args, name + ".log");
  };
  const std::string worker_role = c.colocate ? "colocated" : "worker";
  for (uint32_t s = 0; s < c.servers && !c.colocate; ++s) {
    ASSIGN_OR_RETURN(Child child, spawn("server", s));
    servers.push_back(std::move(child));
  }
  for (uint32_t w = 0; w < c.workers; ++w) {
    ASSIGN_OR_RETURN(Child child, spawn(worker_role, w));
    workers.push_back(std::move(child));
  }
  Status ws = WaitAll(workers, worker_role);
  Status ss = WaitAll(servers, "server");
  Status cs = coord.get();
  RETURN_IF_ERROR(ws);
  RETURN_IF_ERROR(ss);
  RETURN_IF_ERROR(cs);
  return SlowestStep(c, dir, worker_role);
}

// The endpoint an echo writes once it has bound.
Result<std::string> WaitForEchoEndpoint(Child& echo, const std::string& addr_file) {
  const Deadline d = Deadline::After(seconds(30));
  while (true) {
    auto addr = ReadFile(addr_file, 4096);
    if (addr.ok() && !addr->empty()) return *std::move(addr);
    if (!addr.ok() && addr.status().code() != StatusCode::kNotFound) return addr.status();
    if (echo.proc.Poll()) {
      return InternalError("echo process exited with " + std::to_string(echo.proc.code()) +
                           " before it bound; the end of its log:\n" + LogTail(echo.log));
    }
    if (d.expired()) return DeadlineExceededError("echo process did not bind in 30 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// The ceiling: the same bytes through raw ZeroMQ.
Result<double> RunRaw(const Case& c, const std::string& dir, const std::string& self) {
  std::vector<Child> echoes, clients;
  std::vector<std::string> endpoints;
  std::string peers;
  for (uint32_t s = 0; s < c.servers; ++s) {
    const std::string name = dir + "/echo" + std::to_string(s);
    ASSIGN_OR_RETURN(Child echo, SpawnNode(self, {"--role", "echo", "--addr-file", name + ".addr"},
                                           name + ".log"));
    echoes.push_back(std::move(echo));
    ASSIGN_OR_RETURN(std::string endpoint, WaitForEchoEndpoint(echoes.back(), name + ".addr"));
    peers += (peers.empty() ? "" : ",") + endpoint;
    endpoints.push_back(std::move(endpoint));
  }
  for (uint32_t w = 0; w < c.workers; ++w) {
    const std::string name = dir + "/raw" + std::to_string(w);
    std::vector<std::string> args = {"--role", "raw-client", "--peers",
                                     peers,    "--out",      name + ".json"};
    for (auto& a : c.Args()) args.push_back(a);
    ASSIGN_OR_RETURN(Child client, SpawnNode(self, args, name + ".log"));
    clients.push_back(std::move(client));
  }
  RETURN_IF_ERROR(WaitAll(clients, "raw client"));
  for (const auto& e : endpoints) RETURN_IF_ERROR(StopEcho(e).WithContext("stopping echo " + e));
  RETURN_IF_ERROR(WaitAll(echoes, "echo"));
  return SlowestStep(c, dir, "raw");
}

// ---- one case ----

struct CaseTimes {
  double ours = kNaN;   // seconds per step through distopt
  double curve = kNaN;  // the same with CURVE (--security curve only)
  double raw = kNaN;    // the raw ZeroMQ twin (not for co-located cases)
};

// Each measurement gets a fresh folder: no file of an earlier one (an echo's
// endpoint, a worker's seconds) can be mistaken for its own.
Result<std::string> MeasurementDir(const std::string& dir, size_t index, const Case& c,
                                   const char* what) {
  std::string d = dir + "/" + std::to_string(index) + "-" + CaseName(c) + "-" + what;
  RETURN_IF_ERROR(MakeDirs(d));
  return d;
}

Result<CaseTimes> MeasureCase(const Case& c, size_t index, const std::string& dir,
                              const std::string& keys, const std::string& self) {
  CaseTimes t;
  ASSIGN_OR_RETURN(std::string plain, MeasurementDir(dir, index, c, "plain"));
  ASSIGN_OR_RETURN(t.ours, RunOurs(c, plain, "", self));
  if (!keys.empty()) {
    ASSIGN_OR_RETURN(std::string curve, MeasurementDir(dir, index, c, "curve"));
    ASSIGN_OR_RETURN(t.curve, RunOurs(c, curve, keys, self));
  }
  // Co-located cases have no raw twin (echo servers are separate processes).
  if (!c.colocate) {
    ASSIGN_OR_RETURN(std::string raw, MeasurementDir(dir, index, c, "raw"));
    ASSIGN_OR_RETURN(t.raw, RunRaw(c, raw, self));
  }
  return t;
}

double StepBytes(const Case& c) {
  return static_cast<double>(c.push_bytes() + c.pull_bytes()) * c.workers;
}

// The case's JSON record (the fields bench/compare and earlier results read).
Json CaseJson(const Case& c, const CaseTimes& t) {
  const double bytes = StepBytes(c), gbps = bytes / t.ours / 1e9, ceiling = bytes / t.raw / 1e9;
  Json j = {{"name", CaseName(c)},  {"kind", c.kind},          {"servers", c.servers},
            {"workers", c.workers}, {"bytes_per_step", bytes}, {"step_ms", t.ours * 1e3},
            {"gbps", gbps},         {"colocated", c.colocate}, {"reps", c.reps}};
  if (!c.colocate) {
    j["raw_step_ms"] = t.raw * 1e3;
    j["ceiling_gbps"] = ceiling;
    j["ratio"] = gbps / ceiling;
  }
  if (c.kind == "sparse") {
    j["keys_per_s"] = static_cast<double>(c.keys) * c.workers / t.ours;
    j["ceiling_keys_per_s"] = static_cast<double>(c.keys) * c.workers / t.raw;
  }
  if (!std::isnan(t.curve)) {
    // The cost of encryption: the same case with CURVE on every socket.
    j["curve_step_ms"] = t.curve * 1e3;
    j["curve_gbps"] = bytes / t.curve / 1e9;
    j["curve_vs_plain"] = t.ours / t.curve;
  }
  return j;
}

void PrintHeader() {
  std::printf("distopt-bench-kv: separate processes over ZeroMQ tcp on 127.0.0.1, %u cores\n",
              std::thread::hardware_concurrency());
  std::printf(
      "ours = push+pull through distopt (BSP, SGD on the server); raw = ZeroMQ round trip\n"
      "of the same bytes between the same number of processes (the ceiling). GB/s = 1e9 B/s\n"
      "of push+pull payload over all workers.\n\n");
  std::printf("%-26s %10s %10s %10s %7s %14s\n", "case", "ours GB/s", "raw GB/s", "ours ms",
              "ratio", "keys/s");
}

void PrintRow(const Case& c, const CaseTimes& t) {
  const double bytes = StepBytes(c), gbps = bytes / t.ours / 1e9, ceiling = bytes / t.raw / 1e9;
  std::string keys_col = "-";
  if (c.kind == "sparse") {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.3g", static_cast<double>(c.keys) * c.workers / t.ours);
    keys_col = buf;
  }
  std::printf("%-26s %10.3f %10.3f %10.2f %7.2f %14s\n", CaseName(c).c_str(), gbps, ceiling,
              t.ours * 1e3, gbps / ceiling, keys_col.c_str());
  if (!std::isnan(t.curve)) {
    std::printf("%-26s %10.3f %10s %10.2f %7.2f   (CURVE / plain)\n", "  with CURVE",
                bytes / t.curve / 1e9, "", t.curve * 1e3, t.ours / t.curve);
  }
  std::fflush(stdout);
}

Status WriteResultsJson(const std::string& path, const Json& cases) {
  const std::string text =
      Json{{"benchmark", "kv"}, {"cores", std::thread::hardware_concurrency()}, {"cases", cases}}
          .dump(2) +
      "\n";
  return WriteFileAtomically(
      path, {std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size())});
}

// The job's CURVE keys for the largest case (every case uses a prefix of them).
Status WriteBenchKeys(const std::vector<Case>& cases, const std::string& keys) {
  uint32_t max_s = 1, max_w = 1;
  for (const Case& c : cases) {
    max_s = std::max(max_s, c.servers);
    max_w = std::max(max_w, c.workers);
  }
  auto written = WriteJobKeys(keys, max_s, max_w, /*force=*/true);
  return written.ok() ? Status::Ok() : written.status();
}

}  // namespace

Status RunKvBench(const KvBenchOptions& o) {
  ASSIGN_OR_RETURN(std::vector<Case> cases, PlanCases(o.plan));
  if (o.self.empty()) return InternalError("cannot find this executable (/proc/self/exe)");
  ASSIGN_OR_RETURN(ScratchDir scratch, ScratchDir::Create(o.scratch_parent, o.keep));
  std::string keys;
  if (o.security == "curve") {
    keys = scratch.path() + "/keys";
    RETURN_IF_ERROR(WriteBenchKeys(cases, keys));
  }
  PrintHeader();
  Json results = Json::array();
  for (size_t i = 0; i < cases.size(); ++i) {
    ASSIGN_OR_RETURN(CaseTimes t, MeasureCase(cases[i], i, scratch.path(), keys, o.self));
    PrintRow(cases[i], t);
    results.push_back(CaseJson(cases[i], t));
  }
  if (!o.json.empty()) {
    RETURN_IF_ERROR(WriteResultsJson(o.json, results));
    std::printf("\nwrote %s\n", o.json.c_str());
  }
  return Status::Ok();
}

}  // namespace distopt::bench
