// A checkpoint writer SIGKILLed at random points never leaves a checkpoint
// that loads wrong: each directory is complete and verifies, or is plainly
// incomplete and is skipped.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/file_util.h"
#include "base/logging.h"
#include "kv/checkpoint.h"
#include "kv/checkpoint_test_util.h"

namespace distopt {
namespace {

using namespace checkpoint_testing;  // NOLINT: the fixture and data of every test here
namespace fs = std::filesystem;

// ---- the writer killed mid-checkpoint ----

class CheckpointKillTest : public CheckpointTest {
 protected:
  unsigned HardLimitSeconds() const override { return 240; }
};

// What a killed writer left in the directory of the step it was writing.
std::string DescribeLeftovers(const std::string& dir, size_t shards_total) {
  Result<std::vector<std::string>> names = ListDir(dir);
  if (!names.ok() || names->empty()) return "nothing";
  size_t shards = 0, temps = 0;
  bool manifest = false;
  for (const auto& n : *names) {
    if (n == "MANIFEST") manifest = true;
    if (n.find(".tmp.") != std::string::npos) {
      ++temps;
    } else if (n.size() > 6 && n.compare(n.size() - 6, 6, ".shard") == 0) {
      ++shards;
    }
  }
  if (manifest) return "complete";
  return std::to_string(shards) + "/" + std::to_string(shards_total) + " shards" +
         (temps > 0 ? " + temp" : "");
}

TEST_F(CheckpointKillTest, WriterKilledAtRandomPointsNeverLeavesABrokenCheckpoint) {
  constexpr int kServers = 3;
  constexpr size_t kDense = 30000, kRows = 1500;  // ~0.5 MB per checkpoint, 6 files + manifest
  // Aim for 40 kills; 20 is the requirement if the machine is too busy.
  constexpr int kTargetKills = 40, kMinKills = 20, kMaxIterations = 400;
  constexpr size_t kFiles = size_t{kServers} * 2;
  const auto budget = std::chrono::seconds(150);  // hard limit is 240 s
  const auto started = std::chrono::steady_clock::now();
  std::mt19937_64 rng(20240611);

  // Forks a child that writes checkpoint `step` and, if delay_us >= 0, kills
  // it after that long. Returns true if the child was killed before exiting.
  auto run_writer = [&](int64_t step, const CheckpointData& data, int64_t delay_us,
                        std::chrono::microseconds* took) -> bool {
    auto t0 = std::chrono::steady_clock::now();
    pid_t pid = ::fork();
    if (pid < 0) {
      ADD_FAILURE() << "fork failed";  // and never kill(-1, ...)
      return false;
    }
    if (pid == 0) {
      ::alarm(60);  // a wedged child dies on its own
      ::_exit(WriteCheckpoint(run_dir_, step, data).ok() ? 0 : 3);
    }
    if (delay_us >= 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
      ::kill(pid, SIGKILL);
    }
    int status = 0;
    EXPECT_EQ(::waitpid(pid, &status, 0), pid);
    *took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                  t0);
    if (WIFEXITED(status)) {
      EXPECT_EQ(WEXITSTATUS(status), 0) << "writer of step " << step << " failed";
      return false;
    }
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    return true;
  };

