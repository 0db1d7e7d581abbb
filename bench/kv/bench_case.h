// The cases of distopt-bench-kv: one Case is one measurement (dense or
// sparse push+pull, a server and worker count), described the same way to
// the driver and to every process it starts (Args() is the node's command
// line). Also the tiny result file each timed process leaves for the driver.
// Plain values and pure functions, no shared state.
//
//   KvBenchPlan plan;  // sizes, counts, reps as given on the command line
//   ASSIGN_OR_RETURN(std::vector<Case> cases, PlanCases(plan));
//   for (const Case& c : cases) std::printf("%s\n", CaseName(c).c_str());
#ifndef DISTOPT_BENCH_KV_BENCH_CASE_H_
#define DISTOPT_BENCH_KV_BENCH_CASE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "distopt/status.h"
#include "kv/layout.h"

namespace distopt::bench {

// Untimed steps before the timed ones of every case.
inline constexpr int kWarmupSteps = 3;

struct Case {
  std::string kind = "dense";  // dense | sparse
  uint64_t floats = 0;         // dense table size
  uint64_t keys = 100000;      // sparse keys per push
  uint32_t dim = 16;
  uint64_t key_space = 10000000;
  uint32_t servers = 1;
  uint32_t workers = 1;
  int64_t reps = 20;
  // Each worker process also hosts a server (servers == workers): the share
  // of the model it holds never crosses a socket.
  bool colocate = false;
  uint32_t partitions = 0;  // the job's cluster.partitions (0: by the table's size)

  // Bytes a worker sends and receives per step.
  uint64_t push_bytes() const { return kind == "dense" ? floats * 4 : keys * 8 + keys * dim * 4; }
  uint64_t pull_bytes() const { return kind == "dense" ? floats * 4 : keys * dim * 4; }
  // The options that carry this case to a `node` process.
  std::vector<std::string> Args() const;
};

// The grid the user asked for (the command line's values).
struct KvBenchPlan {
  std::vector<std::string> sizes;  // empty: 1MiB and 16MiB
  std::vector<int64_t> servers = {1, 2};
  std::vector<int64_t> workers = {1, 2, 4};
  int64_t reps = 0;  // 0: by size (60 below 8 MiB, 15 from 8 MiB; sparse 15)
  int64_t sparse_keys = 100000;
  int64_t sparse_dim = 16;
  bool no_sparse = false;
  bool no_dense = false;
  bool colocate = false;  // servers = workers, one in each worker's process
  int64_t partitions = 0;
};

// "16MiB", "1M", "4096" -> bytes.
Result<uint64_t> ParseBytes(const std::string& text);

// Every case of the plan, in the order they run: for each server count, for
// each worker count, the dense sizes then the sparse case.
Result<std::vector<Case>> PlanCases(const KvBenchPlan& plan);

// "dense-16MiB-s1w2", "sparse-100kx16-s2w4", "...-colo".
std::string CaseName(const Case& c);

// The one table a case pushes to and pulls from (SGD with a tiny rate, so the
// values stay finite over any number of steps).
std::vector<TableSpec> BenchTables(const Case& c);

// A timed process's result: {"seconds": s}, written atomically so the driver
// never reads half a file.
Status WriteSecondsFile(const std::string& path, double seconds);
Result<double> ReadSecondsFile(const std::string& path);

}  // namespace distopt::bench

#endif  // DISTOPT_BENCH_KV_BENCH_CASE_H_
