// `distopt train`: the local launcher. Starts a whole job on this machine as
// separate processes (one coordinator, S servers, W workers, each `distopt
// run`), makes the run folder (resolved config, one log per node,
// metrics.jsonl, plots, the model), shows one progress line and a line per
// evaluation, and supervises: a node that fails ends the job, every process
// it started exits, and the error names the node and quotes its log. Runs
// on the calling thread.
#ifndef DISTOPT_CLI_LAUNCHER_H_
#define DISTOPT_CLI_LAUNCHER_H_

#include <string>
#include <vector>

#include "distopt/status.h"

namespace distopt {

Status RunLocalJob(const std::vector<std::string>& args);

}  // namespace distopt

#endif  // DISTOPT_CLI_LAUNCHER_H_
