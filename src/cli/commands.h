// The training-related subcommands (train, run, eval). Returns nullopt for
// a command it does not know.
#ifndef DISTOPT_CLI_COMMANDS_H_
#define DISTOPT_CLI_COMMANDS_H_

#include <optional>
#include <string>
#include <vector>

#include "distopt/status.h"

namespace distopt {

std::optional<Status> RunCommand(const std::string& cmd, const std::vector<std::string>& args);

}  // namespace distopt

#endif  // DISTOPT_CLI_COMMANDS_H_
