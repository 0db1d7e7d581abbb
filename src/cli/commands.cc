#include "cli/commands.h"

#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <thread>

#include "base/file_util.h"
#include "base/subprocess.h"
#include "cli/config.h"
#include "cli/job.h"
#include "cli/placement.h"
#include "cluster/role_policy.h"
#include "kv/kv_role_policy.h"
#include "kv/node.h"
#include "train/model_file.h"
#include "train/plot.h"
#include "train/trainer.h"
#include "transport/curve_keys.h"
#include "transport/faulty_transport.h"
#include "transport/local_peers.h"
#include "transport/net_address.h"
#include "transport/zmq_transport.h"

namespace distopt {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// The CPUs this process may run on (its affinity mask), at least 1.
uint32_t AvailableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return static_cast<uint32_t>(std::max(1, CPU_COUNT(&set)));
}

NodeOptions NodeOpts(const JobConfig& cfg, const Placement& p, const std::string& coordinator) {
  NodeOptions n;
  n.coordinator_address = coordinator;
  n.rank = p.rank;
  n.host_label = p.host_label;
  n.capacity =
      cfg.cluster.capacity > 0 ? static_cast<uint32_t>(cfg.cluster.capacity) : AvailableCpus();
  n.heartbeat_interval = milliseconds(cfg.cluster.heartbeat_interval_ms);
  n.coordinator_timeout = milliseconds(cfg.cluster.heartbeat_timeout_ms * 3);
  n.register_timeout = seconds(cfg.cluster.startup_timeout_s);
  return n;
}

// ---- distopt run: one node ----

// cluster.host_aggregation for the KvClient (only BSP aggregates).
HostAggregation HostAggregationOf(const ClusterConfig& c) {
  if (c.consistency != Consistency::kBsp || c.host_aggregation == "off") {
    return HostAggregation::kOff;
  }
  return c.host_aggregation == "on" ? HostAggregation::kOn : HostAggregation::kAuto;
}

// Wraps the node's transport with the config's fault injection when it
// names this node.
std::unique_ptr<Transport> MaybeFaulty(const JobConfig& cfg, const Placement& p,
                                       std::unique_ptr<Transport> t, const Logger& log) {
  const Role role = p.role;
  const int32_t rank = p.rank;
  const FaultConfig& f = cfg.faults;
  bool any = f.drop > 0 || f.duplicate > 0 || f.delay_ms > 0 || f.kill_after_messages >= 0;
  if (!any) return t;
  if (!f.role.empty() && f.role != RoleName(role)) return t;
  if (f.rank >= 0 && f.rank != rank) return t;
  // The launcher marks restarted nodes: a node killed by injection comes
  // back healthy (or it would die again and again).
  if (p.restarts > 0 && f.kill_after_messages >= 0) return t;
  FaultOptions o;
  o.drop = f.drop;
  o.duplicate = f.duplicate;
  o.max_delay = milliseconds(f.delay_ms);
  o.kill_after = f.kill_after_messages;
  o.seed = f.seed + static_cast<uint64_t>(rank + 1) * 7919;
  // A real crash: no destructors, no goodbye to the coordinator.
  o.on_kill = [] { std::raise(SIGKILL); };
  log.Warn("fault injection on: drop ", f.drop, ", duplicate ", f.duplicate, ", delay up to ",
           f.delay_ms, " ms",
           f.kill_after_messages >= 0
               ? ", killed after " + std::to_string(f.kill_after_messages) + " messages"
               : std::string());
  return WithFaults(std::move(t), o, log);
}

// The node's own address as peers should dial it: the flag or the launcher's
// word, else the address of the interface that routes to the coordinator
// (asked of the OS), never a loopback address unless the coordinator is one.
Result<std::string> AdvertiseHost(const Placement& p) {
  if (!p.advertise_host.empty()) return p.advertise_host;
  if (!p.interface.empty()) return InterfaceAddress(p.interface, IsIpv6Literal(p.coordinator.host));
  if (p.role == Role::kCoordinator && (p.coordinator.host == "0.0.0.0" ||
                                       p.coordinator.host == "*" || p.coordinator.host == "::")) {
    return std::string("127.0.0.1");  // only its own logs see it: nobody dials a coordinator back
  }
  auto a = LocalAddressToward(p.coordinator.host);
  if (!a.ok()) return a.status().WithContext("finding the address to advertise (--advertise-host)");
  return a;
}

