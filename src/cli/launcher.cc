// `distopt train`: the local launcher. Starts a whole job on this machine as
// separate processes (one coordinator, S servers, W workers, each `distopt
// run`), makes the run folder (resolved config, one log per node,
// metrics.jsonl, plots, the model), shows one progress line and a line per
// evaluation, and supervises: a node that fails ends the job, every process
// it started exits, and the error names the node and quotes its log. Runs
// on the calling thread.
#include <sys/ioctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/file_util.h"
#include "base/subprocess.h"
#include "cli/commands.h"
#include "cli/config.h"
#include "train/plot.h"
#include "train/progress.h"
#include "transport/net_address.h"

namespace distopt {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

struct Node {
  std::string name;  // "worker/2"
  std::string log;
  std::vector<std::string> argv;
  Subprocess proc;
  int restarts = 0;
  bool exited_seen = false;
};

std::string Timestamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%d-%H%M%S", &tm);
  return buf;
}

std::string LastLines(const std::string& path, int n) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  std::string out;
  for (size_t i = lines.size() > static_cast<size_t>(n) ? lines.size() - n : 0; i < lines.size();
       ++i) {
    out += "    " + lines[i] + "\n";
  }
  return out;
}

Status WriteText(const std::string& path, const std::string& text) {
  return WriteFileAtomically(
      path, {std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size())});
}

int TerminalWidth() {
  winsize w{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col > 20) return w.ws_col;
  return 100;
}

void StopAll(std::vector<Node>& nodes) {
  for (auto& n : nodes) n.proc.Signal(SIGTERM);
  Deadline grace = Deadline::After(seconds(3));
  for (auto& n : nodes) {
    if (!n.proc.Wait(grace).ok()) n.proc.Signal(SIGKILL);
  }
  for (auto& n : nodes) (void)n.proc.Wait(Deadline::After(seconds(5)));
}

}  // namespace

struct TrainArgs {
  std::string config;
  int64_t workers = -1;
  int64_t servers = -1;
  std::vector<std::string> set;
  std::string run_dir;
  std::string runs = "runs";
  std::string resume;
  bool quiet = false;
};

