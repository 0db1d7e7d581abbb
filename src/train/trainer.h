// The worker's training loop and evaluation. A Trainer drives one worker:
// each step it pulls the sparse rows its batch needs, computes the loss and
// gradients with the model, and pushes them (dense tables by push-pull, so
// the reply carries the next clock's parameters). Worker 0 (the lead) also
// evaluates on the test set, writes metrics.jsonl, ends the job early when a
// target metric is reached, and saves the final model. Runs on the calling
// thread; the WorkerNode's own threads handle the network. A Trainer is not
// thread-safe: one thread builds it and calls Run once.
//
//   ASSIGN_OR_RETURN(TrainSummary s, RunTraining(node, *model, train, &test, opts, log));
//   // or, the same: Trainer trainer(node, *model, train, &test, opts, log);
//   //               ASSIGN_OR_RETURN(TrainSummary s, trainer.Run());
#ifndef DISTOPT_TRAIN_TRAINER_H_
#define DISTOPT_TRAIN_TRAINER_H_

#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/logging.h"
#include "data/batcher.h"
#include "data/dataset.h"
#include "data/shares.h"
#include "kv/node.h"
#include "ml/metrics.h"
#include "ml/model.h"
#include "train/adoption.h"
#include "train/model_file.h"
#include "train/step_times.h"

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
  // BSP: the servers wait for dead workers' slots and this worker computes
  // the ones PlanAdoption gives it (train/adoption.h); off, a dead worker's
  // shard is re-dealt from the next epoch and the gradients rescaled.
  bool adopt_dead_workers = false;
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

// Why the epochs stopped before the last one. Trainer::Run acts on it in
// one place: kRolledBack joins again and goes on from the servers' clock;
// every other value ends the training.
enum class TrainStop {
  kNone,           // keep going
  kRolledBack,     // the job rolled back to a checkpoint (the layout generation moved)
  kJobEnded,       // another node ended the job (a target reached there, an abort)
  kTargetReached,  // this worker's evaluation reached the target metric
};

// What the status of a request means for the loop: ok is kNone; kAborted is
// a rollback when the layout generation changed since the worker joined, else
// the job's end; any other error is returned (it ends the training).
Result<TrainStop> StopAfter(const Status& request, bool generation_changed);

// The data shards worker `rank` of `workers` reads in an epoch: its own,
// plus the shards of dead workers (ranks not in `live_ranks`) dealt
// round-robin over the live ranks in order. A crashed worker's data is
// taken over from the next epoch on; a restarted one takes it back.
std::vector<int> ShardsToRead(uint32_t rank, uint32_t workers, std::vector<uint32_t> live_ranks);

// The factor on a gradient read from `shards` slots of the global batch when
// `live` of `workers` workers push: the servers' mean over the live pushes
// is then still the mean over all W slots (BSP stays large-batch SGD after
// a crash).
float GradScale(size_t shards, size_t live, uint32_t workers);

// Whether the epoch that makes `epochs_done` is evaluated: every
// eval_every_epochs epochs, and always the last.
bool EvalDue(int64_t epochs_done, const TrainerOptions& options);

// Whether `value` of `metric` meets `target`: losses and errors ("loss",
// "rmse" in the name) go down, every other metric up.
bool TargetReached(const std::string& metric, double value, double target);

// One worker's training, as named steps:
//   Run = Join, PrepareBatches, WriteStart, RunEpochs (again after Join on a
//         rollback), SaveFinalModel, WriteDone, SendResults, the node's Finish
//   RunEpochs = RunEpoch per epoch = ReadShardsFor, Step per batch, EvaluateEpoch
// Every request's status goes through Classify, the one place that turns it
// into a TrainStop; RunEpoch and Step return the first TrainStop that is not
// kNone up to Run.
class Trainer {
 public:
  // Borrows everything; all of it must outlive the Trainer. `train` has at
  // least one share per worker; this worker reads only the ones it trains on.
  Trainer(WorkerNode& node, Model& model, ShareSource& train, const Dataset* test,
          const TrainerOptions& options, Logger log);

  // Trains to the last epoch, the target or the job's end, then reports this
  // worker done (WorkerNode::Finish). Call once.
  Result<TrainSummary> Run();

 private:
  // Loss, steps and samples since the last "train" record.
  struct Window {
    double loss = 0;
    int64_t steps = 0;
    int64_t samples = 0;
    SteadyTime start;
  };

  // Asks the servers where the job is (a pull at clock -1): 0 for a fresh
  // job, the current clock for a worker restarted into a running one or
  // after a rollback. Dense parameters land in dense_ on the way.
  Status Join();
  // The batch iterator over this worker's shares; fails if an epoch has no step.
  Status PrepareBatches();
  // Makes `shares` the data batches come from (read if not yet).
  Status UseShares(const std::vector<int>& shares);
  // Shares read from files: tells the other workers this one's share row
  // counts and what reading took, and learns theirs (a gather at the
  // coordinator, which is also the barrier nobody trains before).
  Status ReportShares();
  // Global order: the steps of an epoch, the same on every worker (the
  // smallest share's full batches); a share whose worker died before it
  // told its count is read here.
  Result<size_t> AgreeSteps();
  // Epochs from the joined clock's to the last, until one stops early.
  Result<TrainStop> RunEpochs();
  Result<TrainStop> RunEpoch(int64_t epoch);
  // Re-deals the shards for this epoch's live workers and sets grad_scale_.
  Status ReadShardsFor(int64_t epoch);
  // One batch: fetch its parameters, forward-backward, push, count.
  Result<TrainStop> Step(const Batch& batch, int64_t epoch);
  // The lead's test metrics after `epoch`; kTargetReached ends the job.
  Result<TrainStop> EvaluateEpoch(int64_t epoch);

