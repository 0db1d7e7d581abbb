// Model construction, validation of everything a model is handed (options,
// labels, feature ids, parameters), keys of sparse tables, and agreement
// between the input and batch layouts a model accepts.
#include "ml/model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ml/fm.h"
#include "ml/metrics.h"
#include "ml/mlp.h"
#include "ml/test_util.h"

namespace distopt {
namespace {

using ml_test::OwnedParams;
using ::testing::HasSubstr;

std::unique_ptr<Model> Make(const ModelOptions& o, uint64_t features) {
  Result<std::unique_ptr<Model>> m = CreateModel(o, features);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? std::move(m).value() : nullptr;
}

ModelOptions Kind(const std::string& kind) {
  ModelOptions o;
  o.kind = kind;
  return o;
}

Status CreateError(const ModelOptions& o, uint64_t features = 10) {
  Result<std::unique_ptr<Model>> m = CreateModel(o, features);
  return m.ok() ? Status::Ok() : m.status();
}

TEST(CreateModelTest, DeclaresTheDocumentedTables) {
  auto mlp = Make(ModelOptions{}, 784);  // the seed model: 784 -> 128 relu -> 10
  ASSERT_NE(mlp, nullptr);
  const std::vector<TableDecl> t = mlp->Tables();
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0].name, "l0.w");
  EXPECT_EQ(t[0].size, 784u * 128u);
  EXPECT_EQ(t[1].name, "l0.b");
  EXPECT_EQ(t[1].size, 128u);
  EXPECT_EQ(t[2].name, "l1.w");
  EXPECT_EQ(t[2].size, 1280u);
  EXPECT_EQ(t[3].name, "l1.b");
  EXPECT_EQ(mlp->NumDenseParams(), 784u * 128 + 128 + 128 * 10 + 10);
  EXPECT_EQ(mlp->task(), Task::kMulticlass);
  EXPECT_EQ(mlp->num_outputs(), 10);

  auto lr = Make(Kind("logistic_regression"), 1000);
  ASSERT_NE(lr, nullptr);
  EXPECT_EQ(lr->Tables()[0].kind, TableKind::kSparse);
  EXPECT_EQ(lr->Tables()[0].dim, 1u);
  EXPECT_EQ(lr->Tables()[1].name, "b");
  EXPECT_EQ(lr->NumDenseParams(), 1u);
  ModelOptions dense_lr = Kind("logistic_regression");
  dense_lr.dense_weights = true;
  auto lr2 = Make(dense_lr, 1000);
  EXPECT_EQ(lr2->Tables()[0].kind, TableKind::kDense);
  EXPECT_EQ(lr2->Tables()[0].size, 1000u);

  ModelOptions fm_opts = Kind("fm");
  fm_opts.fm_factors = 4;
  auto fm = Make(fm_opts, 50);
  ASSERT_NE(fm, nullptr);
  EXPECT_EQ(fm->Tables()[0].name, "v");
  EXPECT_EQ(fm->Tables()[0].kind, TableKind::kSparse);
  EXPECT_EQ(fm->Tables()[0].dim, 5u);
  EXPECT_EQ(fm->Tables()[0].init.kind, InitKind::kNormal);
  EXPECT_EQ(fm->task(), Task::kBinary);

  auto sm = Make(Kind("softmax_regression"), 20);
  EXPECT_EQ(sm->Tables()[0].size, 200u);
  auto lin = Make(Kind("linear_regression"), 20);
  EXPECT_EQ(lin->task(), Task::kRegression);
  EXPECT_EQ(lin->Tables()[0].size, 20u);
}