Status RunLocalJob(const TrainArgs& args) {
  const bool resume = !args.resume.empty();
  if (resume == !args.config.empty()) {
    return InvalidArgumentError(
        "usage: distopt train CONFIG [--workers N] [--servers M] [--set section.key=value]...\n"
        "       distopt train --resume RUN_DIR [--set section.key=value]...");
  }
  std::vector<std::string> overrides = args.set;
  if (args.workers >= 0) overrides.push_back("cluster.workers=" + std::to_string(args.workers));
  if (args.servers >= 0) overrides.push_back("cluster.servers=" + std::to_string(args.servers));
  // A resumed job runs in its old folder with the configuration it ran with.
  const std::string config_source = resume ? args.resume + "/config.toml" : args.config;
  ASSIGN_OR_RETURN(JobConfig cfg, LoadConfig(config_source, overrides));

  std::string run_dir =
      resume
          ? args.resume
          : (!args.run_dir.empty() ? args.run_dir : args.runs + "/" + Timestamp() + "-" + cfg.name);
  RETURN_IF_ERROR(MakeDirs(run_dir + "/logs"));
  const std::string config_path = run_dir + "/config.toml";
  // A local job is secured like any other: its own keys, in the run folder.
  const std::string keys_dir = run_dir + "/keys";
  const bool curve = cfg.cluster.security == "curve" ||
                     (cfg.cluster.security == "auto" && !IsLoopbackHost(cfg.cluster.host));
  if (curve && access((keys_dir + "/allowlist").c_str(), F_OK) != 0) {
    auto written = WriteJobKeys(keys_dir, cfg.cluster.servers, cfg.cluster.workers, false);
    if (!written.ok()) return written.status();
  }
  RETURN_IF_ERROR(WriteText(config_path, ConfigToToml(cfg)));
  const bool tty = isatty(STDOUT_FILENO) && !args.quiet;
  std::printf("distopt: training '%s': %u server(s), %u worker(s), %s; run folder %s\n",
              cfg.name.c_str(), cfg.cluster.servers, cfg.cluster.workers,
              ConsistencyName(cfg.cluster.consistency), run_dir.c_str());
  std::fflush(stdout);

  const std::string self = SelfExecutable();
  auto node_argv = [&](const std::string& role, int rank, const std::string& coordinator) {
    // Every node of a local job listens on cluster.host (loopback by default).
    std::vector<std::string> a = {self,        "run",   "--role",           role,
                                  "--run-dir", run_dir, "--advertise-host", cfg.cluster.host};
    if (role != "coordinator") a.insert(a.end(), {"--bind", TcpEndpoint(cfg.cluster.host, 0)});
    if (curve) a.insert(a.end(), {"--keys", keys_dir});
    if (rank >= 0) a.insert(a.end(), {"--rank", std::to_string(rank)});
    if (!coordinator.empty()) a.insert(a.end(), {"--coordinator", coordinator});
    return a;
  };
  std::vector<Node> nodes;
  auto spawn = [&](Node& n) -> Status {
    SpawnOptions so;
    so.log = n.log;
    // A restarted node knows it is one (fault injection spares it).
    if (n.restarts > 0) so.env["DISTOPT_RESTARTS"] = std::to_string(n.restarts);
    ASSIGN_OR_RETURN(n.proc, Subprocess::Spawn(n.argv, so));
    return Status::Ok();
  };

  // The coordinator first: everyone else needs its address.
  const std::string addr_file = run_dir + "/coordinator.addr";
  Node coord;
  coord.name = "coordinator";
  coord.log = run_dir + "/logs/coordinator.log";
  coord.argv = node_argv("coordinator", -1, "");
  // Its host as the others will see it; the port is chosen at bind (--bind
  // wins), so the one given here is never used.
  const std::string& h = cfg.cluster.host;
  coord.argv.insert(coord.argv.end(),
                    {"--coordinator", (IsIpv6Literal(h) ? "[" + h + "]" : h) + ":1"});
  coord.argv.insert(coord.argv.end(), {"--bind", TcpEndpoint(cfg.cluster.host, 0), "--addr-file",
                                       addr_file, config_path});
  if (resume) coord.argv.insert(coord.argv.end() - 1, "--resume");
  std::remove(addr_file.c_str());
  RETURN_IF_ERROR(spawn(coord));
  std::string coordinator;
  Deadline d = Deadline::After(seconds(30));
  while (coordinator.empty()) {
    std::ifstream in(addr_file);
    if (in) std::getline(in, coordinator);
    if (!coordinator.empty()) break;
    if (coord.proc.Poll()) {
      return InternalError("the coordinator exited with " + std::to_string(coord.proc.code()) +
                           " before listening:\n" + LastLines(coord.log, 10));
    }
    if (d.expired())
      return DeadlineExceededError("the coordinator did not start listening in 30 s");
    std::this_thread::sleep_for(milliseconds(10));
  }
  // The nodes take the coordinator's key from the allowlist, not the address.
  coordinator = SplitCurveAddress(coordinator).first;
  nodes.push_back(std::move(coord));
  for (uint32_t s = 0; s < cfg.cluster.servers; ++s) {
    Node n;
    n.name = "server/" + std::to_string(s);
    n.log = run_dir + "/logs/server-" + std::to_string(s) + ".log";
    n.argv = node_argv("server", static_cast<int>(s), coordinator);
    n.argv.push_back(config_path);
    RETURN_IF_ERROR(spawn(n));
    nodes.push_back(std::move(n));
  }
  for (uint32_t w = 0; w < cfg.cluster.workers; ++w) {
    Node n;
    n.name = "worker/" + std::to_string(w);
    n.log = run_dir + "/logs/worker-" + std::to_string(w) + ".log";
    n.argv = node_argv("worker", static_cast<int>(w), coordinator);
    n.argv.push_back(config_path);
    RETURN_IF_ERROR(spawn(n));
    nodes.push_back(std::move(n));
  }

  // Supervise: show progress, stop everything when a node fails.
  SteadyTime start = std::chrono::steady_clock::now();
  MetricsTail tail(run_dir + "/metrics.jsonl");
  ProgressState state;
  Status failure;
  SteadyTime last_plain = start;
  auto show = [&](bool final) {
    auto evals = tail.Poll(&state);
    if (!evals.ok()) return;
    for (const auto& e : *evals) {
      if (tty) std::printf("\r\033[K");
      std::printf("%s\n", RenderEval(e, state).c_str());
    }
    if (tty) {
      std::printf("\r\033[K%s", RenderProgress(state, TerminalWidth() - 1).c_str());
      if (final) std::printf("\n");
    } else if (std::chrono::steady_clock::now() - last_plain > seconds(10) && !final &&
               state.steps_per_epoch > 0) {
      last_plain = std::chrono::steady_clock::now();
      std::printf("%s\n", RenderProgress(state, 100).c_str());
    }
    std::fflush(stdout);
  };
  const int64_t max_restarts = cfg.cluster.max_restarts;
  Deadline stragglers = Deadline::Never();
  while (true) {
    bool all_done = true;
    for (auto& n : nodes) {
      if (n.exited_seen) continue;
      if (!n.proc.Poll()) {
        all_done = false;
        continue;
      }
      int code = n.proc.code();
      if (code == 0) {
        n.exited_seen = true;
        continue;
      }
      const bool coordinator_node = n.name == "coordinator";
      if (!coordinator_node && n.restarts < max_restarts) {
        ++n.restarts;
        std::printf("%sdistopt: %s (pid %d) exited with %d; restarting it (%d of %lld)\n",
                    tty ? "\r\033[K" : "", n.name.c_str(), n.proc.pid(), code, n.restarts,
                    static_cast<long long>(max_restarts));
        std::fflush(stdout);
        Status rs = spawn(n);
        if (rs.ok()) {
          all_done = false;
          continue;
        }
        code = 127;
      }
      n.exited_seen = true;
      std::string what = n.name + " (pid " + std::to_string(n.proc.pid()) + ") " +
                         (code > 128 ? "was killed by signal " + std::to_string(code - 128)
                                     : "exited with " + std::to_string(code));
      if (!coordinator_node && code > 128) {
        // A crash: the coordinator notices the silence and the job goes on
        // without the node (or stops, if it cannot).
        std::printf("%sdistopt: %s; the job goes on without it\n", tty ? "\r\033[K" : "",
                    what.c_str());
        std::fflush(stdout);
        continue;
      }
      if (failure.ok()) {
        failure = InternalError(what + "; the end of " + n.log + ":\n" + LastLines(n.log, 12));
      }
    }
    if (!failure.ok() || all_done) break;
    // Once the coordinator has ended the job, the others get a moment to exit.
    if (nodes[0].exited_seen && stragglers.is_never()) stragglers = Deadline::After(seconds(15));
    if (stragglers.expired()) break;
    show(false);
    std::this_thread::sleep_for(milliseconds(200));
  }
  show(true);
  StopAll(nodes);  // stragglers (and, on failure, everyone); a no-op for exited nodes
  if (!failure.ok()) return failure;

  std::vector<std::string> plots;
  Status ps = WritePlots(run_dir + "/metrics.jsonl", run_dir, &plots, cfg.name);
  if (!ps.ok()) std::fprintf(stderr, "distopt: could not draw plots: %s\n", ps.ToString().c_str());
  double wall = ToSeconds(std::chrono::steady_clock::now() - start);
  std::printf("distopt: done in %.1f s", wall);
  if (state.last_eval.has_value() && state.last_eval->test_accuracy.has_value()) {
    std::printf("; test accuracy %.2f%%", *state.last_eval->test_accuracy * 100);
  }
  if (state.last_eval.has_value() && state.last_eval->test_auc.has_value()) {
    std::printf("; test AUC %.4f", *state.last_eval->test_auc);
  }
  std::printf("\n  run folder: %s (config.toml, metrics.jsonl, model.bin, logs/", run_dir.c_str());
  for (const auto& p : plots) std::printf(", %s", p.substr(p.rfind('/') + 1).c_str());
  std::printf(")\n");
  return Status::Ok();
}

void AddTrainCommand(CLI::App& app, Action* action) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* c = app.add_subcommand(
      "train",
      "Train on a local cluster: one coordinator, S servers and W workers as processes of "
      "this machine, with a run folder (config, logs, metrics.jsonl, plots, model.bin)");
  c->add_option("config", args->config, "the job file (TOML)");
  c->add_option("--workers", args->workers, "cluster.workers")->check(IntIn(1, 4096));
  c->add_option("--servers", args->servers, "cluster.servers")->check(IntIn(1, 4096));
  c->add_option("--set", args->set, "override a config key: section.key=value")
      ->allow_extra_args(false);
  c->add_option("--run-dir", args->run_dir, "the run folder (default RUNS/<time>-<name>)");
  c->add_option("--runs", args->runs, "where new run folders go")->capture_default_str();
  c->add_option("--resume", args->resume, "continue the job of this run folder");
  c->add_flag("--quiet", args->quiet, "no progress line");
  c->callback([args, action] { *action = [args] { return RunLocalJob(*args); }; });
}

}  // namespace distopt
