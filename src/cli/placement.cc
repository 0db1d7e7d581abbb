#include "cli/placement.h"

#include <charconv>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <sstream>

extern char** environ;

namespace distopt {
namespace {

std::string Get(const Environment& env, const std::string& name) {
  auto it = env.find(name);
  return it == env.end() ? "" : it->second;
}

Result<int64_t> ParseCount(const std::string& what, const std::string& text) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v < 0) {
    return InvalidArgumentError(what + " must be a non-negative integer, got '" + text + "'");
  }
  return v;
}

// The global rank and world size a launcher gives, and its name.
struct LauncherRank {
  std::string launcher;
  std::string rank_var, size_var;
};

const LauncherRank kLaunchers[] = {
    {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
    {"pmix", "PMIX_RANK", ""},
    {"pmi", "PMI_RANK", "PMI_SIZE"},
    {"slurm", "SLURM_PROCID", "SLURM_NTASKS"},
    {"torchrun", "RANK", "WORLD_SIZE"},
    {"kubernetes", "JOB_COMPLETION_INDEX", ""},
};

Result<Role> DmlcRole(const std::string& text) {
  if (text == "scheduler") return Role::kCoordinator;
  if (text == "server") return Role::kServer;
  if (text == "worker") return Role::kWorker;
  return InvalidArgumentError("DMLC_ROLE must be scheduler, server or worker, got '" + text + "'");
}

// Where the coordinator is, from whatever the launcher says; empty if nothing.
Result<std::string> CoordinatorText(const PlacementFlags& flags, const Environment& env,
                                    const std::string& launcher, uint16_t port) {
  if (!flags.coordinator.empty()) return flags.coordinator;
  if (std::string v = Get(env, "DISTOPT_COORDINATOR"); !v.empty()) return v;
  if (std::string a = Get(env, "MASTER_ADDR"); !a.empty()) {
    std::string mp = Get(env, "MASTER_PORT");
    return (IsIpv6Literal(a) ? "[" + a + "]" : a) + ":" + (mp.empty() ? std::to_string(port) : mp);
  }
  if (std::string a = Get(env, "DMLC_PS_ROOT_URI"); !a.empty()) {
    std::string dp = Get(env, "DMLC_PS_ROOT_PORT");
    return (IsIpv6Literal(a) ? "[" + a + "]" : a) + ":" + (dp.empty() ? std::to_string(port) : dp);
  }
  if (launcher == "slurm") {
    // Task 0 runs on the first host of the step's (else the job's) node list.
    std::string list = Get(env, "SLURM_STEP_NODELIST");
    if (list.empty()) list = Get(env, "SLURM_JOB_NODELIST");
    if (list.empty()) list = Get(env, "SLURM_NODELIST");
    if (!list.empty()) {
      ASSIGN_OR_RETURN(auto hosts, ExpandSlurmNodeList(list));
      return hosts.front() + ":" + std::to_string(port);
    }
  }
  if (launcher == "openmpi") {
    // mpirun names no host for rank 0; on one host it is this one.
    std::string local = Get(env, "OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!local.empty() && local == Get(env, "OMPI_COMM_WORLD_SIZE")) {
      return "127.0.0.1:" + std::to_string(port);
    }
  }
  return std::string();
}

}  // namespace