TEST(CreateModelTest, RejectsBadOptionsNamingTheOption) {
  EXPECT_THAT(CreateError(Kind("foo")).message(),
              HasSubstr("model.kind 'foo' is unknown (expected"));
  ModelOptions o;
  o.hidden = {};
  EXPECT_THAT(CreateError(o).message(), HasSubstr("model.hidden"));
  o.hidden = {128, 0};
  EXPECT_THAT(CreateError(o).message(), HasSubstr("model.hidden[1]"));
  o.hidden = {-5};
  EXPECT_THAT(CreateError(o).message(), HasSubstr("model.hidden[0]"));
  o = ModelOptions{};
  o.activation = "gelu";
  EXPECT_THAT(CreateError(o).message(), HasSubstr("model.activation 'gelu'"));
  o = ModelOptions{};
  o.num_classes = 1;
  EXPECT_THAT(CreateError(o).message(), HasSubstr("model.num_classes"));
  o = Kind("softmax_regression");
  o.num_classes = 0;
  EXPECT_THAT(CreateError(o).message(), HasSubstr("model.num_classes"));
  o = Kind("fm");
  o.fm_factors = 0;
  EXPECT_THAT(CreateError(o).message(), HasSubstr("model.fm_factors"));
  o.fm_factors = 4;
  o.init_scale = -1.0f;
  EXPECT_THAT(CreateError(o).message(), HasSubstr("model.init_scale"));
  EXPECT_THAT(CreateError(ModelOptions{}, 0).message(), HasSubstr("num_features"));
  // 2^40 inputs x 128 hidden units: refused before anything allocates.
  EXPECT_THAT(CreateError(ModelOptions{}, uint64_t{1} << 40).message(), HasSubstr("'l0.w'"));
  for (const Status& s : {CreateError(Kind("foo")), CreateError(o)}) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  }
}

TEST(MlpInitTest, GlorotUniformWeightsFromTheSeedAndZeroBiases) {
  ModelOptions o;
  o.seed = 5;
  auto m = Make(o, 784);
  ASSERT_NE(m, nullptr);
  const std::vector<TableDecl> t = m->Tables();
  EXPECT_EQ(t[0].init.kind, InitKind::kUniform);
  EXPECT_FLOAT_EQ(t[0].init.scale, std::sqrt(6.0f / (784 + 128)));
  EXPECT_EQ(t[0].init.seed, 5u);
  EXPECT_FLOAT_EQ(t[2].init.scale, std::sqrt(6.0f / (128 + 10)));
  EXPECT_EQ(t[1].init.kind, InitKind::kZeros);
  EXPECT_EQ(t[3].init.kind, InitKind::kZeros);

  ml_test::LocalTables tables(*m);
  const std::vector<float>& w = tables.dense(0);
  double sum = 0, sq = 0, max_abs = 0;
  for (float v : w) {
    sum += v;
    sq += double{v} * v;
    max_abs = std::max(max_abs, double{std::abs(v)});
  }
  const double bound = std::sqrt(6.0 / (784 + 128));
  EXPECT_LE(max_abs, bound);
  EXPECT_GT(max_abs, 0.99 * bound);
  EXPECT_NEAR(sum / w.size(), 0.0, 0.01 * bound);
  EXPECT_NEAR(std::sqrt(sq / w.size()), bound / std::sqrt(3.0), 0.01 * bound);  // U(-a, a)
  for (float v : tables.dense(1)) EXPECT_EQ(v, 0.0f);

  ModelOptions other = o;
  other.seed = 6;
  ml_test::LocalTables tables6(*Make(other, 784));
  EXPECT_NE(tables6.dense(0), w);
}

Dataset SparseToy() {
  // Ids out of order across rows and repeated; row 2 is empty.
  return ml_test::SparseDataset(
      100,
      {{{7, 1.0f}, {42, 2.0f}}, {{3, 1.0f}, {7, -1.0f}, {99, 0.5f}}, {}, {{0, 1.0f}, {42, 1.0f}}},
      {1.0f, 0.0f, 1.0f, 0.0f});
}

TEST(CollectKeysTest, SparseTablesGetUniqueAscendingKeysDenseTablesNone) {
  Dataset d = SparseToy();
  std::vector<uint32_t> rows;
  Batch b = ml_test::AllRows(d, &rows);
  for (const char* kind : {"logistic_regression", "fm"}) {
    auto m = Make(Kind(kind), 100);
    std::vector<std::vector<uint64_t>> keys(7, {123});  // stale content must go
    m->CollectKeys(b, &keys);
    ASSERT_EQ(keys.size(), 2u) << kind;
    EXPECT_EQ(keys[0], (std::vector<uint64_t>{0, 3, 7, 42, 99})) << kind;
    EXPECT_TRUE(keys[1].empty()) << kind;
  }
  for (const char* kind : {"linear_regression", "softmax_regression", "mlp"}) {
    auto m = Make(Kind(kind), 100);
    std::vector<std::vector<uint64_t>> keys;
    m->CollectKeys(b, &keys);
    ASSERT_EQ(keys.size(), m->Tables().size()) << kind;
    for (const auto& k : keys) EXPECT_TRUE(k.empty()) << kind;
  }
  // Dense input to a sparse table: the non-zero columns of the batch.
  Dataset dense = ml_test::DenseDataset(4, {0, 2, 0, 0, 0, 0, 0, 1}, {0, 1});
  auto lr = Make(Kind("logistic_regression"), 4);
  std::vector<std::vector<uint64_t>> keys;
  lr->CollectKeys(ml_test::AllRows(dense, &rows), &keys);
  EXPECT_EQ(keys[0], (std::vector<uint64_t>{1, 3}));
}

