// The server's sparse hot path without the network: SparseShard::Apply (one
// optimizer step per row) and Gather (the pull) on 100k distinct keys x dim
// 16 per batch, the batches drawn from a power law (P(k) ~ 1/k, as feature
// ids are) or uniformly (as `distopt-bench-kv` draws them) over 10M keys; and
// the FlatMap operations under them. Items/s are keys/s. Single-threaded; run
// by hand:
//   build/<dir>/bench/bench_sparse_shard --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "base/flat_map.h"
#include "kv/shard.h"
#include "optim/optimizer.h"

namespace distopt {
namespace {

constexpr size_t kKeys = 100000;          // distinct keys per batch
constexpr uint64_t kKeySpace = 10000000;  // keys drawn from [0, 10M)
constexpr uint32_t kDim = 16;
constexpr int kBatches = 4;  // batches cycled through, as distopt-bench-kv does

enum Dist : int64_t { kPowerLaw = 0, kUniform = 1 };

// kBatches batches of kKeys distinct keys each: a batch is what a server
// applies after aggregating the workers' pushes (duplicates merged).
const std::vector<std::vector<uint64_t>>& Batches(Dist dist) {
  static const auto* batches = [] {
    auto* b = new std::vector<std::vector<uint64_t>>[2];
    std::mt19937_64 rng(42);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    const double log_n = std::log(static_cast<double>(kKeySpace));
    for (int d = 0; d < 2; ++d) {
      for (int i = 0; i < kBatches; ++i) {
        FlatMap seen;
        std::vector<uint64_t> keys;
        while (keys.size() < kKeys) {
          uint64_t k = 0;
          if (d == kPowerLaw) {
            // Inverse CDF of density ~1/k on [1, N]; then scattered over the
            // key space (a bijection mod 2^64) so hot keys are not neighbours.
            k = static_cast<uint64_t>(std::exp(unit(rng) * log_n)) * 0x9E3779B97F4A7C15ull;
          } else {
            k = rng() % kKeySpace;
          }
          if (seen.Insert(k, 0).second) keys.push_back(k);
        }
        b[d].push_back(std::move(keys));
      }
    }
    return b;
  }();
  return batches[dist];
}

std::vector<float> Grads() {
  std::vector<float> g(kKeys * kDim);
  for (size_t i = 0; i < g.size(); ++i) g[i] = 1e-3f * static_cast<float>(i % 7 + 1);
  return g;
}

std::unique_ptr<Optimizer> MakeOptimizer(const std::string& kind) {
  OptimizerOptions o;
  o.kind = kind;
  o.lr = 1e-3f;
  return std::move(*Optimizer::Create(o));
}

TableSpec Spec() {
  TableSpec t;
  t.sparse = true;
  t.dim = kDim;
  return t;
}

// A shard that has seen every batch once: the steady state of training,
// where most keys of a batch already have a row.
std::unique_ptr<SparseShard> WarmShard(const Optimizer* opt, Dist dist) {
  auto shard = std::make_unique<SparseShard>(Spec(), opt);
  const std::vector<float> g = Grads();
  for (const auto& keys : Batches(dist)) {
    for (size_t i = 0; i < keys.size(); ++i) shard->Apply(keys[i], g.data() + i * kDim);
  }
  return shard;
}

// The server's loop today: one Apply (one virtual Update) per key.
void BM_ShardApplyPerKey(benchmark::State& state, const std::string& kind) {
  const Dist dist = static_cast<Dist>(state.range(0));
  auto opt = MakeOptimizer(kind);
  auto shard = WarmShard(opt.get(), dist);
  const std::vector<float> g = Grads();
  int b = 0;
  for (auto _ : state) {
    const auto& keys = Batches(dist)[b++ % kBatches];
    for (size_t i = 0; i < keys.size(); ++i) shard->Apply(keys[i], g.data() + i * kDim);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kKeys));
  state.counters["rows"] = static_cast<double>(shard->num_rows());
}

// The same batches through ApplyBatch: one call per batch.
void BM_ShardApplyBatch(benchmark::State& state, const std::string& kind) {
  const Dist dist = static_cast<Dist>(state.range(0));
  auto opt = MakeOptimizer(kind);
  auto shard = WarmShard(opt.get(), dist);
  const std::vector<float> g = Grads();
  int b = 0;
  for (auto _ : state) shard->ApplyBatch(Batches(dist)[b++ % kBatches], g.data());
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kKeys));
  state.counters["rows"] = static_cast<double>(shard->num_rows());
}