// Creates the run folder and proves it writable now, not after the training.
Status PrepareRunDir(const std::string& dir) {
  if (dir.empty()) return Status::Ok();
  Status s = MakeDirs(dir);
  if (!s.ok()) return s.WithContext("the run folder " + dir);
  const std::string probe = dir + "/.write-test-" + std::to_string(getpid());
  std::string text = "ok";
  s = WriteFileAtomically(probe, {std::span<const uint8_t>(
                                     reinterpret_cast<const uint8_t*>(text.data()), text.size())});
  std::remove(probe.c_str());
  if (!s.ok()) return s.WithContext("the run folder " + dir + " is not writable");
  return Status::Ok();
}

// This node's transport security: CURVE with its own key from the job's key
// folder and the job's allowlist, or none (an explicit choice, warned about).
Result<ZmqSecurity> NodeSecurity(const JobConfig& cfg, const Placement& p, const std::string& bind,
                                 const Logger& log) {
  ZmqSecurity sec;
  // Where the job lives: the coordinator's address, or where the coordinator
  // itself was told to listen.
  std::string job_host = p.coordinator.host;
  if (p.role == Role::kCoordinator && !bind.empty()) {
    auto b = ParseHostPort(bind, 1);
    job_host = b.ok() ? b->host : "";
  }
  if (cfg.cluster.security == "auto" && p.keys.empty() && IsLoopbackHost(job_host) &&
      (p.advertise_host.empty() || IsLoopbackHost(p.advertise_host))) {
    // Nothing leaves this machine: no CURVE unless asked for (it halves a
    // loopback job's speed on 2 cores). A multi-host job always has it.
    log.Info("cluster.security = \"auto\" and every address is on loopback: no CURVE");
    return sec;
  }
  if (cfg.cluster.security == "none") {
    log.Warn(
        "cluster.security = \"none\": traffic is neither encrypted nor authenticated; any "
        "process that can reach this node's port can join the job or send it anything");
    return sec;
  }
  if (p.keys.empty()) {
    return FailedPreconditionError(
        "cluster.security = \"" + cfg.cluster.security +
        "\" needs the job's keys here: run `distopt keygen KEYS CONFIG` "
        "once, give every node the folder with --keys KEYS (or DISTOPT_KEYS), or set "
        "cluster.security = \"none\"");
  }
  if (p.role != Role::kCoordinator && p.rank < 0) {
    return FailedPreconditionError(
        "with cluster.security = \"curve\" a node needs its rank to pick its key file "
        "(--rank, or a launcher that gives ranks)");
  }
  const std::string name = FormatNodeName(p.role, p.rank);
  ASSIGN_OR_RETURN(sec.keys, ReadKeyFile(p.keys + "/" + KeyFileName(name)));
  ASSIGN_OR_RETURN(sec.allowlist, ReadAllowlist(p.keys + "/allowlist"));
  auto listed = sec.allowlist.find(sec.keys.public_key);
  if (listed == sec.allowlist.end() || listed->second != name) {
    return FailedPreconditionError(p.keys + "/allowlist does not list " + name + "'s key from " +
                                   p.keys + "/" + KeyFileName(name) +
                                   " (revoked, or keys of another job?)");
  }
  sec.authorize = KvMaySend;  // the role rules, and kv's rule on its header
  return sec;
}

// The coordinator as this node dials it (with its public key under CURVE).
Result<std::string> CoordinatorAddress(const Placement& p, const ZmqSecurity& sec) {
  std::string a = TcpEndpoint(p.coordinator.host, p.coordinator.port);
  if (!sec.enabled()) return a;
  auto key = AllowlistKeyOf(sec.allowlist, "coordinator");
  if (!key.ok()) return key.status().WithContext(p.keys + "/allowlist");
  return a + "?curve=" + *key;
}

struct RunArgs {
  PlacementFlags placement;
  std::string config;
  std::vector<std::string> set;
  std::string bind;  // empty: all interfaces (the coordinator on its port, others on any)
  std::string addr_file;
  bool resume = false;
  bool print_placement = false;
};

