// Training behaviour: plain SGD through LocalTables (the servers' init and
// update, in memory) drives every model's loss down on a toy problem it can
// solve, and the seed MLP matches a naive double-precision reference at its
// real size.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "ml/metrics.h"
#include "ml/model.h"
#include "ml/test_util.h"

namespace distopt {
namespace {

struct ToyCase {
  std::string name;
  ModelOptions options;
  std::function<Dataset()> data;
  float lr = 0.1f;
  int epochs = 30;
  double max_loss_ratio = 0.3;  // final / initial loss
  double min_accuracy = 0.0;    // classification tasks
};

// n points uniform in [-1, 1]^2 labelled by `label(x0, x1)`.
Dataset Points(size_t n, uint32_t seed, const std::function<float(float, float)>& label) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> x, y;
  for (size_t i = 0; i < n; ++i) {
    const float a = u(rng), b = u(rng);
    x.push_back(a);
    x.push_back(b);
    y.push_back(label(a, b));
  }
  return ml_test::DenseDataset(2, std::move(x), std::move(y));
}

// Labelings: linearly separable (Side, Quadrant) and not (Xor).
float Side(float a, float b) { return a + b > 0 ? 1.0f : 0.0f; }
float Quadrant(float a, float b) { return static_cast<float>((a > 0) + 2 * (b > 0)); }
float Xor(float a, float b) { return (a > 0) != (b > 0) ? 1.0f : 0.0f; }

// FM's home ground: one-hot user (ids 0-7) and item (ids 8-15), clicked iff
// their parities match, which only the pairwise factors can express.
Dataset UserItem() {
  std::vector<std::vector<std::pair<uint64_t, float>>> rows;
  std::vector<float> y;
  for (int rep = 0; rep < 4; ++rep) {
    for (uint64_t u = 0; u < 8; ++u) {
      for (uint64_t i = 8; i < 16; ++i) {
        rows.push_back({{u, 1.0f}, {i, 1.0f}});
        y.push_back((u % 2) == (i % 2) ? 1.0f : -1.0f);
      }
    }
  }
  return ml_test::SparseDataset(16, rows, y);
}

ModelOptions Opts(const std::string& kind, int classes = 2, std::vector<int> hidden = {16},
                  const std::string& act = "relu") {
  ModelOptions o;
  o.kind = kind;
  o.num_classes = classes;
  o.hidden = std::move(hidden);
  o.activation = act;
  o.fm_factors = 4;
  o.init_scale = 0.1f;
  return o;
}

// gtest prints the case by name instead of as a byte dump.
void PrintTo(const ToyCase& c, std::ostream* os) { *os << c.name; }

std::vector<ToyCase> ToyCases() {
  std::vector<ToyCase> c;
  c.push_back(
      {"linear_regression", Opts("linear_regression"),
       [] { return Points(128, 1, [](float a, float b) { return 1.5f * a - 2 * b + 0.5f; }); },
       0.3f, 30, 1e-4});
  c.push_back({"logistic_sparse_w", Opts("logistic_regression"),
               [] { return ml_test::ToSparse(Points(128, 2, Side), 30); }, 0.5f, 30, 0.3, 0.95});
  ToyCase dense_lr{"logistic_dense_w",
                   Opts("logistic_regression"),
                   [] { return Points(128, 3, Side); },
                   0.5f,
                   30,
                   0.3,
                   0.95};
  dense_lr.options.dense_weights = true;
  c.push_back(dense_lr);
  c.push_back({"softmax_regression", Opts("softmax_regression", 4),
               [] { return Points(256, 4, Quadrant); }, 0.5f, 30, 0.2, 0.95});
  // XOR is not linearly separable: only a working hidden layer learns it.
  for (const char* act : {"relu", "tanh", "sigmoid"}) {
    c.push_back({std::string("mlp_xor_") + act, Opts("mlp", 2, {16}, act),
                 [] { return Points(256, 5, Xor); }, std::string(act) == "sigmoid" ? 2.0f : 0.5f,
                 150, 0.15, 0.97});
  }
  c.push_back({"mlp_two_hidden", Opts("mlp", 4, {16, 8}, "tanh"),
               [] { return Points(256, 6, Quadrant); }, 0.3f, 60, 0.1, 0.97});
  c.push_back({"fm_user_item", Opts("fm"), UserItem, 0.5f, 100, 0.05, 1.0});
  return c;
}

class SgdTest : public ::testing::TestWithParam<ToyCase> {};

TEST_P(SgdTest, LossFallsAndTheProblemIsLearned) {
  const ToyCase& c = GetParam();
  const Dataset d = c.data();
  Result<std::unique_ptr<Model>> created = CreateModel(c.options, d.num_features);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  Model& m = **created;
  ml_test::LocalTables tables(m);
  std::vector<uint32_t> all_rows;
  const Batch all = ml_test::AllRows(d, &all_rows);

  auto full_loss = [&]() {
    GradSet unused;
    Result<float> l = m.ForwardBackward(all, tables.Pull(m, all), &unused);
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    return l.ok() ? *l : NAN;
  };
  const float initial = full_loss();
  std::mt19937 rng(7);
  std::vector<uint32_t> order = all_rows;
  GradSet g;
  for (int epoch = 0; epoch < c.epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t begin = 0; begin < order.size(); begin += 16) {
      const size_t n = std::min<size_t>(16, order.size() - begin);
      Batch b{&d, std::span<const uint32_t>(order.data() + begin, n)};
      ASSERT_TRUE(m.ForwardBackward(b, tables.Pull(m, b), &g).ok());
      tables.ApplySgd(g, c.lr);
    }
  }
  const float final_loss = full_loss();
  EXPECT_LT(final_loss, c.max_loss_ratio * initial)
      << "initial " << initial << " final " << final_loss;
  if (m.task() != Task::kRegression) {
    Eigen::MatrixXf pred;
    ASSERT_TRUE(m.Predict(all, tables.Pull(m, all), &pred).ok());
    TaskMetrics metrics(m.task());
    ASSERT_TRUE(metrics.Add(all, pred).ok());
    EXPECT_GE(metrics.Values()[1].value, c.min_accuracy);
  }
}

