// Dataset and Batch: examples held in memory, dense (row-major matrix) or
// sparse (CSR), with one float label per row. A Batch is a view (the dataset
// plus a span of row indices): batching never copies rows. A Dataset is
// immutable once read and safe to share between threads.
//
//   ASSIGN_OR_RETURN(Dataset train, ReadIdx(images, labels, {}));
//   ASSIGN_OR_RETURN(BatchIterator it, BatchIterator::Create(
//       &train, {.batch_size = 64, .shards = {rank}, .num_shards = W}));
//   it.StartEpoch(0);
//   Batch b;
//   while (it.Next(&b)) model.ForwardBackward(b, ...);
#ifndef DISTOPT_DATA_DATASET_H_
#define DISTOPT_DATA_DATASET_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "distopt/status.h"

namespace distopt {

struct Dataset {
  size_t num_rows = 0;
  // Dense: number of columns. Sparse: 1 + the largest feature id seen (or
  // the configured feature count).
  size_t num_features = 0;
  bool sparse = false;

  std::vector<float> dense;       // dense only: num_rows * num_features
  std::vector<uint64_t> row_ptr;  // sparse only: num_rows + 1 offsets
  std::vector<uint64_t> col_idx;  // sparse only: zero-based ids, strictly ascending per row
  std::vector<float> col_val;     // sparse only
  std::vector<float> labels;      // num_rows

  const float* DenseRow(size_t r) const { return dense.data() + r * num_features; }
};

struct Batch {
  const Dataset* data = nullptr;
  std::span<const uint32_t> rows;  // indices into *data
  size_t size() const { return rows.size(); }
};

// A batch covering rows [begin, end) of `data` in order; `storage` receives
// the index list and must outlive the batch (evaluation uses this).
Batch RangeBatch(const Dataset& data, size_t begin, size_t end, std::vector<uint32_t>* storage);

}  // namespace distopt

#endif  // DISTOPT_DATA_DATASET_H_
