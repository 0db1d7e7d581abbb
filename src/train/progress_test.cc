#include "train/progress.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace distopt {
namespace {

namespace fs = std::filesystem;

// The state behind the example line in progress.h: 1103 of 2350 steps done
// in 32.7 s, so 37 s to go at the same pace.
ProgressState ExampleState() {
  ProgressState s;
  s.epochs = 10;
  s.steps_per_epoch = 235;
  s.epoch = 3;
  s.step = 1103;
  s.loss = 0.412;
  s.samples_per_s = 41200;
  s.elapsed_s = 37.0 * 1103 / 1247;
  EvalRecord e;
  e.epoch = 2;
  e.test_accuracy = 0.861;
  s.last_eval = e;
  return s;
}

TEST(RenderProgressTest, ExampleLine) {
  EXPECT_EQ(RenderProgress(ExampleState(), 0),
            "epoch 3/10 [=========>          ] 47% step 1103/2350 loss 0.412 41.2k samples/s "
            "ETA 0:37 | test acc 86.1%");
}

TEST(RenderProgressTest, EtaIsElapsedTimesRemainingOverDoneFraction) {
  ProgressState s = ExampleState();
  s.last_eval.reset();
  auto eta = [&](int64_t step, double elapsed) {
    s.step = step;
    s.elapsed_s = elapsed;
    std::string line = RenderProgress(s, 0);
    size_t at = line.find("ETA ");
    return at == std::string::npos ? line : line.substr(at + 4);
  };
  EXPECT_EQ(eta(1175, 600), "10:00");  // half done in 10 min
  EXPECT_EQ(eta(235, 100), "15:00");   // a tenth in 100 s: 900 s left
  EXPECT_EQ(eta(10, 60), "3:54:00");   // 60 s * 2340 / 10 = 14040 s
  EXPECT_EQ(eta(2349, 2349), "0:01");
  EXPECT_EQ(eta(0, 5), "--:--");  // no pace yet
  EXPECT_EQ(eta(1175, 0), "--:--");
  EXPECT_EQ(eta(1, 1e6), ">99h");
}

TEST(RenderProgressTest, PercentAndBarTrackTheFraction) {
  ProgressState s = ExampleState();
  s.step = 0;
  EXPECT_NE(RenderProgress(s, 0).find("[>                   ] 0%"), std::string::npos);
  s.step = 2348;  // 99.9%: not rounded up to a finished 100%
  EXPECT_NE(RenderProgress(s, 0).find("[===================>] 99%"), std::string::npos);
  s.step = 2350;
  EXPECT_NE(RenderProgress(s, 0).find("[====================] 100%"), std::string::npos);
  s.done = true;
  s.elapsed_s = 83;
  std::string done = RenderProgress(s, 0);
  EXPECT_NE(done.find("done in 1:23"), std::string::npos) << done;
  EXPECT_EQ(done.find("ETA"), std::string::npos) << done;
}

TEST(RenderProgressTest, FitsTheWidthDroppingLeastUsefulFieldsFirst) {
  const ProgressState s = ExampleState();
  for (int width : {200, 120, 100, 84, 80, 60, 40, 30, 20, 5}) {
    std::string line = RenderProgress(s, width);
    EXPECT_LE(line.size(), static_cast<size_t>(width)) << width << ": " << line;
  }
  // Wide: everything, the bar at its largest.
  EXPECT_NE(
      RenderProgress(s, 200).find("[" + std::string(14, '=') + ">" + std::string(15, ' ') + "]"),
      std::string::npos);
  // 100 columns: everything with a shorter bar.
  std::string w100 = RenderProgress(s, 100);
  EXPECT_EQ(w100.size(), 100u);
  EXPECT_NE(w100.find("samples/s"), std::string::npos);
  // 80: samples/s goes first; the rest and a bar remain.
  std::string w80 = RenderProgress(s, 80);
  EXPECT_EQ(w80.find("samples/s"), std::string::npos) << w80;
  for (const char* kept : {"[", "47%", "step 1103/2350", "loss 0.412", "ETA 0:37", "test acc"}) {
    EXPECT_NE(w80.find(kept), std::string::npos) << kept << " in " << w80;
  }
  // 60: the step count and test metric go too.
  std::string w60 = RenderProgress(s, 60);
  EXPECT_EQ(w60.find("step"), std::string::npos) << w60;
  EXPECT_EQ(w60.find("test acc"), std::string::npos) << w60;
  EXPECT_NE(w60.find("loss 0.412"), std::string::npos) << w60;
  EXPECT_NE(w60.find("["), std::string::npos) << w60;
  // 30: no room for a bar; epoch, percent and ETA stay.
  EXPECT_EQ(RenderProgress(s, 30), "epoch 3/10 47% ETA 0:37");
}

TEST(RenderProgressTest, WithoutStartRecordShowsStepAndElapsed) {
  ProgressState s;
  s.epoch = 2;
  s.step = 300;
  s.loss = 1234.5678;
  s.samples_per_s = 850;
  s.elapsed_s = 3725;
  EXPECT_EQ(RenderProgress(s, 0), "epoch 2 step 300 loss 1234.6 850 samples/s elapsed 1:02:05");
}

TEST(RenderProgressTest, TestMetricFallsBackFromAccuracy) {
  ProgressState s = ExampleState();
  s.last_eval->test_accuracy.reset();
  s.last_eval->test_auc = 0.9123;
  EXPECT_NE(RenderProgress(s, 0).find("| test auc 0.912"), std::string::npos);
  s.last_eval->test_auc.reset();
  s.last_eval->test_rmse = 0.87;
  EXPECT_NE(RenderProgress(s, 0).find("| test rmse 0.870"), std::string::npos);
  s.last_eval->test_rmse.reset();
  EXPECT_EQ(RenderProgress(s, 0).find("|"), std::string::npos);
}

TEST(RenderEvalTest, OneLinePerEval) {
  ProgressState s = ExampleState();
  EvalRecord e;
  e.epoch = 3;
  e.test_loss = 0.41234;
  e.test_accuracy = 0.8612;
  e.elapsed_s = 65;
  EXPECT_EQ(RenderEval(e, s), "epoch 3/10 test loss 0.412 acc 86.1% (at 1:05)");
}

TEST(ApplyMetricsLineTest, FoldsRecordsAndIgnoresJunk) {
  ProgressState s;
  EXPECT_FALSE(ApplyMetricsLine(
      R"({"type":"start","epochs":10,"steps_per_epoch":235,"workers":4,"time":1})", &s));
  EXPECT_EQ(s.total_steps(), 2350);
  EXPECT_FALSE(ApplyMetricsLine(
      R"({"type":"train","epoch":1,"step":150,"loss":0.53,"samples_per_s":41000.5,"elapsed_s":3.2,"new":{}})",
      &s));
  EXPECT_EQ(s.step, 150);
  EXPECT_EQ(s.epoch, 1);
  EXPECT_DOUBLE_EQ(*s.loss, 0.53);
  EXPECT_DOUBLE_EQ(*s.samples_per_s, 41000.5);
  EXPECT_DOUBLE_EQ(s.elapsed_s, 3.2);

  const ProgressState before = s;
  for (const char* junk : {"", "garbage", "[1,2]", "42", R"({"type":7})", R"({"step":999})",
                           R"({"type":"heartbeat","step":999})", R"({"type":"train","step":9)",
                           R"({"type":"train","step":-5,"loss":"low","elapsed_s":null})"}) {
    EXPECT_FALSE(ApplyMetricsLine(junk, &s)) << junk;
    EXPECT_EQ(s.step, before.step) << junk;
    EXPECT_DOUBLE_EQ(*s.loss, *before.loss) << junk;
    EXPECT_DOUBLE_EQ(s.elapsed_s, before.elapsed_s) << junk;
  }

  std::optional<EvalRecord> e = ApplyMetricsLine(
      R"({"type":"eval","epoch":1,"step":235,"test_loss":0.45,"test_accuracy":0.84,"elapsed_s":5.1})",
      &s);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->epoch, 1);
  EXPECT_EQ(e->step, 235);
  EXPECT_DOUBLE_EQ(*e->test_accuracy, 0.84);
  EXPECT_FALSE(e->test_auc);
  EXPECT_EQ(s.step, 235);  // an eval moves the position forward
  ASSERT_TRUE(s.last_eval);
  EXPECT_DOUBLE_EQ(*s.last_eval->test_loss, 0.45);

