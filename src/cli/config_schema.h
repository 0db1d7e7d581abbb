// The settings schema of a JobConfig, internal to cli_config: one Field per
// setting, each reading its TOML value (type and range checked), checking a
// stored value and writing it back as TOML. config_read.cc, config_validate.cc
// and ConfigToToml (config_schema.cc) all walk the same rows, so a setting
// cannot be readable without being checked and written back. The table is
// built once and never changes: thread-safe.
//
//   const Field* f = FindField("train.epochs");   // nullptr: no such setting
//   RETURN_IF_ERROR(f->set(node, &config));       // "'train.epochs' must be >= 1, got 0"
//   for (const Field& f : Fields()) out += f.format(config);
#ifndef DISTOPT_CLI_CONFIG_SCHEMA_H_
#define DISTOPT_CLI_CONFIG_SCHEMA_H_

#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/config.h"
#include "distopt/status.h"

// Only toml++'s value types are used through this header; the parser, which
// throws, is called in config_read.cc alone.
#include <toml++/toml.h>

namespace distopt::config_internal {

// A job's membership holds at most 2^16 nodes (cluster/membership.cc),
// the coordinator included.
inline constexpr int64_t kMaxMembers = int64_t{1} << 16;

// `key` in single quotes, as every message names a setting.
std::string Quoted(std::string_view key);

// Shortest text that reads back as exactly `v` (for messages and files).
template <typename F>
std::string ShortestNumber(F v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

// "'key' must be <want>, found <what n holds>".
Status TypeError(std::string_view key, const char* want, const toml::node& n);

// One setting. Messages from set/check start with the quoted key and carry
// no location: the caller knows it (file:line, --set ..., or the source).
struct Field {
  std::string key;  // dotted: "optimizer.schedule.kind"
  // Type-checks and range-checks `n`, then stores it in the config.
  std::function<Status(const toml::node& n, JobConfig* c)> set;
  // Range-checks the stored value (configs built in code, ValidateConfig).
  std::function<Status(const JobConfig& c)> check;
  // The stored value as TOML text.
  std::function<std::string(const JobConfig& c)> format;
};

// Every setting, in the order ConfigToToml writes them (grouped by table).
const std::vector<Field>& Fields();
// The setting called `key` ("optimizer.schedule.kind"); nullptr if none is.
const Field* FindField(std::string_view key);
// "cluster", "optimizer" and "optimizer.schedule": every proper prefix of a key.
bool IsTable(std::string_view path);
// "kind" and "optimizer.schedule" of "optimizer.schedule.kind".
std::string_view LastPart(std::string_view key);
std::string_view TableOf(std::string_view key);

}  // namespace distopt::config_internal

#endif  // DISTOPT_CLI_CONFIG_SCHEMA_H_
