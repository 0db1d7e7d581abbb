#include "scenario.h"

#include <cmath>
#include <random>

#include "kv/testing/counting.h"

namespace distopt::scenario {

void Grads(uint32_t w, int k, const float* p, float* g, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    g[i] =
        0.5f * p[i] + std::sin(static_cast<float>(w * 13 + k * 7) + static_cast<float>(i) * 0.01f);
  }
}

Status TrainBsp(WorkerNode& node, uint32_t workers) {
  KvClient& kv = node.kv();
  const uint64_t n = Tables()[0].size;
  std::vector<float> p(n), g(n);
  RETURN_IF_ERROR(kv.Wait(kv.Pull(0, p, 0), Deadline::After(std::chrono::seconds(60))));
  for (int k = 0; k < kSteps; ++k) {
    Grads(node.rank(), k, p.data(), g.data(), n);
    RETURN_IF_ERROR(kv.Wait(kv.PushPull(0, g, p, k), Deadline::After(std::chrono::seconds(60))));
  }
  return Status::Ok();
}

std::vector<double> Reference(uint32_t workers) {
  auto t = Tables()[0];
  auto opt = std::move(*Optimizer::Create(t.optimizer));
  std::vector<float> p(t.size), sum(t.size), g(t.size);
  InitFill(t.init, 0, 0, p.data(), t.size);
  for (int k = 0; k < kSteps; ++k) {
    std::fill(sum.begin(), sum.end(), 0.0f);
    for (uint32_t w = 0; w < workers; ++w) {
      Grads(w, k, p.data(), g.data(), t.size);
      for (uint64_t i = 0; i < t.size; ++i) sum[i] += g[i];
    }
    if (workers > 1) {
      for (float& x : sum) x *= 1.0f / static_cast<float>(workers);
    }
    opt->Update(p.data(), sum.data(), nullptr, t.size, k + 1);
  }
  return std::vector<double>(p.begin(), p.end());
}

std::vector<TableSpec> CounterTables() { return CountingTables(kCounterDense, kCounterDim); }

std::vector<uint64_t> CounterKeys(uint32_t w, int k) {
  std::mt19937_64 rng(static_cast<uint64_t>(k) * 1000003 + w);
  std::vector<uint64_t> keys(200);
  for (auto& key : keys) key = rng() % kCounterKeys;
  return keys;
}

}  // namespace distopt::scenario
