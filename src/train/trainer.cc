#include "train/trainer.h"
#include "train/step_times.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "data/batcher.h"

namespace distopt {
namespace {

using Json = nlohmann::json;

double Seconds(SteadyTime since) { return ToSeconds(std::chrono::steady_clock::now() - since); }

// Appends one JSON object per line, flushed, so a reader (the launcher's
// progress bar) sees complete lines as they happen.
class JsonLines {
 public:
  explicit JsonLines(const std::string& path) {
    if (!path.empty()) out_.open(path, std::ios::app);
  }
  void Write(const Json& j) {
    if (!out_.is_open()) return;
    out_ << j.dump() << "\n";
    out_.flush();
  }

 private:
  std::ofstream out_;
};

// Waits for every handle, watching for the job's end: a worker blocked in
// BSP when another ends the job must not wait for a clock that never comes.
Status WaitAll(WorkerNode& node, std::vector<KvHandle>& handles, Duration timeout) {
  Deadline deadline = Deadline::After(timeout);
  for (auto& h : handles) {
    while (!node.kv().WaitDone(h, Deadline::After(std::chrono::milliseconds(200)))) {
      if (node.cluster().shutting_down()) return AbortedError("the job ended");
      if (deadline.expired()) return node.kv().Wait(h, deadline);  // names the silent servers
    }
    RETURN_IF_ERROR(node.kv().Wait(h));
  }
  handles.clear();
  return Status::Ok();
}

// Sorted unique feature ids of a sparse dataset.
std::vector<uint64_t> FeatureIds(const Dataset& d) {
  std::vector<uint64_t> ids = d.col_idx;
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

const MetricValue* Find(const std::vector<MetricValue>& v, const std::string& name) {
  for (const auto& m : v) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

bool Reached(const std::string& metric, double value, double target) {
  // Losses and errors go down; everything else goes up.
  bool lower_better =
      metric.find("loss") != std::string::npos || metric.find("rmse") != std::string::npos;
  return lower_better ? value <= target : value >= target;
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

Result<TrainSummary> RunTraining(WorkerNode& node, Model& model, const Dataset& train,
                                 const Dataset* test, const TrainerOptions& options, Logger log) {
  const std::vector<TableDecl> decls = model.Tables();
  const size_t num_tables = decls.size();
  const uint32_t rank = node.rank();
  const uint32_t workers = node.cluster().view().num_workers;
  const bool lead = rank == 0;
  KvClient& kv = node.kv();
  JsonLines metrics(lead ? options.metrics_path : "");
  SteadyTime start = std::chrono::steady_clock::now();

  // Dense parameters live here between steps: each push-pull's reply lands
  // in them, so the next step needs no pull.
  std::vector<std::vector<float>> dense(num_tables), rows(num_tables);
  std::vector<KvHandle> pending;
  // Ask the servers where the job is (clock -1): 0 for a fresh job, the
  // current clock for a worker restarted into a running one or after a
  // rollback to a checkpoint. Dense parameters land in `dense` on the way.
  int64_t clock = 0;
  uint32_t generation = kv.generation();
  auto join = [&]() -> Status {
    generation = kv.generation();
    for (size_t t = 0; t < num_tables; ++t) {
      if (decls[t].kind == TableKind::kDense) {
        dense[t].resize(decls[t].size);
        pending.push_back(kv.Pull(static_cast<uint32_t>(t), dense[t], -1));
      } else if (pending.empty()) {
        pending.push_back(kv.PullSparse(static_cast<uint32_t>(t), {}, {}, -1));
      }
    }
    std::vector<KvHandle> joined = pending;
    RETURN_IF_ERROR(WaitAll(node, pending, options.request_timeout));
    clock = INT64_MAX;
    for (const auto& h : joined) clock = std::min(clock, h->clock());
    if (clock == INT64_MAX || clock < 0) clock = 0;
    return Status::Ok();
  };
  RETURN_IF_ERROR(join());
  int64_t start_clock = clock;
  // A request that failed because the job rolled back (not because it ended).
  auto rolled_back = [&] { return kv.generation() != generation; };

  // Parameters for a set of keys at the current clock (training and eval).
  auto fetch = [&](const std::vector<std::vector<uint64_t>>& keys, ParamSet* ps,
                   std::vector<std::vector<float>>* storage) -> Status {
    ps->values.assign(num_tables, {});
    ps->keys.assign(num_tables, {});
    storage->resize(num_tables);
    std::vector<KvHandle> hs;
    for (size_t t = 0; t < num_tables; ++t) {
      if (decls[t].kind == TableKind::kDense) {
        ps->values[t] = dense[t];
        continue;
      }
      (*storage)[t].resize(keys[t].size() * decls[t].dim);
      ps->keys[t] = keys[t];
      ps->values[t] = (*storage)[t];
      hs.push_back(kv.PullSparse(static_cast<uint32_t>(t), keys[t], (*storage)[t], clock));
    }
    return WaitAll(node, hs, options.request_timeout);
  };

  BatchOptions bo;
  bo.batch_size = static_cast<size_t>(options.batch_size);
  bo.seed = options.seed;
  bo.shuffle = true;
  bo.shards = {static_cast<int>(rank)};
  bo.num_shards = static_cast<int>(workers);
  bo.global_order = options.global_order;
  bo.drop_last = options.global_order;
  ASSIGN_OR_RETURN(BatchIterator it, BatchIterator::Create(&train, bo));
  const int64_t steps_per_epoch = static_cast<int64_t>(it.batches_per_epoch());
  // The shards of this worker for an epoch: its own, plus those of dead
  // workers dealt round-robin over the live ones (a crashed worker's data
  // is taken over from the next epoch on; a restarted one takes it back).
  auto shards_now = [&]() {
    ClusterView v = node.cluster().view();
    std::vector<uint32_t> live;
    for (const Member* m : v.Live(Role::kWorker)) live.push_back(m->rank);
    std::sort(live.begin(), live.end());
    std::vector<int> mine = {static_cast<int>(rank)};
    for (uint32_t s = 0; s < workers && !live.empty(); ++s) {
      if (std::find(live.begin(), live.end(), s) == live.end() && live[s % live.size()] == rank) {
        mine.push_back(static_cast<int>(s));
      }
    }
    return mine;
  };
  if (steps_per_epoch == 0) {
    return InvalidArgumentError("the training set (" + std::to_string(train.num_rows) +
                                " rows) is too small for " + std::to_string(workers) +
                                " workers with batch_size " + std::to_string(options.batch_size));
  }
  if (lead) {
    metrics.Write(
        {{"type", "start"},
         {"name", options.run_name},
         {"epochs", options.epochs},
         {"steps_per_epoch", steps_per_epoch},
         {"workers", workers},
         {"batch_size", options.batch_size},
         {"time", std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                      .count()}});
  }

  TrainSummary summary;
  GradSet grads;
  ParamSet ps;
  std::vector<std::vector<uint64_t>> keys;
  double window_loss = 0;
  int64_t window_steps = 0, window_samples = 0;
  SteadyTime window_start = std::chrono::steady_clock::now();
  bool stop = false;
  std::string end_reason;
  float grad_scale = 1.0f;
  SteadyTime last_checkpoint_request = std::chrono::steady_clock::now();
  StepTimes step_times;

  if (start_clock > 0) {
    log.Info("joining the job at clock ", start_clock, " (epoch ",
             start_clock / steps_per_epoch + 1, ")");
  }
  bool rollback = false;
  while (true) {  // once, plus once per rollback to a checkpoint
    for (int64_t epoch = start_clock / steps_per_epoch; epoch < options.epochs && !stop; ++epoch) {
      std::vector<int> shards = shards_now();
      // A worker reading k slots of the global batch pushes k * live / W times
      // its gradient, so the servers' mean over the live workers' pushes is
      // still the mean over all W slots: the run stays equal to large-batch
      // SGD after a crash.
      grad_scale = static_cast<float>(shards.size()) *
                   static_cast<float>(node.cluster().view().Live(Role::kWorker).size()) /
                   static_cast<float>(workers);
      if (shards != it.options().shards) {
        log.Info(
            "epoch ", epoch + 1, ": reading shards ",
            [&] {
              std::string s;
              for (int x : shards) s += (s.empty() ? "" : ",") + std::to_string(x);
              return s;
            }(),
            " (taking over for dead workers)");
        bo.shards = shards;
        ASSIGN_OR_RETURN(it, BatchIterator::Create(&train, bo));
      }
      it.StartEpoch(static_cast<int>(epoch));
      Batch batch;
      // A worker joining mid-epoch skips the steps already taken.
      for (int64_t skip = epoch * steps_per_epoch; skip < clock && it.Next(&batch); ++skip) {
      }
      while (it.Next(&batch)) {
        const SteadyTime step_start = std::chrono::steady_clock::now();
        model.CollectKeys(batch, &keys);
        Status fs = fetch(keys, &ps, &rows);
        if (fs.code() == StatusCode::kAborted) {
          (rolled_back() ? rollback : stop) = true;
          break;
        }
        RETURN_IF_ERROR(fs);
        ASSIGN_OR_RETURN(float loss, model.ForwardBackward(batch, ps, &grads));
        if (!std::isfinite(loss)) {
          return InvalidArgumentError("the loss became " + std::to_string(loss) + " at step " +
                                      std::to_string(clock) +
                                      " (learning rate too high?); stopping the job");
        }
        if (lead && options.checkpoint_every > Duration::zero() &&
            std::chrono::steady_clock::now() - last_checkpoint_request >=
                options.checkpoint_every) {
          kv.RequestCheckpointAt(clock);
          last_checkpoint_request = std::chrono::steady_clock::now();
        }
        for (size_t t = 0; t < num_tables; ++t) {
          auto& g = grads.values[t];
          if (grad_scale != 1.0f) {
            for (float& x : g) x *= grad_scale;
          }
          if (decls[t].kind == TableKind::kDense) {
            pending.push_back(kv.PushPull(static_cast<uint32_t>(t), g, dense[t], clock));
          } else {
            pending.push_back(kv.PushSparse(static_cast<uint32_t>(t), keys[t], g, clock));
          }
        }
        Status ws = WaitAll(node, pending, options.request_timeout);
        if (ws.code() == StatusCode::kAborted) {
          pending.clear();
          (rolled_back() ? rollback : stop) = true;
          break;
        }
        RETURN_IF_ERROR(ws);
        step_times.Add(std::chrono::steady_clock::now() - step_start);
        ++clock;
        window_loss += loss;
        ++window_steps;
        window_samples += static_cast<int64_t>(batch.size());
        if (lead && options.log_every_steps > 0 && clock % options.log_every_steps == 0) {
          TransportStats ts = node.transport().Stats();
          double secs = Seconds(window_start);
          metrics.Write({{"type", "train"},
                         {"epoch", epoch + 1},
                         {"step", clock},
                         {"loss", window_loss / window_steps},
                         // Worker 0's rate times the workers (they move in step under BSP).
                         {"samples_per_s", secs > 0 ? window_samples * workers / secs : 0.0},
                         {"bytes_sent", ts.bytes_sent},
                         {"bytes_received", ts.bytes_received},
                         {"step_ms_max", step_times.TakeWindowMax()},
                         {"elapsed_s", Seconds(start)}});
          window_loss = 0;
          window_steps = 0;
          window_samples = 0;
          window_start = std::chrono::steady_clock::now();
        }
      }
      if (stop || rollback) break;
      summary.epochs = epoch + 1;
      bool eval_now = (epoch + 1) % std::max<int64_t>(1, options.eval_every_epochs) == 0 ||
                      epoch + 1 == options.epochs;
      if (lead && test != nullptr && eval_now) {
        auto ev = Evaluate(model, *test, fetch);
        if (ev.status().code() == StatusCode::kAborted) {
          (rolled_back() ? rollback : stop) = true;
          break;
        }
        RETURN_IF_ERROR(ev.status());
        summary.last_eval = *ev;
        Json rec = {
            {"type", "eval"}, {"epoch", epoch + 1}, {"step", clock}, {"elapsed_s", Seconds(start)}};
        std::string line;
        for (const auto& m : *ev) {
          rec[m.name] = m.value;
          char buf[64];
          std::snprintf(buf, sizeof(buf), " %s %.4f", m.name.c_str(), m.value);
          line += buf;
        }
        metrics.Write(rec);
        log.Info("epoch ", epoch + 1, "/", options.epochs, " step ", clock, ":", line);
        window_start = std::chrono::steady_clock::now();  // eval time is not training time
        if (!options.target_metric.empty()) {
          const MetricValue* m = Find(*ev, options.target_metric);
          if (m != nullptr && Reached(options.target_metric, m->value, options.target)) {
            summary.reached_target = true;
            end_reason = options.target_metric + " reached " + std::to_string(m->value) +
                         " (target " + std::to_string(options.target) + ") after epoch " +
                         std::to_string(epoch + 1);
            log.Info(end_reason, "; ending the job");
            stop = true;
          }
        }
      }
    }
    if (!rollback || stop) break;
    rollback = false;
    RETURN_IF_ERROR(join());
    log.Warn("the job rolled back: going on from clock ", clock, " (epoch ",
             clock / steps_per_epoch + 1, ")");
    start_clock = clock;
  }  // while: rollbacks
  summary.steps = clock;
  summary.seconds = Seconds(start);

  if (lead && !options.model_path.empty() && !node.cluster().shutting_down()) {
    // The final model: dense tables as they are here; sparse tables as the
    // rows of every key the training and test data touch.
    SavedModel saved;
    saved.step = clock;
    for (size_t t = 0; t < num_tables; ++t) {
      SavedTable st;
      st.name = decls[t].name;
      st.sparse = decls[t].kind == TableKind::kSparse;
      st.size = decls[t].size;
      st.dim = decls[t].dim;
      if (!st.sparse) {
        st.values = dense[t];
      } else {
        std::vector<uint64_t> ids = FeatureIds(train);
        if (test != nullptr) {
          auto more = FeatureIds(*test);
          ids.insert(ids.end(), more.begin(), more.end());
          std::sort(ids.begin(), ids.end());
          ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
        }
        st.keys = std::move(ids);
        st.values.resize(st.keys.size() * st.dim);
        std::vector<KvHandle> hs = {
            kv.PullSparse(static_cast<uint32_t>(t), st.keys, st.values, clock)};
        RETURN_IF_ERROR(WaitAll(node, hs, options.request_timeout));
      }
      saved.tables.push_back(std::move(st));
    }
    RETURN_IF_ERROR(SaveModel(options.model_path, saved));
    log.Info("saved the model (step ", clock, ") to ", options.model_path);
  }
  if (lead) {
    Json done = {{"type", "done"},
                 {"epochs", summary.epochs},
                 {"step", clock},
                 {"elapsed_s", summary.seconds},
                 {"reached_target", summary.reached_target},
                 {"step_ms", {{"p50", step_times.Quantile(0.5)},
                              {"p90", step_times.Quantile(0.9)},
                              {"p99", step_times.Quantile(0.99)},
                              {"max", step_times.Max()},
                              {"steps", step_times.count()}}}};
    for (const auto& m : summary.last_eval) done[m.name] = m.value;
    metrics.Write(done);
  }
  if (lead && options.send_results) {
    // A lost result at the end of a run is the worst loss there is: the
    // files stay here whatever happens, and a failed hand-over says where.
    for (const std::string& path : {options.metrics_path, options.model_path}) {
      if (path.empty() || node.cluster().shutting_down()) continue;
      const std::string name = path.substr(path.rfind('/') + 1);
      Status s = node.cluster().SendFile(name, path, Deadline::After(options.request_timeout));
      if (!s.ok()) {
        log.Error("could not hand ", name, " to the coordinator (", s.message(), "); it is at ",
                  path);
      }
    }
  }
  Status fin = node.Finish(Deadline::After(std::chrono::minutes(10)), end_reason);
  if (!fin.ok()) return fin;
  return summary;
}

}  // namespace distopt
