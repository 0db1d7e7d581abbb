// The `distopt` subcommands. Each Add*Command declares its options on the
// CLI11 app (types, ranges and help in one place) and, when the user picks
// it, sets `*action` to the work to do with the parsed options; main() runs
// it and turns a failed Status into a message and a non-zero exit. Parsing
// never touches the environment: only the run command reads it, once, into
// a Placement (cli/placement.h).
#ifndef DISTOPT_CLI_COMMANDS_H_
#define DISTOPT_CLI_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>

#include "distopt/status.h"

namespace distopt {

using Action = std::function<Status()>;

// An integer option in [lo, hi]: "--rank x" is "'x' is not an integer", not a
// silent 0 nor a range message about doubles.
CLI::Validator IntIn(int64_t lo, int64_t hi);

void AddTrainCommand(CLI::App& app, Action* action);   // cli/launcher.cc
void AddRunCommand(CLI::App& app, Action* action);     // cli/commands.cc
void AddEvalCommand(CLI::App& app, Action* action);    // cli/commands.cc
void AddKeygenCommand(CLI::App& app, Action* action);  // cli/commands.cc

// Writes a job's CURVE keys into `dir` (made 0700): coordinator.key,
// server-I.key, worker-I.key (0600) and the allowlist. Refuses to replace
// existing keys unless `force`. Returns the number of key files.
Result<int> WriteJobKeys(const std::string& dir, uint32_t servers, uint32_t workers, bool force);

}  // namespace distopt

#endif  // DISTOPT_CLI_COMMANDS_H_
