// Forward+backward of the seed model (784 -> 128 relu -> 10 softmax) on one
// thread, the hot path of every worker step. Reports samples/s.
//
//   build/.../src/ml/mlp_benchmark --benchmark_min_time=2
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "base/init.h"
#include "ml/mlp.h"

namespace distopt {
namespace {

struct Fixture {
  Dataset data;
  std::unique_ptr<Mlp> model;
  std::vector<std::vector<float>> tables;
  ParamSet params;

  explicit Fixture(size_t rows) {
    // MNIST-like input: 784 pixels in [0, 1], about 80% zeros.
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    data.num_rows = rows;
    data.num_features = 784;
    data.dense.resize(rows * 784);
    for (float& v : data.dense) v = u(rng) < 0.8f ? 0.0f : u(rng);
    data.labels.resize(rows);
    for (float& y : data.labels) y = static_cast<float>(rng() % 10);
    model = std::move(Mlp::Create(784, {128}, Activation::kRelu, 10, 1)).value();
    const std::vector<TableDecl> decls = model->Tables();
    tables.resize(decls.size());
    for (size_t t = 0; t < decls.size(); ++t) {
      tables[t].resize(decls[t].size);
      InitFill(decls[t].init, static_cast<uint32_t>(t), 0, tables[t].data(), decls[t].size);
      params.values.emplace_back(tables[t]);
      params.keys.emplace_back();
    }
  }
};

// Shuffled rows, as a training batch is: exercises the gather.
void BM_MlpForwardBackward(benchmark::State& state) {
  const auto batch_size = static_cast<size_t>(state.range(0));
  Fixture f(4096);
  std::vector<uint32_t> order(f.data.num_rows);
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<uint32_t>(i);
  std::shuffle(order.begin(), order.end(), std::mt19937(2));
  GradSet grads;
  size_t pos = 0;
  for (auto _ : state) {
    if (pos + batch_size > order.size()) pos = 0;
    Batch b{&f.data, std::span<const uint32_t>(order.data() + pos, batch_size)};
    pos += batch_size;
    Result<float> loss = f.model->ForwardBackward(b, f.params, &grads);
    if (!loss.ok()) {
      state.SkipWithError(loss.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(*loss);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch_size));
  state.counters["samples/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * batch_size), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MlpForwardBackward)->Arg(64)->Arg(256)->Unit(benchmark::kMicrosecond);

// Inference only (evaluation path).
void BM_MlpPredict(benchmark::State& state) {
  const auto batch_size = static_cast<size_t>(state.range(0));
  Fixture f(batch_size);
  std::vector<uint32_t> rows;
  Batch b = RangeBatch(f.data, 0, batch_size, &rows);
  Eigen::MatrixXf out;
  for (auto _ : state) {
    Status s = f.model->Predict(b, f.params, &out);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["samples/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * batch_size), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MlpPredict)->Arg(256)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace distopt
