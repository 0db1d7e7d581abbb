#include "cli/commands.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <thread>

#include "base/file_util.h"
#include "base/subprocess.h"
#include "cli/config.h"
#include "cli/flags.h"
#include "cli/job.h"
#include "cli/launcher.h"
#include "kv/node.h"
#include "train/model_file.h"
#include "train/trainer.h"
#include "transport/faulty_transport.h"
#include "transport/zmq_transport.h"

namespace distopt {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// The CLI is the one place that reads the environment: a scheduler (Slurm,
// Kubernetes, mpirun) can pass a node's role, rank and coordinator this way.
std::string FlagOrEnv(const Flags& f, const std::string& flag, const char* env) {
  if (f.Has(flag)) return f.Get(flag);
  const char* v = std::getenv(env);
  return v == nullptr ? "" : v;
}

std::string TcpAddress(const std::string& host_port) {
  if (host_port.find("://") != std::string::npos) return host_port;
  return "tcp://" + host_port;
}

Result<JobConfig> LoadFromFlags(const Flags& f) {
  if (f.positional().empty()) return InvalidArgumentError("missing the CONFIG file argument");
  std::vector<std::string> overrides = f.GetAll("set");
  if (f.Has("workers")) overrides.push_back("cluster.workers=" + f.Get("workers"));
  if (f.Has("servers")) overrides.push_back("cluster.servers=" + f.Get("servers"));
  return LoadConfig(f.positional().back(), overrides);
}

NodeOptions NodeOpts(const JobConfig& cfg, const std::string& coordinator, int32_t rank) {
  NodeOptions n;
  n.coordinator_address = coordinator;
  n.rank = rank;
  n.heartbeat_interval = milliseconds(cfg.cluster.heartbeat_interval_ms);
  n.coordinator_timeout = milliseconds(cfg.cluster.heartbeat_timeout_ms * 3);
  n.register_timeout = seconds(cfg.cluster.startup_timeout_s);
  return n;
}

// ---- distopt run: one node ----

// Wraps the node's transport with the config's fault injection when it
// names this node.
std::unique_ptr<Transport> MaybeFaulty(const JobConfig& cfg, Role role, int32_t rank,
                                       std::unique_ptr<Transport> t, const Logger& log) {
  const FaultConfig& f = cfg.faults;
  bool any = f.drop > 0 || f.duplicate > 0 || f.delay_ms > 0 || f.kill_after_messages >= 0;
  if (!any) return t;
  if (!f.role.empty() && f.role != RoleName(role)) return t;
  if (f.rank >= 0 && f.rank != rank) return t;
  // The launcher marks restarted nodes: a node killed by injection comes
  // back healthy (or it would die again and again).
  const char* restarts = std::getenv("DISTOPT_RESTARTS");
  if (restarts != nullptr && std::atoi(restarts) > 0 && f.kill_after_messages >= 0) return t;
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

Status RunCoordinatorNode(const JobConfig& cfg, const Flags& f, const Logger& log) {
  JobData none;
  ASSIGN_OR_RETURN(auto tables, JobTables(cfg, none));
  std::string bind = f.Get("bind", "tcp://0.0.0.0:7070");
  ZmqOptions zo;
  zo.bind = bind;
  zo.advertise_host = f.Get("advertise-host", cfg.cluster.host);
  ASSIGN_OR_RETURN(auto transport, CreateZmqTransport(zo, log));
  if (f.Has("addr-file")) {
    std::string addr = transport->address();
    std::string path = f.Get("addr-file");
    RETURN_IF_ERROR(WriteFileAtomically(
        path,
        {std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(addr.data()), addr.size())}));
  }
  CoordinatorOptions co;
  co.num_servers = cfg.cluster.servers;
  co.num_workers = cfg.cluster.workers;
  co.heartbeat_timeout = milliseconds(cfg.cluster.heartbeat_timeout_ms);
  co.startup_timeout = seconds(cfg.cluster.startup_timeout_s);
  CheckpointOptions ck;
  ck.run_dir = f.Get("run-dir");
  ck.enabled = cfg.train.checkpoint_every_steps > 0 || cfg.train.checkpoint_every_s > 0;
  ck.keep = cfg.train.keep_checkpoints;
  ck.resume = f.Has("resume");
  Status s = RunCoordinator(co, tables, transport.get(), log, ck,
                            static_cast<uint32_t>(cfg.cluster.replication));
  // Let the shutdown order reach every node before the sockets close.
  std::this_thread::sleep_for(milliseconds(200));
  transport->Shutdown();
  return s;
}

Status RunServerNode(const JobConfig& cfg, const std::string& coordinator, int32_t rank,
                     const std::string& run_dir, const Logger& log) {
  JobData none;
  ASSIGN_OR_RETURN(auto tables, JobTables(cfg, none));
  ZmqOptions zo;
  zo.bind = "tcp://" + cfg.cluster.host + ":0";
  zo.advertise_host = cfg.cluster.host;
  ASSIGN_OR_RETURN(auto transport, CreateZmqTransport(zo, log));
  transport = MaybeFaulty(cfg, Role::kServer, rank, std::move(transport), log);
  KvServerOptions kv;
  kv.tables = tables;
  kv.consistency.mode = cfg.cluster.consistency;
  kv.consistency.staleness = cfg.cluster.staleness;
  kv.run_dir = run_dir;
  kv.checkpoint_every_steps = run_dir.empty() ? 0 : cfg.train.checkpoint_every_steps;
  ServerNode node(NodeOpts(cfg, coordinator, rank), kv, std::move(transport), log);
  return node.Run();
}

Status RunWorkerNode(const JobConfig& cfg, const std::string& coordinator, int32_t rank,
                     const std::string& run_dir, const Logger& log) {
  ASSIGN_OR_RETURN(JobData data, LoadJobData(cfg, true, true, log));
  ASSIGN_OR_RETURN(uint64_t nf, NumFeatures(cfg, data));
  ASSIGN_OR_RETURN(auto model, BuildModel(cfg, nf));
  auto tables = MakeTableSpecs(model->Tables(), cfg.optimizer);
  ZmqOptions zo;
  zo.bind = "tcp://" + cfg.cluster.host + ":0";
  zo.advertise_host = cfg.cluster.host;
  ASSIGN_OR_RETURN(auto transport, CreateZmqTransport(zo, log));
  transport = MaybeFaulty(cfg, Role::kWorker, rank, std::move(transport), log);
  KvClientOptions ko;
  ko.retry_interval = milliseconds(cfg.cluster.retry_interval_ms);
  WorkerNode node(NodeOpts(cfg, coordinator, rank), tables, ko, std::move(transport), log);
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
  if (!run_dir.empty()) to.checkpoint_every = seconds(cfg.train.checkpoint_every_s);
  to.run_name = cfg.name;
  if (!run_dir.empty()) {
    to.metrics_path = run_dir + "/metrics.jsonl";
    to.model_path = run_dir + "/model.bin";
  }
  auto summary = RunTraining(node, *model, *data.train, data.test ? &*data.test : nullptr, to, log);
  if (!summary.ok()) {
    if (summary.status().code() != StatusCode::kAborted) {
      node.Abort("worker/" + std::to_string(node.rank()) + ": " + summary.status().message());
    }
    return summary.status();
  }
  return Status::Ok();
}

Status CmdRun(const std::vector<std::string>& args) {
  ASSIGN_OR_RETURN(Flags f, Flags::Parse(args,
                                         {"role", "coordinator", "rank", "run-dir", "bind",
                                          "advertise-host", "addr-file", "set"},
                                         {"resume"}));
  ASSIGN_OR_RETURN(JobConfig cfg, LoadFromFlags(f));
  std::string role_name = FlagOrEnv(f, "role", "DISTOPT_ROLE");
  if (role_name.empty()) return InvalidArgumentError("--role (or DISTOPT_ROLE) is required");
  ASSIGN_OR_RETURN(Role role, ParseRole(role_name));
  std::string rank_text = FlagOrEnv(f, "rank", "DISTOPT_RANK");
  int32_t rank = rank_text.empty() ? -1 : std::atoi(rank_text.c_str());
  std::string run_dir = FlagOrEnv(f, "run-dir", "DISTOPT_RUN_DIR");
  std::string name = std::string(RoleName(role)) + (rank >= 0 ? "/" + std::to_string(rank) : "");
  Logger log = Logger::Stderr(name);
  if (role == Role::kCoordinator) return RunCoordinatorNode(cfg, f, log);
  std::string coordinator = FlagOrEnv(f, "coordinator", "DISTOPT_COORDINATOR");
  if (coordinator.empty()) {
    return InvalidArgumentError("--coordinator HOST:PORT (or DISTOPT_COORDINATOR) is required");
  }
  coordinator = TcpAddress(coordinator);
  if (role == Role::kServer) return RunServerNode(cfg, coordinator, rank, run_dir, log);
  return RunWorkerNode(cfg, coordinator, rank, run_dir, log);
}

// ---- distopt eval ----

Status CmdEval(const std::vector<std::string>& args) {
  ASSIGN_OR_RETURN(Flags f, Flags::Parse(args, {"set"}));
  if (f.positional().size() != 2) {
    return InvalidArgumentError(
        "usage: distopt eval MODEL CONFIG (MODEL: a model.bin or a run folder)");
  }
  std::string model_path = f.positional()[0];
  if (model_path.size() < 4 || model_path.substr(model_path.size() - 4) != ".bin") {
    model_path += "/model.bin";
  }
  ASSIGN_OR_RETURN(JobConfig cfg, LoadConfig(f.positional()[1], f.GetAll("set")));
  if (cfg.data.test.empty()) return InvalidArgumentError(cfg.source + ": data.test is not set");
  Logger log = Logger::Stderr("eval", LogLevel::kWarning);
  ASSIGN_OR_RETURN(JobData data, LoadJobData(cfg, false, true, log));
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

std::optional<Status> RunCommand(const std::string& cmd, const std::vector<std::string>& args) {
  if (cmd == "run") return CmdRun(args);
  if (cmd == "train") return RunLocalJob(args);
  if (cmd == "eval") return CmdEval(args);
  return std::nullopt;
}

}  // namespace distopt
