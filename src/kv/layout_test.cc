#include "kv/layout.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace distopt {
namespace {

std::vector<TableSpec> Tables() {
  std::vector<TableSpec> t(3);
  t[0] = {.id = 0, .name = "big", .sparse = false, .size = 1000003};
  t[1] = {.id = 1, .name = "bias", .sparse = false, .size = 10};
  t[2] = {.id = 2, .name = "emb", .sparse = true, .dim = 8};
  return t;
}

TEST(LayoutTest, DenseSlicesCoverTheTableAndAreBalanced) {
  for (uint32_t servers : {1u, 2u, 3u, 7u}) {
    Layout l = Layout::Compute(Tables(), servers);
    const auto& slices = l.tables[0].slices;
    ASSERT_EQ(slices.size(), servers);
    uint64_t next = 0, min = UINT64_MAX, max = 0;
    std::set<uint32_t> owners;
    for (const auto& s : slices) {
      EXPECT_EQ(s.begin, next);
      next = s.end;
      min = std::min(min, s.size());
      max = std::max(max, s.size());
      owners.insert(s.partition);
    }
    EXPECT_EQ(next, 1000003u);
    EXPECT_LE(max - min, 1u);
    EXPECT_EQ(owners.size(), servers);         // one slice per server
    ASSERT_EQ(l.tables[1].slices.size(), 1u);  // small table stays whole
  }
}

TEST(LayoutTest, SparseKeysSpreadOverServers) {
  Layout l = Layout::Compute(Tables(), 4);
  std::vector<int> count(4, 0);
  for (uint64_t k = 0; k < 40000; ++k) ++count[l.SparsePartition(k)];
  for (int c : count) EXPECT_NEAR(c, 10000, 600);
}

TEST(LayoutTest, EncodeDecodeRoundTripAndRejectsGarbage) {
  Layout l = Layout::Compute(Tables(), 3);
  auto d = Layout::Decode(l.Encode());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->num_servers, 3u);
  ASSERT_EQ(d->tables.size(), 3u);
  EXPECT_EQ(d->tables[0].slices[2].end, 1000003u);
  std::string bad = l.Encode();
  bad.resize(bad.size() - 3);
  EXPECT_FALSE(Layout::Decode(bad).ok());
}

TEST(LayoutTest, ReplicationPutsEachBackupOnAnotherServerAndRoundTrips) {
  Layout plain = Layout::Compute(Tables(), 3);
  for (const Replica& r : plain.replicas) EXPECT_EQ(r.backup, kNoServer);
  Layout l = Layout::Compute(Tables(), 3, 2);
  ASSERT_EQ(l.replicas.size(), 3u);
  std::set<uint32_t> backups;
  for (uint32_t p = 0; p < 3; ++p) {
    EXPECT_EQ(l.OwnerOf(p), p);
    EXPECT_NE(l.replicas[p].backup, p);
    EXPECT_TRUE(l.replicas[p].synced);
    backups.insert(l.replicas[p].backup);
  }
  EXPECT_EQ(backups.size(), 3u);  // each server backs up exactly one partition
  l.replicas[1] = {.owner = 2, .backup = kNoServer, .synced = false};
  auto d = Layout::Decode(l.Encode());
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->replication, 2u);
  EXPECT_EQ(d->OwnerOf(1), 2u);
  EXPECT_EQ(d->replicas[1].backup, kNoServer);
  EXPECT_EQ(d->replicas[0].backup, 1u);
  EXPECT_EQ(d->DensePartition(0, d->tables[0].slices[1].begin), d->tables[0].slices[1].partition);
  EXPECT_EQ(d->DensePartition(0, 17), kNoServer);
  // A backup on its own owner is no backup: refused.
  l.replicas[0] = {.owner = 0, .backup = 0, .synced = true};
  EXPECT_FALSE(Layout::Decode(l.Encode()).ok());
}

