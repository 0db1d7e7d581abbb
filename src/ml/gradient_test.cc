// Finite-difference gradient checks for every model (and every input and
// table layout it supports), plus proof that the checker would catch a wrong
// gradient.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "ml/dense_net.h"
#include "ml/fm.h"
#include "ml/linear_regression.h"
#include "ml/logistic_regression.h"
#include "ml/mlp.h"
#include "ml/softmax_regression.h"
#include "ml/test_util.h"

namespace distopt {
namespace {

using ml_test::CheckGradient;
using ml_test::GradCheckOptions;
using ml_test::GradCheckResult;
using ml_test::OwnedParams;

enum class Labels { kReal, kPlusMinusOne, kClasses };

// Random dense data: about a third of the values are zero so the sparse
// copies have rows of different lengths.
Dataset RandomDense(size_t rows, size_t features, Labels labels, int classes, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(rows * features);
  for (float& v : x) v = (rng() % 3 == 0) ? 0.0f : u(rng);
  std::vector<float> y(rows);
  for (float& v : y) {
    switch (labels) {
      case Labels::kReal:
        v = 2.0f * u(rng);
        break;
      case Labels::kPlusMinusOne:
        v = (rng() % 2 == 0) ? -1.0f : 1.0f;
        break;
      case Labels::kClasses:
        v = static_cast<float>(rng() % static_cast<uint32_t>(classes));
        break;
    }
  }
  return ml_test::DenseDataset(features, std::move(x), std::move(y));
}

struct Case {
  std::string name;
  std::function<std::unique_ptr<Model>()> make;
  std::function<Dataset()> data;
  float param_scale = 0.5f;
  size_t max_coords = 0;   // 0 = all
  bool has_kinks = false;  // relu
  // The loss comes back as a float: its rounding (~1.2e-7 x loss) over 2 eps
  // puts ~6e-5 of noise on every finite difference, so gradients are
  // compared relatively down to `floor` and absolutely (tolerance x floor)
  // below it. A loss near log(10) has twice the noise.
  double eps = 1e-3;
  double floor = 2e-2;
};

template <typename T>
std::unique_ptr<Model> Must(Result<std::unique_ptr<T>> r) {
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::unique_ptr<Model>(std::move(r).value()) : nullptr;
}

// gtest prints the case by name instead of as a byte dump.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::vector<Case> Cases() {
  std::vector<Case> c;
  c.push_back({"linear_dense", [] { return std::make_unique<LinearRegression>(5); },
               [] { return RandomDense(6, 5, Labels::kReal, 0, 1); }});
  c.push_back({"linear_sparse_input", [] { return std::make_unique<LinearRegression>(9); },
               [] { return ml_test::ToSparse(RandomDense(6, 5, Labels::kReal, 0, 2), 4); }});
  c.push_back({"logistic_sparse_w_sparse_input",
               [] { return std::make_unique<LogisticRegression>(12, true); },
               [] { return ml_test::ToSparse(RandomDense(7, 12, Labels::kPlusMinusOne, 0, 3)); }});
  c.push_back({"logistic_sparse_w_dense_input",
               [] { return std::make_unique<LogisticRegression>(6, true); },
               [] { return RandomDense(7, 6, Labels::kPlusMinusOne, 0, 4); }});
  c.push_back({"logistic_dense_w_dense_input",
               [] { return std::make_unique<LogisticRegression>(6, false); },
               [] { return RandomDense(7, 6, Labels::kPlusMinusOne, 0, 5); }});
  c.push_back(
      {"logistic_dense_w_sparse_input",
       [] { return std::make_unique<LogisticRegression>(8, false); },
       [] { return ml_test::ToSparse(RandomDense(7, 6, Labels::kPlusMinusOne, 0, 6), 2); }});
  c.push_back({"softmax_dense", [] { return Must(SoftmaxRegression::Create(5, 4)); },
               [] { return RandomDense(6, 5, Labels::kClasses, 4, 7); }});
  c.push_back({"softmax_sparse_input", [] { return Must(SoftmaxRegression::Create(7, 3)); },
               [] { return ml_test::ToSparse(RandomDense(6, 7, Labels::kClasses, 3, 8)); }});
  for (Activation a : {Activation::kRelu, Activation::kTanh, Activation::kSigmoid}) {
    c.push_back({std::string("mlp_2hidden_") + ActivationName(a),
                 [a] {
                   return Must(Mlp::Create(6, {5, 4}, a, 3, 1));
                 },
                 [] { return RandomDense(5, 6, Labels::kClasses, 3, 9); }, 0.8f, 0,
                 a == Activation::kRelu});
  }
  c.push_back({"mlp_sparse_input_tanh",
               [] { return Must(Mlp::Create(8, {4}, Activation::kTanh, 3, 1)); },
               [] { return ml_test::ToSparse(RandomDense(5, 8, Labels::kClasses, 3, 10)); }, 0.8f});
  // The seed model's shape at its real size (the GEMMs take other blocking
  // paths than at toy sizes) on MNIST-like input in [0, 1]. tanh rather than
  // relu: 8 x 128 hidden units put some relu kink within eps of many
  // perturbations; relu itself is checked above and, at this size, against
  // a reference implementation in model_test.
  c.push_back({"mlp_784_128_10_tanh",
               [] { return Must(Mlp::Create(784, {128}, Activation::kTanh, 10, 1)); },
               [] {
                 Dataset d = RandomDense(8, 784, Labels::kClasses, 10, 11);
                 for (float& v : d.dense) v = std::abs(v);
                 return d;
               },
               0.08f, 150, false, 1e-3, 3e-2});
  c.push_back({"fm_sparse", [] { return Must(FactorizationMachine::Create(3, 0.1f, 1)); },
               [] {
                 return ml_test::SparseDataset(20,
                                               {{{1, 1.0f}, {4, 0.5f}, {7, -1.0f}},
                                                {{1, 1.0f}, {9, 2.0f}},
                                                {{4, -0.5f}, {7, 1.0f}, {9, 0.25f}, {19, 1.0f}},
                                                {{2, 1.0f}},
                                                {{1, 0.3f}, {2, -0.7f}, {19, 1.5f}}},
                                               {1.0f, -1.0f, 1.0f, 0.0f, 1.0f});
               }});
  c.push_back({"fm_dense_input", [] { return Must(FactorizationMachine::Create(2, 0.1f, 1)); },
               [] { return RandomDense(6, 5, Labels::kPlusMinusOne, 0, 12); }});
  return c;
}

class GradientTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    model_ = GetParam().make();
    ASSERT_NE(model_, nullptr);
    data_ = GetParam().data();
    batch_ = ml_test::AllRows(data_, &rows_);
    params_ = ml_test::RandomParams(*model_, batch_, GetParam().param_scale, 42);
    Result<float> loss = model_->ForwardBackward(batch_, params_.View(), &grads_);
    ASSERT_TRUE(loss.ok()) << loss.status().ToString();
    ASSERT_TRUE(std::isfinite(*loss));
    options_.max_coords_per_table = GetParam().max_coords;
    options_.eps = GetParam().eps;
    options_.floor = GetParam().floor;
  }

  std::unique_ptr<Model> model_;
  Dataset data_;
  std::vector<uint32_t> rows_;
  Batch batch_;
  OwnedParams params_;
  GradSet grads_;
  GradCheckOptions options_;
};