Result<std::unique_ptr<Transport>> NodeTransport(const JobConfig& cfg, const RunArgs& args,
                                                 const Placement& p, const ZmqSecurity& sec,
                                                 const Logger& log) {
  ZmqOptions zo;
  zo.security = sec;
  zo.receive_buffer = static_cast<int>(cfg.cluster.tcp_receive_buffer);
  // A job whose coordinator is on loopback is one machine's: stay on loopback.
  // Otherwise every interface, IPv4 and IPv6 ("*" with ZMQ_IPV6 is dual-stack).
  const uint16_t port = p.role == Role::kCoordinator ? p.coordinator.port : 0;
  if (!args.bind.empty()) {
    zo.bind = args.bind;
  } else if (IsLoopbackHost(p.coordinator.host)) {
    zo.bind = TcpEndpoint(IsIpv6Literal(p.coordinator.host) ? "::1" : "127.0.0.1", port);
  } else {
    zo.bind = "tcp://*:" + std::to_string(port);
  }
  if (zo.bind.rfind("tcp://", 0) != 0 && zo.bind.rfind("ipc://", 0) != 0)
    zo.bind = "tcp://" + zo.bind;
  ASSIGN_OR_RETURN(zo.advertise_host, AdvertiseHost(p));
  ASSIGN_OR_RETURN(auto transport, CreateZmqTransport(zo, log));
  log.Info("listening on ", zo.bind, ", reachable at ",
           SplitCurveAddress(transport->address()).first,
           sec.enabled() ? " (CURVE, " + std::to_string(sec.allowlist.size()) + " keys allowed)"
                         : " (no security)");
  if (p.role == Role::kCoordinator) return transport;
  return MaybeFaulty(cfg, p, std::move(transport), log);
}

Status RunCoordinatorNode(const JobConfig& cfg, const RunArgs& args, const Placement& p,
                          const ZmqSecurity& sec, const Logger& log) {
  JobData none;
  ASSIGN_OR_RETURN(auto tables, JobTables(cfg, none));
  ASSIGN_OR_RETURN(auto transport, NodeTransport(cfg, args, p, sec, log));
  if (!args.addr_file.empty()) {
    std::string addr = transport->address();
    RETURN_IF_ERROR(WriteFileAtomically(
        args.addr_file,
        {std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(addr.data()), addr.size())}));
  }
  CoordinatorOptions co;
  co.num_servers = cfg.cluster.servers;
  co.num_workers = cfg.cluster.workers;
  co.heartbeat_timeout = milliseconds(cfg.cluster.heartbeat_timeout_ms);
  co.startup_timeout = seconds(cfg.cluster.startup_timeout_s);
  co.result_dir = p.run_dir;
  CheckpointOptions ck;
  ck.run_dir = p.run_dir;
  ck.enabled = cfg.train.checkpoint_every_steps > 0 || cfg.train.checkpoint_every_s > 0;
  ck.keep = cfg.train.keep_checkpoints;
  ck.resume = args.resume;
  Status s = RunCoordinator(co, tables, transport.get(), log, ck,
                            static_cast<uint32_t>(cfg.cluster.replication),
                            static_cast<uint32_t>(cfg.cluster.partitions));
  // Let the shutdown order reach every node before the sockets close.
  std::this_thread::sleep_for(milliseconds(200));
  transport->Shutdown();
  // The job's result, as a local run leaves it: plots beside the metrics.
  if (access((p.run_dir + "/metrics.jsonl").c_str(), F_OK) == 0) {
    std::vector<std::string> plots;
    Status ps = WritePlots(p.run_dir + "/metrics.jsonl", p.run_dir, &plots, cfg.name);
    if (!ps.ok()) log.Warn("could not draw plots: ", ps.message());
  }
  if (s.ok()) {
    // Names what is there: a result that is missing is said so, not promised.
    std::string have;
    for (const char* f : {"metrics.jsonl", "model.bin"}) {
      if (access((p.run_dir + "/" + f).c_str(), F_OK) == 0) have += std::string(f) + ", ";
    }
    log.Info("the job's results are in ", p.run_dir, " (", have,
             "plots; nodes.json says where every node ran)");
    if (access((p.run_dir + "/model.bin").c_str(), F_OK) != 0) {
      log.Warn(
          "the job ended without a model.bin: the lead worker did not save one (its log "
          "says why)");
    }
  }
  return s;
}

