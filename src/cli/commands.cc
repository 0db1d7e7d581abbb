#include "cli/commands.h"

namespace distopt {

std::optional<Status> RunCommand(const std::string& cmd, const std::vector<std::string>& args) {
  return std::nullopt;
}

}  // namespace distopt
