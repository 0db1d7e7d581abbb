// Test helpers for the ml layer (tests only, not linked into distopt_ml):
// datasets built by hand, LocalTables (an in-memory stand-in for the
// parameter servers: pulls ParamSets, applies plain SGD) and a
// finite-difference gradient checker. Single-threaded.
#ifndef DISTOPT_ML_TEST_UTIL_H_
#define DISTOPT_ML_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "base/init.h"
#include "data/dataset.h"
#include "ml/model.h"

namespace distopt::ml_test {

inline Dataset DenseDataset(size_t features, std::vector<float> values, std::vector<float> labels) {
  Dataset d;
  d.num_features = features;
  d.num_rows = labels.size();
  d.dense = std::move(values);
  d.labels = std::move(labels);
  return d;
}

// CSR copy of a dense dataset (zeros dropped); `extra_features` widens the
// id space without touching any row.
inline Dataset ToSparse(const Dataset& dense, size_t extra_features = 0) {
  Dataset s;
  s.sparse = true;
  s.num_rows = dense.num_rows;
  s.num_features = dense.num_features + extra_features;
  s.labels = dense.labels;
  s.row_ptr.push_back(0);
  for (size_t r = 0; r < dense.num_rows; ++r) {
    for (size_t j = 0; j < dense.num_features; ++j) {
      const float v = dense.DenseRow(r)[j];
      if (v != 0.0f) {
        s.col_idx.push_back(j);
        s.col_val.push_back(v);
      }
    }
    s.row_ptr.push_back(s.col_idx.size());
  }
  return s;
}

// Sparse dataset from per-row (id, value) lists.
inline Dataset SparseDataset(size_t features,
                             const std::vector<std::vector<std::pair<uint64_t, float>>>& rows,
                             std::vector<float> labels) {
  Dataset s;
  s.sparse = true;
  s.num_rows = rows.size();
  s.num_features = features;
  s.labels = std::move(labels);
  s.row_ptr.push_back(0);
  for (const auto& row : rows) {
    for (auto [id, v] : row) {
      s.col_idx.push_back(id);
      s.col_val.push_back(v);
    }
    s.row_ptr.push_back(s.col_idx.size());
  }
  return s;
}

// A batch over all rows of `d` in the given order; `storage` must outlive it.
inline Batch AllRows(const Dataset& d, std::vector<uint32_t>* storage) {
  return RangeBatch(d, 0, d.num_rows, storage);
}

// The model's parameters held in memory: dense tables whole, sparse tables
// as key -> row, both initialized exactly as the servers would (InitFill with
// the table's index as table id).
class LocalTables {
 public:
  explicit LocalTables(const Model& model) : decls_(model.Tables()) {
    dense_.resize(decls_.size());
    sparse_.resize(decls_.size());
    for (size_t t = 0; t < decls_.size(); ++t) {
      if (decls_[t].kind == TableKind::kDense) {
        dense_[t].resize(decls_[t].size);
        InitFill(decls_[t].init, static_cast<uint32_t>(t), 0, dense_[t].data(), decls_[t].size);
      }
    }
  }

  // Fills `keys` (for sparse tables) and values for `batch`, creating rows
  // on first touch; the returned ParamSet points into this object.
  ParamSet Pull(const Model& model, const Batch& batch) {
    model.CollectKeys(batch, &keys_);
    return PullKeys(keys_);
  }

  ParamSet PullKeys(const std::vector<std::vector<uint64_t>>& keys) {
    keys_ = keys;
    values_.assign(decls_.size(), {});
    ParamSet p;
    for (size_t t = 0; t < decls_.size(); ++t) {
      if (decls_[t].kind == TableKind::kDense) {
        p.values.emplace_back(dense_[t]);
        p.keys.emplace_back();
        continue;
      }
      const uint32_t dim = decls_[t].dim;
      for (uint64_t k : keys_[t]) {
        std::vector<float>& row = Row(t, k);
        values_[t].insert(values_[t].end(), row.begin(), row.begin() + dim);
      }
      p.values.emplace_back(values_[t]);
      p.keys.emplace_back(keys_[t]);
    }
    return p;
  }

  // params -= lr * grads for the keys of the last Pull.
  void ApplySgd(const GradSet& grads, float lr) {
    for (size_t t = 0; t < decls_.size(); ++t) {
      if (decls_[t].kind == TableKind::kDense) {
        for (size_t i = 0; i < dense_[t].size(); ++i) dense_[t][i] -= lr * grads.values[t][i];
        continue;
      }
      const uint32_t dim = decls_[t].dim;
      for (size_t i = 0; i < keys_[t].size(); ++i) {
        std::vector<float>& row = Row(t, keys_[t][i]);
        for (uint32_t j = 0; j < dim; ++j) row[j] -= lr * grads.values[t][i * dim + j];
      }
    }
  }

  std::vector<float>& dense(size_t t) { return dense_[t]; }

