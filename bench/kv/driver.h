// The driver of distopt-bench-kv: for every case of the plan, starts the
// coordinator on this thread's side and the servers and workers as separate
// processes (this binary's `node` subcommand) over ZeroMQ tcp on loopback,
// then the raw ZeroMQ twin of the same case, and prints one table row per
// case (and the results as JSON on request). All node logs, result files and
// CURVE keys go to one scratch folder, removed when the run ends, on error
// paths too (unless `keep`). Runs on the calling thread.
//
//   KvBenchOptions o;
//   o.plan.sizes = {"16MiB"};
//   o.self = SelfExecutable();
//   RETURN_IF_ERROR(RunKvBench(o));
#ifndef DISTOPT_BENCH_KV_DRIVER_H_
#define DISTOPT_BENCH_KV_DRIVER_H_

#include <string>

#include "bench_case.h"
#include "distopt/status.h"

namespace distopt::bench {

struct KvBenchOptions {
  KvBenchPlan plan;
  std::string json;                     // write the results here (empty: no file)
  std::string security = "none";        // curve: every case again with CURVE on every socket
  std::string self;                     // this binary: the node processes run it
  std::string scratch_parent = "/tmp";  // the scratch folder is made in here
  bool keep = false;                    // keep the scratch folder (node logs) and say where it is
};

Status RunKvBench(const KvBenchOptions& options);

}  // namespace distopt::bench

#endif  // DISTOPT_BENCH_KV_DRIVER_H_
