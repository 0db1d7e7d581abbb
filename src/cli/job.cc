#include "cli/job.h"

#include <zlib.h>

#include <cstring>

#include "data/csv_reader.h"
#include "data/idx_reader.h"
#include "data/libsvm_reader.h"
#include "train/trainer.h"

namespace distopt {
namespace {

void Truncate(Dataset* d, int64_t max_rows) {
  if (max_rows <= 0 || d->num_rows <= static_cast<size_t>(max_rows)) return;
  d->num_rows = static_cast<size_t>(max_rows);
  d->labels.resize(d->num_rows);
  if (d->sparse) {
    d->row_ptr.resize(d->num_rows + 1);
    d->col_idx.resize(d->row_ptr.back());
    d->col_val.resize(d->row_ptr.back());
  } else {
    d->dense.resize(d->num_rows * d->num_features);
  }
}

Result<Dataset> ReadOne(const JobConfig& cfg, const std::string& path, const std::string& labels,
                        const Logger& log) {
  const DataConfig& d = cfg.data;
  ReadStats stats;
  Result<Dataset> r = InternalError("unreachable");
  if (d.format == "idx") {
    IdxOptions o;
    o.scale = static_cast<float>(d.scale);
    r = ReadIdx(path, labels, o);
  } else if (d.format == "libsvm") {
    LibSvmOptions o;
    o.zero_based = d.zero_based;
    o.num_features = d.num_features;
    o.skip_bad_lines = d.skip_bad_lines;
    r = ReadLibSvm(path, o, &stats);
  } else {
    CsvOptions o;
    o.delimiter = d.delimiter.empty() ? ',' : d.delimiter[0];
    o.header = d.header;
    o.label_column = static_cast<int>(d.label_column);
    o.skip_bad_lines = d.skip_bad_lines;
    r = ReadCsv(path, o, &stats);
  }
  if (r.ok() && stats.bad_lines > 0) {
    log.Warn("skipped ", stats.bad_lines, " bad line(s) of ", path,
             "; the first: ", stats.first_error);
  }
  return r;
}

// Rows x columns from an IDX image header (plain or gzip) without reading the pixels.
Result<uint64_t> IdxFeatures(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return NotFoundError(path + ": cannot open");
  unsigned char h[16];
  int n = gzread(f, h, sizeof(h));
  gzclose(f);
  if (n != 16) return DataLossError(path + ": truncated IDX header");
  auto be = [&](int at) {
    return (uint32_t{h[at]} << 24) | (uint32_t{h[at + 1]} << 16) | (uint32_t{h[at + 2]} << 8) |
           h[at + 3];
  };
  if (be(0) != 0x00000803) return DataLossError(path + ": not an IDX image file (bad magic)");
  return uint64_t{be(8)} * be(12);
}

}  // namespace

Result<JobData> LoadJobData(const JobConfig& cfg, bool train, bool test, const Logger& log) {
  JobData out;
  if (train) {
    SteadyTime t0 = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(Dataset d, ReadOne(cfg, cfg.data.train, cfg.data.train_labels, log));
    Truncate(&d, cfg.data.max_train_rows);
    log.Info("read ", d.num_rows, " training rows x ", d.num_features, " features from ",
             cfg.data.train, " in ", ToMillis(std::chrono::steady_clock::now() - t0), " ms");
    out.train = std::move(d);
  }
  if (test && !cfg.data.test.empty()) {
    ASSIGN_OR_RETURN(Dataset d, ReadOne(cfg, cfg.data.test, cfg.data.test_labels, log));
    Truncate(&d, cfg.data.max_test_rows);
    out.test = std::move(d);
  }
  return out;
}

Result<uint64_t> NumFeatures(const JobConfig& cfg, const JobData& loaded) {
  if (cfg.data.num_features > 0) return cfg.data.num_features;
  if (loaded.train.has_value()) return loaded.train->num_features;
  if (cfg.data.format == "idx") return IdxFeatures(cfg.data.train);
  // Sparse-keyed models do not size their tables by the feature count.
  if (cfg.model.kind == "fm" ||
      (cfg.model.kind == "logistic_regression" && !cfg.model.dense_weights)) {
    return uint64_t{1} << 62;
  }
  // No cheaper way for these formats: read the training set once.
  auto d = LoadJobData(cfg, true, false, Logger::Null());
  if (!d.ok()) return d.status();
  uint64_t n = 0;
  if (d->train.has_value()) n = d->train->num_features;
  return n;
}

Result<std::unique_ptr<Model>> BuildModel(const JobConfig& cfg, uint64_t num_features) {
  auto m = CreateModel(cfg.model, num_features);
  if (!m.ok()) return m.status().WithContext(cfg.source);
  return m;
}

Result<std::vector<TableSpec>> JobTables(const JobConfig& cfg, const JobData& loaded) {
  ASSIGN_OR_RETURN(uint64_t nf, NumFeatures(cfg, loaded));
  ASSIGN_OR_RETURN(auto model, BuildModel(cfg, nf));
  auto specs = MakeTableSpecs(model->Tables(), cfg.optimizer);
  RETURN_IF_ERROR(ValidateTables(specs));
  return specs;
}

}  // namespace distopt