  // Calibrate: two complete, unkilled writes (steps 1 and 2) give the time a
  // whole checkpoint takes on this machine, fork to exit.
  std::map<int64_t, CheckpointData> written;
  std::vector<int64_t> recent_us;  // durations of the last few unkilled writes
  for (int64_t step = 1; step <= 2; ++step) {
    written[step] = MakeCheckpoint(step, kServers, kDense, kRows);
    std::chrono::microseconds took{0};
    ASSERT_FALSE(run_writer(step, written[step], -1, &took));
    recent_us.push_back(took.count());
  }
  // The median of recent full writes: robust to one slow fsync, and follows
  // a machine that gets busier (other builds share these cores).
  auto typical_us = [&] {
    std::vector<int64_t> v(recent_us.end() - std::min<size_t>(recent_us.size(), 5),
                           recent_us.end());
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  int64_t good = 2;
  ASSERT_EQ(*FindLatestGoodCheckpoint(run_dir_, kHash, nullptr), CheckpointDir(run_dir_, good));

  std::map<std::string, int> outcomes;  // "fresh|reused: what the kill left" -> count
  std::set<std::string> fresh_outcomes;
  int kills = 0, iterations = 0, advanced = 0;
  auto memory = std::make_shared<MemorySink>();
  Logger log(memory, "test", LogLevel::kInfo);
  // Prints every kill; a test may read env (the no-env rule is for the library).
  const bool verbose = std::getenv("DISTOPT_CKPT_TEST_VERBOSE") != nullptr;  // NOLINT

  while (iterations < kMaxIterations && std::chrono::steady_clock::now() - started < budget &&
         (kills < kTargetKills || fresh_outcomes.size() < 3 || advanced < 2)) {
    ++iterations;
    const int64_t next = good + 1;
    const std::string next_dir = CheckpointDir(run_dir_, next);
    if (written.find(next) == written.end()) {
      written[next] = MakeCheckpoint(next, kServers, kDense, kRows);
    }
    // Half the attempts start from an empty directory (so what is left says
    // where the kill landed), half rewrite over what the last killed writer
    // left (stale temp files, some finished shards), as a restart would.
    const bool fresh = rng() % 2 == 0;
    if (fresh) {
      ASSERT_TRUE(RemoveTree(next_dir).ok());
    }
    // Uniform over the time a full write takes, plus a margin so some
    // writers finish: kills land before, between and inside every file.
    const int64_t delay =
        static_cast<int64_t>(rng() % static_cast<uint64_t>(typical_us() * 5 / 4 + 1));
    std::chrono::microseconds took{0};
    const bool killed = run_writer(next, written[next], delay, &took);
    if (HasFailure()) return;
    if (killed) {
      ++kills;
    } else {
      recent_us.push_back(took.count());
    }
    const std::string left = killed ? DescribeLeftovers(next_dir, kFiles) : "finished";
    ++outcomes[(fresh ? "fresh: " : "reused: ") + left];
    if (fresh) fresh_outcomes.insert(left);
    if (verbose) {
      std::printf("delay %6lld us, took %6lld us: %s%s\n", static_cast<long long>(delay),
                  static_cast<long long>(took.count()),
                  fresh ? "fresh: " : "reused: ", left.c_str());
    }

    Result<std::string> found = FindLatestGoodCheckpoint(run_dir_, kHash, &log);
    ASSERT_TRUE(found.ok()) << found.status().ToString();
    // The new checkpoint counts exactly when its manifest landed; otherwise
    // the previous good one is chosen. Never anything else.
    const bool complete = fs::exists(next_dir + "/MANIFEST");
    const int64_t found_step = complete ? next : good;
    ASSERT_EQ(*found, CheckpointDir(run_dir_, found_step))
        << "iteration " << iterations << ", delay " << delay << " us, left " << left;
    // ... and it holds exactly what was written for that step.
    ExpectCheckpointHolds(*found, written[found_step]);
    if (HasFatalFailure()) return;
    if (complete) {
      good = next;
      ++advanced;
    }
    // Pruning beside half-written directories never touches the good one.
    ASSERT_TRUE(PruneCheckpoints(run_dir_, 2).ok());
    ASSERT_EQ(*FindLatestGoodCheckpoint(run_dir_, kHash, nullptr), *found);
  }
  std::string summary;
  for (const auto& [what, n] : outcomes) summary += " [" + what + "]=" + std::to_string(n);
  const auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started);
  std::printf(
      "kill test: %d iterations, %d kills, %d checkpoints completed, typical write %.1f ms, "
      "%.1f s total; outcomes:%s\n",
      iterations, kills, advanced, typical_us() / 1000.0, secs.count(), summary.c_str());
  RecordProperty("outcomes", summary);
  EXPECT_GE(kills, kMinKills) << summary;
  // The kills landed at different points of the write, not all before it.
  EXPECT_GE(fresh_outcomes.size(), 3u) << summary;
  EXPECT_GE(advanced, 1) << summary;
}

}  // namespace
}  // namespace distopt
