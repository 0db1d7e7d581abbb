// The coordinator's decisions without a cluster: FailoverPolicy over the
// membership changes the process tests provoke (an owner killed with and
// without a synced backup, a restart rejoining) and those they cannot time
// (both copies of a partition lost in one view, a backup dying while it
// syncs, a stale sync report), and CheckpointCommit over reports that cross
// a rollback.
#include "kv/failover_policy.h"

#include <gtest/gtest.h>

#include "kv/checkpoint_commit.h"

namespace distopt {
namespace {

std::vector<TableSpec> Tables() {
  TableSpec t;
  t.id = 0;
  t.name = "w";
  t.size = 3 * Layout::kMinSliceFloats;
  t.optimizer.kind = "sgd";
  return {t};
}

// Servers 0..n-1 as nodes 100 + rank (a restart gets a fresh id).
ServerNodes Nodes(uint32_t epoch, std::vector<NodeId> by_rank) {
  ServerNodes s;
  s.epoch = epoch;
  s.by_rank = std::move(by_rank);
  return s;
}
constexpr NodeId kGone = kUnassignedId;

struct Fixture {
  explicit Fixture(uint32_t servers, uint32_t replication, bool checkpoints = true,
                   Result<int64_t> latest = int64_t{800}) {
    FailoverPolicyOptions o;
    o.tables = Tables();
    o.num_servers = servers;
    o.replication = replication;
    o.checkpoints = checkpoints;
    o.latest_checkpoint = [this] {
      ++checkpoint_lookups;
      return latest_checkpoint;
    };
    latest_checkpoint = std::move(latest);
    policy = std::make_unique<FailoverPolicy>(std::move(o));
    std::vector<NodeId> nodes;
    for (uint32_t r = 0; r < servers; ++r) nodes.push_back(100 + r);
    policy->Start(Nodes(1, nodes));
  }
  std::unique_ptr<FailoverPolicy> policy;
  Result<int64_t> latest_checkpoint = int64_t{0};
  int checkpoint_lookups = 0;
};

bool Logged(const FailoverDecision& d, const std::string& needle) {
  for (const auto& e : d.events) {
    if (e.text.find(needle) != std::string::npos) return true;
  }
  return false;
}

TEST(FailoverPolicyTest, StartsWithEachPartitionBackedUpByTheNextServerInSync) {
  Fixture f(3, 2);
  const Layout& l = f.policy->layout();
  ASSERT_EQ(l.replicas.size(), 3u);
  for (uint32_t p = 0; p < 3; ++p) {
    EXPECT_EQ(l.replicas[p].owner, p);
    EXPECT_EQ(l.replicas[p].backup, (p + 1) % 3);
    EXPECT_TRUE(l.replicas[p].synced);
  }
  EXPECT_EQ(l.generation, 0u);
  EXPECT_EQ(l.restore_step, -1);
  FailoverDecision same = f.policy->OnMembership(Nodes(1, {100, 101, 102}));
  EXPECT_EQ(same.kind, FailoverDecision::kKeep);
  EXPECT_TRUE(same.events.empty());
}

// Servers 0-1 on host a, 2-3 on host b: every backup on the other host, one
// per server, so losing a whole host loses no partition.
TEST(FailoverPolicyTest, BackupsLiveOnAnotherHostThanTheirOwners) {
  FailoverPolicyOptions o;
  o.tables = Tables();
  o.num_servers = 4;
  o.replication = 2;
  FailoverPolicy policy(o);
  ServerNodes nodes = Nodes(1, {100, 101, 102, 103});
  nodes.hosts = {"a", "a", "b", "b"};
  const Layout& l = policy.Start(nodes);
  std::vector<int> backups(4, 0);
  for (uint32_t p = 0; p < 4; ++p) {
    ASSERT_NE(l.replicas[p].backup, kNoServer);
    EXPECT_NE(nodes.hosts[l.replicas[p].backup], nodes.hosts[l.replicas[p].owner]) << p;
    ++backups[l.replicas[p].backup];
  }
  EXPECT_EQ(backups, (std::vector<int>{1, 1, 1, 1}));
  // Host b dies: partitions 2 and 3 fail over to host a, and nothing is lost.
  ServerNodes left = Nodes(2, {100, 101, kGone, kGone});
  left.hosts = {"a", "a", "", ""};
  FailoverDecision d = policy.OnMembership(left);
  ASSERT_EQ(d.kind, FailoverDecision::kNewLayout);
  for (uint32_t p = 0; p < 4; ++p) EXPECT_LT(d.layout.replicas[p].owner, 2u) << p;
  // Unknown hosts (or one host): the next server, as without hosts.
  FailoverPolicy plain(o);
  const Layout& m = plain.Start(Nodes(1, {100, 101, 102, 103}));
  for (uint32_t p = 0; p < 4; ++p) EXPECT_EQ(m.replicas[p].backup, (p + 1) % 4);
}

// Host a says it can serve three times what host b can: with 16 partitions
// its two servers own 12, host b's 4, every backup on the other host; a
// server that said nothing leaves the shares equal.
TEST(FailoverPolicyTest, PartitionsAreDealtByHostCapacity) {
  FailoverPolicyOptions o;
  o.tables = Tables();
  o.num_servers = 4;
  o.num_partitions = 16;
  o.replication = 2;
  FailoverPolicy policy(o);
  ServerNodes nodes = Nodes(1, {100, 101, 102, 103});
  nodes.hosts = {"a", "a", "b", "b"};
  nodes.capacities = {6, 6, 2, 2};
  const Layout& l = policy.Start(nodes);
  ASSERT_EQ(l.replicas.size(), 16u);
  std::vector<int> owned(4, 0);
  for (const Replica& rep : l.replicas) {
    ++owned[rep.owner];
    ASSERT_NE(rep.backup, kNoServer);
    EXPECT_NE(nodes.hosts[rep.backup], nodes.hosts[rep.owner]);
  }
  EXPECT_EQ(owned, (std::vector<int>{6, 6, 2, 2}));
  nodes.capacities = {6, 0, 2, 2};
  FailoverPolicy unsaid(o);
  std::vector<int> even(4, 0);
  for (const Replica& rep : unsaid.Start(nodes).replicas) ++even[rep.owner];
  EXPECT_EQ(even, (std::vector<int>{4, 4, 4, 4}));
}

// A new backup goes to another host than the owner's when one is alive.
TEST(FailoverPolicyTest, ANewBackupPrefersAnotherHost) {
  FailoverPolicyOptions o;
  o.tables = Tables();
  o.num_servers = 3;
  o.replication = 2;
  FailoverPolicy policy(o);
  ServerNodes nodes = Nodes(1, {100, 101, 102});
  nodes.hosts = {"a", "a", "b"};
  const Layout& l = policy.Start(nodes);
  ASSERT_EQ(l.replicas[0].backup, 2u);
  // Server 2 (host b) restarts: partition 0 needs a new backup; server 1
  // shares its owner's host, the restarted server 2 does not.
  ServerNodes back = Nodes(2, {100, 101, 202});
  back.hosts = {"a", "a", "b"};
  FailoverDecision d = policy.OnMembership(back);
  ASSERT_EQ(d.kind, FailoverDecision::kNewLayout);
  EXPECT_EQ(d.layout.replicas[0].backup, 2u);
}

TEST(FailoverPolicyTest, OwnerDyingWithASyncedBackupFailsOver) {
  Fixture f(3, 2);
  FailoverDecision d = f.policy->OnMembership(Nodes(2, {kGone, 101, 102}));
  ASSERT_EQ(d.kind, FailoverDecision::kNewLayout);
  EXPECT_EQ(d.layout.replicas[0].owner, 1u);
  // Live ranks 1 and 2 then hold two copies each; partition 0 (owned by
  // 1) gets server 2, and partition 2 (owned by 2) gets server 1.
  EXPECT_EQ(d.layout.replicas[0].backup, 2u);
  EXPECT_FALSE(d.layout.replicas[0].synced);
  // Partition 2 was backed up by server 0: it lost its backup and gets server 1.
  EXPECT_EQ(d.layout.replicas[2].owner, 2u);
  EXPECT_EQ(d.layout.replicas[2].backup, 1u);
  EXPECT_FALSE(d.layout.replicas[2].synced);
  EXPECT_EQ(d.layout.generation, 0u) << "a failover is no rollback";
  EXPECT_TRUE(Logged(d, "partition 0 fails over from server/0 to its backup server/1"));
  EXPECT_TRUE(Logged(d, "partition 2 lost its backup server/0"));
  EXPECT_EQ(f.checkpoint_lookups, 0);
}

TEST(FailoverPolicyTest, OwnerDyingWithAnUnsyncedBackupRollsBack) {
  Fixture f(3, 2);
  // Server 1 restarts: its copies are gone, it becomes a syncing backup.
  FailoverDecision d1 = f.policy->OnMembership(Nodes(2, {100, 201, 102}));
  ASSERT_EQ(d1.kind, FailoverDecision::kNewLayout);
  EXPECT_EQ(d1.layout.replicas[1].owner, 2u) << "partition 1 failed over to server 2";
  EXPECT_EQ(d1.layout.replicas[0].backup, 1u);
  EXPECT_FALSE(d1.layout.replicas[0].synced);
  // Partition 0's owner dies before its new backup synced: both copies gone.
  FailoverDecision d2 = f.policy->OnMembership(Nodes(3, {300, 201, 102}));
  ASSERT_EQ(d2.kind, FailoverDecision::kRollBack);
  EXPECT_EQ(d2.restore_step, 800);
  EXPECT_EQ(d2.layout.restore_step, 800);
  EXPECT_EQ(d2.layout.generation, 1u);
  // Every server reloads the checkpoint: back to the initial pairs, in sync.
  for (uint32_t p = 0; p < 3; ++p) {
    EXPECT_EQ(d2.layout.replicas[p].owner, p);
    EXPECT_EQ(d2.layout.replicas[p].backup, (p + 1) % 3);
    EXPECT_TRUE(d2.layout.replicas[p].synced);
  }
  EXPECT_TRUE(Logged(d2, "rolling the job back to checkpoint 800 (generation 1)"));
  // The restarted nodes hold the reloaded copies now: nothing more to do.
  EXPECT_EQ(f.policy->OnMembership(Nodes(3, {300, 201, 102})).kind, FailoverDecision::kKeep);
}

TEST(FailoverPolicyTest, BothCopiesLostInOneViewRollBackOnceWithoutAFailoverFirst) {
  Fixture f(3, 2);
  // Servers 0 and 1 (owner and backup of partition 0) restarted together.
  FailoverDecision d = f.policy->OnMembership(Nodes(2, {200, 201, 102}));
  ASSERT_EQ(d.kind, FailoverDecision::kRollBack);
  EXPECT_FALSE(Logged(d, "fails over")) << "no failover to a backup that is gone too";
  EXPECT_TRUE(Logged(d, "partition(s) 0 lost every copy"));
  EXPECT_EQ(d.layout.generation, 1u);
  EXPECT_EQ(f.checkpoint_lookups, 1);
  EXPECT_EQ(f.policy->OnMembership(Nodes(3, {200, 201, 102})).kind, FailoverDecision::kKeep);
  EXPECT_EQ(f.policy->generation(), 1u);
}

TEST(FailoverPolicyTest, BothCopiesGoneWaitForTheRestartsThenRollBack) {
  Fixture f(3, 2);
  FailoverDecision wait = f.policy->OnMembership(Nodes(2, {kGone, kGone, 102}));
  ASSERT_EQ(wait.kind, FailoverDecision::kWaitForRestart);
  EXPECT_TRUE(Logged(wait, "waiting for server rank(s) 0, 1 to be restarted"));
  EXPECT_EQ(f.checkpoint_lookups, 0);
  EXPECT_EQ(f.policy->layout().generation, 0u) << "nothing published while waiting";
  EXPECT_EQ(f.policy->OnMembership(Nodes(3, {200, kGone, 102})).kind,
            FailoverDecision::kWaitForRestart);
  // A restarted server holds nothing even in the views after its first:
  // partition 0 is still lost when the last rank comes back.
  FailoverDecision d = f.policy->OnMembership(Nodes(4, {200, 201, 102}));
  ASSERT_EQ(d.kind, FailoverDecision::kRollBack);
  EXPECT_EQ(d.restore_step, 800);
}

TEST(FailoverPolicyTest, ARestartedServerWithoutReplicationRollsBackEvenAfterWaiting) {
  Fixture f(2, 1);
  EXPECT_EQ(f.policy->OnMembership(Nodes(2, {kGone, kGone})).kind,
            FailoverDecision::kWaitForRestart);
  EXPECT_EQ(f.policy->OnMembership(Nodes(3, {200, kGone})).kind, FailoverDecision::kWaitForRestart);
  // Server 0's new process was seen before; it still holds no copy.
  FailoverDecision d = f.policy->OnMembership(Nodes(4, {200, 201}));
  ASSERT_EQ(d.kind, FailoverDecision::kRollBack);
  EXPECT_TRUE(Logged(d, "partition(s) 0, 1 lost every copy"));
}

TEST(FailoverPolicyTest, BackupDyingWhileItSyncsGetsANewBackupOrIsDegraded) {
  Fixture f(3, 2);
  // Server 1 restarts: it becomes the (syncing) backup of partition 0.
  FailoverDecision d1 = f.policy->OnMembership(Nodes(2, {100, 201, 102}));
  ASSERT_EQ(d1.kind, FailoverDecision::kNewLayout);
  ASSERT_EQ(d1.layout.replicas[0].backup, 1u);
  ASSERT_FALSE(d1.layout.replicas[0].synced);
  // It dies again before the snapshot completed: partition 0 still has its
  // owner, so no rollback; its backup moves to server 2.
  FailoverDecision d2 = f.policy->OnMembership(Nodes(3, {100, kGone, 102}));
  ASSERT_EQ(d2.kind, FailoverDecision::kNewLayout);
  EXPECT_TRUE(Logged(d2, "partition 0 lost its backup server/1 while it was syncing"));
  EXPECT_EQ(d2.layout.replicas[0].owner, 0u);
  EXPECT_EQ(d2.layout.replicas[0].backup, 2u);
  EXPECT_FALSE(d2.layout.replicas[0].synced);
  EXPECT_EQ(f.checkpoint_lookups, 0);

  // With two servers there is nobody else: degraded, one copy.
  Fixture g(2, 2);
  FailoverDecision r = g.policy->OnMembership(Nodes(2, {100, 201}));
  ASSERT_EQ(r.kind, FailoverDecision::kNewLayout);
  ASSERT_EQ(r.layout.replicas[0].backup, 1u);
  FailoverDecision deg = g.policy->OnMembership(Nodes(3, {100, kGone}));
  ASSERT_EQ(deg.kind, FailoverDecision::kNewLayout);
  EXPECT_EQ(deg.layout.replicas[0].owner, 0u);
  EXPECT_EQ(deg.layout.replicas[0].backup, kNoServer);
}

TEST(FailoverPolicyTest, ARestartedServerRejoinsAsABackupOnceInSync) {
  Fixture f(3, 2);
  FailoverDecision d1 = f.policy->OnMembership(Nodes(2, {kGone, 101, 102}));
  ASSERT_EQ(d1.kind, FailoverDecision::kNewLayout);
  // The new backups (published in epoch 3) report in sync.
  ASSERT_EQ(f.policy->OnReplicaSynced(0, 102, 3).kind, FailoverDecision::kNewLayout);
  ASSERT_EQ(f.policy->OnReplicaSynced(2, 101, 3).kind, FailoverDecision::kNewLayout);
  // Server 0 comes back (a new node).
  FailoverDecision d2 = f.policy->OnMembership(Nodes(3, {200, 101, 102}));
  EXPECT_EQ(d2.kind, FailoverDecision::kKeep)
      << "every partition already has a backup: the newcomer waits for a change";
  // Server 2 dies: partition 2 fails over to its backup (server 1), and the
  // newcomer, holding nothing, becomes a backup.
  FailoverDecision d3 = f.policy->OnMembership(Nodes(4, {200, 101, kGone}));
  ASSERT_EQ(d3.kind, FailoverDecision::kNewLayout) << d3.failure.ToString();
  uint32_t on_zero = 0;
  for (const Replica& rep : d3.layout.replicas) {
    EXPECT_NE(rep.owner, 0u) << "a restarted server never owns before it synced";
    if (rep.backup == 0) {
      ++on_zero;
      EXPECT_FALSE(rep.synced);
    }
  }
  EXPECT_GE(on_zero, 1u);
  // Its sync report counts only from its node, and only if sent after the
  // layout that named it (epoch 4) could have reached it.
  uint32_t p = 0;
  while (d3.layout.replicas[p].backup != 0) ++p;
  EXPECT_EQ(f.policy->OnReplicaSynced(p, 999, 5).kind, FailoverDecision::kKeep);
  EXPECT_EQ(f.policy->OnReplicaSynced(p, 200, 4).kind, FailoverDecision::kKeep);
  EXPECT_FALSE(f.policy->layout().replicas[p].synced);
  FailoverDecision synced = f.policy->OnReplicaSynced(p, 200, 5);
  ASSERT_EQ(synced.kind, FailoverDecision::kNewLayout);
  EXPECT_TRUE(synced.layout.replicas[p].synced);
  EXPECT_TRUE(Logged(synced, "backup server/0 is in sync"));
  EXPECT_EQ(f.policy->OnReplicaSynced(p, 200, 6).kind, FailoverDecision::kKeep) << "once";
}

TEST(FailoverPolicyTest, ASyncedRestartedBackupCanTakeOver) {
  Fixture f(2, 2);
  ASSERT_EQ(f.policy->OnMembership(Nodes(2, {100, 201})).kind, FailoverDecision::kNewLayout);
  ASSERT_EQ(f.policy->OnReplicaSynced(0, 201, 3).kind, FailoverDecision::kNewLayout);
  ASSERT_EQ(f.policy->OnReplicaSynced(1, 201, 3).kind, FailoverDecision::kNewLayout);
  // Partition 1's owner (server 1) restarted: it lost partition 1, whose
  // backup (server 0) took it over in the first view.
  EXPECT_EQ(f.policy->layout().replicas[1].owner, 0u);
  FailoverDecision d = f.policy->OnMembership(Nodes(4, {kGone, 201}));
  ASSERT_EQ(d.kind, FailoverDecision::kNewLayout);
  EXPECT_EQ(d.layout.replicas[0].owner, 1u);
  EXPECT_TRUE(Logged(d, "partition 0 fails over from server/0 to its backup server/1"));
}

TEST(FailoverPolicyTest, ALostPartitionWithoutCheckpointsFailsTheJobWithItsReason) {
  Fixture f(2, 1, /*checkpoints=*/false);
  FailoverDecision d = f.policy->OnMembership(Nodes(2, {100, kGone}));
  ASSERT_EQ(d.kind, FailoverDecision::kFail);
  EXPECT_EQ(d.failure.code(), StatusCode::kUnavailable);
  EXPECT_NE(d.failure.message().find("partition(s) 1 lost every copy"), std::string::npos)
      << d.failure.message();
  EXPECT_NE(d.failure.message().find("no checkpoints"), std::string::npos);
}

TEST(FailoverPolicyTest, NoGoodCheckpointYetFailsTheJobWithItsReason) {
  Fixture f(2, 1, true, NotFoundError("no checkpoint under /run"));
  FailoverDecision d = f.policy->OnMembership(Nodes(2, {100, 201}));
  ASSERT_EQ(d.kind, FailoverDecision::kFail);
  EXPECT_EQ(d.failure.code(), StatusCode::kDataLoss);
  EXPECT_NE(d.failure.message().find("no good checkpoint to roll back to"), std::string::npos);
  EXPECT_NE(d.failure.message().find("no checkpoint under /run"), std::string::npos)
      << "the lookup's own reason is kept";
  EXPECT_EQ(f.policy->generation(), 0u);
}

TEST(FailoverPolicyTest, ASecondRollbackBumpsTheGenerationAgain) {
  Fixture f(2, 1);
  ASSERT_EQ(f.policy->OnMembership(Nodes(2, {200, 101})).kind, FailoverDecision::kRollBack);
  f.latest_checkpoint = int64_t{1200};
  FailoverDecision d = f.policy->OnMembership(Nodes(3, {200, 301}));
  ASSERT_EQ(d.kind, FailoverDecision::kRollBack);
  EXPECT_EQ(d.layout.generation, 2u);
  EXPECT_EQ(d.layout.restore_step, 1200);
}

CheckpointReport Report(int64_t step, uint32_t partition, uint32_t crc) {
  CheckpointReport r;
  r.step = step;
  r.server_rank = partition;
  r.files.push_back({ShardFileName(static_cast<int>(partition), 0), 100, crc});
  return r;
}

TEST(CheckpointCommitTest, AManifestOnlyOnceEveryPartitionReported) {
  CheckpointCommit c(3, 0xabc);
  EXPECT_FALSE(c.Add(Report(200, 2, 1), 1).has_value());
  EXPECT_FALSE(c.Add(Report(200, 0, 2), 1).has_value());
  EXPECT_FALSE(c.Add(Report(200, 0, 3), 1).has_value()) << "a resend is not a third partition";
  EXPECT_FALSE(c.Add(Report(400, 1, 4), 1).has_value());
  auto m = c.Add(Report(200, 1, 5), 1);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->step, 200);
  EXPECT_EQ(m->config_hash, 0xabcu);
  EXPECT_EQ(m->num_servers, 3u);
  ASSERT_EQ(m->files.size(), 3u);
  EXPECT_EQ(m->files[0].crc32c, 3u) << "partition order, the resend's files";
  EXPECT_EQ(m->files[1].crc32c, 5u);
  EXPECT_EQ(m->files[2].crc32c, 1u);
  EXPECT_EQ(c.pending_steps(), 1u) << "step 400 still waits";
  EXPECT_FALSE(c.Add(Report(200, 2, 6), 1).has_value()) << "a late report of a committed step";
  EXPECT_FALSE(c.Add(Report(200, 7, 6), 1).has_value()) << "no partition 7";
}

TEST(CheckpointCommitTest, ReportsFromBeforeARollbackAreIgnored) {
  CheckpointCommit c(3, 1);
  EXPECT_FALSE(c.Add(Report(800, 0, 1), 2).has_value());
  EXPECT_FALSE(c.Add(Report(800, 1, 1), 2).has_value());
  ASSERT_TRUE(c.Add(Report(800, 2, 1), 2).has_value());
  // Partitions 1 and 2 wrote step 1000 of the run that is then abandoned.
  EXPECT_FALSE(c.Add(Report(1000, 1, 10), 5).has_value());
  EXPECT_FALSE(c.Add(Report(1000, 2, 20), 5).has_value());
  c.RolledBack(9, 800);
  EXPECT_EQ(c.pending_steps(), 0u);
  // A report of the old run still on its way.
  EXPECT_FALSE(c.Add(Report(1000, 0, 30), 8).has_value());
  EXPECT_EQ(c.dropped_reports(), 1u);
  // The replay writes step 1000 again: its manifest lists the replay's
  // files only, and needs all three partitions again.
  EXPECT_FALSE(c.Add(Report(1000, 0, 31), 9).has_value());
  EXPECT_FALSE(c.Add(Report(1000, 1, 32), 10).has_value());
  auto m = c.Add(Report(1000, 2, 33), 10);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->files[0].crc32c, 31u);
  EXPECT_EQ(m->files[1].crc32c, 32u);
  EXPECT_EQ(m->files[2].crc32c, 33u);
}

TEST(CheckpointCommitTest, AfterARollbackStepsAboveTheRestoreCommitAgain) {
  CheckpointCommit c(1, 1);
  ASSERT_TRUE(c.Add(Report(200, 0, 1), 1).has_value());
  ASSERT_TRUE(c.Add(Report(400, 0, 2), 1).has_value());
  EXPECT_FALSE(c.Add(Report(400, 0, 3), 1).has_value()) << "committed once";
  c.RolledBack(4, 200);
  EXPECT_FALSE(c.Add(Report(200, 0, 4), 4).has_value()) << "the restore point itself";
  auto m = c.Add(Report(400, 0, 5), 4);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->files[0].crc32c, 5u);
}

}  // namespace
}  // namespace distopt
