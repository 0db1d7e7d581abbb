// Tests for the learning-rate schedules (Optimizer::LearningRate). Every
// expected value is worked out by hand from the formulas documented in
// optimizer.h; Update's use of the schedule is tested in optimizer_test.cc.
#include <gtest/gtest.h>

#include <memory>
#include <utility>

#include "distopt/status.h"
#include "optim/optimizer.h"

namespace distopt {
namespace {

std::unique_ptr<Optimizer> WithSchedule(float lr, const LrScheduleOptions& s) {
  OptimizerOptions o;
  o.lr = lr;
  o.schedule = s;
  Result<std::unique_ptr<Optimizer>> r = Optimizer::Create(o);
  if (!r.ok()) {
    ADD_FAILURE() << "Create failed: " << r.status().ToString();
    return nullptr;
  }
  return std::move(r).value();
}

TEST(ScheduleTest, ConstantWithWarmup) {
  LrScheduleOptions s;
  s.warmup_steps = 4;
  auto opt = WithSchedule(0.1f, s);
  ASSERT_NE(opt, nullptr);
  // lr * step / 4 up to step 4, then lr.
  EXPECT_FLOAT_EQ(opt->LearningRate(1), 0.025f);
  EXPECT_FLOAT_EQ(opt->LearningRate(2), 0.05f);
  EXPECT_FLOAT_EQ(opt->LearningRate(3), 0.075f);
  EXPECT_FLOAT_EQ(opt->LearningRate(4), 0.1f);
  EXPECT_FLOAT_EQ(opt->LearningRate(5), 0.1f);
  EXPECT_FLOAT_EQ(opt->LearningRate(1000000), 0.1f);
  // Steps below 1 read as step 1 (never 0 or negative).
  EXPECT_FLOAT_EQ(opt->LearningRate(0), 0.025f);
  EXPECT_FLOAT_EQ(opt->LearningRate(-3), 0.025f);

  auto plain = WithSchedule(0.1f, LrScheduleOptions{});
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(plain->LearningRate(1), 0.1f);
  EXPECT_EQ(plain->LearningRate(1 << 30), 0.1f);
}

TEST(ScheduleTest, StepDecay) {
  LrScheduleOptions s;
  s.kind = "step";
  s.step_size = 3;
  s.gamma = 0.5f;
  auto opt = WithSchedule(1.0f, s);
  ASSERT_NE(opt, nullptr);
  // Each block of 3 updates shares one lr: 1,2,3 -> 1; 4..6 -> .5; 7..9 -> .25.
  EXPECT_FLOAT_EQ(opt->LearningRate(1), 1.0f);
  EXPECT_FLOAT_EQ(opt->LearningRate(3), 1.0f);
  EXPECT_FLOAT_EQ(opt->LearningRate(4), 0.5f);
  EXPECT_FLOAT_EQ(opt->LearningRate(6), 0.5f);
  EXPECT_FLOAT_EQ(opt->LearningRate(7), 0.25f);
  EXPECT_FLOAT_EQ(opt->LearningRate(10), 0.125f);

  s.warmup_steps = 2;  // the decay clock starts after warmup
  auto warm = WithSchedule(1.0f, s);
  ASSERT_NE(warm, nullptr);
  EXPECT_FLOAT_EQ(warm->LearningRate(1), 0.5f);
  EXPECT_FLOAT_EQ(warm->LearningRate(2), 1.0f);
  EXPECT_FLOAT_EQ(warm->LearningRate(5), 1.0f);
  EXPECT_FLOAT_EQ(warm->LearningRate(6), 0.5f);
  EXPECT_FLOAT_EQ(warm->LearningRate(8), 0.5f);
  EXPECT_FLOAT_EQ(warm->LearningRate(9), 0.25f);
}

TEST(ScheduleTest, CosineDecay) {
  LrScheduleOptions s;
  s.kind = "cosine";
  s.total_steps = 10;
  s.min_lr = 0.1f;
  auto opt = WithSchedule(1.0f, s);
  ASSERT_NE(opt, nullptr);
  // .1 + .9 * (1 + cos(pi * step / 10)) / 2
  EXPECT_FLOAT_EQ(opt->LearningRate(1), 0.97797543f);  // .1 + .45 * (1 + cos(pi/10))
  EXPECT_FLOAT_EQ(opt->LearningRate(5), 0.55f);        // cos(pi/2) = 0
  EXPECT_FLOAT_EQ(opt->LearningRate(10), 0.1f);
  EXPECT_FLOAT_EQ(opt->LearningRate(11), 0.1f);  // clamped after total_steps
  EXPECT_FLOAT_EQ(opt->LearningRate(500), 0.1f);

  s.warmup_steps = 2;  // progress = (step - 2) / (10 - 2)
  auto warm = WithSchedule(1.0f, s);
  ASSERT_NE(warm, nullptr);
  EXPECT_FLOAT_EQ(warm->LearningRate(1), 0.5f);
  EXPECT_FLOAT_EQ(warm->LearningRate(2), 1.0f);
  EXPECT_FLOAT_EQ(warm->LearningRate(4), 0.86819805f);  // .1 + .45 * (1 + cos(pi/4))
  EXPECT_FLOAT_EQ(warm->LearningRate(6), 0.55f);
  EXPECT_FLOAT_EQ(warm->LearningRate(10), 0.1f);
  EXPECT_FLOAT_EQ(warm->LearningRate(11), 0.1f);
}

TEST(ScheduleTest, InverseSqrt) {
  LrScheduleOptions s;
  s.kind = "inverse_sqrt";
  auto opt = WithSchedule(1.0f, s);
  ASSERT_NE(opt, nullptr);
  EXPECT_FLOAT_EQ(opt->LearningRate(1), 1.0f);
  EXPECT_FLOAT_EQ(opt->LearningRate(4), 0.5f);
  EXPECT_FLOAT_EQ(opt->LearningRate(16), 0.25f);
  EXPECT_FLOAT_EQ(opt->LearningRate(100), 0.1f);

  s.warmup_steps = 4;  // lr * sqrt(4 / step) after warmup: continuous at 4
  auto warm = WithSchedule(1.0f, s);
  ASSERT_NE(warm, nullptr);
  EXPECT_FLOAT_EQ(warm->LearningRate(1), 0.25f);
  EXPECT_FLOAT_EQ(warm->LearningRate(2), 0.5f);
  EXPECT_FLOAT_EQ(warm->LearningRate(4), 1.0f);
  EXPECT_FLOAT_EQ(warm->LearningRate(16), 0.5f);
  EXPECT_FLOAT_EQ(warm->LearningRate(64), 0.25f);
}

}  // namespace
}  // namespace distopt
