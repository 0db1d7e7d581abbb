// The processes distopt-bench-kv starts (`distopt-bench-kv node --role R`):
// the parameter server's roles (server, worker, or both in one process) and
// the raw ZeroMQ ceiling's roles (an echo server and a client sending the
// same bytes). Each runs on the calling thread until its case is done; a
// timed role leaves its seconds in `out` (bench_case.h).
//
//   BenchNodeArgs a;  // from the node command line
//   a.role = "echo";
//   a.addr_file = dir + "/echo0.addr";
//   return RunBenchNode(a);
#ifndef DISTOPT_BENCH_KV_NODE_H_
#define DISTOPT_BENCH_KV_NODE_H_

#include <cstdint>
#include <string>

#include "bench_case.h"
#include "distopt/status.h"

namespace distopt::bench {

struct BenchNodeArgs {
  std::string role;  // coordinator | server | worker | colocated | echo | raw-client
  std::string coordinator;
  int64_t rank = -1;
  std::string out;        // the result file of a timed role
  std::string peers;      // raw-client: the echoes' endpoints, comma-separated
  std::string addr_file;  // echo: where it writes the endpoint it bound
  std::string keys;       // CURVE: the key folder (empty: plain)
  // Where the node listens: another host's address when the benchmark runs
  // across hosts (bench/multihost --dense); the coordinator writes the
  // endpoint it bound to addr_file.
  std::string bind = "tcp://127.0.0.1:0";
  bool host_aggregation = false;  // workers of one host sum first (BSP)
  Case c;
};

Status RunBenchNode(const BenchNodeArgs& args);

// raw_roles.cc: the ceiling.
Status RunEcho(const BenchNodeArgs& args);
Status RunRawClient(const BenchNodeArgs& args);
// Tells the echo at `endpoint` to exit.
Status StopEcho(const std::string& endpoint);

}  // namespace distopt::bench

#endif  // DISTOPT_BENCH_KV_NODE_H_