KvServerOptions ServerOptions(const JobConfig& cfg, const Placement& p,
                              std::vector<TableSpec> tables) {
  KvServerOptions kv;
  kv.tables = std::move(tables);
  kv.consistency.mode = cfg.cluster.consistency;
  kv.consistency.staleness = cfg.cluster.staleness;
  kv.consistency.adopt_dead_workers = cfg.cluster.consistency == Consistency::kBsp;
  kv.run_dir = p.run_dir;
  kv.checkpoint_every_steps = p.run_dir.empty() ? 0 : cfg.train.checkpoint_every_steps;
  kv.keep_checkpoints = cfg.train.keep_checkpoints;
  return kv;
}

Status RunServerNode(const JobConfig& cfg, const RunArgs& args, const Placement& p,
                     const ZmqSecurity& sec, const Logger& log) {
  JobData none;
  ASSIGN_OR_RETURN(auto tables, JobTables(cfg, none));
  ASSIGN_OR_RETURN(auto transport, NodeTransport(cfg, args, p, sec, log));
  ASSIGN_OR_RETURN(std::string coordinator, CoordinatorAddress(p, sec));
  ServerNode node(NodeOpts(cfg, p, coordinator), ServerOptions(cfg, p, std::move(tables)),
                  std::move(transport), log);
  return node.Run();
}

// The process's peak resident memory (VmHWM of /proc/self/status).
std::optional<uint64_t> PeakMemoryKiB() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10);
  }
  return std::nullopt;
}

// `local`: the worker's process also runs a server (cluster.placement =
// "process"), whose transport is in that table.
Status RunWorkerNode(const JobConfig& cfg, const RunArgs& args, const Placement& p,
                     const ZmqSecurity& sec, const Logger& log, LocalPeers* local = nullptr) {
  const size_t num_shares =
      static_cast<size_t>(cfg.data.shares > 0 ? cfg.data.shares : cfg.cluster.workers);
  ASSIGN_OR_RETURN(JobData data, LoadJobData(cfg, true, true, num_shares, log));
  ASSIGN_OR_RETURN(uint64_t nf, NumFeatures(cfg, data));
  ASSIGN_OR_RETURN(auto model, BuildModel(cfg, nf));
  auto tables = MakeTableSpecs(model->Tables(), cfg.optimizer);
  ASSIGN_OR_RETURN(auto transport, NodeTransport(cfg, args, p, sec, log));
  if (local != nullptr) {
    ASSIGN_OR_RETURN(transport, WithLocalPeers(*local, std::move(transport)));
  }
  KvClientOptions ko;
  ko.retry_interval = milliseconds(cfg.cluster.retry_interval_ms);
  ko.host_aggregation = HostAggregationOf(cfg.cluster);
  ko.adopt_dead_workers = cfg.cluster.consistency == Consistency::kBsp;
  ASSIGN_OR_RETURN(std::string coordinator, CoordinatorAddress(p, sec));
  WorkerNode node(NodeOpts(cfg, p, coordinator), tables, ko, std::move(transport), log);
  RETURN_IF_ERROR(node.Start(Deadline::After(seconds(cfg.cluster.startup_timeout_s))));
  TrainerOptions to;
  to.epochs = cfg.train.epochs;
  to.batch_size = cfg.train.batch_size;
  to.seed = cfg.train.seed;
  to.global_order = cfg.train.global_order || cfg.cluster.consistency == Consistency::kBsp;
  to.target_metric = cfg.train.target_metric;
  to.target = cfg.train.target;
  to.eval_every_epochs = cfg.train.eval_every_epochs;
  to.log_every_steps = cfg.train.log_every_steps;
  to.request_timeout = seconds(cfg.cluster.request_timeout_s);
  if (!p.run_dir.empty()) to.checkpoint_every = seconds(cfg.train.checkpoint_every_s);
  to.run_name = cfg.name;
  to.adopt_dead_workers = ko.adopt_dead_workers;
  if (!p.run_dir.empty()) {
    to.metrics_path = p.run_dir + "/metrics.jsonl";
    to.model_path = p.run_dir + "/model.bin";
    to.send_results = true;
  }
  if (data.files != nullptr) {
    for (int s :
         SharesOfRank(node.rank(), static_cast<uint32_t>(cfg.cluster.workers), num_shares)) {
      log.Info("reads ", DescribeShare(data.files->plan(), static_cast<size_t>(s)));
    }
  }
  auto summary =
      RunTraining(node, *model, *data.shares, data.test ? &*data.test : nullptr, to, log);
  if (data.files != nullptr) {
    const ShareStats st = data.files->stats();
    log.Info("read ", st.rows, " training rows, ", st.bytes, " bytes in ", st.pieces,
             " piece(s), in ", static_cast<int64_t>(st.seconds * 1000), " ms, ",
             static_cast<int64_t>(st.cpu_seconds * 1000), " ms CPU");
  }
  if (auto peak = PeakMemoryKiB(); peak.has_value()) {
    log.Info("peak memory (VmHWM) ", *peak / 1024, " MiB");
  }
  if (!summary.ok()) {
    if (summary.status().code() != StatusCode::kAborted) {
      node.Abort("worker/" + std::to_string(node.rank()) + ": " + summary.status().message());
    }
    return summary.status();
  }
  return Status::Ok();
}