  EXPECT_FALSE(ApplyMetricsLine(R"({"type":"done","elapsed_s":9})", &s));
  EXPECT_TRUE(s.done);
  EXPECT_DOUBLE_EQ(s.elapsed_s, 9);
}

class MetricsTailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = fs::temp_directory_path().string() + "/distopt_progress_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/metrics.jsonl";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void Append(const std::string& text) {
    std::ofstream(path_, std::ios::binary | std::ios::app) << text;
  }
  std::vector<EvalRecord> Poll(MetricsTail& tail, ProgressState* state) {
    Result<std::vector<EvalRecord>> r = tail.Poll(state);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::vector<EvalRecord>{};
  }

  std::string dir_, path_;
};

TEST_F(MetricsTailTest, PicksUpLinesAppendedAfterAFirstRead) {
  MetricsTail tail(path_);
  ProgressState s;
  EXPECT_TRUE(Poll(tail, &s).empty());  // no file yet: nothing, no error
  Append(R"({"type":"start","epochs":2,"steps_per_epoch":100})"
         "\n"
         R"({"type":"train","epoch":1,"step":50,"loss":0.9,"elapsed_s":1})"
         "\n");
  EXPECT_TRUE(Poll(tail, &s).empty());
  EXPECT_EQ(s.step, 50);
  EXPECT_EQ(s.total_steps(), 200);

  Append(R"({"type":"train","epoch":1,"step":100,"loss":0.7,"elapsed_s":2})"
         "\n"
         R"({"type":"eval","epoch":1,"step":100,"test_accuracy":0.8,"elapsed_s":2.5})"
         "\n"
         R"({"type":"train","epoch":2,"step":150,"loss":0.6,"elapsed_s":3})"
         "\n"
         R"({"type":"eval","epoch":2,"step":200,"test_accuracy":0.9,"elapsed_s":4})"
         "\n");
  std::vector<EvalRecord> evals = Poll(tail, &s);
  ASSERT_EQ(evals.size(), 2u);
  EXPECT_EQ(evals[0].epoch, 1);
  EXPECT_DOUBLE_EQ(*evals[0].test_accuracy, 0.8);
  EXPECT_EQ(evals[1].epoch, 2);
  EXPECT_EQ(s.step, 200);
  EXPECT_DOUBLE_EQ(*s.loss, 0.6);
  EXPECT_DOUBLE_EQ(*s.last_eval->test_accuracy, 0.9);
  EXPECT_EQ(tail.offset(), fs::file_size(path_));

  // Nothing new: nothing returned, nothing re-applied.
  EXPECT_TRUE(Poll(tail, &s).empty());
  EXPECT_EQ(s.step, 200);
}

