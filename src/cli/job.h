// What every node of a job derives from its config: the datasets, the model
// and the table declarations, built the same way on every process so all
// nodes agree on the tables. Called once per process by the CLI.
#ifndef DISTOPT_CLI_JOB_H_
#define DISTOPT_CLI_JOB_H_

#include <memory>
#include <optional>

#include "base/logging.h"
#include "cli/config.h"
#include "data/dataset.h"
#include "kv/layout.h"
#include "ml/model.h"

namespace distopt {

struct JobData {
  std::optional<Dataset> train;
  std::optional<Dataset> test;
};

// Reads the training and/or test set the config names.
Result<JobData> LoadJobData(const JobConfig& cfg, bool train, bool test, const Logger& log);

// The input width without reading a whole dataset where the format allows
// (IDX: the header; LibSVM: data.num_features, or a scan; CSV: a scan).
Result<uint64_t> NumFeatures(const JobConfig& cfg, const JobData& loaded);

Result<std::unique_ptr<Model>> BuildModel(const JobConfig& cfg, uint64_t num_features);

// The job's tables (the model's, each with the configured optimizer).
Result<std::vector<TableSpec>> JobTables(const JobConfig& cfg, const JobData& loaded);

}  // namespace distopt

#endif  // DISTOPT_CLI_JOB_H_