// cluster.placement = "process": worker/r and server/r in one process. The
// server serves on its own thread until the coordinator ends the job; the
// worker reaches it without a socket (LocalPeers).
Status RunColocatedNode(const JobConfig& cfg, const RunArgs& args, const Placement& p,
                        const ZmqSecurity& sec, const Logger& log) {
  if (p.rank < 0) {
    return FailedPreconditionError(
        "cluster.placement = \"process\" needs each worker's rank (its server's): give --rank, "
        "or start it with a launcher that gives ranks");
  }
  Placement ps = p;
  ps.role = Role::kServer;
  const Logger slog = Logger::Stderr("server/" + std::to_string(p.rank));
  ASSIGN_OR_RETURN(ZmqSecurity ssec, NodeSecurity(cfg, ps, args.bind, slog));
  JobData none;
  ASSIGN_OR_RETURN(auto tables, JobTables(cfg, none));
  LocalPeers local;  // outlives both nodes' transports
  ASSIGN_OR_RETURN(auto st, NodeTransport(cfg, args, ps, ssec, slog));
  ASSIGN_OR_RETURN(st, WithLocalPeers(local, std::move(st)));
  ASSIGN_OR_RETURN(std::string coordinator, CoordinatorAddress(ps, ssec));
  ServerNode server(NodeOpts(cfg, ps, coordinator), ServerOptions(cfg, ps, std::move(tables)),
                    std::move(st), slog);
  Status served;
  std::thread serving([&] { served = server.Run(); });
  Status trained = RunWorkerNode(cfg, args, p, sec, log, &local);
  if (!trained.ok()) server.Kill();
  serving.join();
  if (!trained.ok()) return trained;
  return served;
}

Status RunNode(const RunArgs& args) {
  ASSIGN_OR_RETURN(JobConfig cfg, LoadConfig(args.config, args.set));
  // With servers inside the workers, a launcher's ranks are the coordinator's
  // and the workers'.
  const bool colocated = cfg.cluster.placement == "process";
  ASSIGN_OR_RETURN(Placement p,
                   ResolvePlacement(args.placement, CurrentEnvironment(),
                                    colocated ? 0 : cfg.cluster.servers, cfg.cluster.workers));
  if (colocated && p.role == Role::kServer) {
    return InvalidArgumentError(
        "cluster.placement = \"process\": every server runs inside its worker's process; start "
        "the coordinator and the workers only");
  }
  if (args.print_placement) {
    std::printf("%s\n", PlacementJson(p).c_str());
    return Status::Ok();
  }
  if (p.run_dir.empty()) p.run_dir = "runs/" + cfg.name;
  std::string name =
      std::string(RoleName(p.role)) + (p.rank >= 0 ? "/" + std::to_string(p.rank) : "");
  Logger log = Logger::Stderr(name);
  log.Info("started by ", p.launcher,
           p.global_rank >= 0 ? " as global rank " + std::to_string(p.global_rank) : std::string(),
           "; coordinator ", TcpEndpoint(p.coordinator.host, p.coordinator.port), "; run folder ",
           p.run_dir);
  RETURN_IF_ERROR(PrepareRunDir(p.run_dir));
  ASSIGN_OR_RETURN(ZmqSecurity sec, NodeSecurity(cfg, p, args.bind, log));
  if (p.role == Role::kCoordinator) return RunCoordinatorNode(cfg, args, p, sec, log);
  if (p.role == Role::kServer) return RunServerNode(cfg, args, p, sec, log);
  if (colocated) return RunColocatedNode(cfg, args, p, sec, log);
  return RunWorkerNode(cfg, args, p, sec, log);
}