TEST_P(GradientTest, MatchesCentralDifferences) {
  GradCheckResult r = CheckGradient(model_.get(), batch_, params_, grads_, options_);
  EXPECT_EQ(r.failed, 0u) << "worst relative error " << r.worst << " at " << r.worst_where;
  EXPECT_LT(r.worst, options_.tolerance);
  if (GetParam().has_kinks) {
    // relu kinks within eps of a perturbation are rare; most must be checked.
    EXPECT_LE(r.skipped * 50, r.checked) << r.skipped << " skipped";
  } else {
    EXPECT_EQ(r.skipped, 0u);
  }
  size_t total = 0;
  for (const auto& v : params_.values) total += v.size();
  const size_t expect_checked =
      options_.max_coords_per_table == 0 ? total : options_.max_coords_per_table;
  EXPECT_GE(r.checked + r.skipped, expect_checked);
}

// The checker must fail a gradient that is slightly wrong in one coordinate,
// that is the gradient of the sum rather than the mean, or that lost a table.
TEST_P(GradientTest, CheckerRejectsPerturbedGradients) {
  size_t bt = 0, bi = 0;
  float best = 0.0f;
  for (size_t t = 0; t < grads_.values.size(); ++t) {
    for (size_t i = 0; i < grads_.values[t].size(); ++i) {
      if (std::abs(grads_.values[t][i]) > best) {
        best = std::abs(grads_.values[t][i]);
        bt = t;
        bi = i;
      }
    }
  }
  ASSERT_GT(best, 0.05f) << "test data gives vanishing gradients";

  GradSet one_off = grads_;
  one_off.values[bt][bi] *= 1.05f;
  GradCheckOptions just_that = options_;
  just_that.only = {{bt, bi}};
  GradCheckResult r1 = CheckGradient(model_.get(), batch_, params_, one_off, just_that);
  EXPECT_EQ(r1.checked, 1u);
  EXPECT_EQ(r1.failed, 1u) << "a 5% error in " << model_->Tables()[bt].name << "[" << bi
                           << "] went unnoticed";
  GradCheckResult r1_ok = CheckGradient(model_.get(), batch_, params_, grads_, just_that);
  EXPECT_EQ(r1_ok.failed, 0u) << "the same coordinate unperturbed must pass";

  GradSet summed = grads_;
  for (auto& v : summed.values) {
    for (float& g : v) g *= static_cast<float>(batch_.size());
  }
  GradCheckResult r2 = CheckGradient(model_.get(), batch_, params_, summed, options_);
  EXPECT_GE(r2.failed, 1u);

  GradSet lost_bias = grads_;
  const size_t last = lost_bias.values.size() - 1;  // every model ends with a bias table
  float bias_max = 0.0f;
  for (float g : lost_bias.values[last]) bias_max = std::max(bias_max, std::abs(g));
  ASSERT_GT(bias_max, 0.03f) << "test data gives a vanishing bias gradient";
  for (float& g : lost_bias.values[last]) g = 0.0f;
  GradCheckResult r3 = CheckGradient(model_.get(), batch_, params_, lost_bias, options_);
  EXPECT_GE(r3.failed, 1u);
}

