#include "ml/model_util.h"

#include <algorithm>
#include <string>

namespace distopt::ml_internal {
namespace {

std::string Str(double v) {
  // Labels are usually small integers; print them without a trailing ".000000".
  if (v == std::floor(v) && std::abs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  return std::to_string(v);
}

}  // namespace

Status CheckBatch(const Batch& batch, bool allow_empty) {
  const Dataset* d = batch.data;
  if (d == nullptr) return InvalidArgumentError("batch has no dataset");
  if (batch.rows.empty() && !allow_empty) return InvalidArgumentError("batch is empty");
  if (d->labels.size() != d->num_rows) {
    return InvalidArgumentError("dataset has " + std::to_string(d->labels.size()) + " labels for " +
                                std::to_string(d->num_rows) + " rows");
  }
  if (d->sparse) {
    if (d->row_ptr.size() != d->num_rows + 1 || d->col_idx.size() != d->col_val.size() ||
        d->row_ptr.back() != d->col_idx.size()) {
      return InvalidArgumentError("sparse dataset has inconsistent CSR arrays");
    }
  } else if (d->dense.size() != d->num_rows * d->num_features) {
    return InvalidArgumentError("dense dataset has " + std::to_string(d->dense.size()) +
                                " values for " + std::to_string(d->num_rows) + " x " +
                                std::to_string(d->num_features));
  }
  for (uint32_t r : batch.rows) {
    if (r >= d->num_rows) {
      return InvalidArgumentError("batch row " + std::to_string(r) + " is outside the dataset (" +
                                  std::to_string(d->num_rows) + " rows)");
    }
    if (d->sparse && (d->row_ptr[r] > d->row_ptr[r + 1] || d->row_ptr[r + 1] > d->col_idx.size())) {
      return InvalidArgumentError("row " + std::to_string(r) + ": CSR offsets out of order");
    }
  }
  return Status::Ok();
}

Status CheckFeaturesFit(const Batch& batch, uint64_t num_features) {
  const Dataset& d = *batch.data;
  if (!d.sparse) {
    if (d.num_features != num_features) {
      return InvalidArgumentError("dataset has " + std::to_string(d.num_features) +
                                  " features, the model was built for " +
                                  std::to_string(num_features));
    }
    return Status::Ok();
  }
  for (uint32_t r : batch.rows) {
    for (uint64_t p = d.row_ptr[r]; p < d.row_ptr[r + 1]; ++p) {
      if (d.col_idx[p] >= num_features) {
        return InvalidArgumentError("row " + std::to_string(r) + ": feature id " +
                                    std::to_string(d.col_idx[p]) + " is >= num_features (" +
                                    std::to_string(num_features) + ")");
      }
    }
  }
  return Status::Ok();
}

Status CheckFiniteLabels(const Batch& batch) {
  for (uint32_t r : batch.rows) {
    if (!std::isfinite(batch.data->labels[r])) {
      return InvalidArgumentError("row " + std::to_string(r) + ": label is not a finite number");
    }
  }
  return Status::Ok();
}

Status CheckClassLabels(const Batch& batch, int classes) {
  for (uint32_t r : batch.rows) {
    const float y = batch.data->labels[r];
    if (!(y >= 0.0f && y < static_cast<float>(classes)) || y != std::floor(y)) {
      return InvalidArgumentError("row " + std::to_string(r) + ": label " + Str(y) +
                                  " is not a class in [0, " + std::to_string(classes) + ")");
    }
  }
  return Status::Ok();
}

Status CheckParams(std::span<const TableDecl> tables, const ParamSet& params) {
  if (params.values.size() != tables.size()) {
    return InvalidArgumentError("params have " + std::to_string(params.values.size()) +
                                " tables, the model declares " + std::to_string(tables.size()));
  }
  for (size_t t = 0; t < tables.size(); ++t) {
    const TableDecl& decl = tables[t];
    const size_t n = params.values[t].size();
    if (decl.kind == TableKind::kDense) {
      if (n != decl.size) {
        return InvalidArgumentError("table '" + decl.name + "': " + std::to_string(n) +
                                    " values, expected " + std::to_string(decl.size));
      }
      continue;
    }
    if (params.keys.size() <= t) {
      return InvalidArgumentError("table '" + decl.name + "' is sparse but params have no keys");
    }
    std::span<const uint64_t> keys = params.keys[t];
    if (n != keys.size() * decl.dim) {
      return InvalidArgumentError("table '" + decl.name + "': " + std::to_string(n) +
                                  " values for " + std::to_string(keys.size()) + " keys of dim " +
                                  std::to_string(decl.dim));
    }
    for (size_t i = 1; i < keys.size(); ++i) {
      if (keys[i] <= keys[i - 1]) {
        return InvalidArgumentError("table '" + decl.name +
                                    "': keys are not strictly ascending at position " +
                                    std::to_string(i));
      }
    }
  }
  return Status::Ok();
}

Status CheckDenseTableSize(const std::string& name, uint64_t rows, uint64_t cols) {
  constexpr uint64_t kMax = uint64_t{1} << 31;
  if (rows == 0 || cols == 0 || rows > kMax || cols > kMax || rows * cols > kMax) {
    return InvalidArgumentError("table '" + name + "' would be " + std::to_string(rows) + " x " +
                                std::to_string(cols) + " floats (must be non-empty and < 2^31)");
  }
  return Status::Ok();
}

void ResizeGrads(const ParamSet& params, GradSet* grads) {
  grads->values.resize(params.values.size());
  for (size_t t = 0; t < params.values.size(); ++t) {
    grads->values[t].resize(params.values[t].size());
  }
}

void CollectFeatureIds(const Batch& batch, std::vector<uint64_t>* ids) {
  ids->clear();
  // CollectKeys cannot fail, so it must not trust the batch either: rows
  // ForwardBackward will reject are skipped here.
  if (!CheckBatch(batch, /*allow_empty=*/true).ok()) return;
  for (uint32_t r : batch.rows) {
    ForEachFeature(*batch.data, r, [ids](uint64_t id, float) { ids->push_back(id); });
  }
  std::sort(ids->begin(), ids->end());
  ids->erase(std::unique(ids->begin(), ids->end()), ids->end());
}

Status MapFeaturesToSlots(const Batch& batch, std::span<const uint64_t> keys,
                          const std::string& table, std::vector<uint32_t>* slots) {
  slots->clear();
  uint64_t missing = 0;
  uint32_t missing_row = 0;
  bool ok = true;
  for (uint32_t r : batch.rows) {
    ForEachFeature(*batch.data, r, [&](uint64_t id, float) {
      auto it = std::lower_bound(keys.begin(), keys.end(), id);
      if (it == keys.end() || *it != id) {
        if (ok) {
          missing = id;
          missing_row = r;
          ok = false;
        }
        slots->push_back(0);
        return;
      }
      slots->push_back(static_cast<uint32_t>(it - keys.begin()));
    });
  }
  if (!ok) {
    return InvalidArgumentError("table '" + table + "': feature id " + std::to_string(missing) +
                                " of row " + std::to_string(missing_row) +
                                " is not among the pulled keys");
  }
  return Status::Ok();
}

}  // namespace distopt::ml_internal
