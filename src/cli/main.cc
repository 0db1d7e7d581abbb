// The `distopt` command: parses argv once, dispatches to a subcommand, and
// turns a failed Status into a message on stderr and a non-zero exit code.
#include <malloc.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cli/bench_kv.h"
#include "cli/commands.h"

namespace {

constexpr const char* kUsage = R"(usage: distopt <command> [args]

commands:
  train CONFIG [--workers N] [--servers M] [--set section.key=value]...
                               train on a local cluster of processes
  run --role ROLE --coordinator HOST:PORT CONFIG
                               run one node of a multi-host job
  eval MODEL CONFIG            evaluate a saved model on the config's test set
  bench kv [--size 16MiB]...   push/pull throughput against raw ZeroMQ
)";

}  // namespace

int main(int argc, char** argv) {
  // Every step receives and frees one buffer per model slice (MBs each).
  // glibc would serve them with fresh mmaps: page faults and zeroing of every
  // page, every step. Keep them on the heap and the freed memory mapped.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  std::string cmd = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  distopt::Status s;
  if (cmd == "bench" && !rest.empty() && rest[0] == "kv") {
    s = distopt::RunKvBench({rest.begin() + 1, rest.end()});
  } else if (cmd == "bench-node") {
    s = distopt::RunBenchNode(rest);
  } else {
    auto handled = distopt::RunCommand(cmd, rest);
    if (!handled.has_value()) {
      std::fprintf(stderr, "distopt: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
      return 2;
    }
    s = *handled;
  }
  if (!s.ok()) {
    std::fprintf(stderr, "distopt %s: %s\n", cmd.c_str(), s.ToString().c_str());
    return 1;
  }
  return 0;
}