// A relu pre-activation 3e-4 from its kink: perturbing its bias or weight by
// eps = 1e-3 crosses it, so the central difference averages two slopes (-1.3
// here against an exact -2). The checker must skip such coordinates, not fail
// them, and still check the rest.
TEST(GradientCheckerTest, SkipsReluKinksInsteadOfFailing) {
  auto model = Must(Mlp::Create(1, {1}, Activation::kRelu, 2, 1));
  ASSERT_NE(model, nullptr);
  Dataset d = ml_test::DenseDataset(1, {1.0f}, {0.0f});
  std::vector<uint32_t> rows;
  Batch b = ml_test::AllRows(d, &rows);
  OwnedParams p;
  p.keys.resize(4);
  p.values = {{1.0f}, {-0.9997f}, {2.0f, -2.0f}, {0.0f, 0.0f}};
  GradSet g;
  ASSERT_TRUE(model->ForwardBackward(b, p.View(), &g).ok());
  // d loss / d l0.b on the relu's live side: 2 (p0 - p1) - 2 with p0 ~ p1 ~ 0.5.
  EXPECT_NEAR(g.values[1][0], -2.0f, 5e-3f);
  GradCheckResult r = CheckGradient(model.get(), b, p, g);
  EXPECT_EQ(r.skipped, 2u);  // l0.w[0] and l0.b[0]
  EXPECT_EQ(r.failed, 0u) << r.worst_where;
  EXPECT_EQ(r.checked, 4u);  // l1.w and l1.b
}

INSTANTIATE_TEST_SUITE_P(AllModels, GradientTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& p) { return p.param.name; });

}  // namespace
}  // namespace distopt
