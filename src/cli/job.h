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
#include "data/shares.h"
#include "kv/layout.h"
#include "ml/model.h"

namespace distopt {

struct JobData {
  // IDX: the whole training set, read whole (it is small), held by `shares`.
  const Dataset* train_whole = nullptr;
  // What the workers train on, cut into `num_shares` shares: text files are
  // read share by share, when a worker first needs one (data/shares.h).
  std::unique_ptr<ShareSource> shares;
  FileShares* files = nullptr;  // `shares` when it reads text files
  std::optional<Dataset> test;  // read whole: every evaluation sees all of it
};

// The training shares (`num_shares` of them) and/or the test set the config
// names. data.train is a file, a comma-separated list or globs (errors name
// the key); text files are only listed and planned here, not read.
Result<JobData> LoadJobData(const JobConfig& cfg, bool train, bool test, size_t num_shares,
                            const Logger& log);

// The input width, the same on every node, without reading the training set
// where the format allows: data.num_features if set; IDX: the header; CSV:
// the first row; LibSVM: a streamed scan of every file for the largest id
// (only for models with dense weights, which size a table by it).
Result<uint64_t> NumFeatures(const JobConfig& cfg, const JobData& loaded);

Result<std::unique_ptr<Model>> BuildModel(const JobConfig& cfg, uint64_t num_features);

// The job's tables (the model's, each with the configured optimizer).
Result<std::vector<TableSpec>> JobTables(const JobConfig& cfg, const JobData& loaded);

}  // namespace distopt

#endif  // DISTOPT_CLI_JOB_H_
