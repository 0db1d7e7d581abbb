// distopt-bench-kv: push+pull throughput of the parameter server, measured
// with separate processes over ZeroMQ tcp on loopback, side by side with a
// raw ZeroMQ round trip of the same bytes between the same processes (the
// ceiling). A benchmark binary, not part of the product: `distopt` carries no
// benchmark. Its `node` subcommand is the processes the benchmark starts.
//
//   distopt-bench-kv --size 16MiB --servers 1 --workers 1 --no-sparse --json kv.json
//   distopt-bench-kv --quick            # one small case of each kind: a smoke test
#include <malloc.h>
#include <stdlib.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "base/subprocess.h"
#include "cli/commands.h"
#include "driver.h"
#include "node.h"

namespace distopt::bench {
namespace {

void AddRunOptions(CLI::App& app, KvBenchOptions& o) {
  KvBenchPlan& p = o.plan;
  auto* size = app.add_option("--size", p.sizes,
                              "dense payload per worker (repeatable; default 1MiB, 16MiB)")
                   ->allow_extra_args(false);
  auto* servers = app.add_option("--servers", p.servers, "server counts, e.g. 1,2")
                      ->delimiter(',')
                      ->check(IntIn(1, 64));
  auto* workers = app.add_option("--workers", p.workers, "worker counts, e.g. 1,2,4")
                      ->delimiter(',')
                      ->check(IntIn(1, 64));
  auto* reps = app.add_option("--reps", p.reps, "timed steps per case (default by size)")
                   ->check(IntIn(0, 1 << 30));
  app.add_option("--json", o.json, "write the results here");
  auto* keys = app.add_option("--sparse-keys", p.sparse_keys, "keys per sparse push")
                   ->check(IntIn(1, 1 << 30));
  app.add_option("--sparse-dim", p.sparse_dim, "sparse row width")->check(IntIn(1, 65536));
  app.add_flag("--no-sparse", p.no_sparse, "skip the sparse cases");
  app.add_flag("--no-dense", p.no_dense, "skip the dense cases");
  app.add_flag("--colocate", p.colocate, "one server in each worker's process");
  app.add_option("--partitions", p.partitions,
                 "the model's partitions (0: one per server, more for tables over 4 MiB each)")
      ->check(IntIn(0, Layout::kMaxPartitions));
  app.add_option("--security", o.security,
                 "curve: run every case again with CURVE on every socket and print the ratio")
      ->check(CLI::IsMember({"none", "curve"}));
  app.add_flag("--keep", o.keep, "keep the scratch folder (every node's log) and print its path");
  // The smallest run that exercises every role: a smoke test, not a figure.
  app.add_flag_callback(
         "--quick",
         [&p] {
           p.sizes = {"1MiB"};
           p.servers = {1};
           p.workers = {1};
           p.reps = 10;
           p.sparse_keys = 10000;
         },
         "1 server, 1 worker, 1 MiB dense and 10k sparse keys, 10 steps each (a smoke test)")
      ->excludes(size)
      ->excludes(servers)
      ->excludes(workers)
      ->excludes(reps)
      ->excludes(keys);
}

void AddNodeCommand(CLI::App& app, BenchNodeArgs& a) {
  CLI::App* n = app.add_subcommand(
      "node", "one process of the benchmark (the benchmark starts these itself)");
  n->add_option("--role", a.role)
      ->required()
      ->check(
          CLI::IsMember({"coordinator", "server", "worker", "colocated", "echo", "raw-client"}));
  n->add_option("--coordinator", a.coordinator, "the coordinator's endpoint");
  n->add_option("--rank", a.rank);
  n->add_option("--out", a.out, "the result file of a timed role");
  n->add_option("--peers", a.peers, "raw-client: the echoes' endpoints, comma-separated");
  n->add_option("--addr-file", a.addr_file,
                "echo, coordinator: where to write the endpoint it bound");
  n->add_option("--bind", a.bind, "where to listen (default tcp://127.0.0.1:0)");
  n->add_flag("--host-aggregation", a.host_aggregation, "workers of one host sum first");
  n->add_option("--key-dir", a.keys, "CURVE: the key folder");
  Case& k = a.c;
  n->add_option("--kind", k.kind)->check(CLI::IsMember({"dense", "sparse"}));
  n->add_option("--floats", k.floats);
  n->add_option("--keys", k.keys);
  n->add_option("--dim", k.dim);
  n->add_option("--servers", k.servers);
  n->add_option("--workers", k.workers);
  n->add_option("--reps", k.reps);
  n->add_option("--colocate", k.colocate);
  n->add_option("--partitions", k.partitions);
}

}  // namespace
}  // namespace distopt::bench

int main(int argc, char** argv) {
  // The same allocator settings as `distopt` (cli/main.cc), so the node
  // processes measure what a job's nodes do: every step receives and frees
  // MB-sized buffers, which glibc would otherwise serve with fresh mmaps.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  CLI::App app{
      "distopt-bench-kv: push+pull throughput over ZeroMQ tcp on loopback, beside a raw ZeroMQ "
      "round trip of the same bytes",
      "distopt-bench-kv"};
  distopt::bench::KvBenchOptions options;
  distopt::bench::BenchNodeArgs node;
  distopt::bench::AddRunOptions(app, options);
  distopt::bench::AddNodeCommand(app, node);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  distopt::Status s;
  if (app.got_subcommand("node")) {
    s = distopt::bench::RunBenchNode(node);
  } else {
    options.self = distopt::SelfExecutable();
    if (const char* tmp = getenv("TMPDIR"); tmp != nullptr && *tmp != '\0') {
      options.scratch_parent = tmp;
    }
    s = distopt::bench::RunKvBench(options);
  }
  if (!s.ok()) {
    std::fprintf(stderr, "distopt-bench-kv%s: %s\n", app.got_subcommand("node") ? " node" : "",
                 s.ToString().c_str());
    return 1;
  }
  return 0;
}
