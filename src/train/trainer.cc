#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "data/batcher.h"

namespace distopt {
namespace {

using Json = nlohmann::json;

double Seconds(SteadyTime since) { return ToSeconds(std::chrono::steady_clock::now() - since); }

const MetricValue* Find(const std::vector<MetricValue>& v, const std::string& name) {
  for (const auto& m : v) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

double UnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string JoinInts(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

}  // namespace

std::vector<TableSpec> MakeTableSpecs(const std::vector<TableDecl>& decls,
                                      const OptimizerOptions& optimizer) {
  std::vector<TableSpec> specs;
  for (size_t i = 0; i < decls.size(); ++i) {
    TableSpec t;
    t.id = static_cast<uint32_t>(i);
    t.name = decls[i].name;
    t.sparse = decls[i].kind == TableKind::kSparse;
    t.size = decls[i].size;
    t.dim = decls[i].dim;
    t.init = decls[i].init;
    t.optimizer = optimizer;
    specs.push_back(std::move(t));
  }
  return specs;
}

Result<std::vector<MetricValue>> Evaluate(Model& model, const Dataset& data,
                                          const ParamSource& params, size_t batch_size) {
  TaskMetrics metrics(model.task());
  std::vector<uint32_t> rows;
  std::vector<std::vector<uint64_t>> keys;
  std::vector<std::vector<float>> storage;
  Eigen::MatrixXf pred;
  for (size_t begin = 0; begin < data.num_rows; begin += batch_size) {
    Batch b = RangeBatch(data, begin, std::min(data.num_rows, begin + batch_size), &rows);
    model.CollectKeys(b, &keys);
    ParamSet ps;
    RETURN_IF_ERROR(params(keys, &ps, &storage));
    RETURN_IF_ERROR(model.Predict(b, ps, &pred));
    RETURN_IF_ERROR(metrics.Add(b, pred));
  }
  std::vector<MetricValue> out = metrics.Values();
  for (auto& m : out) m.name = "test_" + m.name;
  return out;
}

Result<ParamSource> SavedModelSource(const SavedModel& saved, const std::vector<TableDecl>& decls) {
  if (saved.tables.size() != decls.size()) {
    return InvalidArgumentError("the saved model has " + std::to_string(saved.tables.size()) +
                                " tables, the configured model " + std::to_string(decls.size()) +
                                " (was it trained with this config?)");
  }
  for (size_t t = 0; t < decls.size(); ++t) {
    const SavedTable& s = saved.tables[t];
    bool sparse = decls[t].kind == TableKind::kSparse;
    if (s.name != decls[t].name || s.sparse != sparse || (!sparse && s.size != decls[t].size) ||
        (sparse && s.dim != decls[t].dim)) {
      // Name both shapes: the names alone often agree (a different hidden width).
      auto shape = [](bool is_sparse, uint64_t size, uint32_t dim) {
        return is_sparse ? "sparse, rows of " + std::to_string(dim)
                         : "dense, " + std::to_string(size) + " floats";
      };
      return InvalidArgumentError("saved table " + std::to_string(t) + " '" + s.name + "' (" +
                                  shape(s.sparse, s.size, s.dim) +
                                  ") does not match the configured model's '" + decls[t].name +
                                  "' (" + shape(sparse, decls[t].size, decls[t].dim) + ")");
    }
  }
  // Index sparse rows once; the lambda shares the model by pointer.
  auto index = std::make_shared<std::vector<std::unordered_map<uint64_t, uint32_t>>>(decls.size());
  for (size_t t = 0; t < decls.size(); ++t) {
    for (size_t i = 0; i < saved.tables[t].keys.size(); ++i) {
      (*index)[t][saved.tables[t].keys[i]] = static_cast<uint32_t>(i);
    }
  }
  const SavedModel* m = &saved;
  return ParamSource([m, index](const std::vector<std::vector<uint64_t>>& keys, ParamSet* ps,
                                std::vector<std::vector<float>>* storage) -> Status {
    size_t n = m->tables.size();
    ps->values.assign(n, {});
    ps->keys.assign(n, {});
    storage->resize(n);
    for (size_t t = 0; t < n; ++t) {
      const SavedTable& s = m->tables[t];
      if (!s.sparse) {
        ps->values[t] = s.values;
        continue;
      }
      auto& rows = (*storage)[t];
      rows.assign(keys[t].size() * s.dim, 0.0f);
      for (size_t i = 0; i < keys[t].size(); ++i) {
        auto it = (*index)[t].find(keys[t][i]);
        if (it == (*index)[t].end()) continue;
        std::copy_n(s.values.begin() + static_cast<size_t>(it->second) * s.dim, s.dim,
                    rows.begin() + i * s.dim);
      }
      ps->values[t] = rows;
      ps->keys[t] = keys[t];
    }
    return Status::Ok();
  });
}

Result<TrainStop> StopAfter(const Status& request, bool generation_changed) {
  if (request.ok()) return TrainStop::kNone;
  // kAborted is how the KV client and WaitAll report both a rollback (the
  // client cancels what is in flight on a new generation) and the job's
  // end; only the generation tells them apart.
  if (request.code() == StatusCode::kAborted) {
    return generation_changed ? TrainStop::kRolledBack : TrainStop::kJobEnded;
  }
  return request;
}

std::vector<int> ShardsToRead(uint32_t rank, uint32_t workers, std::vector<uint32_t> live_ranks) {
  std::sort(live_ranks.begin(), live_ranks.end());
  std::vector<int> mine = {static_cast<int>(rank)};
  // The dead workers' shards are dealt round-robin over the live ones, from
  // live[first dead % live]: every live worker reads at most one shard more
  // than another, and a single dead shard s goes to live[s % live].
  size_t next = 0;
  bool first = true;
  for (uint32_t s = 0; s < workers && !live_ranks.empty(); ++s) {
    if (std::binary_search(live_ranks.begin(), live_ranks.end(), s)) continue;
    if (first) next = s % live_ranks.size();
    first = false;
    if (live_ranks[next] == rank) mine.push_back(static_cast<int>(s));
    next = (next + 1) % live_ranks.size();
  }
  return mine;
}

float GradScale(size_t shards, size_t live, uint32_t workers) {
  return static_cast<float>(shards) * static_cast<float>(live) / static_cast<float>(workers);
}

bool EvalDue(int64_t epochs_done, const TrainerOptions& options) {
  return epochs_done % std::max<int64_t>(1, options.eval_every_epochs) == 0 ||
         epochs_done == options.epochs;
}

bool TargetReached(const std::string& metric, double value, double target) {
  bool lower_better =
      metric.find("loss") != std::string::npos || metric.find("rmse") != std::string::npos;
  return lower_better ? value <= target : value >= target;
}

Trainer::Trainer(WorkerNode& node, Model& model, ShareSource& train, const Dataset* test,
                 const TrainerOptions& options, Logger log)
    : node_(node),
      kv_(node.kv()),
      model_(model),
      data_(train),
      test_(test),
      options_(options),
      log_(std::move(log)),
      decls_(model.Tables()),
      rank_(node.rank()),
      workers_(node.cluster().view().num_workers),
      start_(std::chrono::steady_clock::now()),
      dense_(decls_.size()),
      fresh_(decls_.size()),
      rows_(decls_.size()),
      last_checkpoint_request_(start_) {
  FollowLead();
  grads_.ready = [this](size_t t) { StartPush(t); };  // overlap: see PushGradients
}

Result<TrainSummary> Trainer::Run() {
  RETURN_IF_ERROR(Join());
  RETURN_IF_ERROR(PrepareBatches());
  WriteStart();
  window_.start = std::chrono::steady_clock::now();
  last_checkpoint_request_ = window_.start;
  if (clock_ > 0) {
    log_.Info("joining the job at clock ", clock_, " (epoch ", clock_ / steps_per_epoch_ + 1, ")");
  }
  while (true) {
    ASSIGN_OR_RETURN(TrainStop stop, RunEpochs());
    if (stop != TrainStop::kRolledBack) break;
    RETURN_IF_ERROR(Join());
    log_.Warn("the job rolled back: going on from clock ", clock_, " (epoch ",
              clock_ / steps_per_epoch_ + 1, ")");
  }
  summary_.steps = clock_;
  if (const KvClientStats st = kv_.stats(); st.host_sums + st.host_member_pushes > 0) {
    log_.Info("per-host aggregation: led ", st.host_sums, " push-pulls of the host, sent ",
              st.host_member_pushes, " to its leader, ", st.host_fallbacks,
              " to the servers instead");
  }
  if (adopter_.has_value() && adopter_->slots_pushed() > 0) {
    log_.Info("pushed ", adopter_->slots_pushed(), " slots of dead workers");
  }
  summary_.seconds = Seconds(start_);
  FollowLead();
  RETURN_IF_ERROR(SaveFinalModel());
  WriteDone();
  SendResults();
  RETURN_IF_ERROR(node_.Finish(Deadline::After(std::chrono::minutes(10)), end_reason_));
  return summary_;
}

Status Trainer::Join() {
  generation_ = kv_.generation();
  if (adopter_.has_value()) adopter_->Reset();
  std::vector<KvHandle> pending;
  for (size_t t = 0; t < decls_.size(); ++t) {
    const auto table = static_cast<uint32_t>(t);
    if (decls_[t].kind == TableKind::kDense) {
      dense_[t].resize(decls_[t].size);
      fresh_[t].resize(decls_[t].size);
      pending.push_back(kv_.Pull(table, dense_[t], -1));
    } else if (pending.empty()) {
      // Until a dense table answers, one sparse pull of no keys asks for the clock.
      pending.push_back(kv_.PullSparse(table, {}, {}, -1));
    }
  }
  std::vector<KvHandle> joined = pending;
  RETURN_IF_ERROR(WaitAll(pending));
  clock_ = INT64_MAX;
  int64_t newest = -1;
  for (const auto& h : joined) {
    clock_ = std::min(clock_, h->clock());
    newest = std::max(newest, h->newest_clock());
  }
  if (clock_ == INT64_MAX || clock_ < 0) clock_ = 0;
  if (newest > clock_) {
    // This worker's previous incarnation died between its pushes of a clock:
    // partitions that got it moved on, and the first step here mixes their
    // newer parameters into the gradient the others wait for.
    log_.Warn("joined with partitions at clocks ", clock_, " to ", newest, ": step ", clock_,
              "'s gradient mixes parameters of both (BSP may end with another "
              "model than a run without the restart)");
  }
  return Status::Ok();
}

Status Trainer::PrepareBatches() {
  const size_t num_shares = data_.num_shares();
  if (num_shares < workers_) {
    return InvalidArgumentError("the training data is cut into " + std::to_string(num_shares) +
                                " shares for " + std::to_string(workers_) +
                                " workers: expected at least one share per worker (data.shares)");
  }
  batch_options_.batch_size = static_cast<size_t>(options_.batch_size);
  batch_options_.seed = options_.seed;
  batch_options_.shuffle = true;
  batch_options_.num_shards = static_cast<int>(num_shares);
  batch_options_.global_order = options_.global_order;
  batch_options_.drop_last = options_.global_order;
  RETURN_IF_ERROR(UseShares(SharesOfRank(rank_, workers_, num_shares)));
  RETURN_IF_ERROR(ReportShares());
  if (options_.global_order) {
    ASSIGN_OR_RETURN(batch_options_.steps_per_epoch, AgreeSteps());
  }
  ASSIGN_OR_RETURN(BatchIterator it, BatchIterator::Create(owned_, batch_options_));
  batches_.emplace(std::move(it));
  steps_per_epoch_ = static_cast<int64_t>(batches_->batches_per_epoch());
  if (steps_per_epoch_ == 0) {
    return InvalidArgumentError("this worker's training data (" + std::to_string(owned_->num_rows) +
                                " rows) is too small for " + "batch_size " +
                                std::to_string(options_.batch_size));
  }
  if (options_.adopt_dead_workers) {
    adopter_.emplace(kv_, model_, data_, batch_options_, workers_, steps_per_epoch_);
  }
  return Status::Ok();
}

Status Trainer::UseShares(const std::vector<int>& shares) {
  ASSIGN_OR_RETURN(owned_, JoinShares(data_, shares, &owned_storage_, &batch_options_.share_rows));
  batch_options_.shards = shares;
  return Status::Ok();
}

Status Trainer::ReportShares() {
  const size_t n = data_.num_shares();
  known_rows_.assign(n, std::nullopt);
  bool missing = false;
  for (size_t s = 0; s < n; ++s) {
    known_rows_[s] = data_.KnownRows(s);
    missing |= !known_rows_[s].has_value();
  }
  if (!missing) return Status::Ok();  // all in memory: nothing to tell
  // The gather is also the data barrier: nobody trains while a worker still
  // reads (its first push would keep the others' requests waiting).
  const ShareStats st = data_.stats();
  Json mine = {{"rows", st.rows},
               {"bytes", st.bytes},
               {"ms", static_cast<int64_t>(st.seconds * 1000)},
               {"shares", Json::array()}};
  for (size_t i = 0; i < batch_options_.shards.size(); ++i) {
    mine["shares"].push_back({batch_options_.shards[i], batch_options_.share_rows[i]});
  }
  log_.Info("read ", owned_->num_rows, " rows (share(s) ", JoinInts(batch_options_.shards), ") in ",
            static_cast<int64_t>(st.seconds * 1000),
            " ms; waiting for the other workers to read theirs");
  ASSIGN_OR_RETURN(auto reports,
                   node_.cluster().Gather("data-read", BarrierGroup::kWorkers, mine.dump(),
                                          Deadline::After(std::chrono::hours(24))));
  // Each report once: its share counts here, its figures for metrics.jsonl.
  Json workers = Json::array();
  for (const auto& [rank, text] : reports) {
    const Json r = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!r.is_object() || !r.value("shares", Json()).is_array()) {
      log_.Warn("worker/", rank, "'s report of what it read is not readable; ignored");
      continue;
    }
    for (const Json& pair : r["shares"]) {
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number_unsigned() ||
          !pair[1].is_number_unsigned()) {
        continue;
      }
      const auto share = pair[0].get<uint64_t>();
      if (share < n) known_rows_[share] = pair[1].get<uint64_t>();
    }
    workers.push_back({{"rank", rank},
                       {"rows", r.value("rows", uint64_t{0})},
                       {"bytes", r.value("bytes", uint64_t{0})},
                       {"ms", r.value("ms", uint64_t{0})}});
  }
  data_record_ = Json{{"type", "data"}, {"workers", std::move(workers)}}.dump();
  return Status::Ok();
}

Result<size_t> Trainer::AgreeSteps() {
  const size_t n = data_.num_shares();
  for (size_t s = 0; s < n; ++s) {
    if (known_rows_[s].has_value()) continue;
    log_.Warn("share ", s, ": its worker died before it told its row count; reading it here");
    ASSIGN_OR_RETURN(const Dataset* d, data_.Get(s));
    known_rows_[s] = d->num_rows;
  }
  size_t smallest = 0;
  for (size_t s = 1; s < n; ++s) {
    if (*known_rows_[s] < *known_rows_[smallest]) smallest = s;
  }
  const size_t rows = *known_rows_[smallest];
  const size_t steps = rows / static_cast<size_t>(options_.batch_size);
  if (steps == 0) {
    return InvalidArgumentError("share " + std::to_string(smallest) + " of the training data has " +
                                std::to_string(rows) + " rows, fewer than batch_size " +
                                std::to_string(options_.batch_size) +
                                ": with BSP every share gives each step a batch");
  }
  return steps;
}

Result<TrainStop> Trainer::RunEpochs() {
  for (int64_t epoch = clock_ / steps_per_epoch_; epoch < options_.epochs; ++epoch) {
    ASSIGN_OR_RETURN(TrainStop stop, RunEpoch(epoch));
    if (stop != TrainStop::kNone) return stop;
  }
  return TrainStop::kNone;
}

Result<TrainStop> Trainer::RunEpoch(int64_t epoch) {
  RETURN_IF_ERROR(ReadShardsFor(epoch));
  batches_->StartEpoch(static_cast<int>(epoch));
  Batch batch;
  // A worker joining mid-epoch skips the steps already taken.
  for (int64_t skip = epoch * steps_per_epoch_; skip < clock_ && batches_->Next(&batch); ++skip) {
  }
  while (batches_->Next(&batch)) {
    ASSIGN_OR_RETURN(TrainStop stop, Step(batch, epoch));
    if (stop != TrainStop::kNone) return stop;
  }
  summary_.epochs = epoch + 1;
  FollowLead();  // worker/0 may have died during the epoch's last step
  if (lead_ && test_ != nullptr && EvalDue(epoch + 1, options_)) return EvaluateEpoch(epoch);
  return TrainStop::kNone;
}

Status Trainer::ReadShardsFor(int64_t epoch) {
  if (adopter_.has_value()) return Status::Ok();  // every slot is pushed: no re-deal, no rescale
  const ClusterView view = node_.cluster().view();
  std::vector<uint32_t> live;
  for (const Member* m : view.Live(Role::kWorker)) live.push_back(m->rank);
  const size_t num_live = live.size();
  const std::vector<int> ranks = ShardsToRead(rank_, workers_, std::move(live));
  grad_scale_ = GradScale(ranks.size(), num_live, workers_);
  std::vector<int> shares;
  for (int r : ranks) {
    for (int s : SharesOfRank(static_cast<uint32_t>(r), workers_, data_.num_shares())) {
      shares.push_back(s);
    }
  }
  std::sort(shares.begin(), shares.end());
  if (shares == batches_->options().shards) return Status::Ok();
  log_.Info("epoch ", epoch + 1, ": reading shares ", JoinInts(shares),
            " (taking over for dead workers)");
  RETURN_IF_ERROR(UseShares(shares));
  ASSIGN_OR_RETURN(BatchIterator it, BatchIterator::Create(owned_, batch_options_));
  batches_.emplace(std::move(it));
  return Status::Ok();
}

const ClusterView& Trainer::View() {
  if (!view_.has_value() || view_->epoch != node_.cluster().epoch()) view_ = node_.cluster().view();
  return *view_;
}

void Trainer::FollowLead() {
  uint32_t lowest = rank_;
  for (const Member* m : View().Live(Role::kWorker)) lowest = std::min(lowest, m->rank);
  if ((lowest == rank_) == lead_) return;
  lead_ = lowest == rank_;
  if (!lead_) {
    // A lower rank restarted and leads again.
    log_.Info("worker/", lowest, " is back: it leads from step ", clock_);
    metrics_.close();
    return;
  }
  if (clock_ > 0) {
    log_.Warn("every lower rank is dead: this worker leads from step ", clock_,
              " (evaluation, metrics.jsonl, the final model)");
  }
  if (!options_.metrics_path.empty()) metrics_.open(options_.metrics_path, std::ios::app);
}

Result<TrainStop> Trainer::Step(const Batch& batch, int64_t epoch) {
  const SteadyTime step_start = std::chrono::steady_clock::now();
  FollowLead();
  model_.CollectKeys(batch, &keys_);
  ASSIGN_OR_RETURN(TrainStop stop, Classify(FetchParams(keys_, &params_, &rows_)));
  if (stop != TrainStop::kNone) return stop;
  MaybeRequestCheckpoint();  // before the clock's first push, which carries it
  pushed_.assign(decls_.size(), 0);
  nonfinite_.reset();
  Result<float> fb = model_.ForwardBackward(batch, params_, &grads_);  // pushes as it goes
  if (!fb.ok() || !std::isfinite(*fb)) {
    CancelAll(pushes_);
    if (!fb.ok()) return fb.status();
    return InvalidArgumentError("the loss became " + std::to_string(*fb) + " at step " +
                                std::to_string(clock_) +
                                " (learning rate too high?); stopping the job");
  }
  const float loss = *fb;
  ASSIGN_OR_RETURN(stop, Classify(PushGradients()));
  if (stop != TrainStop::kNone) return stop;
  step_times_.Add(std::chrono::steady_clock::now() - step_start);
  ++clock_;
  CountStep(loss, batch.size(), epoch);
  return TrainStop::kNone;
}

Result<TrainStop> Trainer::EvaluateEpoch(int64_t epoch) {
  ParamSource source = [this](const std::vector<std::vector<uint64_t>>& keys, ParamSet* params,
                              std::vector<std::vector<float>>* storage) {
    return FetchParams(keys, params, storage);
  };
  Result<std::vector<MetricValue>> ev = Evaluate(model_, *test_, source);
  if (!ev.ok()) return Classify(ev.status());
  summary_.last_eval = *ev;
  WriteEval(epoch, *ev);
  window_.start = std::chrono::steady_clock::now();  // eval time is not training time
  if (options_.target_metric.empty()) return TrainStop::kNone;
  const MetricValue* m = Find(*ev, options_.target_metric);
  if (m == nullptr || !TargetReached(options_.target_metric, m->value, options_.target)) {
    return TrainStop::kNone;
  }
  summary_.reached_target = true;
  end_reason_ = options_.target_metric + " reached " + std::to_string(m->value) + " (target " +
                std::to_string(options_.target) + ") after epoch " + std::to_string(epoch + 1);
  log_.Info(end_reason_, "; ending the job");
  return TrainStop::kTargetReached;
}

Status Trainer::FetchParams(const std::vector<std::vector<uint64_t>>& keys, ParamSet* params,
                            std::vector<std::vector<float>>* storage) {
  const size_t n = decls_.size();
  params->values.assign(n, {});
  params->keys.assign(n, {});
  storage->resize(n);
  std::vector<KvHandle> pending;
  for (size_t t = 0; t < n; ++t) {
    if (decls_[t].kind == TableKind::kDense) {
      params->values[t] = dense_[t];
      continue;
    }
    std::vector<float>& rows = (*storage)[t];
    rows.resize(keys[t].size() * decls_[t].dim);
    params->keys[t] = keys[t];
    params->values[t] = rows;
    pending.push_back(kv_.PullSparse(static_cast<uint32_t>(t), keys[t], rows, clock_));
  }
  std::vector<KvHandle> asked = pending;
  RETURN_IF_ERROR(WaitAll(pending));
  fetched_newest_ = -1;
  for (const KvHandle& h : asked) fetched_newest_ = std::max(fetched_newest_, h->newest_clock());
  return Status::Ok();
}

void Trainer::StartPush(size_t t) {
  if (t >= pushed_.size() || pushed_[t]) return;
  pushed_[t] = 1;
  // Scaled and checked in one pass over the gradient.
  bool finite = true;
  for (float& x : grads_.values[t]) {
    x *= grad_scale_;
    finite &= std::isfinite(x);
  }
  if (!finite) {
    nonfinite_ = t;
    return;
  }
  const std::vector<float>& g = grads_.values[t];
  const auto table = static_cast<uint32_t>(t);
  pushes_.push_back(decls_[t].kind == TableKind::kDense
                        ? kv_.PushPull(table, g, fresh_[t], clock_)
                        : kv_.PushSparse(table, keys_[t], g, clock_));
}

Status Trainer::PushGradients() {
  for (size_t t = 0; t < decls_.size(); ++t) StartPush(t);
  if (nonfinite_.has_value()) {
    CancelAll(pushes_);
    return InvalidArgumentError("the gradient of table '" + decls_[*nonfinite_].name +
                                "' is not finite at step " + std::to_string(clock_) +
                                " (learning rate too high?); stopping the job");
  }
  Status s = Adopt();
  if (s.ok()) s = WaitAll(pushes_, [this] { return Adopt(); });
  std::vector<KvHandle> adopted = adopter_ ? adopter_->TakePending() : std::vector<KvHandle>();
  if (s.ok()) s = WaitAll(adopted);
  CancelAll(pushes_);
  CancelAll(adopted);
  RETURN_IF_ERROR(s);
  for (size_t t = 0; t < decls_.size(); ++t) {
    if (decls_[t].kind == TableKind::kDense) dense_[t].swap(fresh_[t]);
  }
  return Status::Ok();
}

Status Trainer::Adopt() {
  if (!adopter_.has_value()) return Status::Ok();
  const ClusterView& view = View();
  std::vector<uint32_t> host_adopted = kv_.HostAdopted();
  // Planned again only when the view or the host group's slots moved (each step asks).
  if (view.epoch != plan_epoch_ || host_adopted != plan_host_adopted_) {
    std::vector<AdoptionUnit> plan = PlanAdoption(
        view, rank_, workers_, HostGroup::Enabled(view, kv_.host_aggregation()), host_adopted);
    if (plan != adopted_ && !plan.empty()) {
      log_.Warn("step ", clock_, ": computing the slots of dead ", DescribeUnits(plan),
                " each step (the servers wait for every worker's gradient; the job's result "
                "stays that of a run without the deaths)");
    }
    adopted_ = std::move(plan);
    plan_epoch_ = view.epoch;
    plan_host_adopted_ = std::move(host_adopted);
  }
  if (adopted_.empty()) return Status::Ok();
  return adopter_->PushFor(clock_, adopted_,
                           [this](const std::vector<std::vector<uint64_t>>& keys, ParamSet* params,
                                  std::vector<std::vector<float>>* storage) {
                             RETURN_IF_ERROR(FetchParams(keys, params, storage));
                             if (fetched_newest_ > clock_) {
                               // A partition had the dead worker's last push and
                               // moved on: its rows are of the next clock.
                               log_.Warn("step ", clock_,
                                         ": a dead worker's slot is computed "
                                         "with sparse rows of clock ",
                                         fetched_newest_,
                                         " from a partition that had its push (this step may "
                                         "differ from a run without the death)");
                             }
                             return Status::Ok();
                           });
}

void Trainer::MaybeRequestCheckpoint() {
  if (!lead_ || options_.checkpoint_every <= Duration::zero()) return;
  SteadyTime now = std::chrono::steady_clock::now();
  if (now - last_checkpoint_request_ < options_.checkpoint_every) return;
  kv_.RequestCheckpointAt(clock_);
  last_checkpoint_request_ = now;
}

Status Trainer::WaitAll(std::vector<KvHandle>& handles,
                        const std::function<Status()>& while_waiting) {
  Status s = WaitEach(handles, while_waiting);
  // On an early return the others are still out, and their replies would
  // write into buffers this trainer reuses next step or frees on its way out.
  CancelAll(handles);
  return s;
}

void Trainer::CancelAll(std::vector<KvHandle>& handles) {
  for (const KvHandle& h : handles) kv_.Cancel(h);
  handles.clear();
}

Status Trainer::WaitEach(const std::vector<KvHandle>& handles,
                         const std::function<Status()>& while_waiting) {
  // A worker blocked in BSP when another ends the job must not wait for a
  // clock that never comes: poll, watching for the job's end.
  Deadline deadline = Deadline::After(options_.request_timeout);
  for (const KvHandle& h : handles) {
    while (!kv_.WaitDone(h, Deadline::After(std::chrono::milliseconds(200)))) {
      if (node_.cluster().shutting_down()) return AbortedError("the job ended");
      if (while_waiting) RETURN_IF_ERROR(while_waiting());
      if (deadline.expired()) return kv_.Wait(h, deadline);  // names the silent servers
    }
    RETURN_IF_ERROR(kv_.Wait(h));
  }
  return Status::Ok();
}

Result<TrainStop> Trainer::Classify(const Status& request) const {
  return StopAfter(request, kv_.generation() != generation_);
}

Result<std::vector<uint64_t>> Trainer::TrainedKeys() {
  if (data_.num_shares() > batch_options_.shards.size()) {
    log_.Info("listing the sparse keys of every share of the training data for the final model");
  }
  // Every share's keys, its rows held no longer than it takes to list them,
  // a block at a time: each block sorted and made unique, and the list made
  // unique again whenever it doubles, so it stays near the distinct keys
  // rather than growing to every id of every row.
  constexpr size_t kBlock = size_t{1} << 20;
  std::vector<uint64_t> ids;
  size_t unique = 0;
  auto add = [&](const Dataset& d) {
    for (size_t at = 0; at < d.col_idx.size(); at += kBlock) {
      const auto first = d.col_idx.begin() + static_cast<ptrdiff_t>(at);
      const auto last =
          d.col_idx.begin() + static_cast<ptrdiff_t>(std::min(d.col_idx.size(), at + kBlock));
      const auto old = static_cast<ptrdiff_t>(ids.size());
      ids.insert(ids.end(), first, last);
      std::sort(ids.begin() + old, ids.end());
      ids.erase(std::unique(ids.begin() + old, ids.end()), ids.end());
      if (ids.size() > 2 * unique + kBlock) {
        std::sort(ids.begin(), ids.end());
        ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
        unique = ids.size();
      }
    }
  };
  RETURN_IF_ERROR(data_.VisitAll(add));
  if (test_ != nullptr) add(*test_);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

Status Trainer::SaveFinalModel() {
  if (!lead_ || options_.model_path.empty() || node_.cluster().shutting_down()) {
    return Status::Ok();
  }
  SavedModel saved;
  saved.step = clock_;
  for (size_t t = 0; t < decls_.size(); ++t) {
    SavedTable st;
    st.name = decls_[t].name;
    st.sparse = decls_[t].kind == TableKind::kSparse;
    st.size = decls_[t].size;
    st.dim = decls_[t].dim;
    if (!st.sparse) {
      st.values = dense_[t];
    } else {
      ASSIGN_OR_RETURN(st.keys, TrainedKeys());
      st.values.resize(st.keys.size() * st.dim);
      std::vector<KvHandle> pending = {
          kv_.PullSparse(static_cast<uint32_t>(t), st.keys, st.values, clock_)};
      RETURN_IF_ERROR(WaitAll(pending));
    }
    saved.tables.push_back(std::move(st));
  }
  RETURN_IF_ERROR(SaveModel(options_.model_path, saved));
  log_.Info("saved the model (step ", clock_, ") to ", options_.model_path);
  return Status::Ok();
}

void Trainer::SendResults() {
  if (!lead_ || !options_.send_results) return;
  // A lost result at the end of a run is the worst loss there is: the
  // files stay here whatever happens, and a failed hand-over says where.
  for (const std::string& path : {options_.metrics_path, options_.model_path}) {
    if (path.empty() || node_.cluster().shutting_down()) continue;
    const std::string name = path.substr(path.rfind('/') + 1);
    Status s = node_.cluster().SendFile(name, path, Deadline::After(options_.request_timeout));
    if (!s.ok()) {
      log_.Error("could not hand ", name, " to the coordinator (", s.message(), "); it is at ",
                 path);
    }
  }
}

void Trainer::WriteStart() {
  if (!lead_) return;
  Json rec = {{"type", "start"},           {"name", options_.run_name},
              {"epochs", options_.epochs}, {"steps_per_epoch", steps_per_epoch_},
              {"workers", workers_},       {"batch_size", options_.batch_size},
              {"time", UnixSeconds()}};
  WriteRecord(rec.dump());
  // What each worker read of the training data (ReportShares).
  if (!data_record_.empty()) WriteRecord(data_record_);
}

void Trainer::CountStep(double loss, size_t samples, int64_t epoch) {
  window_.loss += loss;
  ++window_.steps;
  window_.samples += static_cast<int64_t>(samples);
  if (!lead_ || options_.log_every_steps <= 0 || clock_ % options_.log_every_steps != 0) return;
  TransportStats ts = node_.transport().Stats();
  double secs = Seconds(window_.start);
  Json rec = {{"type", "train"},
              {"epoch", epoch + 1},
              {"step", clock_},
              {"loss", window_.loss / window_.steps},
              // Worker 0's rate times the workers (they move in step under BSP).
              {"samples_per_s", secs > 0 ? window_.samples * workers_ / secs : 0.0},
              {"bytes_sent", ts.bytes_sent},
              {"bytes_received", ts.bytes_received},
              {"step_ms_max", step_times_.TakeWindowMax()},
              {"elapsed_s", Seconds(start_)}};
  WriteRecord(rec.dump());
  window_ = Window{.start = std::chrono::steady_clock::now()};
}

void Trainer::WriteEval(int64_t epoch, const std::vector<MetricValue>& metrics) {
  Json rec = {
      {"type", "eval"}, {"epoch", epoch + 1}, {"step", clock_}, {"elapsed_s", Seconds(start_)}};
  std::string line;
  for (const auto& m : metrics) {
    rec[m.name] = m.value;
    char buf[64];
    std::snprintf(buf, sizeof(buf), " %s %.4f", m.name.c_str(), m.value);
    line += buf;
  }
  WriteRecord(rec.dump());
  log_.Info("epoch ", epoch + 1, "/", options_.epochs, " step ", clock_, ":", line);
}

void Trainer::WriteDone() {
  if (!lead_) return;
  Json rec = {{"type", "done"},
              {"epochs", summary_.epochs},
              {"step", clock_},
              {"elapsed_s", summary_.seconds},
              {"reached_target", summary_.reached_target},
              {"step_ms",
               {{"p50", step_times_.Quantile(0.5)},
                {"p90", step_times_.Quantile(0.9)},
                {"p99", step_times_.Quantile(0.99)},
                {"max", step_times_.Max()},
                {"steps", step_times_.count()}}}};
  for (const auto& m : summary_.last_eval) rec[m.name] = m.value;
  WriteRecord(rec.dump());
}

void Trainer::WriteRecord(const std::string& json) {
  // One object per line, flushed, so a reader (the launcher's progress bar)
  // sees complete lines as they happen.
  if (!metrics_.is_open()) return;
  metrics_ << json << "\n";
  metrics_.flush();
}

Result<TrainSummary> RunTraining(WorkerNode& node, Model& model, ShareSource& train,
                                 const Dataset* test, const TrainerOptions& options, Logger log) {
  Trainer trainer(node, model, train, test, options, std::move(log));
  return trainer.Run();
}

}  // namespace distopt