// Pulling more keys than the batch needs (as a worker that prefetched would)
// changes nothing: the extra rows get zero gradient, the others line up.
TEST(SparseGradientTest, RowsLineUpWithThePulledKeys) {
  Dataset d = SparseToy();
  std::vector<uint32_t> rows;
  Batch b = ml_test::AllRows(d, &rows);
  ModelOptions fm_opts = Kind("fm");
  fm_opts.fm_factors = 3;
  for (const ModelOptions& o : {Kind("logistic_regression"), fm_opts}) {
    auto m = Make(o, 100);
    const uint32_t dim = m->Tables()[0].dim;
    OwnedParams exact = ml_test::RandomParams(*m, b, 0.5f, 3);
    GradSet g_exact;
    Result<float> l_exact = m->ForwardBackward(b, exact.View(), &g_exact);
    ASSERT_TRUE(l_exact.ok()) << l_exact.status().ToString();

    OwnedParams wide = exact;
    wide.keys[0] = {0, 1, 3, 5, 7, 8, 42, 50, 99, 1000};
    wide.values[0].clear();
    std::vector<bool> extra;
    for (uint64_t k : wide.keys[0]) {
      const auto it = std::find(exact.keys[0].begin(), exact.keys[0].end(), k);
      extra.push_back(it == exact.keys[0].end());
      for (uint32_t j = 0; j < dim; ++j) {
        wide.values[0].push_back(
            extra.back() ? 9.0f : exact.values[0][(it - exact.keys[0].begin()) * dim + j]);
      }
    }
    GradSet g_wide;
    Result<float> l_wide = m->ForwardBackward(b, wide.View(), &g_wide);
    ASSERT_TRUE(l_wide.ok());
    EXPECT_FLOAT_EQ(*l_wide, *l_exact) << o.kind;
    ASSERT_EQ(g_wide.values[0].size(), wide.keys[0].size() * dim);
    size_t e = 0;
    for (size_t i = 0; i < wide.keys[0].size(); ++i) {
      for (uint32_t j = 0; j < dim; ++j) {
        const float got = g_wide.values[0][i * dim + j];
        if (extra[i]) {
          EXPECT_EQ(got, 0.0f) << o.kind << " key " << wide.keys[0][i];
        } else {
          EXPECT_FLOAT_EQ(got, g_exact.values[0][e * dim + j])
              << o.kind << " key " << wide.keys[0][i];
        }
      }
      e += extra[i] ? 0 : 1;
    }
    EXPECT_FLOAT_EQ(g_wide.values[1][0], g_exact.values[1][0]);

    // A key the batch needs but that was not pulled.
    OwnedParams missing = exact;
    missing.keys[0].erase(missing.keys[0].begin() + 2);  // id 7 (rows 0 and 1)
    missing.values[0].resize(missing.keys[0].size() * dim);
    Result<float> l_missing = m->ForwardBackward(b, missing.View(), &g_wide);
    ASSERT_FALSE(l_missing.ok());
    EXPECT_THAT(l_missing.status().message(), HasSubstr("feature id 7 of row 0"));
  }
}

// A batch that should fail, and a substring the error must contain.
struct BadInput {
  std::string kind;
  Dataset data;
  std::vector<uint32_t> rows;
  std::string expect;
};