TEST_F(MetricsTailTest, KeepsAHalfWrittenLineUntilItIsComplete) {
  MetricsTail tail(path_);
  ProgressState s;
  Append(R"({"type":"train","epoch":1,"step":10,"loss":0.9})"
         "\n"
         R"({"type":"eval","epoch":1,"step":235,"test_acc)");
  EXPECT_TRUE(Poll(tail, &s).empty());
  EXPECT_EQ(s.step, 10);
  EXPECT_FALSE(s.last_eval);
  EXPECT_EQ(tail.offset(), fs::file_size(path_));

  Append(R"(uracy":0.84,"elapsed_s")");  // still no newline
  EXPECT_TRUE(Poll(tail, &s).empty());
  EXPECT_FALSE(s.last_eval);

  Append(":5.1}\n");
  std::vector<EvalRecord> evals = Poll(tail, &s);
  ASSERT_EQ(evals.size(), 1u);
  EXPECT_DOUBLE_EQ(*evals[0].test_accuracy, 0.84);
  EXPECT_DOUBLE_EQ(*evals[0].elapsed_s, 5.1);
  EXPECT_EQ(s.step, 235);
}

TEST_F(MetricsTailTest, GarbageLinesAreSkipped) {
  MetricsTail tail(path_);
  ProgressState s;
  Append(
      "not json\n{\"type\":\"train\",\"step\":\"x\"}\n\n\xff\xfe\n"
      R"({"type":"eval","epoch":1,"step":5,"test_auc":0.7})"
      "\n");
  std::vector<EvalRecord> evals = Poll(tail, &s);
  ASSERT_EQ(evals.size(), 1u);
  EXPECT_DOUBLE_EQ(*evals[0].test_auc, 0.7);
  EXPECT_EQ(s.step, 5);
}

TEST_F(MetricsTailTest, OverlongLineIsSkippedNotBuffered) {
  MetricsTail tail(path_, /*max_line_bytes=*/100);
  ProgressState s;
  // Longer than the limit and split across polls; valid JSON even, but too
  // long to be a record worth holding in memory.
  Append(R"({"type":"eval","epoch":9,"pad":")" + std::string(500, 'x'));
  EXPECT_TRUE(Poll(tail, &s).empty());
  Append(std::string(500, 'y') + "\"}\n" +
         R"({"type":"eval","epoch":1,"step":3})"
         "\n");
  std::vector<EvalRecord> evals = Poll(tail, &s);
  ASSERT_EQ(evals.size(), 1u);
  EXPECT_EQ(evals[0].epoch, 1);
}

TEST_F(MetricsTailTest, StartsOverWhenTheFileIsReplaced) {
  MetricsTail tail(path_);
  ProgressState s;
  Append(R"({"type":"train","epoch":1,"step":100,"loss":0.5})"
         "\n"
         R"({"type":"eval","epoch":1,"step":100,"test_accuracy":0.5})"
         "\n");
  EXPECT_EQ(Poll(tail, &s).size(), 1u);

  // A new run in the same folder: a shorter file under the same name.
  std::string fresh = dir_ + "/fresh.jsonl";
  std::ofstream(fresh, std::ios::binary)
      << R"({"type":"eval","epoch":7,"step":1,"test_accuracy":0.2})"
         "\n";
  fs::rename(fresh, path_);
  std::vector<EvalRecord> evals = Poll(tail, &s);
  ASSERT_EQ(evals.size(), 1u);
  EXPECT_EQ(evals[0].epoch, 7);
  EXPECT_EQ(tail.offset(), fs::file_size(path_));
}

}  // namespace
}  // namespace distopt
