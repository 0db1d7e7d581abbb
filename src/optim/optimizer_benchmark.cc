// Throughput of Optimizer::Update: floats updated per second, for every rule,
// on a 1M-float dense slice (the bandwidth-bound case; items/s is floats/s)
// and on 16-float sparse rows (where the per-call work, the schedule and
// Adam's pow, shows). A plain copy of the same bytes is the ceiling.
// Single-threaded; run by hand:
//   build/<dir>/src/optim/optimizer_benchmark --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace distopt {
namespace {

std::vector<float> Pattern(size_t n, float scale) {
  // Deterministic values in [-scale, scale) with no zeros: every lane does
  // real work (FTRL's zero-weight select, Adam's sqrt) on every element.
  std::vector<float> v(n);
  uint32_t s = 2463534242u;
  for (float& x : v) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    x = scale * (static_cast<float>(s >> 8) / static_cast<float>(1u << 23) - 1.0f);
    if (x == 0.0f) x = scale * 0.5f;
  }
  return v;
}

OptimizerOptions Options(const std::string& variant) {
  OptimizerOptions o;
  o.lr = 1e-3f;
  if (variant == "sgd") {
  } else if (variant == "sgd_momentum") {
    o.momentum = 0.9f;
  } else if (variant == "sgd_nesterov") {
    o.momentum = 0.9f;
    o.nesterov = true;
  } else if (variant == "adagrad") {
    o.kind = "adagrad";
    o.initial_accumulator = 0.1f;
  } else if (variant == "adam") {
    o.kind = "adam";
  } else if (variant == "adamw") {
    o.kind = "adamw";
    o.weight_decay = 0.01f;
  } else if (variant == "ftrl") {
    o.kind = "ftrl";
    o.l1 = 0.5f;
    o.l2 = 0.1f;
  }
  return o;
}

// Updates `rows` runs of `dim` floats per iteration, each run with its own
// Update call, as a server does for a dense slice (rows = 1) or a batch of
// sparse rows.
void BM_Update(benchmark::State& state, const std::string& variant) {
  const size_t dim = static_cast<size_t>(state.range(0));
  const size_t rows = static_cast<size_t>(state.range(1));
  auto created = Optimizer::Create(Options(variant));
  if (!created.ok()) {
    state.SkipWithError(created.status().ToString().c_str());
    return;
  }
  const Optimizer& opt = **created;
  const size_t n = dim * rows;
  const size_t slots = static_cast<size_t>(opt.state_slots());
  std::vector<float> w = Pattern(n, 1.0f);
  const std::vector<float> g = Pattern(n, 0.1f);
  std::vector<float> st(slots * n);
  for (size_t r = 0; r < rows; ++r) opt.InitState(st.data() + r * slots * dim, dim);
  int64_t step = 1;
  for (auto _ : state) {
    for (size_t r = 0; r < rows; ++r) {
      opt.Update(w.data() + r * dim, g.data() + r * dim, st.data() + r * slots * dim, dim, step);
    }
    ++step;
    benchmark::DoNotOptimize(w.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
  // Bytes touched: read g; read and write w and every state slot.
  state.SetBytesProcessed(
      static_cast<int64_t>(state.iterations() * n * sizeof(float) * (1 + 2 * (1 + slots))));
}

// The ceiling for the simplest rule: w = g over the same 1M floats.
void BM_CopyBaseline(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<float> w(n);
  const std::vector<float> g = Pattern(n, 0.1f);
  for (auto _ : state) {
    std::copy(g.begin(), g.end(), w.begin());
    benchmark::DoNotOptimize(w.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n * sizeof(float) * 2));
}

constexpr int64_t kDense = 1 << 20;  // one 1M-float slice per iteration
constexpr int64_t kRowDim = 16;      // sparse embedding rows...
constexpr int64_t kRows = 1 << 16;   // ...1M floats in 64Ki Update calls

void Shapes(benchmark::internal::Benchmark* b) {
  b->Args({kDense, 1})->Args({kRowDim, kRows})->ArgNames({"dim", "rows"});
}

BENCHMARK_CAPTURE(BM_Update, sgd, std::string("sgd"))->Apply(Shapes);
BENCHMARK_CAPTURE(BM_Update, sgd_momentum, std::string("sgd_momentum"))->Apply(Shapes);
BENCHMARK_CAPTURE(BM_Update, sgd_nesterov, std::string("sgd_nesterov"))->Apply(Shapes);
BENCHMARK_CAPTURE(BM_Update, adagrad, std::string("adagrad"))->Apply(Shapes);
BENCHMARK_CAPTURE(BM_Update, adam, std::string("adam"))->Apply(Shapes);
BENCHMARK_CAPTURE(BM_Update, adamw, std::string("adamw"))->Apply(Shapes);
BENCHMARK_CAPTURE(BM_Update, ftrl, std::string("ftrl"))->Apply(Shapes);
BENCHMARK(BM_CopyBaseline)->Arg(kDense);

}  // namespace
}  // namespace distopt