TEST(ValidationTest, BadLabelsAndFeatureIdsAreRejectedNamingTheRow) {
  const Dataset dense4 = ml_test::DenseDataset(2, {1, 0, 0, 1, 1, 1, 0, 0}, {0, 1, 2, 3});
  std::vector<BadInput> cases;
  // Multiclass labels outside [0, classes): 10 classes by default.
  for (const char* kind : {"mlp", "softmax_regression"}) {
    for (float bad : {10.0f, -1.0f, 2.5f, std::numeric_limits<float>::quiet_NaN()}) {
      Dataset d = dense4;
      d.labels[3] = bad;
      cases.push_back({kind, d, {0, 1, 2, 3}, "row 3: label"});
    }
  }
  for (const char* kind : {"linear_regression", "logistic_regression", "fm"}) {
    Dataset d = dense4;
    d.labels[1] = std::numeric_limits<float>::infinity();
    cases.push_back({kind, d, {1}, "row 1: label is not a finite number"});
  }
  // Sparse feature id past num_features (2) for every model with dense tables.
  Dataset wide = ml_test::SparseDataset(13, {{{0, 1.0f}}, {{1, 1.0f}, {12, 1.0f}}}, {0, 1});
  for (const char* kind : {"linear_regression", "softmax_regression", "mlp"}) {
    cases.push_back({kind, wide, {0, 1}, "row 1: feature id 12 is >= num_features (2)"});
  }
  Dataset three_cols = ml_test::DenseDataset(3, {1, 2, 3}, {1});
  cases.push_back({"mlp", three_cols, {0}, "dataset has 3 features, the model was built for 2"});
  cases.push_back({"linear_regression", dense4, {0, 4}, "batch row 4 is outside the dataset"});
  cases.push_back({"mlp", dense4, {}, "batch is empty"});

  for (BadInput& c : cases) {
    ModelOptions o = Kind(c.kind);
    o.dense_weights = true;  // logistic regression: a dense "w" too
    auto m = Make(o, 2);
    Batch b{&c.data, c.rows};
    ml_test::LocalTables tables(*m);
    ParamSet p = tables.Pull(*m, b);
    GradSet g;
    Result<float> r = m->ForwardBackward(b, p, &g);
    ASSERT_FALSE(r.ok()) << c.kind << " accepted a batch that should fail with: " << c.expect;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr(c.expect)) << c.kind;
  }

  // Sparse tables have an open id space: ids the training set never had work.
  auto lr = Make(Kind("logistic_regression"), 2);
  std::vector<uint32_t> both = {0, 1};
  Batch b{&wide, both};
  ml_test::LocalTables t(*lr);
  GradSet g;
  EXPECT_TRUE(lr->ForwardBackward(b, t.Pull(*lr, b), &g).ok());
}

TEST(ValidationTest, ParamsThatDoNotMatchTheTablesAreRejectedNamingTheTable) {
  Dataset d = SparseToy();
  std::vector<uint32_t> rows;
  Batch b = ml_test::AllRows(d, &rows);
  auto m = Make(Kind("logistic_regression"), 100);
  OwnedParams good = ml_test::RandomParams(*m, b, 0.1f, 1);
  GradSet g;
  ASSERT_TRUE(m->ForwardBackward(b, good.View(), &g).ok());

  OwnedParams p = good;
  p.values.pop_back();
  EXPECT_THAT(m->ForwardBackward(b, p.View(), &g).status().message(),
              HasSubstr("params have 1 tables, the model declares 2"));
  p = good;
  p.values[1].push_back(0.0f);
  EXPECT_THAT(m->ForwardBackward(b, p.View(), &g).status().message(),
              HasSubstr("table 'b': 2 values, expected 1"));
  p = good;
  p.values[0].pop_back();
  EXPECT_THAT(m->ForwardBackward(b, p.View(), &g).status().message(), HasSubstr("table 'w'"));
  p = good;
  std::swap(p.keys[0][0], p.keys[0][1]);
  EXPECT_THAT(m->ForwardBackward(b, p.View(), &g).status().message(),
              HasSubstr("keys are not strictly ascending"));
}

