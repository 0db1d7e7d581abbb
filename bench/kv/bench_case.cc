#include "bench_case.h"

#include <charconv>
#include <nlohmann/json.hpp>
#include <span>
#include <utility>

#include "base/file_util.h"

namespace distopt::bench {

std::vector<std::string> Case::Args() const {
  return {"--kind",       kind,
          "--floats",     std::to_string(floats),
          "--keys",       std::to_string(keys),
          "--dim",        std::to_string(dim),
          "--servers",    std::to_string(servers),
          "--workers",    std::to_string(workers),
          "--reps",       std::to_string(reps),
          "--colocate",   colocate ? "1" : "0",
          "--partitions", std::to_string(partitions)};
}

Result<uint64_t> ParseBytes(const std::string& text) {
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || p == text.data()) {
    return InvalidArgumentError("'" + text + "' is not a size (examples: 4096, 1MiB, 16MiB, 2GiB)");
  }
  const std::string unit(p, text.data() + text.size());
  static constexpr std::pair<const char*, uint64_t> kUnits[] = {{"", 1},
                                                                {"B", 1},
                                                                {"K", 1ull << 10},
                                                                {"k", 1ull << 10},
                                                                {"KiB", 1ull << 10},
                                                                {"M", 1ull << 20},
                                                                {"MiB", 1ull << 20},
                                                                {"G", 1ull << 30},
                                                                {"GiB", 1ull << 30},
                                                                {"KB", 1000},
                                                                {"MB", 1000000},
                                                                {"GB", 1000000000}};
  for (const auto& [name, mult] : kUnits) {
    if (unit == name) return n * mult;
  }
  return InvalidArgumentError("unknown size unit '" + unit + "' in '" + text + "'");
}

namespace {

Case DenseCase(uint64_t bytes, uint32_t servers, uint32_t workers, const KvBenchPlan& plan) {
  Case c;
  c.kind = "dense";
  c.floats = bytes / 4;
  c.servers = servers;
  c.workers = workers;
  c.colocate = plan.colocate;
  c.partitions = static_cast<uint32_t>(plan.partitions);
  c.reps = plan.reps > 0 ? plan.reps : (bytes >= (8u << 20) ? 15 : 60);
  return c;
}

Case SparseCase(uint32_t servers, uint32_t workers, const KvBenchPlan& plan) {
  Case c;
  c.kind = "sparse";
  c.keys = static_cast<uint64_t>(plan.sparse_keys);
  c.dim = static_cast<uint32_t>(plan.sparse_dim);
  c.servers = servers;
  c.workers = workers;
  c.colocate = plan.colocate;
  c.partitions = static_cast<uint32_t>(plan.partitions);
  c.reps = plan.reps > 0 ? plan.reps : 15;
  return c;
}

}  // namespace

Result<std::vector<Case>> PlanCases(const KvBenchPlan& plan) {
  std::vector<uint64_t> sizes;
  for (const auto& s : plan.sizes) {
    auto b = ParseBytes(s);
    if (!b.ok()) return b.status().WithContext("--size");
    sizes.push_back(*b);
  }
  if (sizes.empty()) sizes = {1ull << 20, 16ull << 20};
  // Co-located: one server per worker, in the workers' processes.
  const std::vector<int64_t> servers = plan.colocate ? std::vector<int64_t>{0} : plan.servers;
  std::vector<Case> cases;
  for (int64_t s : servers) {
    for (int64_t w : plan.workers) {
      if (plan.colocate) s = w;
      if (s < 1 || w < 1) return InvalidArgumentError("--servers and --workers must be >= 1");
      const auto su = static_cast<uint32_t>(s), wu = static_cast<uint32_t>(w);
      if (!plan.no_dense) {
        for (uint64_t b : sizes) cases.push_back(DenseCase(b, su, wu, plan));
      }
      if (!plan.no_sparse) cases.push_back(SparseCase(su, wu, plan));
    }
  }
  // Here, not in the processes: a table the coordinator refuses would leave
  // the nodes waiting for a job that never starts.
  for (const Case& c : cases) {
    RETURN_IF_ERROR(ValidateTables(BenchTables(c)).WithContext(CaseName(c)));
  }
  return cases;
}

std::string CaseName(const Case& c) {
  std::string size = c.kind == "dense"
                         ? (c.floats * 4 >= (1u << 20) ? std::to_string(c.floats * 4 >> 20) + "MiB"
                                                       : std::to_string(c.floats * 4 >> 10) + "KiB")
                         : std::to_string(c.keys / 1000) + "kx" + std::to_string(c.dim);
  return c.kind + "-" + size + "-s" + std::to_string(c.servers) + "w" + std::to_string(c.workers) +
         (c.colocate ? "-colo" : "") + (c.partitions ? "-p" + std::to_string(c.partitions) : "");
}

std::vector<TableSpec> BenchTables(const Case& c) {
  TableSpec t;
  t.id = 0;
  t.name = "bench";
  t.sparse = c.kind == "sparse";
  t.size = c.floats;
  t.dim = c.dim;
  t.optimizer.kind = "sgd";
  t.optimizer.lr = 1e-6f;
  return {t};
}

Status WriteSecondsFile(const std::string& path, double seconds) {
  const std::string text = nlohmann::json{{"seconds", seconds}}.dump() + "\n";
  return WriteFileAtomically(
      path, {std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size())});
}

Result<double> ReadSecondsFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path, 4096));
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("seconds") || !j["seconds"].is_number()) {
    return DataLossError("bad result in " + path + ": '" + text + "'");
  }
  return j["seconds"].get<double>();
}

}  // namespace distopt::bench
