// `distopt bench kv`: push+pull throughput of the parameter server measured
// with separate processes over ZeroMQ tcp on loopback, side by side with a
// raw ZeroMQ round trip of the same bytes between the same processes (the
// ceiling), in one run. `bench-node` is the hidden subcommand the benchmark
// starts its processes with. Both run on the calling thread.
#ifndef DISTOPT_CLI_BENCH_KV_H_
#define DISTOPT_CLI_BENCH_KV_H_

#include <string>
#include <vector>

#include "distopt/status.h"

namespace distopt {

Status RunKvBench(const std::vector<std::string>& args);
Status RunBenchNode(const std::vector<std::string>& args);

}  // namespace distopt

#endif  // DISTOPT_CLI_BENCH_KV_H_
