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

namespace {

// One `distopt train`, as named steps on the calling thread: Prepare (the
// config, the run folder, keys, the resolved config.toml), StartCoordinator
// and StartNodes (the processes), Supervise (progress, restarts, the first
// failure) and Summarize. No process it started outlives it: Supervise
// stops them, and ~Subprocess kills any left by an early error.
class LocalJob {
 public:
  explicit LocalJob(const TrainArgs& args) : args_(args), resume_(!args.resume.empty()) {}

  Status Run() {
    RETURN_IF_ERROR(Prepare());
    ASSIGN_OR_RETURN(const std::string coordinator, StartCoordinator());
    RETURN_IF_ERROR(StartNodes(coordinator));
    RETURN_IF_ERROR(Supervise());
    Summarize();
    return Status::Ok();
  }

 private:
  // Loads the configuration (a resumed job's from its own folder), makes the
  // run folder, the job's keys if it is secured, and config.toml.
  Status Prepare() {
    if (resume_ == !args_.config.empty()) {
      return InvalidArgumentError(
          "usage: distopt train CONFIG [--workers N] [--servers M] [--set section.key=value]...\n"
          "       distopt train --resume RUN_DIR [--set section.key=value]...");
    }
    std::vector<std::string> overrides = args_.set;
    if (args_.workers >= 0) overrides.push_back("cluster.workers=" + std::to_string(args_.workers));
    if (args_.servers >= 0) overrides.push_back("cluster.servers=" + std::to_string(args_.servers));
    // A resumed job runs in its old folder with the configuration it ran with.
    const std::string config_source = resume_ ? args_.resume + "/config.toml" : args_.config;
    ASSIGN_OR_RETURN(cfg_, LoadConfig(config_source, overrides));

    run_dir_ = resume_
                   ? args_.resume
                   : (!args_.run_dir.empty() ? args_.run_dir
                                             : args_.runs + "/" + Timestamp() + "-" + cfg_.name);
    RETURN_IF_ERROR(MakeDirs(run_dir_ + "/logs"));
    config_path_ = run_dir_ + "/config.toml";
    // A local job is secured like any other: its own keys, in the run folder.
    keys_dir_ = run_dir_ + "/keys";
    curve_ = cfg_.cluster.security == "curve" ||
             (cfg_.cluster.security == "auto" && !IsLoopbackHost(cfg_.cluster.host));
    if (curve_ && access((keys_dir_ + "/allowlist").c_str(), F_OK) != 0) {
      auto written = WriteJobKeys(keys_dir_, cfg_.cluster.servers, cfg_.cluster.workers, false);
      if (!written.ok()) return written.status();
    }
    RETURN_IF_ERROR(WriteText(config_path_, ConfigToToml(cfg_)));
    tty_ = isatty(STDOUT_FILENO) && !args_.quiet;
    std::printf("distopt: training '%s': %u server(s)%s, %u worker(s), %s; run folder %s\n",
                cfg_.name.c_str(), cfg_.cluster.servers,
                cfg_.cluster.placement == "process" ? " in the workers' processes" : "",
                cfg_.cluster.workers, ConsistencyName(cfg_.cluster.consistency), run_dir_.c_str());
    std::fflush(stdout);
    self_ = SelfExecutable();
    return Status::Ok();
  }

  std::vector<std::string> NodeArgv(const std::string& role, int rank,
                                    const std::string& coordinator) const {
    // Every node of a local job listens on cluster.host (loopback by default).
    std::vector<std::string> a = {self_,       "run",    "--role",           role,
                                  "--run-dir", run_dir_, "--advertise-host", cfg_.cluster.host};
    if (role != "coordinator") a.insert(a.end(), {"--bind", TcpEndpoint(cfg_.cluster.host, 0)});
    if (curve_) a.insert(a.end(), {"--keys", keys_dir_});
    if (rank >= 0) a.insert(a.end(), {"--rank", std::to_string(rank)});
    if (!coordinator.empty()) a.insert(a.end(), {"--coordinator", coordinator});
    return a;
  }

  static Status Spawn(Node& n) {
    SpawnOptions so;
    so.log = n.log;
    // A restarted node knows it is one (fault injection spares it).
    if (n.restarts > 0) so.env["DISTOPT_RESTARTS"] = std::to_string(n.restarts);
    ASSIGN_OR_RETURN(n.proc, Subprocess::Spawn(n.argv, so));
    return Status::Ok();
  }

