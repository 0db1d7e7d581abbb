// The training loop's decisions, tested without a cluster: what a failed
// request means (rollback, the job's end, an error), which shards a worker
// reads when others are dead and how its gradient is scaled, when an epoch
// is evaluated, and when a target metric counts as reached.
#include <gtest/gtest.h>

#include <algorithm>

#include "train/trainer.h"

namespace distopt {
namespace {

TEST(StopAfterTest, OkGoesOn) {
  Result<TrainStop> r = StopAfter(Status::Ok(), /*generation_changed=*/true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, TrainStop::kNone);
}

TEST(StopAfterTest, AbortedIsARollbackOnlyWhenTheGenerationMoved) {
  Result<TrainStop> rolled = StopAfter(AbortedError("rolled back"), /*generation_changed=*/true);
  Result<TrainStop> ended = StopAfter(AbortedError("the job ended"), /*generation_changed=*/false);
  ASSERT_TRUE(rolled.ok());
  ASSERT_TRUE(ended.ok());
  EXPECT_EQ(*rolled, TrainStop::kRolledBack);
  EXPECT_EQ(*ended, TrainStop::kJobEnded);
}

TEST(StopAfterTest, OtherErrorsAreReturnedAsTheyAre) {
  for (bool changed : {false, true}) {
    Result<TrainStop> r = StopAfter(DeadlineExceededError("server/1 did not answer"), changed);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
    EXPECT_EQ(r.status().message(), "server/1 did not answer");
  }
}

TEST(ShardsToReadTest, WithEveryWorkerAliveEachReadsItsOwn) {
  for (uint32_t rank = 0; rank < 4; ++rank) {
    EXPECT_EQ(ShardsToRead(rank, 4, {3, 1, 0, 2}), std::vector<int>{static_cast<int>(rank)});
  }
}

TEST(ShardsToReadTest, ADeadWorkersShardGoesToExactlyOneLiveWorker) {
  // Worker 1 of 4 is dead: its shard goes to live[1 % 3], rank 2.
  EXPECT_EQ(ShardsToRead(0, 4, {0, 2, 3}), std::vector<int>{0});
  EXPECT_EQ(ShardsToRead(2, 4, {3, 0, 2}), (std::vector<int>{2, 1}));
  EXPECT_EQ(ShardsToRead(3, 4, {0, 2, 3}), std::vector<int>{3});
}

// For every set of dead workers among 5: the live workers' shards cover
// every shard exactly once, and their gradient scales average to 1 (the
// servers' mean over live pushes is the mean over all slots).
TEST(ShardsToReadTest, LiveWorkersPartitionTheShardsAndTheirScalesAverageToOne) {
  constexpr uint32_t kWorkers = 5;
  for (uint32_t dead_mask = 0; dead_mask < (1u << kWorkers) - 1; ++dead_mask) {
    std::vector<uint32_t> live;
    for (uint32_t r = 0; r < kWorkers; ++r) {
      if ((dead_mask & (1u << r)) == 0) live.push_back(r);
    }
    std::vector<int> read_by(kWorkers, 0);
    double scale_sum = 0;
    for (uint32_t r : live) {
      std::vector<int> shards = ShardsToRead(r, kWorkers, live);
      ASSERT_FALSE(shards.empty());
      EXPECT_EQ(shards.front(), static_cast<int>(r)) << "mask " << dead_mask;
      for (int s : shards) ++read_by.at(static_cast<size_t>(s));
      scale_sum += GradScale(shards.size(), live.size(), kWorkers);
    }
    for (uint32_t s = 0; s < kWorkers; ++s) {
      EXPECT_EQ(read_by[s], 1) << "shard " << s << ", dead mask " << dead_mask;
    }
    EXPECT_NEAR(scale_sum / static_cast<double>(live.size()), 1.0, 1e-6) << "mask " << dead_mask;
  }
}

// However many die, the live workers' loads differ by at most one shard
// (dealing each dead shard by its own rank put 3 of 4 shards on one worker
// when workers 1 and 3 of 4 died).
TEST(ShardsToReadTest, DeadWorkersShardsAreSpreadEvenly) {
  EXPECT_EQ(ShardsToRead(0, 4, {0, 2}), (std::vector<int>{0, 3}));
  EXPECT_EQ(ShardsToRead(2, 4, {0, 2}), (std::vector<int>{2, 1}));
  constexpr uint32_t kWorkers = 7;
  for (uint32_t dead_mask = 0; dead_mask < (1u << kWorkers) - 1; ++dead_mask) {
    std::vector<uint32_t> live;
    for (uint32_t r = 0; r < kWorkers; ++r) {
      if ((dead_mask & (1u << r)) == 0) live.push_back(r);
    }
    size_t most = 0, least = kWorkers;
    for (uint32_t r : live) {
      const size_t n = ShardsToRead(r, kWorkers, live).size();
      most = std::max(most, n);
      least = std::min(least, n);
    }
    EXPECT_LE(most - least, 1u) << "dead mask " << dead_mask;
  }
}

TEST(GradScaleTest, IsShardsTimesLiveOverWorkers) {
  EXPECT_EQ(GradScale(1, 4, 4), 1.0f);
  EXPECT_EQ(GradScale(2, 3, 4), 1.5f);
  EXPECT_EQ(GradScale(1, 3, 4), 0.75f);
}

TEST(EvalDueTest, EveryNEpochsAndAlwaysTheLast) {
  TrainerOptions o;
  o.epochs = 5;
  o.eval_every_epochs = 2;
  std::vector<int64_t> due;
  for (int64_t e = 1; e <= o.epochs; ++e) {
    if (EvalDue(e, o)) due.push_back(e);
  }
  EXPECT_EQ(due, (std::vector<int64_t>{2, 4, 5}));
  o.eval_every_epochs = 0;  // read as every epoch
  EXPECT_TRUE(EvalDue(1, o));
  EXPECT_TRUE(EvalDue(3, o));
}

TEST(TargetReachedTest, LossesAndErrorsGoDownEverythingElseUp) {
  EXPECT_TRUE(TargetReached("test_loss", 0.3, 0.4));
  EXPECT_FALSE(TargetReached("test_loss", 0.5, 0.4));
  EXPECT_TRUE(TargetReached("test_rmse", 0.4, 0.4));
  EXPECT_FALSE(TargetReached("test_rmse", 0.41, 0.4));
  EXPECT_TRUE(TargetReached("test_accuracy", 0.9, 0.8));
  EXPECT_TRUE(TargetReached("test_auc", 0.8, 0.8));
  EXPECT_FALSE(TargetReached("test_auc", 0.79, 0.8));
}

// ---- adoption (train/adoption.h) ----

// Workers 0-1 on host a, 2-3 on b, 4 on c; `dead` ranks not alive.
ClusterView HostsView(const std::vector<uint32_t>& dead) {
  ClusterView v;
  v.num_workers = 5;
  const char* hosts[] = {"a", "a", "b", "b", "c"};
  for (uint32_t r = 0; r < 5; ++r) {
    Member m;
    m.id = 10 + r;
    m.role = Role::kWorker;
    m.rank = r;
    m.host = hosts[r];
    m.alive = std::find(dead.begin(), dead.end(), r) == dead.end();
    v.members.push_back(m);
  }
  return v;
}

// What the host group of `self` waits for it to add, as KvClient::HostAdopted
// reports it (adoption on; per-host sums as `host_sums`).
std::vector<uint32_t> HostAdopted(const ClusterView& v, uint32_t self, bool host_sums = true) {
  HostGroup g;
  g.OnView(v, self, host_sums ? HostAggregation::kOn : HostAggregation::kOff, /*adopt_dead=*/true);
  return g.adopted();
}

// Every dead rank's slot is computed by exactly one live worker, for every
// set of dead workers, with and without per-host sums; with them a dead
// host's ranks go together, and a host that still runs a worker keeps its
// dead in its leader's sum.
TEST(PlanAdoptionTest, EveryDeadSlotHasExactlyOneLiveAdopter) {
  for (bool host_sums : {false, true}) {
    for (uint32_t mask = 1; mask < (1u << 5) - 1; ++mask) {
      std::vector<uint32_t> dead;
      for (uint32_t r = 0; r < 5; ++r) {
        if (mask & (1u << r)) dead.push_back(r);
      }
      ClusterView v = HostsView(dead);
      std::vector<int> adopters(5, 0);
      for (uint32_t self = 0; self < 5; ++self) {
        std::vector<AdoptionUnit> plan =
            PlanAdoption(v, self, 5, host_sums, HostAdopted(v, self, host_sums));
        if (mask & (1u << self)) {
          EXPECT_TRUE(plan.empty()) << "a dead worker adopts nobody";
          continue;
        }
        for (const AdoptionUnit& u : plan) {
          EXPECT_TRUE(std::is_sorted(u.ranks.begin(), u.ranks.end()));
          if (!host_sums) {
            EXPECT_EQ(u.ranks.size(), 1u);
            EXPECT_FALSE(u.via_host);
          }
          for (uint32_t r : u.ranks) {
            ASSERT_TRUE(mask & (1u << r)) << "worker/" << r << " is alive";
            ++adopters[r];
            if (u.via_host) {
              EXPECT_EQ(v.members[r].host, v.members[self].host);
            }
          }
        }
      }
      for (uint32_t r : dead) EXPECT_EQ(adopters[r], 1) << "mask " << mask << " rank " << r;
    }
  }
}

TEST(PlanAdoptionTest, ADeadHostIsOneUnitAndAHalfDeadHostStaysInItsLeadersSum) {
  ClusterView v = HostsView({2, 3});
  // Host b is gone: its two ranks, summed as b summed them, go to live[2 % 3].
  EXPECT_EQ(PlanAdoption(v, 4, 5, true), (std::vector<AdoptionUnit>{{{2, 3}, false}}));
  EXPECT_TRUE(PlanAdoption(v, 0, 5, true).empty());
  // Without host sums each rank is a unit: 2 to live[2 % 3] = 4, 3 to live[0] = 0.
  EXPECT_EQ(PlanAdoption(v, 4, 5, false), (std::vector<AdoptionUnit>{{{2}, false}}));
  EXPECT_EQ(PlanAdoption(v, 0, 5, false), (std::vector<AdoptionUnit>{{{3}, false}}));
  // Worker/0 dies: host a's leader is worker/1 now, and worker/0 is in its sum.
  ClusterView half = HostsView({0});
  EXPECT_EQ(PlanAdoption(half, 1, 5, true, HostAdopted(half, 1)),
            (std::vector<AdoptionUnit>{{{0}, true}}));
  EXPECT_TRUE(PlanAdoption(half, 2, 5, true, HostAdopted(half, 2)).empty());
  // Until worker/1's host group has the view, nobody adds worker/0: the
  // group is not waiting for it either (it will be asked next time).
  EXPECT_TRUE(PlanAdoption(half, 1, 5, true, {}).empty());
}

}  // namespace
}  // namespace distopt
