// The worker's training loop and evaluation. RunTraining drives one worker:
// each step it pulls the sparse rows its batch needs, computes the loss and
// gradients with the model, and pushes them (dense tables by push-pull, so
// the reply carries the next clock's parameters). Worker 0 also evaluates on
// the test set, writes metrics.jsonl, ends the job early when a target
// metric is reached, and saves the final model. Runs on the calling thread;
// the WorkerNode's own threads handle the network.
//
//   ASSIGN_OR_RETURN(TrainSummary s, RunTraining(node, *model, train, &test, opts, log));
#ifndef DISTOPT_TRAIN_TRAINER_H_
#define DISTOPT_TRAIN_TRAINER_H_

#include <functional>
#include <string>
#include <vector>

#include "base/logging.h"
#include "data/dataset.h"
#include "kv/node.h"
#include "ml/metrics.h"
#include "ml/model.h"
#include "train/model_file.h"

namespace distopt {

struct TrainerOptions {
  int64_t epochs = 1;
  int64_t batch_size = 64;  // per worker
  uint64_t seed = 0;
  // Workers' batches tile one shuffled global batch (BSP equals one process
  // with the W-times batch); the last partial global batch is dropped.
  bool global_order = true;
  std::string target_metric;  // "test_accuracy", "test_auc", ... ; empty: none
  double target = 0.0;
  int64_t eval_every_epochs = 1;
  int64_t log_every_steps = 50;
  Duration request_timeout = std::chrono::seconds(120);
  // Worker 0 asks the servers for a checkpoint this often (0: never); the
  // step-based schedule is the servers' own (KvServerOptions).
  Duration checkpoint_every = Duration::zero();
  std::string metrics_path;  // worker 0 appends JSON lines here (empty: none)
  std::string model_path;    // worker 0 saves the final model here (empty: none)
  // The lead worker hands metrics.jsonl and model.bin to the coordinator's
  // run folder before it reports done (multi-host jobs; the coordinator
  // skips a file it already has, as in a shared folder).
  bool send_results = false;
  std::string run_name;
};

struct TrainSummary {
  int64_t epochs = 0;  // completed
  int64_t steps = 0;
  double seconds = 0;
  bool reached_target = false;
  std::vector<MetricValue> last_eval;  // names prefixed "test_"
};

// Declares the job's tables: the model's, each with the job's optimizer.
std::vector<TableSpec> MakeTableSpecs(const std::vector<TableDecl>& decls,
                                      const OptimizerOptions& optimizer);

Result<TrainSummary> RunTraining(WorkerNode& node, Model& model, const Dataset& train,
                                 const Dataset* test, const TrainerOptions& options, Logger log);

// Supplies parameters for a batch: dense tables whole, sparse tables as
// the rows of `keys` (storage keeps them alive).
using ParamSource =
    std::function<Status(const std::vector<std::vector<uint64_t>>& keys, ParamSet* params,
                         std::vector<std::vector<float>>* storage)>;

// Test metrics of `model` over all of `data` ("test_loss", "test_accuracy", ...).
Result<std::vector<MetricValue>> Evaluate(Model& model, const Dataset& data,
                                          const ParamSource& params, size_t batch_size = 1000);

// Parameters from a saved model (sparse keys it lacks read as zeros).
Result<ParamSource> SavedModelSource(const SavedModel& saved, const std::vector<TableDecl>& decls);

}  // namespace distopt

#endif  // DISTOPT_TRAIN_TRAINER_H_
