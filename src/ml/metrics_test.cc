// Metrics against values computed by hand, plus exact AUC against a brute
// force pair count on data full of ties.
#include "ml/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "ml/test_util.h"

namespace distopt {
namespace {

using ::testing::HasSubstr;

TEST(MeanMetricTest, WeighsBatchesByTheirSize) {
  MeanMetric m;
  EXPECT_TRUE(std::isnan(m.value()));
  m.Add(2.0 * 4, 4);                       // a batch of 4 with mean loss 2
  m.Add(1.0, 1);                           // a batch of 1 with loss 1
  EXPECT_DOUBLE_EQ(m.value(), 9.0 / 5.0);  // not the mean of means (1.5)
  MeanMetric other;
  other.Add(3.0, 1);
  m.Merge(other);
  EXPECT_DOUBLE_EQ(m.value(), 12.0 / 6.0);
  EXPECT_EQ(m.count(), 6u);
}

TEST(AucMetricTest, TiesShareTheirAverageRank) {
  // Positives 0.35, 0.8, 0.4; negatives 0.1, 0.4. Of the 6 pairs the
  // positive wins 4, loses 1 (0.35 < 0.4) and ties 1 (0.4 = 0.4): 4.5 / 6.
  AucMetric auc;
  std::vector<float> s1 = {0.1f, 0.4f, 0.35f}, y1 = {0, 0, 1};
  std::vector<float> s2 = {0.8f, 0.4f}, y2 = {1, 1};
  ASSERT_TRUE(auc.Add(s1, y1).ok());
  ASSERT_TRUE(auc.Add(s2, y2).ok());
  EXPECT_DOUBLE_EQ(auc.value(), 0.75);

  AucMetric constant, perfect, inverted, one_class;
  std::vector<float> same = {0.5f, 0.5f, 0.5f, 0.5f}, y = {1, -1, 1, -1};
  ASSERT_TRUE(constant.Add(same, y).ok());
  EXPECT_DOUBLE_EQ(constant.value(), 0.5);
  std::vector<float> good = {0.9f, 0.1f, 0.8f, 0.2f}, bad = {0.1f, 0.9f, 0.2f, 0.8f};
  ASSERT_TRUE(perfect.Add(good, y).ok());
  ASSERT_TRUE(inverted.Add(bad, y).ok());
  EXPECT_DOUBLE_EQ(perfect.value(), 1.0);
  EXPECT_DOUBLE_EQ(inverted.value(), 0.0);
  std::vector<float> ones = {1, 1};
  ASSERT_TRUE(one_class.Add(std::span(good).first(2), ones).ok());
  EXPECT_TRUE(std::isnan(one_class.value()));

  std::vector<float> nan_score = {NAN};
  std::vector<float> one_label = {1};
  EXPECT_FALSE(auc.Add(nan_score, one_label).ok());
  EXPECT_FALSE(auc.Add(good, one_label).ok());  // size mismatch
  EXPECT_DOUBLE_EQ(auc.value(), 0.75);          // failed adds change nothing
}

TEST(AucMetricTest, MatchesPairCountingOnDataWithManyTies) {
  std::mt19937 rng(1);
  AucMetric auc, merged_a, merged_b;
  std::vector<float> s, y;
  for (int i = 0; i < 500; ++i) {
    y.push_back(rng() % 3 == 0 ? 1.0f : 0.0f);
    // 11 distinct score values, positives shifted up a little.
    s.push_back(std::round((y.back() * 0.2f + (rng() % 100) / 100.0f) * 10) / 10);
  }
  ASSERT_TRUE(auc.Add(s, y).ok());
  ASSERT_TRUE(merged_a.Add(std::span(s).first(200), std::span(y).first(200)).ok());
  ASSERT_TRUE(merged_b.Add(std::span(s).subspan(200), std::span(y).subspan(200)).ok());
  merged_a.Merge(merged_b);
  double wins = 0, pairs = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    for (size_t j = 0; j < s.size(); ++j) {
      if (y[i] > 0 && y[j] == 0) {
        pairs += 1;
        wins += s[i] > s[j] ? 1.0 : (s[i] == s[j] ? 0.5 : 0.0);
      }
    }
  }
  EXPECT_NEAR(auc.value(), wins / pairs, 1e-12);
  EXPECT_NEAR(merged_a.value(), wins / pairs, 1e-12);
  EXPECT_GT(auc.value(), 0.6);  // the shift is visible
}

TEST(AccuracyMetricTest, BinaryThresholdAndMulticlassArgmax) {
  AccuracyMetric binary;
  Eigen::MatrixXf p(5, 1);
  p << 0.5f, 0.5f, 0.49f, 0.9f, 0.1f;
  std::vector<float> y = {1, 0, 0, -1, -1};  // right, wrong, right, wrong, right
  ASSERT_TRUE(binary.Add(p, y).ok());
  EXPECT_DOUBLE_EQ(binary.value(), 3.0 / 5.0);

  AccuracyMetric multi;
  Eigen::MatrixXf q(4, 3);
  q << 0.1f, 0.7f, 0.2f,                     // argmax 1
      0.4f, 0.4f, 0.2f,                      // tie: the first (0) wins
      0.2f, 0.3f, 0.5f,                      // argmax 2
      0.6f, 0.3f, 0.1f;                      // argmax 0
  std::vector<float> labels = {1, 1, 2, 7};  // right, wrong, right, no such class
  ASSERT_TRUE(multi.Add(q, labels).ok());
  EXPECT_DOUBLE_EQ(multi.value(), 0.5);
  multi.Merge(binary);
  EXPECT_DOUBLE_EQ(multi.value(), 5.0 / 9.0);
  EXPECT_FALSE(multi.Add(q, y).ok());  // 4 predictions, 5 labels
  EXPECT_TRUE(std::isnan(AccuracyMetric().value()));
}

TEST(RmseMetricTest, RootOfMeanSquaredError) {
  RmseMetric rmse;
  std::vector<float> pred = {1, 2, 3}, y = {1, 0, 6};
  ASSERT_TRUE(rmse.Add(pred, y).ok());
  EXPECT_DOUBLE_EQ(rmse.value(), std::sqrt(13.0 / 3.0));
  std::vector<float> pred2 = {0}, y2 = {1};
  ASSERT_TRUE(rmse.Add(pred2, y2).ok());
  EXPECT_DOUBLE_EQ(rmse.value(), std::sqrt(14.0 / 4.0));
  EXPECT_FALSE(rmse.Add(pred, y2).ok());
}

TEST(TaskMetricsTest, PicksTheMetricsOfTheTaskAndRecomputesTheLoss) {
  Dataset d = ml_test::DenseDataset(1, {0, 0, 0}, {1, -1, 1});
  std::vector<uint32_t> rows = {0, 1, 2};
  Batch b{&d, rows};
  TaskMetrics binary(Task::kBinary);
  Eigen::MatrixXf p(3, 1);
  p << 0.8f, 0.3f, 0.4f;
  ASSERT_TRUE(binary.Add(b, p).ok());
  std::vector<MetricValue> v = binary.Values();
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].name, "loss");
  EXPECT_NEAR(v[0].value, -(std::log(0.8) + std::log(0.7) + std::log(0.4)) / 3, 1e-6);
  EXPECT_EQ(v[1].name, "accuracy");
  EXPECT_DOUBLE_EQ(v[1].value, 2.0 / 3.0);
  EXPECT_EQ(v[2].name, "auc");
  EXPECT_DOUBLE_EQ(v[2].value, 1.0);  // both positives (0.8, 0.4) above the negative (0.3)

  TaskMetrics reg(Task::kRegression);
  Eigen::MatrixXf r(3, 1);
  r << 2, -1, 1;
  ASSERT_TRUE(reg.Add(b, r).ok());
  v = reg.Values();
  ASSERT_EQ(v.size(), 2u);
  EXPECT_DOUBLE_EQ(v[0].value, 0.5 * 1.0 / 3.0);  // 0.5 * mean(1, 0, 0)
  EXPECT_EQ(v[1].name, "rmse");
  EXPECT_DOUBLE_EQ(v[1].value, std::sqrt(1.0 / 3.0));

  Dataset classes = ml_test::DenseDataset(1, {0, 0}, {2, 5});
  std::vector<uint32_t> two = {0, 1};
  TaskMetrics multi(Task::kMulticlass);
  Eigen::MatrixXf q(2, 3);
  q << 0.2f, 0.3f, 0.5f, 0.6f, 0.2f, 0.2f;
  Status bad = multi.Add(Batch{&classes, two}, q);
  EXPECT_THAT(bad.message(), HasSubstr("row 1: label 5"));
  EXPECT_EQ(multi.count(), 0u);  // nothing half-added
  classes.labels[1] = 1;
  ASSERT_TRUE(multi.Add(Batch{&classes, two}, q).ok());
  v = multi.Values();
  ASSERT_EQ(v.size(), 2u);
  EXPECT_NEAR(v[0].value, -(std::log(0.5) + std::log(0.2)) / 2, 1e-6);
  EXPECT_DOUBLE_EQ(v[1].value, 0.5);
  EXPECT_FALSE(multi.Add(b, q).ok());  // 2 prediction rows for a batch of 3
}

}  // namespace
}  // namespace distopt