INSTANTIATE_TEST_SUITE_P(ToyProblems, SgdTest, ::testing::ValuesIn(ToyCases()),
                         [](const ::testing::TestParamInfo<ToyCase>& p) { return p.param.name; });

// The seed model (784 -> 128 relu -> 10) at its real size against triple
// loops in double, with the documented out-major layout: l0.w[h * 784 + i]
// connects input i to hidden unit h. Guards the GEMM orientation of the hot
// path at sizes where Eigen's blocking differs from the toy gradient checks.
TEST(MlpReferenceTest, SeedModelMatchesNaiveDoubleImplementation) {
  constexpr int kIn = 784, kHidden = 128, kOut = 10, kRows = 24;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(0, 1);
  std::vector<float> x(kRows * kIn), y(kRows);
  for (float& v : x) v = u(rng) < 0.7f ? 0.0f : u(rng);
  for (float& v : y) v = static_cast<float>(rng() % kOut);
  const Dataset d = ml_test::DenseDataset(kIn, x, y);
  std::vector<uint32_t> rows = {5, 17, 2, 2, 23, 0, 9, 11, 14, 3, 8, 20};  // shuffled, a repeat
  const Batch b{&d, rows};

  auto m = CreateModel(ModelOptions{}, kIn);
  ASSERT_TRUE(m.ok());
  ml_test::LocalTables tables(**m);
  for (float& v : tables.dense(1)) v = 0.05f * (u(rng) - 0.5f);  // non-zero biases
  for (float& v : tables.dense(3)) v = 0.05f * (u(rng) - 0.5f);
  GradSet g;
  Result<float> loss = (*m)->ForwardBackward(b, tables.Pull(**m, b), &g);
  ASSERT_TRUE(loss.ok());

  const std::vector<float>& w1 = tables.dense(0);
  const std::vector<float>& b1 = tables.dense(1);
  const std::vector<float>& w2 = tables.dense(2);
  const std::vector<float>& b2 = tables.dense(3);
  std::vector<double> gw1(w1.size()), gb1(b1.size()), gw2(w2.size()), gb2(b2.size());
  double ref_loss = 0;
  const double n = static_cast<double>(rows.size());
  for (uint32_t r : rows) {
    const float* xi = d.DenseRow(r);
    std::vector<double> h(kHidden), z(kOut);
    for (int j = 0; j < kHidden; ++j) {
      double s = b1[j];
      for (int i = 0; i < kIn; ++i) s += double{w1[j * kIn + i]} * xi[i];
      h[j] = std::max(s, 0.0);
    }
    double zmax = -1e300;
    for (int k = 0; k < kOut; ++k) {
      double s = b2[k];
      for (int j = 0; j < kHidden; ++j) s += double{w2[k * kHidden + j]} * h[j];
      z[k] = s;
      zmax = std::max(zmax, s);
    }
    double sum = 0;
    for (int k = 0; k < kOut; ++k) sum += std::exp(z[k] - zmax);
    const int label = static_cast<int>(d.labels[r]);
    ref_loss += std::log(sum) - (z[label] - zmax);
    std::vector<double> dh(kHidden, 0.0);
    for (int k = 0; k < kOut; ++k) {
      const double dz = (std::exp(z[k] - zmax) / sum - (k == label ? 1.0 : 0.0)) / n;
      gb2[k] += dz;
      for (int j = 0; j < kHidden; ++j) {
        gw2[k * kHidden + j] += dz * h[j];
        dh[j] += dz * w2[k * kHidden + j];
      }
    }
    for (int j = 0; j < kHidden; ++j) {
      if (h[j] <= 0) continue;
      gb1[j] += dh[j];
      for (int i = 0; i < kIn; ++i) gw1[j * kIn + i] += dh[j] * xi[i];
    }
  }
  EXPECT_NEAR(*loss, ref_loss / n, 1e-5 * ref_loss / n);
  const std::vector<const std::vector<double>*> ref = {&gw1, &gb1, &gw2, &gb2};
  for (size_t t = 0; t < ref.size(); ++t) {
    ASSERT_EQ(g.values[t].size(), ref[t]->size());
    double scale = 0, worst = 0;
    for (double v : *ref[t]) scale = std::max(scale, std::abs(v));
    for (size_t i = 0; i < ref[t]->size(); ++i) {
      worst = std::max(worst, std::abs(g.values[t][i] - (*ref[t])[i]));
    }
    ASSERT_GT(scale, 0.0);
    EXPECT_LT(worst, 1e-4 * scale) << "table " << t;
  }
}

}  // namespace
}  // namespace distopt