TEST(LogisticRegressionTest, MinusOneAndZeroAreTheSameNegativeClass) {
  Dataset pm = ml_test::DenseDataset(2, {1, 2, -1, 0.5f, 0, 1}, {-1, 1, -1});
  Dataset zo = pm;
  zo.labels = {0, 1, 0};
  auto m = Make(Kind("logistic_regression"), 2);
  std::vector<uint32_t> rows;
  Batch b1 = ml_test::AllRows(pm, &rows);
  OwnedParams p = ml_test::RandomParams(*m, b1, 0.5f, 4);
  GradSet g1, g2;
  Result<float> l1 = m->ForwardBackward(b1, p.View(), &g1);
  std::vector<uint32_t> rows2;
  Result<float> l2 = m->ForwardBackward(ml_test::AllRows(zo, &rows2), p.View(), &g2);
  ASSERT_TRUE(l1.ok() && l2.ok());
  EXPECT_FLOAT_EQ(*l1, *l2);
  EXPECT_EQ(g1.values, g2.values);
  // And the loss is the log loss: with w = b = 0 every example costs log 2.
  ml_test::LocalTables zeros(*m);
  Result<float> l0 = m->ForwardBackward(b1, zeros.Pull(*m, b1), &g1);
  EXPECT_NEAR(*l0, std::log(2.0f), 1e-6f);
}

// Every dense-table model must give the same loss and gradients for the same
// examples stored dense or as CSR, and in any batch order (the MLP maps a
// contiguous batch in place but gathers a shuffled one).
TEST(InputLayoutTest, DenseSparseAndShuffledBatchesAgree) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> x(12 * 9);
  for (float& v : x) v = rng() % 2 ? 0.0f : u(rng);
  std::vector<float> y(12);
  for (float& v : y) v = static_cast<float>(rng() % 3);
  const Dataset dense = ml_test::DenseDataset(9, x, y);
  const Dataset sparse = ml_test::ToSparse(dense);
  std::vector<ModelOptions> opts = {Kind("linear_regression"), Kind("logistic_regression"),
                                    Kind("softmax_regression"), ModelOptions{}, Kind("fm")};
  opts[1].dense_weights = true;
  opts[2].num_classes = 3;
  opts[3].num_classes = 3;
  opts[3].hidden = {6, 5};
  opts[3].activation = "tanh";
  for (const ModelOptions& o : opts) {
    auto m = Make(o, 9);
    std::vector<uint32_t> in_order = {2, 3, 4, 5, 6, 7};
    std::vector<uint32_t> shuffled = {7, 2, 5, 3, 6, 4};
    Batch bd{&dense, in_order}, bs{&sparse, in_order}, bsh{&dense, shuffled};
    OwnedParams p = ml_test::RandomParams(*m, bd, 0.5f, 9);
    GradSet gd, gs, gsh;
    Result<float> ld = m->ForwardBackward(bd, p.View(), &gd);
    Result<float> ls = m->ForwardBackward(bs, p.View(), &gs);
    Result<float> lsh = m->ForwardBackward(bsh, p.View(), &gsh);
    ASSERT_TRUE(ld.ok() && ls.ok() && lsh.ok()) << o.kind;
    EXPECT_NEAR(*ld, *ls, 1e-5f * std::abs(*ld)) << o.kind;
    EXPECT_NEAR(*ld, *lsh, 1e-5f * std::abs(*ld)) << o.kind;
    for (size_t t = 0; t < gd.values.size(); ++t) {
      for (size_t i = 0; i < gd.values[t].size(); ++i) {
        EXPECT_NEAR(gd.values[t][i], gs.values[t][i], 1e-5f) << o.kind << " table " << t;
        EXPECT_NEAR(gd.values[t][i], gsh.values[t][i], 1e-5f) << o.kind << " table " << t;
      }
    }
  }
}