// A dense table whose slice per server would exceed kMaxSliceFloats is cut
// into more partitions than servers, dealt round the servers so consecutive
// slices (sent one after another) go to different ones.
TEST(LayoutTest, LargeTablesAreCutIntoMorePartitionsThanServers) {
  std::vector<TableSpec> t = Tables();
  t[0].size = 10 * Layout::kMaxSliceFloats + 3;
  EXPECT_EQ(Layout::Partitions(t, 2), 12u);  // 6 per server: 5M + 2 floats each
  Layout l = Layout::Compute(t, 2);
  ASSERT_EQ(l.num_partitions, 12u);
  ASSERT_EQ(l.replicas.size(), 12u);
  const auto& slices = l.tables[0].slices;
  ASSERT_EQ(slices.size(), 12u);
  uint64_t next = 0;
  for (size_t i = 0; i < slices.size(); ++i) {
    EXPECT_EQ(slices[i].begin, next);
    EXPECT_LE(slices[i].size(), Layout::kMaxSliceFloats);
    next = slices[i].end;
    if (i > 0) {
      EXPECT_NE(l.OwnerOf(slices[i].partition), l.OwnerOf(slices[i - 1].partition)) << i;
    }
  }
  EXPECT_EQ(next, t[0].size);
  // Sparse keys spread over every partition; the layout travels whole.
  std::vector<int> count(12, 0);
  for (uint64_t k = 0; k < 24000; ++k) ++count[l.SparsePartition(k)];
  for (int c : count) EXPECT_NEAR(c, 2000, 250);
  auto d = Layout::Decode(l.Encode());
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->num_partitions, 12u);
  EXPECT_EQ(d->num_servers, 2u);
  // Small tables keep one partition per server; a request is honoured, but
  // never below the servers.
  EXPECT_EQ(Layout::Partitions(Tables(), 3), 3u);
  EXPECT_EQ(Layout::Partitions(Tables(), 3, 8), 8u);
  EXPECT_EQ(Layout::Partitions(Tables(), 3, 2), 3u);
}

TEST(LayoutTest, DecodeRejectsFewerPartitionsThanServers) {
  Layout l = Layout::Compute(Tables(), 3);
  std::string bytes = l.Encode();
  bytes[4] = 2;  // num_partitions, after num_servers (u32 little-endian)
  auto d = Layout::Decode(bytes);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("2 partitions for 3 servers"), std::string::npos)
      << d.status().ToString();
}

TEST(DealPartitionsTest, SharesFollowTheWeightsAndInterleave) {
  // Equal weights: partition p to server p % n.
  std::vector<uint32_t> even = DealPartitions(8, {1, 1, 1, 1});
  for (uint32_t p = 0; p < 8; ++p) EXPECT_EQ(even[p], p % 4);
  // 3 : 1: six and two, the small share's two never side by side.
  std::vector<uint32_t> owners = DealPartitions(8, {3, 1});
  EXPECT_EQ(std::count(owners.begin(), owners.end(), 0u), 6);
  EXPECT_EQ(std::count(owners.begin(), owners.end(), 1u), 2);
  for (size_t p = 1; p < owners.size(); ++p) EXPECT_FALSE(owners[p] == 1 && owners[p - 1] == 1);
  // Every server keeps one, however small its weight, when there are enough.
  std::vector<uint32_t> tiny = DealPartitions(4, {100, 1, 1, 1});
  for (uint32_t r = 0; r < 4; ++r) EXPECT_EQ(std::count(tiny.begin(), tiny.end(), r), 1) << r;
  std::vector<uint32_t> big = DealPartitions(16, {5, 2, 1});
  // One each, then 13 by 5 : 2 : 1 = 8.1, 3.3, 1.6: the largest remainder rounds up.
  EXPECT_EQ(std::count(big.begin(), big.end(), 0u), 9);
  EXPECT_EQ(std::count(big.begin(), big.end(), 1u), 4);
  EXPECT_EQ(std::count(big.begin(), big.end(), 2u), 3);
}

TEST(LayoutTest, ValidateTablesNamesTheBadTable) {
  auto t = Tables();
  t[2].dim = 0;
  Status s = ValidateTables(t);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'emb'"), std::string::npos);
}

}  // namespace
}  // namespace distopt
