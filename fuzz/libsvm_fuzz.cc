// libFuzzer target for the LibSVM reader: arbitrary bytes must give either a
// "name:line: ..." error or a Dataset whose CSR invariants hold (and that a
// BatchIterator can walk). The first byte picks the options.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "data/batcher.h"
#include "data/libsvm_reader.h"

namespace {

void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace distopt;
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  LibSvmOptions options;
  options.zero_based = (flags & 1) != 0;
  options.skip_bad_lines = (flags & 2) != 0;
  options.num_features = (flags & 4) != 0 ? flags >> 3 : 0;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  ReadStats stats;
  Result<Dataset> result = ParseLibSvm(text, "fuzz.svm", options, &stats);
  if (!result.ok()) {
    Require(!options.skip_bad_lines, "skip mode never fails on a line");
    Require(result.status().message().rfind("fuzz.svm:", 0) == 0, "message starts with name:");
    return 0;
  }
  const Dataset& d = *result;
  Require(d.sparse, "sparse");
  Require(d.labels.size() == d.num_rows && stats.rows == d.num_rows, "one label per row");
  Require(d.row_ptr.size() == d.num_rows + 1 && d.row_ptr[0] == 0, "row_ptr shape");
  Require(d.row_ptr.back() == d.col_idx.size() && d.col_val.size() == d.col_idx.size(),
          "row_ptr end");
  Require(options.skip_bad_lines || stats.bad_lines == 0, "strict mode skips nothing");
  Require((stats.bad_lines == 0) == stats.first_error.empty(), "first_error iff bad lines");
  if (options.num_features > 0) Require(d.num_features == options.num_features, "num_features");
  for (size_t r = 0; r < d.num_rows; ++r) {
    Require(std::isfinite(d.labels[r]), "finite label");
    Require(d.row_ptr[r] <= d.row_ptr[r + 1], "row_ptr ascending");
    for (uint64_t k = d.row_ptr[r]; k < d.row_ptr[r + 1]; ++k) {
      Require(d.col_idx[k] < d.num_features, "id below num_features");
      Require(k == d.row_ptr[r] || d.col_idx[k - 1] < d.col_idx[k], "ids strictly ascending");
      Require(std::isfinite(d.col_val[k]), "finite value");
    }
  }

  // Walk the rows in both batching modes with sizes picked from the flags.
  const int num_shards = 1 + (flags >> 6);
  for (bool global : {false, true}) {
    Result<BatchIterator> it = BatchIterator::Create(&d, {.batch_size = 1 + size_t{flags} % 5,
                                                          .seed = flags,
                                                          .drop_last = (flags & 8) != 0,
                                                          .shards = {num_shards - 1},
                                                          .num_shards = num_shards,
                                                          .global_order = global});
    Require(it.ok(), "valid batch options accepted");
    size_t batches = 0;
    Batch b;
    while (it->Next(&b)) {
      ++batches;
      for (uint32_t r : b.rows) Require(r < d.num_rows, "batch row in range");
    }
    Require(batches == it->batches_per_epoch(), "batches_per_epoch");
  }
  return 0;
}