// Scratch buffers are resized per batch: a small batch between two large
// ones must not leak state into the next call.
TEST(InputLayoutTest, ScratchIsReusedAcrossBatchSizes) {
  Dataset d = ml_test::DenseDataset(3, {1, 2, 3, 0, 1, 0, 2, 2, 2, -1, 0, 1}, {0, 1, 2, 1});
  ModelOptions o;
  o.hidden = {4};
  o.num_classes = 3;
  auto m = Make(o, 3);
  auto fresh = Make(o, 3);
  std::vector<uint32_t> all = {3, 1, 0, 2}, one = {1};
  Batch b_all{&d, all}, b_one{&d, one};
  OwnedParams p = ml_test::RandomParams(*m, b_all, 0.5f, 2);
  GradSet g1, g2;
  ASSERT_TRUE(m->ForwardBackward(b_all, p.View(), &g1).ok());
  ASSERT_TRUE(m->ForwardBackward(b_one, p.View(), &g1).ok());
  Result<float> again = m->ForwardBackward(b_all, p.View(), &g1);
  Result<float> ref = fresh->ForwardBackward(b_all, p.View(), &g2);
  ASSERT_TRUE(again.ok() && ref.ok());
  EXPECT_NEAR(*again, *ref, 1e-6f);
  for (size_t t = 0; t < g1.values.size(); ++t) {
    ASSERT_EQ(g1.values[t].size(), g2.values[t].size());
    for (size_t i = 0; i < g1.values[t].size(); ++i) {
      EXPECT_NEAR(g1.values[t][i], g2.values[t][i], 1e-6f);
    }
  }
}

// Predict agrees with ForwardBackward: TaskMetrics recomputes each model's
// loss from its predictions, which must match the loss of the same batch.
TEST(PredictTest, PredictionsGiveTheTrainingLoss) {
  Dataset d =
      ml_test::DenseDataset(4, {1, 0, 2, 0, 0, 1, 0, -1, 3, 1, 0, 0, 0, 0, 1, 1}, {0, 2, 1, 1});
  std::vector<ModelOptions> opts = {Kind("linear_regression"), Kind("logistic_regression"),
                                    Kind("softmax_regression"), ModelOptions{}, Kind("fm")};
  opts[2].num_classes = 3;
  opts[3].num_classes = 3;
  for (const ModelOptions& o : opts) {
    auto m = Make(o, 4);
    std::vector<uint32_t> rows;
    Batch b = ml_test::AllRows(d, &rows);
    OwnedParams p = ml_test::RandomParams(*m, b, 0.7f, 5);
    GradSet g;
    Result<float> loss = m->ForwardBackward(b, p.View(), &g);
    Eigen::MatrixXf pred;
    ASSERT_TRUE(m->Predict(b, p.View(), &pred).ok()) << o.kind;
    ASSERT_EQ(pred.rows(), 4);
    ASSERT_EQ(pred.cols(), m->num_outputs());
    if (m->task() == Task::kMulticlass) {
      for (int i = 0; i < 4; ++i) EXPECT_NEAR(pred.row(i).sum(), 1.0f, 1e-6f);
    }
    TaskMetrics metrics(m->task());
    ASSERT_TRUE(metrics.Add(b, pred).ok());
    EXPECT_NEAR(metrics.Values()[0].value, *loss, 1e-5 * std::abs(*loss)) << o.kind;

    std::vector<uint32_t> none;
    ASSERT_TRUE(m->Predict(Batch{&d, none}, p.View(), &pred).ok());
    EXPECT_EQ(pred.rows(), 0);
  }
  // Regression by hand: w = (1, 2, 3, 4), b = 0.5.
  auto lin = Make(Kind("linear_regression"), 4);
  OwnedParams p;
  p.values = {{1, 2, 3, 4}, {0.5f}};
  p.keys.resize(2);
  std::vector<uint32_t> rows = {0, 2};
  Eigen::MatrixXf pred;
  ASSERT_TRUE(lin->Predict(Batch{&d, rows}, p.View(), &pred).ok());
  EXPECT_FLOAT_EQ(pred(0, 0), 1 + 6 + 0.5f);
  EXPECT_FLOAT_EQ(pred(1, 0), 3 + 2 + 0.5f);
  GradSet g;
  Result<float> loss = lin->ForwardBackward(Batch{&d, rows}, p.View(), &g);
  // Residuals 7.5 - 0 and 5.5 - 1: loss 0.5 * mean(r^2), gradients mean(r x).
  EXPECT_FLOAT_EQ(*loss, 0.25f * (7.5f * 7.5f + 4.5f * 4.5f));
  EXPECT_FLOAT_EQ(g.values[1][0], 0.5f * (7.5f + 4.5f));
  EXPECT_FLOAT_EQ(g.values[0][0], 0.5f * (7.5f * 1 + 4.5f * 3));
  EXPECT_FLOAT_EQ(g.values[0][1], 0.5f * (7.5f * 0 + 4.5f * 1));
}

}  // namespace
}  // namespace distopt