  // The coordinator first: everyone else needs its address, which it writes
  // to a file once it listens. Returns that address (without a CURVE key:
  // the nodes take it from the allowlist).
  Result<std::string> StartCoordinator() {
    const std::string addr_file = run_dir_ + "/coordinator.addr";
    Node coord;
    coord.name = "coordinator";
    coord.log = run_dir_ + "/logs/coordinator.log";
    coord.argv = NodeArgv("coordinator", -1, "");
    // Its host as the others will see it; the port is chosen at bind (--bind
    // wins), so the one given here is never used.
    const std::string& h = cfg_.cluster.host;
    coord.argv.insert(coord.argv.end(),
                      {"--coordinator", (IsIpv6Literal(h) ? "[" + h + "]" : h) + ":1"});
    coord.argv.insert(coord.argv.end(), {"--bind", TcpEndpoint(cfg_.cluster.host, 0), "--addr-file",
                                         addr_file, config_path_});
    if (resume_) coord.argv.insert(coord.argv.end() - 1, "--resume");
    std::remove(addr_file.c_str());
    RETURN_IF_ERROR(Spawn(coord));
    nodes_.push_back(std::move(coord));
    Node& c = nodes_.front();
    std::string coordinator;
    Deadline d = Deadline::After(seconds(30));
    while (coordinator.empty()) {
      std::ifstream in(addr_file);
      if (in) std::getline(in, coordinator);
      if (!coordinator.empty()) break;
      if (c.proc.Poll()) {
        return InternalError("the coordinator exited with " + std::to_string(c.proc.code()) +
                             " before listening:\n" + LastLines(c.log, 10));
      }
      if (d.expired()) {
        return DeadlineExceededError("the coordinator did not start listening in 30 s");
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    return SplitCurveAddress(coordinator).first;
  }

  // The servers, then the workers (with cluster.placement = "process" the
  // servers run inside the workers' processes).
  Status StartNodes(const std::string& coordinator) {
    auto start = [&](const std::string& role, uint32_t rank) {
      Node n;
      n.name = role + "/" + std::to_string(rank);
      n.log = run_dir_ + "/logs/" + role + "-" + std::to_string(rank) + ".log";
      n.argv = NodeArgv(role, static_cast<int>(rank), coordinator);
      n.argv.push_back(config_path_);
      RETURN_IF_ERROR(Spawn(n));
      nodes_.push_back(std::move(n));
      return Status::Ok();
    };
    const uint32_t servers = cfg_.cluster.placement == "process" ? 0 : cfg_.cluster.servers;
    for (uint32_t s = 0; s < servers; ++s) RETURN_IF_ERROR(start("server", s));
    for (uint32_t w = 0; w < cfg_.cluster.workers; ++w) RETURN_IF_ERROR(start("worker", w));
    return Status::Ok();
  }

  // Whether `n` is still running after this look at it. A server or worker
  // that failed is restarted while it has restarts left; one killed by a
  // signal is left behind (the coordinator decides whether the job goes on);
  // any other failure is the job's (the first one is kept in failure_).
  bool StillRunning(Node& n) {
    if (n.exited_seen) return false;
    if (!n.proc.Poll()) return true;
    int code = n.proc.code();
    if (code == 0) {
      n.exited_seen = true;
      return false;
    }
    const bool coordinator_node = n.name == "coordinator";
    const int64_t max_restarts = cfg_.cluster.max_restarts;
    if (!coordinator_node && n.restarts < max_restarts) {
      ++n.restarts;
      std::printf("%sdistopt: %s (pid %d) exited with %d; restarting it (%d of %lld)\n",
                  tty_ ? "\r\033[K" : "", n.name.c_str(), n.proc.pid(), code, n.restarts,
                  static_cast<long long>(max_restarts));
      std::fflush(stdout);
      if (Spawn(n).ok()) return true;
      code = 127;
    }
    n.exited_seen = true;
    std::string what = n.name + " (pid " + std::to_string(n.proc.pid()) + ") " +
                       (code > 128 ? "was killed by signal " + std::to_string(code - 128)
                                   : "exited with " + std::to_string(code));
    if (!coordinator_node && code > 128) {
      // A crash: the coordinator notices the silence and the job goes on
      // without the node (or stops, if it cannot).
      std::printf("%sdistopt: %s; the job goes on without it\n", tty_ ? "\r\033[K" : "",
                  what.c_str());
      std::fflush(stdout);
      return false;
    }
    if (failure_.ok()) {
      failure_ = InternalError(what + "; the end of " + n.log + ":\n" + LastLines(n.log, 12));
    }
    return false;
  }

  // The new evaluation lines, then the progress line (on a terminal) or a
  // plain progress line every 10 s.
  void ShowProgress(MetricsTail& tail, bool final) {
    auto evals = tail.Poll(&state_);
    if (!evals.ok()) return;
    for (const auto& e : *evals) {
      if (tty_) std::printf("\r\033[K");
      std::printf("%s\n", RenderEval(e, state_).c_str());
    }
    if (tty_) {
      std::printf("\r\033[K%s", RenderProgress(state_, TerminalWidth() - 1).c_str());
      if (final) std::printf("\n");
    } else if (std::chrono::steady_clock::now() - last_plain_ > seconds(10) && !final &&
               state_.steps_per_epoch > 0) {
      last_plain_ = std::chrono::steady_clock::now();
      std::printf("%s\n", RenderProgress(state_, 100).c_str());
    }
    std::fflush(stdout);
  }

  // Until every node has exited, a node fails the job, or the stragglers'
  // grace after the coordinator's exit runs out; then stops whoever is left.
  Status Supervise() {
    start_ = last_plain_ = std::chrono::steady_clock::now();
    MetricsTail tail(run_dir_ + "/metrics.jsonl");
    Deadline stragglers = Deadline::Never();
    while (true) {
      bool all_done = true;
      for (auto& n : nodes_) all_done = !StillRunning(n) && all_done;
      if (!failure_.ok() || all_done) break;
      // Once the coordinator has ended the job, the others get a moment to exit.
      if (nodes_[0].exited_seen && stragglers.is_never()) stragglers = Deadline::After(seconds(15));
      if (stragglers.expired()) break;
      ShowProgress(tail, false);
      std::this_thread::sleep_for(milliseconds(200));
    }
    ShowProgress(tail, true);
    StopAll(nodes_);  // stragglers (and, on failure, everyone); a no-op for exited nodes
    return failure_;
  }

  // The plots, and a line with the time and the last test metrics.
  void Summarize() {
    std::vector<std::string> plots;
    Status ps = WritePlots(run_dir_ + "/metrics.jsonl", run_dir_, &plots, cfg_.name);
    if (!ps.ok()) {
      std::fprintf(stderr, "distopt: could not draw plots: %s\n", ps.ToString().c_str());
    }
    double wall = ToSeconds(std::chrono::steady_clock::now() - start_);
    std::printf("distopt: done in %.1f s", wall);
    if (state_.last_eval.has_value() && state_.last_eval->test_accuracy.has_value()) {
      std::printf("; test accuracy %.2f%%", *state_.last_eval->test_accuracy * 100);
    }
    if (state_.last_eval.has_value() && state_.last_eval->test_auc.has_value()) {
      std::printf("; test AUC %.4f", *state_.last_eval->test_auc);
    }
    std::printf("\n  run folder: %s (config.toml, metrics.jsonl, model.bin, logs/",
                run_dir_.c_str());
    for (const auto& p : plots) std::printf(", %s", p.substr(p.rfind('/') + 1).c_str());
    std::printf(")\n");
  }

  const TrainArgs& args_;
  const bool resume_;
  // Set by Prepare.
  JobConfig cfg_;
  std::string run_dir_;
  std::string config_path_;
  std::string keys_dir_;
  std::string self_;
  bool curve_ = false;
  bool tty_ = false;
  // The coordinator first, then the servers and the workers.
  std::vector<Node> nodes_;
  Status failure_;  // the first node failure that ends the job
  ProgressState state_;
  SteadyTime start_;
  SteadyTime last_plain_;
};

}  // namespace

Status RunLocalJob(const TrainArgs& args) { return LocalJob(args).Run(); }

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
