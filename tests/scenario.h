// The BSP scenario shared by kv_process_test and its node program: a dense
// table trained with parameter-dependent gradients, and the single-process
// reference the distributed result must equal.
#ifndef DISTOPT_TESTS_SCENARIO_H_
#define DISTOPT_TESTS_SCENARIO_H_

#include <vector>

#include "kv/node.h"

namespace distopt::scenario {

inline constexpr int kSteps = 5;
inline constexpr float kLr = 0.1f;

inline std::vector<TableSpec> Tables() {
  TableSpec t;
  t.id = 0;
  t.name = "w";
  t.size = 50000;
  t.init = {InitKind::kUniform, 0.5f, 7};
  t.optimizer.kind = "sgd";
  t.optimizer.lr = kLr;
  return {t};
}

// Worker w's gradient at step k from parameters p (depends on p, so a pull
// of the wrong clock changes the result). Compiled once in scenario.cc and
// linked into both programs, so both compute bit-identical gradients.
void Grads(uint32_t w, int k, const float* p, float* g, uint64_t n);

Status TrainBsp(WorkerNode& node, uint32_t workers);

// One process applying the mean gradient step by step with the same SGD
// rule the servers run; only the order of the sum over workers may differ.
std::vector<double> Reference(uint32_t workers);

// The counting scenario of the replication test: every push is -1 under
// SGD with lr 1 and zero initial values, so a parameter counts the pushes
// applied to it. A dense table cut over the servers and a sparse one.
inline constexpr uint64_t kCounterDense = 3 * 16384 + 11;
inline constexpr uint32_t kCounterDim = 2;
inline constexpr uint64_t kCounterKeys = 5000;
std::vector<TableSpec> CounterTables();
// The sparse keys worker w pushes at step k (duplicates included).
std::vector<uint64_t> CounterKeys(uint32_t w, int k);

}  // namespace distopt::scenario

#endif  // DISTOPT_TESTS_SCENARIO_H_