Environment CurrentEnvironment() {
  Environment env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

Result<std::vector<std::string>> ExpandSlurmNodeList(const std::string& list) {
  std::vector<std::string> out;
  auto bad = [&](const std::string& why) {
    return InvalidArgumentError("Slurm node list '" + list + "': " + why);
  };
  size_t i = 0;
  while (i < list.size()) {
    // One item: a prefix, optionally a [ranges] group, optionally a suffix,
    // up to the next top-level comma.
    size_t open = list.find_first_of("[,", i);
    if (open == std::string::npos || list[open] == ',') {
      size_t end = open == std::string::npos ? list.size() : open;
      if (end > i) out.push_back(list.substr(i, end - i));
      i = end + 1;
      continue;
    }
    std::string prefix = list.substr(i, open - i);
    size_t close = list.find(']', open);
    if (close == std::string::npos) return bad("unclosed '['");
    std::string ranges = list.substr(open + 1, close - open - 1);
    size_t next = list.find(',', close);
    std::string suffix =
        list.substr(close + 1, (next == std::string::npos ? list.size() : next) - close - 1);
    if (suffix.find('[') != std::string::npos) return bad("more than one [] group in a name");
    std::stringstream ss(ranges);
    for (std::string r; std::getline(ss, r, ',');) {
      size_t dash = r.find('-');
      std::string lo = r.substr(0, dash), hi = dash == std::string::npos ? lo : r.substr(dash + 1);
      int64_t a = 0, b = 0;
      auto ra = std::from_chars(lo.data(), lo.data() + lo.size(), a);
      auto rb = std::from_chars(hi.data(), hi.data() + hi.size(), b);
      if (lo.empty() || hi.empty() || ra.ec != std::errc() || rb.ec != std::errc() ||
          ra.ptr != lo.data() + lo.size() || rb.ptr != hi.data() + hi.size() || b < a) {
        return bad("bad range '" + r + "'");
      }
      if (b - a > 100000) return bad("range '" + r + "' is too large");
      for (int64_t n = a; n <= b; ++n) {
        std::string num = std::to_string(n);
        // Zero padding follows the width of the lower bound ("01-04").
        if (num.size() < lo.size()) num.insert(0, lo.size() - num.size(), '0');
        out.push_back(prefix + num + suffix);
      }
    }
    i = next == std::string::npos ? list.size() : next + 1;
  }
  if (out.empty()) return bad("no host");
  return out;
}

namespace {

// The launcher we run under, if any (by the rank variable it sets): it also
// says where the coordinator is when the role comes from a flag.
std::string DetectedLauncher(const Environment& env) {
  for (const LauncherRank& l : kLaunchers) {
    if (!Get(env, l.rank_var).empty()) return l.launcher;
  }
  return "";
}

// The role, from --role or DISTOPT_ROLE, DMLC_ROLE, or else a launcher's
// global rank (p->global_rank, and p->world_size where it says); `rank` is
// the role's rank from --rank or DISTOPT_RANK, if given.
Status ReadRole(const PlacementFlags& flags, const Environment& env, uint32_t servers,
                uint32_t workers, Placement* p, int64_t* rank) {
  std::string role_text = flags.role;
  p->launcher = "flags";
  if (role_text.empty() && !Get(env, "DISTOPT_ROLE").empty()) {
    role_text = Get(env, "DISTOPT_ROLE");
    p->launcher = "distopt";
  }
  if (*rank < 0 && !Get(env, "DISTOPT_RANK").empty()) {
    ASSIGN_OR_RETURN(*rank, ParseCount("DISTOPT_RANK", Get(env, "DISTOPT_RANK")));
  }
  if (!role_text.empty()) {
    ASSIGN_OR_RETURN(p->role, ParseRole(role_text));
    return Status::Ok();
  }
  if (!Get(env, "DMLC_ROLE").empty()) {
    p->launcher = "dmlc";
    ASSIGN_OR_RETURN(p->role, DmlcRole(Get(env, "DMLC_ROLE")));
    for (auto [var, want] : {std::pair{"DMLC_NUM_SERVER", servers}, {"DMLC_NUM_WORKER", workers}}) {
      if (Get(env, var).empty()) continue;
      ASSIGN_OR_RETURN(int64_t n, ParseCount(var, Get(env, var)));
      if (n != want) {
        return InvalidArgumentError(std::string(var) + "=" + std::to_string(n) +
                                    " but the job has " + std::to_string(want) + " (cluster." +
                                    (want == servers ? "servers" : "workers") + ")");
      }
    }
    return Status::Ok();
  }
  for (const LauncherRank& l : kLaunchers) {
    std::string r = Get(env, l.rank_var);
    if (r.empty()) continue;
    p->launcher = l.launcher;
    ASSIGN_OR_RETURN(p->global_rank, ParseCount(l.rank_var, r));
    if (!l.size_var.empty() && !Get(env, l.size_var).empty()) {
      ASSIGN_OR_RETURN(p->world_size, ParseCount(l.size_var, Get(env, l.size_var)));
    }
    return Status::Ok();
  }
  return InvalidArgumentError(
      "no role: give --role (coordinator, server, worker) or start under a launcher "
      "(mpirun, srun, torchrun, a Kubernetes Indexed Job, DMLC_ROLE, DISTOPT_ROLE)");
}

// Checks the launcher's world size against the job, turns a global rank
// into a role and its rank (0 the coordinator, then the servers, then the
// workers), and checks the rank against the role's count; sets p->rank.
Status PlaceInJob(const Environment& env, uint32_t servers, uint32_t workers, Placement* p,
                  int64_t rank) {
  const int64_t job_size = 1 + int64_t{servers} + workers;
  if (std::string ws = Get(env, "DISTOPT_WORLD_SIZE"); !ws.empty()) {
    ASSIGN_OR_RETURN(p->world_size, ParseCount("DISTOPT_WORLD_SIZE", ws));
  }
  if (p->world_size >= 0 && p->world_size != job_size && p->global_rank >= 0) {
    return InvalidArgumentError("the launcher (" + p->launcher + ") started " +
                                std::to_string(p->world_size) + " ranks, but the job needs " +
                                std::to_string(job_size) + " (1 coordinator + " +
                                std::to_string(servers) + " servers + " + std::to_string(workers) +
                                " workers, cluster.servers and cluster.workers)");
  }
  if (p->global_rank >= 0) {
    if (p->global_rank >= job_size) {
      return InvalidArgumentError("global rank " + std::to_string(p->global_rank) + " (from " +
                                  p->launcher + ") is outside the job's 0.." +
                                  std::to_string(job_size - 1));
    }
    if (p->global_rank == 0) {
      p->role = Role::kCoordinator;
    } else if (p->global_rank <= servers) {
      p->role = Role::kServer;
      rank = p->global_rank - 1;
    } else {
      p->role = Role::kWorker;
      rank = p->global_rank - 1 - servers;
    }
  }
  if (p->role == Role::kCoordinator) rank = -1;
  const uint32_t limit = p->role == Role::kServer ? servers : workers;
  if (p->role != Role::kCoordinator && rank >= limit) {
    return InvalidArgumentError(std::string(RoleName(p->role)) + " rank " + std::to_string(rank) +
                                " is outside 0.." + std::to_string(int64_t{limit} - 1) +
                                " (the job has " + std::to_string(limit) + ")");
  }
  p->rank = static_cast<int32_t>(rank);
  return Status::Ok();
}

// Where the coordinator is (for the coordinator itself: where it listens).
Status ReadCoordinator(const PlacementFlags& flags, const Environment& env, Placement* p) {
  if (flags.port == 0 || flags.port > 65535) {
    return InvalidArgumentError("--port must be in 1..65535, got " + std::to_string(flags.port));
  }
  const uint16_t port =
      flags.port > 0 ? static_cast<uint16_t>(flags.port) : kDefaultCoordinatorPort;
  const std::string detected = DetectedLauncher(env);
  ASSIGN_OR_RETURN(std::string coord, CoordinatorText(flags, env, detected, port));
  if (coord.empty()) {
    if (p->role != Role::kCoordinator) {
      return InvalidArgumentError(
          "no coordinator address: give --coordinator HOST:PORT or set DISTOPT_COORDINATOR" +
          (detected.empty() ? std::string()
                            : " (" + detected + " does not say where rank 0 runs)"));
    }
    coord = "0.0.0.0:" + std::to_string(port);
  }
  auto hp = ParseHostPort(coord, port);
  if (!hp.ok()) return hp.status().WithContext("the coordinator address");
  p->coordinator = *hp;
  return Status::Ok();
}

// The flag if given, else the first of `vars` that is set, else "".
std::string FlagOrEnv(const Environment& env, const std::string& flag,
                      std::initializer_list<const char*> vars) {
  if (!flag.empty()) return flag;
  for (const char* v : vars) {
    if (std::string s = Get(env, v); !s.empty()) return s;
  }
  return std::string();
}

// The address to advertise, the run folder, the keys and the restart count.
Status ReadNodeSettings(const PlacementFlags& flags, const Environment& env, Placement* p) {
  p->advertise_host =
      FlagOrEnv(env, flags.advertise_host, {"DISTOPT_ADVERTISE_HOST", "DMLC_NODE_HOST"});
  p->interface = FlagOrEnv(env, flags.interface, {"DISTOPT_INTERFACE", "DMLC_INTERFACE"});
  if (!p->advertise_host.empty() && !p->interface.empty()) {
    return InvalidArgumentError("give --advertise-host or --interface, not both (" +
                                p->advertise_host + ", " + p->interface + ")");
  }
  if (p->advertise_host.size() > 2 && p->advertise_host.front() == '[') {
    p->advertise_host = p->advertise_host.substr(1, p->advertise_host.size() - 2);
  }
  p->run_dir = FlagOrEnv(env, flags.run_dir, {"DISTOPT_RUN_DIR"});
  p->keys = FlagOrEnv(env, flags.keys, {"DISTOPT_KEYS"});
  p->host_label = FlagOrEnv(env, flags.host_label, {"DISTOPT_HOST_LABEL"});
  if (std::string r = Get(env, "DISTOPT_RESTARTS"); !r.empty()) {
    ASSIGN_OR_RETURN(p->restarts, ParseCount("DISTOPT_RESTARTS", r));
  }
  return Status::Ok();
}

}  // namespace

Result<Placement> ResolvePlacement(const PlacementFlags& flags, const Environment& env,
                                   uint32_t servers, uint32_t workers) {
  Placement p;
  int64_t rank = flags.rank;
  RETURN_IF_ERROR(ReadRole(flags, env, servers, workers, &p, &rank));
  RETURN_IF_ERROR(PlaceInJob(env, servers, workers, &p, rank));
  RETURN_IF_ERROR(ReadCoordinator(flags, env, &p));
  RETURN_IF_ERROR(ReadNodeSettings(flags, env, &p));
  return p;
}

std::string PlacementJson(const Placement& p) {
  nlohmann::json j;
  j["launcher"] = p.launcher;
  j["role"] = RoleName(p.role);
  j["rank"] = p.rank;
  j["global_rank"] = p.global_rank;
  j["world_size"] = p.world_size;
  j["coordinator"] =
      (IsIpv6Literal(p.coordinator.host) ? "[" + p.coordinator.host + "]" : p.coordinator.host) +
      ":" + std::to_string(p.coordinator.port);
  j["advertise_host"] = p.advertise_host;
  j["interface"] = p.interface;
  j["host_label"] = p.host_label;
  j["run_dir"] = p.run_dir;
  j["keys"] = p.keys;
  return j.dump();
}

}  // namespace distopt