  // Parameters for `keys` at clock_: dense tables from dense_, sparse rows
  // pulled into `storage` (training and evaluation).
  Status FetchParams(const std::vector<std::vector<uint64_t>>& keys, ParamSet* params,
                     std::vector<std::vector<float>>* storage);
  // Pushes table t's gradient (scaled) for clock_ unless it went already:
  // from the model's GradSet::ready during backward, or after it. A
  // gradient that is not finite is never pushed (nonfinite_ names it).
  void StartPush(size_t t);
  // Pushes what backward did not announce and waits for every push; the
  // dense replies land in fresh_, then become dense_.
  Status PushGradients();
  // The lead asks for a checkpoint at clock_ every checkpoint_every.
  void MaybeRequestCheckpoint();
  // Waits for every handle (watching for the job's end), then empties the
  // list; on an error the ones not answered are cancelled (nothing writes
  // into this trainer's buffers later).
  // `while_waiting`, if set, runs every poll (and may fail the wait).
  Status WaitAll(std::vector<KvHandle>& handles,
                 const std::function<Status()>& while_waiting = nullptr);
  void CancelAll(std::vector<KvHandle>& handles);  // and empties the list
  Status WaitEach(const std::vector<KvHandle>& handles,
                  const std::function<Status()>& while_waiting);
  // The cluster's current view, copied only when its epoch moved.
  const ClusterView& View();
  // Becomes the lead when every lower rank is dead (and opens metrics.jsonl).
  void FollowLead();
  // Computes and pushes the dead workers' slots of clock_ this worker
  // adopts in the current view (adoption on; see train/adoption.h).
  Status Adopt();
  // The one place a request's status becomes a TrainStop (see StopAfter).
  Result<TrainStop> Classify(const Status& request) const;

  // The final model (lead, model_path set, job not ending): dense tables as
  // they are here, sparse ones as the rows of every key the data touch.
  Status SaveFinalModel();
  // The sparse keys of every share and the test set, sorted (the final model's rows).
  Result<std::vector<uint64_t>> TrainedKeys();
  // The lead hands metrics.jsonl and model.bin to the coordinator.
  void SendResults();

  // metrics.jsonl records (the lead's; the others write nothing).
  void WriteStart();
  void CountStep(double loss, size_t samples, int64_t epoch);  // and maybe a "train" record
  void WriteEval(int64_t epoch, const std::vector<MetricValue>& metrics);
  void WriteDone();
  void WriteRecord(const std::string& json);

  // Constant after construction.
  WorkerNode& node_;
  KvClient& kv_;
  Model& model_;
  ShareSource& data_;
  const Dataset* const test_;
  const TrainerOptions options_;
  const Logger log_;
  const std::vector<TableDecl> decls_;
  const uint32_t rank_;
  const uint32_t workers_;
  const SteadyTime start_;

  // The run's state.
  // The lead is the lowest live rank (worker 0 until it dies; with adoption
  // the job's parameters do not change when it does, so a successor's
  // evaluations and final model are the ones worker 0 would have made).
  bool lead_ = false;
  std::ofstream metrics_;  // open on the lead with a metrics_path
  // Dense parameters between steps: each push-pull's reply lands here, so
  // the next step needs no pull.
  std::vector<std::vector<float>> dense_;
  // Where push-pull replies land: backward still reads dense_ while the
  // pushes it started early are answered.
  std::vector<std::vector<float>> fresh_;
  std::vector<KvHandle> pushes_;          // this step's
  std::vector<char> pushed_;              // per table, this step
  std::optional<size_t> nonfinite_;       // a table whose gradient was not pushed: not finite
  std::vector<std::vector<float>> rows_;  // the current batch's sparse rows
  int64_t clock_ = 0;
  uint32_t generation_ = 0;  // the layout generation at the last Join
  BatchOptions batch_options_;
  const Dataset* owned_ = nullptr;                 // the rows of batch_options_.shards
  Dataset owned_storage_;                          // them, when several shares are joined
  std::vector<std::optional<size_t>> known_rows_;  // by share (ReportShares)
  std::string data_record_;               // metrics.jsonl's "data" record: what each worker read
  std::optional<BatchIterator> batches_;  // set by PrepareBatches
  std::optional<Adopter> adopter_;        // set by PrepareBatches with adoption on
  std::vector<AdoptionUnit> adopted_;     // the current plan, and what it was made from:
  uint32_t plan_epoch_ = UINT32_MAX;
  std::vector<uint32_t> plan_host_adopted_;
  std::optional<ClusterView> view_;  // View()'s copy
  int64_t fetched_newest_ = -1;      // the newest clock FetchParams' sparse pulls were answered at
  int64_t steps_per_epoch_ = 0;
  float grad_scale_ = 1.0f;
  SteadyTime last_checkpoint_request_;
  Window window_;
  StepTimes step_times_;  // every step's wall time (fetch, compute, push, wait)
  TrainSummary summary_;
  std::string end_reason_;  // for the coordinator, when the target ends the job
  // Per-step scratch, kept to reuse the allocations.
  std::vector<std::vector<uint64_t>> keys_;
  ParamSet params_;
  GradSet grads_;
};

// Trainer(node, model, train, test, options, log).Run().
Result<TrainSummary> RunTraining(WorkerNode& node, Model& model, ShareSource& train,
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
