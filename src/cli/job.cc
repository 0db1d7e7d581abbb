#include "cli/job.h"

#include <zlib.h>

#include <cstring>
#include <ctime>

#include "data/csv_reader.h"
#include "data/idx_reader.h"
#include "data/libsvm_reader.h"
#include "data/share_reader.h"
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

TextFormat FormatOf(const DataConfig& d) {
  TextFormat f;
  f.csv = d.format == "csv";
  f.libsvm.zero_based = d.zero_based;
  f.libsvm.num_features = d.num_features;
  f.libsvm.skip_bad_lines = d.skip_bad_lines;
  f.csv_options.delimiter = d.delimiter.empty() ? ',' : d.delimiter[0];
  f.csv_options.header = d.header;
  f.csv_options.label_column = static_cast<int>(d.label_column);
  f.csv_options.skip_bad_lines = d.skip_bad_lines;
  return f;
}

// The text files `key` names, cut into `num_shares` shares.
Result<SplitPlan> PlanOf(const std::string& key, const std::string& spec, size_t num_shares) {
  auto files = ListInputs(spec);
  if (!files.ok()) return files.status().WithContext(key);
  return PlanSplits(std::move(*files), static_cast<int>(num_shares));
}

// A whole text data set (the test set): every file, as one share.
Result<Dataset> ReadWholeText(const JobConfig& cfg, const std::string& key, const std::string& spec,
                              const Logger& log) {
  ASSIGN_OR_RETURN(SplitPlan plan, PlanOf(key, spec, 1));
  ShareStats stats;
  ASSIGN_OR_RETURN(Dataset d, ReadShare(plan, 0, FormatOf(cfg.data), &stats));
  if (stats.bad_lines > 0) {
    log.Warn("skipped ", stats.bad_lines, " bad line(s) of ", spec,
             "; the first: ", stats.first_error);
  }
  return d;
}

// data.split = "whole": every training file read whole, each into memory
// at once and then parsed (the reader of the files before shares).
Result<Dataset> ReadEveryFile(const JobConfig& cfg, const Logger& log) {
  const DataConfig& d = cfg.data;
  auto files = ListInputs(d.train);
  if (!files.ok()) return files.status().WithContext("data.train");
  const TextFormat format = FormatOf(d);
  const double cpu0 = static_cast<double>(std::clock()) / CLOCKS_PER_SEC;
  const SteadyTime t0 = std::chrono::steady_clock::now();
  Dataset all;
  all.sparse = !format.csv;
  if (all.sparse) all.row_ptr.push_back(0);
  uint64_t bytes = 0;
  for (const InputFile& f : *files) {
    ReadStats stats;
    Result<Dataset> one = format.csv ? ReadCsv(f.path, format.csv_options, &stats)
                                     : ReadLibSvm(f.path, format.libsvm, &stats);
    if (!one.ok()) return one.status();
    if (stats.bad_lines > 0) {
      log.Warn("skipped ", stats.bad_lines, " bad line(s) of ", f.path,
               "; the first: ", stats.first_error);
    }
    bytes += f.size;
    RETURN_IF_ERROR(AppendRows(&all, std::move(*one)));
  }
  log.Info("read ", all.num_rows, " training rows, ", bytes,
           " bytes (every file: data.split = \"whole\") in ",
           ToMillis(std::chrono::steady_clock::now() - t0), " ms, ",
           static_cast<int64_t>((static_cast<double>(std::clock()) / CLOCKS_PER_SEC - cpu0) * 1000),
           " ms CPU");
  return all;
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

Result<JobData> LoadJobData(const JobConfig& cfg, bool train, bool test, size_t num_shares,
                            const Logger& log) {
  JobData out;
  const DataConfig& d = cfg.data;
  if (train && d.format == "idx") {
    SteadyTime t0 = std::chrono::steady_clock::now();
    IdxOptions o;
    o.scale = static_cast<float>(d.scale);
    ASSIGN_OR_RETURN(Dataset whole, ReadIdx(d.train, d.train_labels, o));
    Truncate(&whole, d.max_train_rows);
    log.Info("read ", whole.num_rows, " training rows x ", whole.num_features, " features from ",
             d.train, " in ", ToMillis(std::chrono::steady_clock::now() - t0), " ms");
    auto shares = std::make_unique<MemoryShares>(std::move(whole), num_shares);
    out.train_whole = &shares->whole();
    out.shares = std::move(shares);
  } else if (train && d.split == "whole") {
    ASSIGN_OR_RETURN(Dataset whole, ReadEveryFile(cfg, log));
    Truncate(&whole, d.max_train_rows);
    auto shares = std::make_unique<MemoryShares>(std::move(whole), num_shares);
    out.train_whole = &shares->whole();
    out.shares = std::move(shares);
  } else if (train) {
    ASSIGN_OR_RETURN(SplitPlan plan, PlanOf("data.train", d.train, num_shares));
    std::vector<int> idle = plan.IdleShares();
    if (!idle.empty()) {
      log.Warn(idle.size(), " of ", num_shares, " shares have nothing to read (", plan.files.size(),
               " file(s), gzip ones going whole): their workers idle");
    }
    FileShareOptions fo;
    fo.max_rows = d.max_train_rows > 0 ? static_cast<size_t>(d.max_train_rows) : 0;
    auto files = std::make_unique<FileShares>(std::move(plan), FormatOf(d), fo);
    out.files = files.get();
    out.shares = std::move(files);
  }
  if (test && !d.test.empty()) {
    Result<Dataset> r = InternalError("unreachable");
    if (d.format == "idx") {
      IdxOptions o;
      o.scale = static_cast<float>(d.scale);
      r = ReadIdx(d.test, d.test_labels, o);
    } else {
      r = ReadWholeText(cfg, "data.test", d.test, log);
    }
    if (!r.ok()) return r.status();
    Truncate(&*r, d.max_test_rows);
    out.test = std::move(*r);
  }
  return out;
}

Result<uint64_t> NumFeatures(const JobConfig& cfg, const JobData& loaded) {
  if (cfg.data.num_features > 0) return cfg.data.num_features;
  if (loaded.train_whole != nullptr) return loaded.train_whole->num_features;
  if (cfg.data.format == "idx") return IdxFeatures(cfg.data.train);
  // Sparse-keyed models do not size their tables by the feature count.
  if (cfg.model.kind == "fm" ||
      (cfg.model.kind == "logistic_regression" && !cfg.model.dense_weights)) {
    return uint64_t{1} << 62;
  }
  ASSIGN_OR_RETURN(SplitPlan plan, PlanOf("data.train", cfg.data.train, 1));
  // CSV: the first chunk's rows give the width (every row must match it).
  // LibSVM: the largest id of every file, a chunk at a time.
  const bool csv = cfg.data.format == "csv";
  ShareStream stream(&plan, 0, FormatOf(cfg.data), size_t{1} << (csv ? 16 : 26));
  uint64_t n = 0;
  Dataset rows;
  while (true) {
    ASSIGN_OR_RETURN(bool more, stream.Next(&rows));
    if (!more) break;
    n = std::max<uint64_t>(n, rows.num_features);
    if (csv && rows.num_rows > 0) break;
  }
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