 private:
  std::vector<float>& Row(size_t t, uint64_t key) {
    auto [it, inserted] = sparse_[t].try_emplace(key);
    if (inserted) {
      it->second.resize(decls_[t].dim);
      InitFill(decls_[t].init, static_cast<uint32_t>(t), key * decls_[t].dim, it->second.data(),
               decls_[t].dim);
    }
    return it->second;
  }

  std::vector<TableDecl> decls_;
  std::vector<std::vector<float>> dense_;
  std::vector<std::map<uint64_t, std::vector<float>>> sparse_;
  std::vector<std::vector<uint64_t>> keys_;
  std::vector<std::vector<float>> values_;
};

// Owned parameter values for a batch, randomized, for gradient checks.
struct OwnedParams {
  std::vector<std::vector<float>> values;
  std::vector<std::vector<uint64_t>> keys;

  ParamSet View() const {
    ParamSet p;
    for (const auto& v : values) p.values.emplace_back(v);
    for (const auto& k : keys) p.keys.emplace_back(k);
    return p;
  }
};

inline OwnedParams RandomParams(const Model& model, const Batch& batch, float scale,
                                uint32_t seed) {
  OwnedParams p;
  model.CollectKeys(batch, &p.keys);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  for (size_t t = 0; t < p.keys.size(); ++t) {
    const TableDecl decl = model.Tables()[t];
    const size_t n = decl.kind == TableKind::kDense ? decl.size : p.keys[t].size() * decl.dim;
    std::vector<float> v(n);
    for (float& x : v) x = u(rng);
    p.values.push_back(std::move(v));
  }
  return p;
}

struct GradCheckOptions {
  double eps = 1e-3;
  double tolerance = 1e-2;          // on |analytic - numeric| / max(|analytic|, |numeric|, floor)
  double floor = 2e-2;              // gradients below this are compared absolutely
  size_t max_coords_per_table = 0;  // 0: every coordinate; else a random sample
  uint32_t seed = 7;
  // If not empty: check exactly these (table, index) coordinates.
  std::vector<std::pair<size_t, size_t>> only;
};

struct GradCheckResult {
  size_t checked = 0;
  size_t failed = 0;
  // Coordinates where the loss has a kink within +-eps (relu at 0): the
  // one-sided slopes disagree, so no finite difference is meaningful there.
  size_t skipped = 0;
  double worst = 0.0;
  std::string worst_where;
};

// Compares `analytic` (what ForwardBackward returned for `params`) against
// central differences of the loss, perturbing one float parameter at a time.
// The perturbation is the float step actually taken, measured in double.
inline GradCheckResult CheckGradient(Model* model, const Batch& batch, OwnedParams params,
                                     const GradSet& analytic,
                                     const GradCheckOptions& o = GradCheckOptions()) {
  GradCheckResult res;
  GradSet scratch;
  std::mt19937 rng(o.seed);
  const auto loss_at = [&]() -> double {
    Result<float> l = model->ForwardBackward(batch, params.View(), &scratch);
    return l.ok() ? static_cast<double>(*l) : std::nan("");
  };
  const double f0 = loss_at();
  const std::vector<TableDecl> tables = model->Tables();
  for (size_t t = 0; t < params.values.size(); ++t) {
    std::vector<size_t> coords;
    if (o.only.empty()) {
      coords.resize(params.values[t].size());
      for (size_t i = 0; i < coords.size(); ++i) coords[i] = i;
    }
    for (auto [ot, oi] : o.only) {
      if (ot == t) coords.push_back(oi);
    }
    if (o.only.empty() && o.max_coords_per_table != 0 && coords.size() > o.max_coords_per_table) {
      std::shuffle(coords.begin(), coords.end(), rng);
      coords.resize(o.max_coords_per_table);
    }
    for (size_t i : coords) {
      float& p = params.values[t][i];
      const float orig = p;
      p = static_cast<float>(orig + o.eps);
      const double up = static_cast<double>(p) - orig;
      const double f_plus = loss_at();
      p = static_cast<float>(orig - o.eps);
      const double down = static_cast<double>(orig) - p;
      const double f_minus = loss_at();
      p = orig;
      const double right = (f_plus - f0) / up;
      const double left = (f0 - f_minus) / down;
      if (std::abs(right - left) > 0.25 * std::max({std::abs(right), std::abs(left), 0.1})) {
        ++res.skipped;
        continue;
      }
      const double numeric = (f_plus - f_minus) / (up + down);
      const double a = analytic.values[t][i];
      const double err =
          std::abs(a - numeric) / std::max({std::abs(a), std::abs(numeric), o.floor});
      ++res.checked;
      if (!(err <= o.tolerance)) ++res.failed;
      if (!(err <= res.worst)) {
        res.worst = err;
        res.worst_where = tables[t].name + "[" + std::to_string(i) +
                          "]: analytic=" + std::to_string(a) +
                          " numeric=" + std::to_string(numeric);
      }
    }
  }
  return res;
}

}  // namespace distopt::ml_test

#endif  // DISTOPT_ML_TEST_UTIL_H_
