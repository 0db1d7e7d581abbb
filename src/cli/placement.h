// Placement: where one `distopt run` process stands in its job (role, rank,
// the coordinator's address, what to advertise), resolved once from the
// command line and the launcher's environment. This is the one place that
// knows the launchers' variables; the environment comes in as a map so tests
// pass fake ones. Pure functions.
//
// Precedence: flags, then DISTOPT_* variables, then the first launcher found
// in this order: ps-lite (DMLC_ROLE), OpenMPI (OMPI_COMM_WORLD_RANK), PMIx
// (PMIX_RANK), PMI (PMI_RANK), Slurm (SLURM_PROCID), torchrun/Kubeflow
// (RANK), a Kubernetes Indexed Job (JOB_COMPLETION_INDEX). A launcher gives a
// global rank; the role follows from it: rank 0 is the coordinator, ranks
// 1..S the servers, S+1..S+W the workers. An explicit role (--role or
// DISTOPT_ROLE) overrides that, and the coordinator then picks a free rank.
//
//   ASSIGN_OR_RETURN(Placement p, ResolvePlacement(flags, CurrentEnvironment(), 2, 4));
//   if (p.role == Role::kCoordinator) ... listen on p.coordinator.port
#ifndef DISTOPT_CLI_PLACEMENT_H_
#define DISTOPT_CLI_PLACEMENT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cluster/membership.h"
#include "distopt/status.h"
#include "transport/net_address.h"

namespace distopt {

using Environment = std::map<std::string, std::string>;

// The process's environment (the CLI's only read of it).
Environment CurrentEnvironment();

inline constexpr uint16_t kDefaultCoordinatorPort = 7070;

// What the command line said (empty / -1: not given).
struct PlacementFlags {
  std::string role;
  int64_t rank = -1;
  std::string coordinator;  // HOST:PORT
  int64_t port = -1;        // the coordinator's port where a launcher gives only its host
  std::string advertise_host;
  std::string interface;
  std::string run_dir;
  std::string keys;
  std::string host_label;
};

struct Placement {
  std::string launcher;  // "flags", "distopt", "dmlc", "openmpi", "pmix", "pmi", "slurm",
                         // "torchrun", "kubernetes"
  Role role = Role::kWorker;
  int32_t rank = -1;  // within the role; -1: the coordinator assigns one
  int64_t global_rank = -1;
  int64_t world_size = -1;     // -1: the launcher did not say
  HostPort coordinator;        // for the coordinator itself: where it listens
  std::string advertise_host;  // empty: the address of the route to the coordinator
  std::string interface;       // advertise this interface's address instead
  std::string run_dir;
  std::string keys;  // the job's key directory (CURVE), empty: none given
  // Names this node's machine for the coordinator (Member::host); empty: the
  // advertised address's host. Set it where nodes of one machine advertise
  // different addresses (Kubernetes pods: the node's name).
  std::string host_label;
  int64_t restarts = 0;  // DISTOPT_RESTARTS: the local launcher restarted this node N times
};

// `servers` and `workers` are the job's counts (from its config).
Result<Placement> ResolvePlacement(const PlacementFlags& flags, const Environment& env,
                                   uint32_t servers, uint32_t workers);

// Slurm's compact host lists: "node[01-04,07],login1" -> node01..node04, node07, login1.
Result<std::vector<std::string>> ExpandSlurmNodeList(const std::string& list);

// One JSON object (for --print-placement and the tests of deploy/).
std::string PlacementJson(const Placement& p);

}  // namespace distopt

#endif  // DISTOPT_CLI_PLACEMENT_H_