// ---- distopt keygen ----

struct KeygenArgs {
  std::string dir;
  std::string config;
  int64_t servers = -1;
  int64_t workers = -1;
  bool force = false;
};

Status RunKeygen(const KeygenArgs& args) {
  int64_t servers = args.servers, workers = args.workers;
  if (!args.config.empty()) {
    ASSIGN_OR_RETURN(JobConfig cfg, LoadConfig(args.config, {}));
    if (servers < 0) servers = cfg.cluster.servers;
    if (workers < 0) workers = cfg.cluster.workers;
  }
  if (servers < 1 || workers < 1) {
    return InvalidArgumentError("give the job file (CONFIG) or --servers and --workers");
  }
  ASSIGN_OR_RETURN(int written, WriteJobKeys(args.dir, static_cast<uint32_t>(servers),
                                             static_cast<uint32_t>(workers), args.force));
  std::printf(
      "distopt keygen: %d key files and the allowlist in %s (1 coordinator, %lld "
      "servers, %lld workers); give every node this folder with --keys %s\n",
      written, args.dir.c_str(), static_cast<long long>(servers), static_cast<long long>(workers),
      args.dir.c_str());
  return Status::Ok();
}

// ---- distopt eval ----

struct EvalArgs {
  std::string model;
  std::string config;
  std::vector<std::string> set;
};

Status RunEval(const EvalArgs& args) {
  std::string model_path = args.model;
  if (model_path.size() < 4 || model_path.substr(model_path.size() - 4) != ".bin") {
    model_path += "/model.bin";
  }
  ASSIGN_OR_RETURN(JobConfig cfg, LoadConfig(args.config, args.set));
  if (cfg.data.test.empty()) return InvalidArgumentError(cfg.source + ": data.test is not set");
  Logger log = Logger::Stderr("eval", LogLevel::kWarning);
  ASSIGN_OR_RETURN(JobData data, LoadJobData(cfg, false, true, 1, log));
  ASSIGN_OR_RETURN(uint64_t nf, NumFeatures(cfg, data));
  ASSIGN_OR_RETURN(auto model, BuildModel(cfg, nf));
  ASSIGN_OR_RETURN(SavedModel saved, LoadModel(model_path));
  ASSIGN_OR_RETURN(ParamSource source, SavedModelSource(saved, model->Tables()));
  ASSIGN_OR_RETURN(auto metrics, Evaluate(*model, *data.test, source));
  std::printf("model %s (step %lld) on %s (%zu rows):\n", model_path.c_str(),
              static_cast<long long>(saved.step), cfg.data.test.c_str(), data.test->num_rows);
  for (const auto& m : metrics) std::printf("%s %.4f\n", m.name.c_str(), m.value);
  return Status::Ok();
}

}  // namespace

CLI::Validator IntIn(int64_t lo, int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        int64_t v = 0;
        auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc() || p != text.data() + text.size() || text.empty()) {
          return "'" + text + "' is not an integer";
        }
        if (v < lo || v > hi) {
          return text + " is outside " + std::to_string(lo) + ".." + std::to_string(hi);
        }
        return "";
      },
      "INT in " + std::to_string(lo) + ".." + std::to_string(hi));
}

Result<int> WriteJobKeys(const std::string& dir, uint32_t servers, uint32_t workers, bool force) {
  if (!force && access((dir + "/allowlist").c_str(), F_OK) == 0) {
    return AlreadyExistsError(dir +
                              " already holds a job's keys (--force replaces them; every "
                              "node then needs the new folder)");
  }
  RETURN_IF_ERROR(MakeDirs(dir));
  if (chmod(dir.c_str(), 0700) != 0) return UnavailableError(dir + ": cannot chmod 0700");
  std::vector<std::string> names = {FormatNodeName(Role::kCoordinator, -1)};
  for (uint32_t s = 0; s < servers; ++s) names.push_back(FormatNodeName(Role::kServer, s));
  for (uint32_t w = 0; w < workers; ++w) names.push_back(FormatNodeName(Role::kWorker, w));
  CurveAllowlist allow;
  for (const std::string& n : names) {
    ASSIGN_OR_RETURN(CurveKeyPair k, GenerateCurveKeyPair());
    RETURN_IF_ERROR(WriteKeyFile(dir + "/" + KeyFileName(n), k));
    allow[k.public_key] = n;
  }
  RETURN_IF_ERROR(WriteAllowlist(dir + "/allowlist", allow));
  return static_cast<int>(names.size());
}

