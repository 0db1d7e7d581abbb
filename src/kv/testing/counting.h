// Tables whose parameters count the pushes applied to them (test support):
// zeros to start, SGD with lr 1, and every push a gradient of -1, so after
// the job a dense entry or a sparse row holds how many pushes reached it.
// Tests compare that with the pushes their workers got acknowledged.
#ifndef DISTOPT_KV_TESTING_COUNTING_H_
#define DISTOPT_KV_TESTING_COUNTING_H_

#include <vector>

#include "kv/layout.h"

namespace distopt {

// Table 0: dense, `dense_size` floats; table 1: sparse rows of `dim` floats.
inline std::vector<TableSpec> CountingTables(uint64_t dense_size, uint32_t dim) {
  std::vector<TableSpec> t(2);
  t[0] = {.id = 0, .name = "count", .sparse = false, .size = dense_size};
  t[1] = {.id = 1, .name = "rows", .sparse = true, .dim = dim};
  for (auto& spec : t) {
    spec.init = {InitKind::kZeros, 0.0f, 1};
    spec.optimizer.kind = "sgd";
    spec.optimizer.lr = 1.0f;
  }
  return t;
}

}  // namespace distopt

#endif  // DISTOPT_KV_TESTING_COUNTING_H_
