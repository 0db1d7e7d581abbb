// Flags: the command line of one `distopt` subcommand. Accepts `--name value`
// and `--name=value`, repeated flags (kept in order), and positional
// arguments; every flag must be declared, so a typo is an error naming it.
// Values are parsed on access with errors that name the flag. Not thread-safe.
#ifndef DISTOPT_CLI_FLAGS_H_
#define DISTOPT_CLI_FLAGS_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "distopt/status.h"

namespace distopt {

class Flags {
 public:
  // `with_value`: flags that take a value; `switches`: boolean flags.
  static Result<Flags> Parse(const std::vector<std::string>& args,
                             const std::set<std::string>& with_value,
                             const std::set<std::string>& switches = {});

  bool Has(const std::string& name) const { return values_.count(name) != 0; }
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  std::vector<std::string> GetAll(const std::string& name) const;
  Result<int64_t> GetInt(const std::string& name, int64_t fallback) const;
  Result<double> GetDouble(const std::string& name, double fallback) const;
  // "16MiB", "1M", "4096" -> bytes.
  Result<uint64_t> GetBytes(const std::string& name, uint64_t fallback) const;
  // "1,2,4" -> {1,2,4}
  Result<std::vector<int64_t>> GetIntList(const std::string& name,
                                          std::vector<int64_t> fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

Result<uint64_t> ParseBytes(const std::string& text);

}  // namespace distopt

#endif  // DISTOPT_CLI_FLAGS_H_