void BM_ShardGather(benchmark::State& state) {
  const Dist dist = static_cast<Dist>(state.range(0));
  auto opt = MakeOptimizer("sgd");
  auto shard = WarmShard(opt.get(), dist);
  std::vector<float> out(kKeys * kDim);
  int b = 0;
  for (auto _ : state) {
    shard->Gather(Batches(dist)[b++ % kBatches], out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kKeys));
}

// A fresh shard per iteration: every key creates its row (the first steps
// of a job, and every new feature id later); per key (range(1) = 0) or in
// one ApplyBatch.
void BM_ShardCreateRows(benchmark::State& state) {
  const Dist dist = static_cast<Dist>(state.range(0));
  const bool batch = state.range(1) != 0;
  auto opt = MakeOptimizer("adam");
  const std::vector<float> g = Grads();
  const auto& keys = Batches(dist)[0];
  for (auto _ : state) {
    SparseShard shard(Spec(), opt.get());
    if (batch) {
      shard.ApplyBatch(keys, g.data());
    } else {
      for (size_t i = 0; i < keys.size(); ++i) shard.Apply(keys[i], g.data() + i * kDim);
    }
    benchmark::DoNotOptimize(shard.values().data());
    state.PauseTiming();  // not the destructor
    { SparseShard gone = std::move(shard); }
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kKeys));
}

// The server's aggregation and the client's dedup: 100k keys into a fresh
// map, without (range(1) = 0) or with a Reserve first.
void BM_FlatMapInsert(benchmark::State& state) {
  const Dist dist = static_cast<Dist>(state.range(0));
  const bool reserve = state.range(1) != 0;
  const auto& keys = Batches(dist)[0];
  for (auto _ : state) {
    FlatMap m;
    if (reserve) m.Reserve(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) m.Insert(keys[i], static_cast<uint32_t>(i));
    benchmark::DoNotOptimize(m.size());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kKeys));
}

// Lookups of one batch in a map holding every batch (a warm shard's index),
// with the key range(1) lookups ahead prefetched (0: none).
void BM_FlatMapFind(benchmark::State& state) {
  const Dist dist = static_cast<Dist>(state.range(0));
  const size_t ahead = static_cast<size_t>(state.range(1));
  FlatMap m;
  uint32_t n = 0;
  for (const auto& keys : Batches(dist)) {
    for (uint64_t k : keys) m.Insert(k, n++);
  }
  int b = 0;
  for (auto _ : state) {
    const auto& keys = Batches(dist)[b++ % kBatches];
    uint64_t sum = 0;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (ahead > 0 && i + ahead < keys.size()) m.Prefetch(keys[i + ahead]);
      sum += *m.Find(keys[i]);
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kKeys));
}

void Dists(benchmark::internal::Benchmark* b) {
  b->ArgName("uniform")->Arg(kPowerLaw)->Arg(kUniform);
}

BENCHMARK_CAPTURE(BM_ShardApplyPerKey, sgd, std::string("sgd"))->Apply(Dists);
BENCHMARK_CAPTURE(BM_ShardApplyBatch, sgd, std::string("sgd"))->Apply(Dists);
BENCHMARK_CAPTURE(BM_ShardApplyPerKey, adam, std::string("adam"))->Apply(Dists);
BENCHMARK_CAPTURE(BM_ShardApplyBatch, adam, std::string("adam"))->Apply(Dists);
BENCHMARK(BM_ShardGather)->Apply(Dists);
BENCHMARK(BM_ShardCreateRows)
    ->ArgNames({"uniform", "batch"})
    ->Args({kPowerLaw, 0})
    ->Args({kPowerLaw, 1})
    ->Args({kUniform, 0})
    ->Args({kUniform, 1});
BENCHMARK(BM_FlatMapInsert)
    ->ArgNames({"uniform", "reserve"})
    ->Args({kPowerLaw, 0})
    ->Args({kPowerLaw, 1})
    ->Args({kUniform, 0})
    ->Args({kUniform, 1});
BENCHMARK(BM_FlatMapFind)
    ->ArgNames({"uniform", "prefetch"})
    ->ArgsProduct({{kPowerLaw, kUniform}, {0, 8, 16, 32}});

}  // namespace
}  // namespace distopt
