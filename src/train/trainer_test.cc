// Tests of the worker's training loop on an in-process cluster: BSP with W
// workers of batch B equals one worker with batch W*B and a plain loop with
// no cluster at all; evaluation against hand-computed metrics; the saved
// model file (round trip, corruption, mismatched tables); and an early stop
// on a target metric that ends the job for every worker.
#include "train/trainer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "data/batcher.h"
#include "kv/testing/in_proc_cluster.h"
#include "optim/optimizer.h"

namespace distopt {
namespace {

using std::chrono::seconds;

// A temporary directory removed with the object.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/distopt-trainer-XXXXXX";
    path_ = mkdtemp(tmpl) != nullptr ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// `rows` x `features` dense examples of `classes` Gaussian blobs: class c
// (row r has class r % classes) centred at a random point whose coordinates
// are N(0, spread^2), drawn from `centre_seed`, plus unit noise drawn from
// `noise_seed` (a test set: same centres, other noise). Deterministic within
// one build.
Dataset Blobs(size_t rows, size_t features, int classes, float spread, uint64_t centre_seed,
              uint64_t noise_seed) {
  std::mt19937_64 centre_rng(centre_seed), rng(noise_seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> centres(static_cast<size_t>(classes) * features);
  for (float& c : centres) c = spread * normal(centre_rng);
  Dataset d;
  d.num_rows = rows;
  d.num_features = features;
  d.dense.resize(rows * features);
  d.labels.resize(rows);
  for (size_t r = 0; r < rows; ++r) {
    int c = static_cast<int>(r % static_cast<size_t>(classes));
    d.labels[r] = static_cast<float>(c);
    for (size_t j = 0; j < features; ++j) {
      d.dense[r * features + j] = centres[static_cast<size_t>(c) * features + j] + normal(rng);
    }
  }
  return d;
}

struct Job {
  Dataset train;
  size_t shares = 0;  // the training set cut into this many (0: one per worker)
  const Dataset* test = nullptr;
  ModelOptions model;
  OptimizerOptions optimizer;
};

std::vector<TableDecl> Decls(const Job& job) {
  auto m = CreateModel(job.model, job.train.num_features);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? (*m)->Tables() : std::vector<TableDecl>{};
}

struct ClusterRun {
  Status status;
  std::vector<TrainSummary> summaries;     // by worker rank
  std::vector<std::vector<float>> tables;  // dense tables as the servers hold them
};

ClusterRun RunOnCluster(const Job& job, uint32_t servers, uint32_t workers,
                        const TrainerOptions& options) {
  const std::vector<TableDecl> decls = Decls(job);
  InProcClusterOptions co;
  co.servers = servers;
  co.workers = workers;
  co.tables = MakeTableSpecs(decls, job.optimizer);
  InProcCluster cluster(co);
  ClusterRun out;
  out.summaries.resize(workers);
  std::mutex mu;
  out.status = cluster.Run([&](WorkerNode& node) -> Status {
    const uint32_t rank = node.rank();
    ASSIGN_OR_RETURN(auto model, CreateModel(job.model, job.train.num_features));
    MemoryShares shares(&job.train, job.shares > 0 ? job.shares : workers);
    ASSIGN_OR_RETURN(TrainSummary s,
                     RunTraining(node, *model, shares, job.test, options, Logger::Null()));
    std::lock_guard<std::mutex> lock(mu);
    out.summaries.at(rank) = s;
    return Status::Ok();
  });
  for (size_t t = 0; t < decls.size(); ++t) {
    if (decls[t].kind == TableKind::kDense) {
      out.tables.push_back(cluster.DenseTable(static_cast<uint32_t>(t)));
    }
  }
  return out;
}

// The same training as the cluster's with one worker owning all `shares`
// shares, written out plainly: parameters initialized as the servers do, the
// same global-order batches (`batch` rows of each share per step), the
// model's mean gradient, the optimizer applied to whole tables.
std::vector<std::vector<float>> ReferenceTraining(const Job& job, int64_t batch, int64_t epochs,
                                                  uint64_t seed, size_t shares) {
  auto created = CreateModel(job.model, job.train.num_features);
  EXPECT_TRUE(created.ok());
  Model& model = **created;
  const std::vector<TableDecl> decls = model.Tables();
  auto opt = Optimizer::Create(job.optimizer);
  EXPECT_TRUE(opt.ok());
  const size_t n = decls.size();
  std::vector<std::vector<float>> w(n), state(n);
  for (size_t t = 0; t < n; ++t) {
    EXPECT_EQ(decls[t].kind, TableKind::kDense) << "the reference handles dense tables only";
    w[t].resize(decls[t].size);
    InitFill(decls[t].init, static_cast<uint32_t>(t), 0, w[t].data(), decls[t].size);
    state[t].resize(static_cast<size_t>((*opt)->state_slots()) * decls[t].size);
    (*opt)->InitState(state[t].data(), decls[t].size);
  }
  BatchOptions bo;
  bo.batch_size = static_cast<size_t>(batch);
  bo.seed = seed;
  bo.shuffle = true;
  bo.drop_last = true;
  bo.num_shards = static_cast<int>(shares);
  bo.global_order = true;
  MemoryShares source(&job.train, shares);
  for (size_t s = 0; s < shares; ++s) bo.shards.push_back(static_cast<int>(s));
  Dataset storage;
  auto rows = JoinShares(source, bo.shards, &storage, &bo.share_rows);
  EXPECT_TRUE(rows.ok());
  bo.steps_per_epoch =
      *std::min_element(bo.share_rows.begin(), bo.share_rows.end()) / static_cast<size_t>(batch);
  auto it = BatchIterator::Create(*rows, bo);
  EXPECT_TRUE(it.ok());
  int64_t step = 0;
  GradSet grads;
  for (int64_t e = 0; e < epochs; ++e) {
    it->StartEpoch(static_cast<int>(e));
    Batch b;
    while (it->Next(&b)) {
      ParamSet ps;
      ps.values.assign(n, {});
      ps.keys.assign(n, {});
      for (size_t t = 0; t < n; ++t) ps.values[t] = w[t];
      auto loss = model.ForwardBackward(b, ps, &grads);
      EXPECT_TRUE(loss.ok());
      ++step;
      for (size_t t = 0; t < n; ++t) {
        (*opt)->Update(w[t].data(), grads.values[t].data(), state[t].data(), w[t].size(), step);
      }
    }
  }
  return w;
}

// ||a - b|| / ||b|| over all tables together.
double RelErr(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t t = 0; t < std::min(a.size(), b.size()); ++t) {
    EXPECT_EQ(a[t].size(), b[t].size());
    for (size_t i = 0; i < std::min(a[t].size(), b[t].size()); ++i) {
      double d = static_cast<double>(a[t][i]) - b[t][i];
      num += d * d;
      den += static_cast<double>(b[t][i]) * b[t][i];
    }
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

Job MlpJob() {
  Job job;
  job.train = Blobs(512, 20, 3, 0.5f, 11, 12);
  job.model.kind = "mlp";
  job.model.hidden = {16};
  job.model.num_classes = 3;
  job.model.seed = 5;
  job.optimizer.kind = "sgd";
  job.optimizer.lr = 0.2f;
  job.optimizer.momentum = 0.9f;
  return job;
}

TrainerOptions Opts(int64_t batch, int64_t epochs) {
  TrainerOptions o;
  o.batch_size = batch;
  o.epochs = epochs;
  o.seed = 3;
  o.global_order = true;
  o.log_every_steps = 0;
  o.request_timeout = seconds(60);
  return o;
}

// ---- BSP equals large-batch SGD ----

class BspEquivalenceTest : public ::testing::TestWithParam<std::tuple<uint32_t, std::string>> {};

TEST_P(BspEquivalenceTest, WWorkersEqualOneWorkerWithTheWTimesBatch) {
  const auto [workers, model_kind] = GetParam();
  constexpr int64_t kBatch = 16, kEpochs = 3;
  Job job = MlpJob();
  job.model.kind = model_kind;
  ClusterRun many = RunOnCluster(job, 2, workers, Opts(kBatch, kEpochs));
  ASSERT_TRUE(many.status.ok()) << many.status.ToString();
  Job single = job;
  single.shares = workers;  // one worker reading the same shares: the W-times batch
  ClusterRun one = RunOnCluster(single, 2, 1, Opts(kBatch, kEpochs));
  ASSERT_TRUE(one.status.ok()) << one.status.ToString();

  // Same number of steps: 512 / (W * B) global batches per epoch.
  const int64_t steps = kEpochs * (512 / (kBatch * workers));
  for (const auto& s : many.summaries) {
    EXPECT_EQ(s.steps, steps);
    EXPECT_EQ(s.epochs, kEpochs);
  }
  ASSERT_EQ(one.summaries.size(), 1u);
  EXPECT_EQ(one.summaries[0].steps, steps);

  // The parameters moved (a run that trained nothing would also "agree").
  std::vector<std::vector<float>> init;
  for (const TableDecl& d : Decls(job)) {
    init.emplace_back(d.size);
    InitFill(d.init, static_cast<uint32_t>(init.size() - 1), 0, init.back().data(), d.size);
  }
  EXPECT_GT(RelErr(one.tables, init), 0.05);
  // Only the order of float sums differs.
  EXPECT_LE(RelErr(many.tables, one.tables), 1e-5);
}

TEST_P(BspEquivalenceTest, OneWorkerEqualsAPlainLoopWithoutACluster) {
  const auto [workers, model_kind] = GetParam();
  constexpr int64_t kBatch = 16, kEpochs = 2;
  Job job = MlpJob();
  job.model.kind = model_kind;
  job.shares = workers;
  ClusterRun one = RunOnCluster(job, 2, 1, Opts(kBatch, kEpochs));
  ASSERT_TRUE(one.status.ok()) << one.status.ToString();
  auto ref = ReferenceTraining(job, kBatch, kEpochs, 3, workers);
  EXPECT_LE(RelErr(one.tables, ref), 1e-6);
  // A reference over another shuffle is far off: the comparison can tell.
  auto other = ReferenceTraining(job, kBatch, kEpochs, 4, workers);
  EXPECT_GT(RelErr(other, ref), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Workers, BspEquivalenceTest,
                         ::testing::Combine(::testing::Values(2u, 4u),
                                            ::testing::Values("mlp", "softmax_regression")),
                         [](const auto& p) {
                           return std::get<1>(p.param) + "_W" +
                                  std::to_string(std::get<0>(p.param));
                         });

TEST(TrainerTest, PlainSgdWithoutMomentumAlsoMatches) {
  Job job = MlpJob();
  job.optimizer.momentum = 0.0f;
  job.optimizer.lr = 0.5f;
  ClusterRun four = RunOnCluster(job, 1, 4, Opts(8, 2));
  ASSERT_TRUE(four.status.ok()) << four.status.ToString();
  auto ref = ReferenceTraining(job, 8, 2, 3, 4);
  EXPECT_LE(RelErr(four.tables, ref), 1e-5);
}

// Delegates to a real model and records, as the model announces each
// table's gradient during backward, how many requests the worker's client
// had made in this ForwardBackward by then.
class Announcing : public Model {
 public:
  Announcing(std::unique_ptr<Model> inner, KvClient& kv) : inner_(std::move(inner)), kv_(kv) {}
  std::vector<TableDecl> Tables() const override { return inner_->Tables(); }
  Task task() const override { return inner_->task(); }
  int num_outputs() const override { return inner_->num_outputs(); }
  void CollectKeys(const Batch& b, std::vector<std::vector<uint64_t>>* keys) const override {
    inner_->CollectKeys(b, keys);
  }
  Status Predict(const Batch& b, const ParamSet& p, Eigen::MatrixXf* out) override {
    return inner_->Predict(b, p, out);
  }
  Result<float> ForwardBackward(const Batch& b, const ParamSet& p, GradSet* g) override {
    const std::function<void(size_t)> trainer = g->ready;
    const uint64_t before = kv_.stats().requests;
    std::vector<std::pair<size_t, uint64_t>> seen;
    g->ready = [&](size_t t) {
      if (trainer) trainer(t);
      seen.emplace_back(t, kv_.stats().requests - before);
    };
    Result<float> loss = inner_->ForwardBackward(b, p, g);
    g->ready = trainer;
    steps.push_back(std::move(seen));
    return loss;
  }
  std::vector<std::vector<std::pair<size_t, uint64_t>>> steps;

 private:
  std::unique_ptr<Model> inner_;
  KvClient& kv_;
};

// Overlap: each layer's gradient is pushed the moment backward has it, the
// last layer first, while the layers below are still being differentiated.
TEST(TrainerTest, EachLayersGradientIsPushedWhileBackwardStillRuns) {
  Job job = MlpJob();  // l0.w, l0.b, l1.w, l1.b
  const std::vector<TableDecl> decls = Decls(job);
  InProcClusterOptions co;
  co.servers = 2;
  co.workers = 2;
  co.tables = MakeTableSpecs(decls, job.optimizer);
  InProcCluster cluster(co);
  std::mutex mu;
  std::vector<std::vector<std::vector<std::pair<size_t, uint64_t>>>> seen(2);
  Status s = cluster.Run([&](WorkerNode& node) -> Status {
    ASSIGN_OR_RETURN(auto inner, CreateModel(job.model, job.train.num_features));
    Announcing model(std::move(inner), node.kv());
    MemoryShares shares(&job.train, 2);
    ASSIGN_OR_RETURN(TrainSummary sum,
                     RunTraining(node, model, shares, job.test, Opts(16, 1), Logger::Null()));
    std::lock_guard<std::mutex> lock(mu);
    seen.at(node.rank()) = model.steps;
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  const std::vector<std::pair<size_t, uint64_t>> want = {{3, 1}, {2, 2}, {1, 3}, {0, 4}};
  for (const auto& steps : seen) {
    ASSERT_EQ(steps.size(), 512u / (16 * 2));
    for (const auto& step : steps) EXPECT_EQ(step, want);
  }
  // And the run is still BSP's: the same model as one worker with the 2x batch.
  Job single = job;
  single.shares = 2;
  ClusterRun one = RunOnCluster(single, 2, 1, Opts(16, 1));
  ASSERT_TRUE(one.status.ok());
  std::vector<std::vector<float>> tables;
  for (size_t t = 0; t < decls.size(); ++t) tables.push_back(cluster.DenseTable(uint32_t(t)));
  EXPECT_LE(RelErr(tables, one.tables), 1e-5);
}

// The model worker 0 saves is what the servers hold at the end.
TEST(TrainerTest, SavedModelEqualsTheServersTables) {
  TempDir dir;
  Job job = MlpJob();
  TrainerOptions o = Opts(16, 2);
  o.model_path = dir.path() + "/model.bin";
  ClusterRun run = RunOnCluster(job, 2, 2, o);
  ASSERT_TRUE(run.status.ok()) << run.status.ToString();
  auto saved = LoadModel(o.model_path);
  ASSERT_TRUE(saved.ok()) << saved.status().ToString();
  EXPECT_EQ(saved->step, run.summaries[0].steps);
  const auto decls = Decls(job);
  ASSERT_EQ(saved->tables.size(), decls.size());
  for (size_t t = 0; t < decls.size(); ++t) {
    EXPECT_EQ(saved->tables[t].name, decls[t].name);
    EXPECT_FALSE(saved->tables[t].sparse);
    EXPECT_EQ(saved->tables[t].values, run.tables[t]) << decls[t].name;
  }
}

// ---- Evaluate ----

// One feature, x in {-2, -1, 1, 2, 3}, labels {0, 1, 1, 0, 1}; logistic
// regression with w = 1, b = 0.5 scores z = x + 0.5.
Dataset FiveRows() {
  Dataset d;
  d.num_rows = 5;
  d.num_features = 1;
  d.dense = {-2, -1, 1, 2, 3};
  d.labels = {0, 1, 1, 0, 1};
  return d;
}

double Sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

const MetricValue* Metric(const std::vector<MetricValue>& v, const std::string& name) {
  for (const auto& m : v) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

TEST(EvaluateTest, LogisticRegressionMetricsMatchHandComputedValues) {
  const Dataset d = FiveRows();
  double loss = 0;
  for (size_t i = 0; i < d.num_rows; ++i) {
    double p = Sigmoid(d.dense[i] + 0.5);
    loss -= d.labels[i] > 0 ? std::log(p) : std::log(1 - p);
  }
  loss /= 5;
  // p = sigmoid(-1.5, -0.5, 1.5, 2.5, 3.5): predicted 0, 0, 1, 1, 1 against
  // 0, 1, 1, 0, 1 -> 3/5 right. AUC: positives score {-0.5, 1.5, 3.5},
  // negatives {-1.5, 2.5}; of the 6 pairs the positive wins 1 + 2 + 1 = 4.
  for (bool sparse_w : {false, true}) {
    SCOPED_TRACE(sparse_w ? "sparse w" : "dense w");
    ModelOptions mo;
    mo.kind = "logistic_regression";
    mo.dense_weights = !sparse_w;
    auto model = CreateModel(mo, 1);
    ASSERT_TRUE(model.ok());
    SavedModel saved;
    if (sparse_w) {
      saved.tables.push_back(
          {.name = "w", .sparse = true, .dim = 1, .keys = {0}, .values = {1.0f}});
    } else {
      saved.tables.push_back({.name = "w", .size = 1, .values = {1.0f}});
    }
    saved.tables.push_back({.name = "b", .size = 1, .values = {0.5f}});
    auto source = SavedModelSource(saved, (*model)->Tables());
    ASSERT_TRUE(source.ok()) << source.status().ToString();
    // Batches of 2 split the rows 2 + 2 + 1: the metrics must not depend on it.
    for (size_t batch : {size_t{2}, size_t{1000}}) {
      auto m = Evaluate(**model, d, *source, batch);
      ASSERT_TRUE(m.ok()) << m.status().ToString();
      ASSERT_NE(Metric(*m, "test_loss"), nullptr);
      ASSERT_NE(Metric(*m, "test_accuracy"), nullptr);
      ASSERT_NE(Metric(*m, "test_auc"), nullptr);
      EXPECT_NEAR(Metric(*m, "test_loss")->value, loss, 1e-5);
      EXPECT_DOUBLE_EQ(Metric(*m, "test_accuracy")->value, 0.6);
      EXPECT_DOUBLE_EQ(Metric(*m, "test_auc")->value, 4.0 / 6.0);
    }
  }
}

TEST(EvaluateTest, SparseKeysTheSavedModelLacksReadAsZero) {
  // Three features; the saved model knows keys 0 and 2 only. Rows are one-hot.
  Dataset d;
  d.sparse = true;
  d.num_rows = 3;
  d.num_features = 3;
  d.row_ptr = {0, 1, 2, 3};
  d.col_idx = {0, 1, 2};
  d.col_val = {1, 1, 1};
  d.labels = {1, 0, 0};
  ModelOptions mo;
  mo.kind = "logistic_regression";
  auto model = CreateModel(mo, 3);
  ASSERT_TRUE(model.ok());
  SavedModel saved;
  saved.tables.push_back(
      {.name = "w", .sparse = true, .dim = 1, .keys = {0, 2}, .values = {2.0f, -3.0f}});
  saved.tables.push_back({.name = "b", .size = 1, .values = {0.0f}});
  auto source = SavedModelSource(saved, (*model)->Tables());
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  auto m = Evaluate(**model, d, *source);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  // z = 2, 0 (key 1 unknown), -3: losses log(1+e^-2), log 2, log(1+e^-3).
  double loss = (std::log1p(std::exp(-2.0)) + std::log(2.0) + std::log1p(std::exp(-3.0))) / 3;
  EXPECT_NEAR(Metric(*m, "test_loss")->value, loss, 1e-5);
  // Row 1 scores exactly 0.5, which counts as class 1: wrong.
  EXPECT_NEAR(Metric(*m, "test_accuracy")->value, 2.0 / 3.0, 1e-12);
}

TEST(EvaluateTest, SoftmaxRegressionAccuracyFromKnownWeights) {
  // Two features, three classes: w picks class 0 for x0, class 2 for x1.
  Dataset d;
  d.num_rows = 4;
  d.num_features = 2;
  d.dense = {1, 0, 0, 1, 2, 1, 1, 3};
  d.labels = {0, 2, 0, 1};  // the last is predicted 2: wrong
  ModelOptions mo;
  mo.kind = "softmax_regression";
  mo.num_classes = 3;
  auto model = CreateModel(mo, 2);
  ASSERT_TRUE(model.ok());
  SavedModel saved;
  // Row-major (features x classes).
  saved.tables.push_back(
      {.name = (*model)->Tables()[0].name, .size = 6, .values = {1, 0, 0, 0, 0, 1}});
  saved.tables.push_back({.name = (*model)->Tables()[1].name, .size = 3, .values = {0, 0, 0}});
  auto source = SavedModelSource(saved, (*model)->Tables());
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  auto m = Evaluate(**model, d, *source, 3);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_DOUBLE_EQ(Metric(*m, "test_accuracy")->value, 0.75);
  // Row 0: scores (1, 0, 0), label 0: -log(e / (e + 2)).
  double l0 = -std::log(std::exp(1.0) / (std::exp(1.0) + 2));
  double l1 = -std::log(std::exp(1.0) / (std::exp(1.0) + 2));
  double l2 = -std::log(std::exp(2.0) / (std::exp(2.0) + 1 + std::exp(1.0)));
  double l3 = -std::log(1 / (std::exp(1.0) + 1 + std::exp(3.0)));
  EXPECT_NEAR(Metric(*m, "test_loss")->value, (l0 + l1 + l2 + l3) / 4, 1e-5);
}

TEST(SavedModelSourceTest, RejectsAModelWhoseTablesDoNotMatch) {
  ModelOptions mlp;
  mlp.kind = "mlp";
  mlp.hidden = {8};
  mlp.num_classes = 3;
  auto small = CreateModel(mlp, 4);
  mlp.hidden = {9};
  auto wider = CreateModel(mlp, 4);
  ModelOptions softmax;
  softmax.kind = "softmax_regression";
  softmax.num_classes = 3;
  auto linear = CreateModel(softmax, 4);
  ModelOptions logreg;
  logreg.kind = "logistic_regression";
  auto sparse_lr = CreateModel(logreg, 4);
  logreg.dense_weights = true;
  auto dense_lr = CreateModel(logreg, 4);
  ASSERT_TRUE(small.ok() && wider.ok() && linear.ok() && sparse_lr.ok() && dense_lr.ok());

  auto saved_of = [](const Model& m) {
    SavedModel s;
    for (const TableDecl& d : m.Tables()) {
      SavedTable t;
      t.name = d.name;
      t.sparse = d.kind == TableKind::kSparse;
      t.size = d.size;
      t.dim = d.dim;
      if (!t.sparse) t.values.assign(d.size, 0.5f);
      s.tables.push_back(std::move(t));
    }
    return s;
  };
  const SavedModel s_small = saved_of(**small);
  const SavedModel s_dense_lr = saved_of(**dense_lr);
  EXPECT_TRUE(SavedModelSource(s_small, (**small).Tables()).ok());
  EXPECT_TRUE(SavedModelSource(s_dense_lr, (**dense_lr).Tables()).ok());

  // Same tables, other sizes.
  auto r = SavedModelSource(s_small, (**wider).Tables());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  // The names agree; the message must say what differs (4 x 8 vs 4 x 9).
  EXPECT_NE(r.status().message().find("32 floats"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("36 floats"), std::string::npos) << r.status().message();
  // Another number of tables.
  r = SavedModelSource(s_small, (**linear).Tables());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("tables"), std::string::npos) << r.status().message();
  // Dense where the model wants sparse.
  r = SavedModelSource(s_dense_lr, (**sparse_lr).Tables());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'w'"), std::string::npos) << r.status().message();
  // A renamed table.
  SavedModel renamed = s_small;
  renamed.tables[1].name = "other";
  r = SavedModelSource(renamed, (**small).Tables());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("other"), std::string::npos) << r.status().message();
}

// ---- model file ----

SavedModel SampleModel() {
  SavedModel m;
  m.step = 1234;
  m.tables.push_back({.name = "dense", .size = 5, .values = {1.5f, -2, 0, 3.25f, 1e-20f}});
  m.tables.push_back({.name = "rows",
                      .sparse = true,
                      .dim = 2,
                      .keys = {3, 70, uint64_t{1} << 60},
                      .values = {1, 2, 3, 4, 5, 6}});
  m.tables.push_back({.name = "empty", .size = 0, .values = {}});
  return m;
}

TEST(ModelFileTest, RoundTrip) {
  TempDir dir;
  const std::string path = dir.path() + "/model.bin";
  SavedModel m = SampleModel();
  ASSERT_TRUE(SaveModel(path, m).ok());
  auto back = LoadModel(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->step, m.step);
  ASSERT_EQ(back->tables.size(), m.tables.size());
  for (size_t t = 0; t < m.tables.size(); ++t) {
    const SavedTable &a = m.tables[t], &b = back->tables[t];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.sparse, b.sparse);
    EXPECT_EQ(a.size, b.size);
    EXPECT_EQ(a.dim, b.dim);
    EXPECT_EQ(a.keys, b.keys);
    EXPECT_EQ(a.values, b.values);
  }
  // Overwriting replaces the file whole.
  m.step = 7;
  m.tables.pop_back();
  ASSERT_TRUE(SaveModel(path, m).ok());
  back = LoadModel(path);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->step, 7);
  EXPECT_EQ(back->tables.size(), 2u);
}

TEST(ModelFileTest, RefusesToSaveInconsistentTables) {
  TempDir dir;
  SavedModel m = SampleModel();
  m.tables[1].values.pop_back();
  Status s = SaveModel(dir.path() + "/model.bin", m);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("rows"), std::string::npos) << s.message();
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/model.bin"));
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(ModelFileTest, EveryFlippedByteIsDataLoss) {
  TempDir dir;
  const std::string good = dir.path() + "/good.bin", bad = dir.path() + "/bad.bin";
  ASSERT_TRUE(SaveModel(good, SampleModel()).ok());
  const std::string bytes = ReadAll(good);
  ASSERT_GT(bytes.size(), 100u);
  // Every byte of the file: magic, header, names, keys, values, the CRC itself.
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string b = bytes;
    b[i] = static_cast<char>(b[i] ^ 0x10);
    WriteAll(bad, b);
    auto r = LoadModel(bad);
    ASSERT_FALSE(r.ok()) << "byte " << i << " flipped went unnoticed";
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss)
        << "byte " << i << ": " << r.status().ToString();
  }
  // Truncated anywhere, or with bytes appended.
  for (size_t n : {size_t{0}, size_t{7}, size_t{20}, bytes.size() / 2, bytes.size() - 1}) {
    WriteAll(bad, bytes.substr(0, n));
    auto r = LoadModel(bad);
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << "truncated to " << n;
  }
  WriteAll(bad, bytes + "x");
  EXPECT_EQ(LoadModel(bad).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(LoadModel(dir.path() + "/missing.bin").status().code(), StatusCode::kNotFound);
}

// ---- early stop on a target metric ----

std::vector<nlohmann::json> JsonLines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

TEST(TrainerTest, TargetMetricEndsTheJobForEveryWorker) {
  TempDir dir;
  Job job;
  job.train = Blobs(600, 10, 3, 3.0f, 21, 1);  // far-apart blobs: separable
  Dataset test = Blobs(300, 10, 3, 3.0f, 21, 2);
  job.test = &test;
  job.model.kind = "softmax_regression";
  job.model.num_classes = 3;
  job.optimizer.lr = 0.1f;
  constexpr int64_t kMaxEpochs = 20;
  TrainerOptions o = Opts(25, kMaxEpochs);
  o.target_metric = "test_accuracy";
  o.target = 0.9;
  o.metrics_path = dir.path() + "/metrics.jsonl";
  o.model_path = dir.path() + "/model.bin";
  o.request_timeout = seconds(30);
  ClusterRun run = RunOnCluster(job, 2, 3, o);
  ASSERT_TRUE(run.status.ok()) << run.status.ToString();

  const TrainSummary& lead = run.summaries[0];
  EXPECT_TRUE(lead.reached_target);
  EXPECT_GE(lead.epochs, 1);
  EXPECT_LT(lead.epochs, kMaxEpochs);
  const MetricValue* acc = Metric(lead.last_eval, "test_accuracy");
  ASSERT_NE(acc, nullptr);
  EXPECT_GE(acc->value, 0.9);
  // The others stopped too, at the same BSP clock (none ran on to the end).
  for (uint32_t r = 1; r < 3; ++r) {
    EXPECT_EQ(run.summaries[r].steps, lead.steps) << "worker " << r;
    EXPECT_LE(run.summaries[r].epochs, lead.epochs) << "worker " << r;
    EXPECT_FALSE(run.summaries[r].reached_target);
  }
  EXPECT_EQ(lead.steps, lead.epochs * (600 / 75));

  // metrics.jsonl: a start line, one eval per epoch run, a done line.
  auto lines = JsonLines(o.metrics_path);
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines.front()["type"], "start");
  EXPECT_EQ(lines.back()["type"], "done");
  EXPECT_EQ(lines.back()["reached_target"], true);
  EXPECT_EQ(lines.back()["epochs"], lead.epochs);
  int evals = 0;
  for (const auto& l : lines) evals += l["type"] == "eval" ? 1 : 0;
  EXPECT_EQ(evals, lead.epochs);
  // The model was saved at the stopping step and scores what was logged.
  auto saved = LoadModel(o.model_path);
  ASSERT_TRUE(saved.ok()) << saved.status().ToString();
  EXPECT_EQ(saved->step, lead.steps);
  auto model = CreateModel(job.model, 10);
  ASSERT_TRUE(model.ok());
  auto source = SavedModelSource(*saved, (*model)->Tables());
  ASSERT_TRUE(source.ok());
  auto m = Evaluate(**model, test, *source);
  ASSERT_TRUE(m.ok());
  EXPECT_DOUBLE_EQ(Metric(*m, "test_accuracy")->value, acc->value);
}

TEST(TrainerTest, UnreachedTargetRunsEveryEpoch) {
  Job job;
  job.train = Blobs(300, 10, 3, 3.0f, 21, 1);
  Dataset test = Blobs(150, 10, 3, 3.0f, 21, 2);
  job.test = &test;
  job.model.kind = "softmax_regression";
  job.model.num_classes = 3;
  TrainerOptions o = Opts(25, 3);
  o.target_metric = "test_loss";
  o.target = -1.0;  // a loss never gets there
  ClusterRun run = RunOnCluster(job, 1, 2, o);
  ASSERT_TRUE(run.status.ok()) << run.status.ToString();
  EXPECT_FALSE(run.summaries[0].reached_target);
  EXPECT_EQ(run.summaries[0].epochs, 3);
  EXPECT_EQ(run.summaries[1].epochs, 3);
}

TEST(TrainerTest, TooSmallATrainingSetIsAnErrorNamingTheSizes) {
  Job job = MlpJob();
  job.train = Blobs(30, 20, 3, 0.5f, 1, 2);
  ClusterRun run = RunOnCluster(job, 1, 2, Opts(16, 1));  // 2 shares of 15 rows < 16
  EXPECT_EQ(run.status.code(), StatusCode::kInvalidArgument) << run.status.ToString();
  EXPECT_NE(run.status.message().find("has 15 rows, fewer than batch_size 16"), std::string::npos)
      << run.status.message();
}

}  // namespace
}  // namespace distopt