void AddRunCommand(CLI::App& app, Action* action) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* c = app.add_subcommand(
      "run",
      "Run one node of a multi-host job. The role, rank and coordinator come from the flags or "
      "from the launcher's environment (mpirun, srun, torchrun, a Kubernetes Indexed Job, "
      "DMLC_*, DISTOPT_*); a global rank maps to roles as 0 = coordinator, 1..S = servers, "
      "S+1..S+W = workers.");
  PlacementFlags& pf = args->placement;
  c->add_option("config", args->config, "the job file (TOML)")->required();
  c->add_option("--role", pf.role, "coordinator, server or worker (else from the launcher)")
      ->check(CLI::IsMember({"coordinator", "server", "worker"}));
  c->add_option("--rank", pf.rank, "rank within the role (default: from the launcher, or any)")
      ->check(IntIn(0, 1 << 30));
  c->add_option("--coordinator", pf.coordinator, "HOST:PORT of the coordinator ([v6]:PORT)");
  c->add_option("--port", pf.port, "the coordinator's port where a launcher gives only its host")
      ->check(IntIn(1, 65535));
  c->add_option("--advertise-host", pf.advertise_host,
                "the address peers dial this node at (default: the address of the interface "
                "that routes to the coordinator)");
  c->add_option("--interface", pf.interface, "advertise this network interface's address");
  c->add_option("--host-label", pf.host_label,
                "name of this node's machine, for per-host aggregation and backup placement "
                "(default: the host of the advertised address)");
  c->add_option("--bind", args->bind,
                "where to listen (default tcp://0.0.0.0:PORT for the coordinator, any port "
                "on all interfaces for the others)");
  c->add_option("--run-dir", pf.run_dir, "this node's run folder (default runs/<job name>)");
  c->add_option("--keys", pf.keys, "the job's key folder from `distopt keygen` (CURVE)");
  c->add_option("--addr-file", args->addr_file, "write the address this node listens at here");
  c->add_option("--set", args->set, "override a config key: section.key=value")
      ->allow_extra_args(false);
  c->add_flag("--resume", args->resume, "start from the newest good checkpoint");
  c->add_flag("--print-placement", args->print_placement,
              "print where this process stands in the job (JSON) and exit");
  c->callback([args, action] { *action = [args] { return RunNode(*args); }; });
}

void AddKeygenCommand(CLI::App& app, Action* action) {
  auto args = std::make_shared<KeygenArgs>();
  CLI::App* c = app.add_subcommand(
      "keygen",
      "Write a job's CURVE keys: one key file per node (0600: coordinator.key, server-I.key, "
      "worker-I.key) and the allowlist every node admits peers by");
  c->add_option("dir", args->dir, "the key folder to write")->required();
  c->add_option("config", args->config, "the job file (for the number of servers and workers)");
  c->add_option("--servers", args->servers, "number of servers")->check(IntIn(1, 4096));
  c->add_option("--workers", args->workers, "number of workers")->check(IntIn(1, 4096));
  c->add_flag("--force", args->force, "replace the keys already in DIR");
  c->callback([args, action] { *action = [args] { return RunKeygen(*args); }; });
}

void AddEvalCommand(CLI::App& app, Action* action) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* c = app.add_subcommand("eval", "Evaluate a saved model on the config's test set");
  c->add_option("model", args->model, "a model.bin or a run folder")->required();
  c->add_option("config", args->config, "the job file (TOML)")->required();
  c->add_option("--set", args->set, "override a config key: section.key=value")
      ->allow_extra_args(false);
  c->callback([args, action] { *action = [args] { return RunEval(*args); }; });
}

}  // namespace distopt
