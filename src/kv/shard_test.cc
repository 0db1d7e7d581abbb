// SparseShard: ApplyBatch against the per-key Apply it replaces (the same
// bits in every row, state and step count, for every optimizer), and Gather
// against the rows it copies and the initializer for the rows it creates.
#include "kv/shard.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/init.h"
#include "optim/optimizer.h"

namespace distopt {
namespace {

std::unique_ptr<Optimizer> Make(const std::string& kind) {
  OptimizerOptions o;
  o.kind = kind;
  o.lr = 0.05f;
  if (kind == "sgd_momentum") {
    o.kind = "sgd";
    o.momentum = 0.9f;
  } else if (kind == "adagrad") {
    o.initial_accumulator = 0.1f;  // InitState fills something other than 0
  } else if (kind == "adamw") {
    o.weight_decay = 0.01f;
  } else if (kind == "ftrl") {
    o.l1 = 0.001f;
  }
  auto r = Optimizer::Create(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return std::move(r).value();
}

TableSpec Spec(uint32_t dim, InitKind init) {
  TableSpec t;
  t.id = 3;
  t.name = "emb";
  t.sparse = true;
  t.dim = dim;
  t.init.kind = init;
  t.init.scale = 0.1f;
  t.init.seed = 7;
  return t;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

constexpr uint64_t kEveryBatch = 1000000;  // a key outside the others' range

// Batches of keys as a server sees them across steps: new keys, keys seen
// before, and (as ApplyNow may pass them) a key twice in one batch
// (kEveryBatch: once in the first batch, first and last in the others); big
// enough that the index rehashes in the middle of a batch.
std::vector<std::vector<uint64_t>> Batches() {
  std::vector<std::vector<uint64_t>> batches;
  uint64_t x = 99;
  for (size_t size : {1, 7, 300, 2000, 5000}) {
    std::vector<uint64_t> b;
    for (size_t i = 0; i < size; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      b.push_back((x >> 24) % 6000);
    }
    b[0] = kEveryBatch;
    b[size - 1] = kEveryBatch;
    batches.push_back(std::move(b));
  }
  return batches;
}

class SparseShardBatchTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SparseShardBatchTest, ApplyBatchEqualsApplyPerKeyBitForBit) {
  auto opt = Make(GetParam());
  for (uint32_t dim : {1u, 5u, 16u}) {
    for (InitKind init : {InitKind::kZeros, InitKind::kNormal}) {
      SCOPED_TRACE("dim " + std::to_string(dim) + " init " + InitKindName(init));
      SparseShard per_key(Spec(dim, init), opt.get());
      SparseShard batched(Spec(dim, init), opt.get());
      size_t k = 0;
      for (const auto& keys : Batches()) {
        std::vector<float> grads(keys.size() * dim);
        for (size_t i = 0; i < grads.size(); ++i) {
          grads[i] = 0.01f * static_cast<float>((i * 7 + k++) % 23) - 0.1f;
        }
        for (size_t i = 0; i < keys.size(); ++i) per_key.Apply(keys[i], grads.data() + i * dim);
        batched.ApplyBatch(keys, grads.data());
      }
      ASSERT_GT(per_key.num_rows(), 4000u);
      EXPECT_EQ(batched.keys(), per_key.keys());
      EXPECT_TRUE(SameBits(batched.values(), per_key.values()));
      EXPECT_TRUE(SameBits(batched.state(), per_key.state()));
      EXPECT_EQ(batched.row_steps(), per_key.row_steps());
      EXPECT_EQ(batched.RowSteps(kEveryBatch), 1 + 4 * 2);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EveryOptimizer, SparseShardBatchTest,
                         ::testing::Values("sgd", "sgd_momentum", "adagrad", "adam", "adamw",
                                           "ftrl"));

TEST(SparseShardTest, GatherCreatesRowsFromTheInitializerAndCopiesThem) {
  auto opt = Make("adam");
  const uint32_t dim = 5;
  SparseShard shard(Spec(dim, InitKind::kUniform), opt.get());
  std::vector<uint64_t> keys;
  for (uint64_t k = 0; k < 3000; ++k) keys.push_back(k * 977 % 10007);
  keys.push_back(keys[10]);  // a repeat reads the same row
  std::vector<float> out(keys.size() * dim, -99.0f);
  shard.Gather(keys, out.data());
  ASSERT_EQ(shard.num_rows(), 3000u);
  for (size_t i = 0; i < keys.size(); ++i) {
    for (uint32_t j = 0; j < dim; ++j) {
      ASSERT_EQ(out[i * dim + j],
                InitValue(Spec(dim, InitKind::kUniform).init, 3, keys[i] * dim + j))
          << "key " << keys[i] << " j " << j;
    }
    EXPECT_EQ(shard.RowSteps(keys[i]), 0);
  }
  // Adam's state of a fresh row is zeros.
  EXPECT_EQ(shard.state(), std::vector<float>(3000 * dim * 2, 0.0f));

  // After updates, Gather copies the current rows.
  std::vector<float> grads(keys.size() * dim, 0.25f);
  shard.ApplyBatch(keys, grads.data());
  shard.Gather(keys, out.data());
  for (size_t i = 0; i < keys.size(); ++i) {
    const float* row = shard.Find(keys[i]);
    ASSERT_NE(row, nullptr);
    EXPECT_EQ(std::memcmp(out.data() + i * dim, row, dim * sizeof(float)), 0) << "key " << keys[i];
    EXPECT_NE(out[i * dim], InitValue(Spec(dim, InitKind::kUniform).init, 3, keys[i] * dim));
  }
  EXPECT_EQ(shard.RowSteps(keys[10]), 2);
  EXPECT_EQ(shard.RowSteps(keys[11]), 1);
}

TEST(SparseShardTest, ApplyBatchOfNothingChangesNothing) {
  auto opt = Make("sgd");
  SparseShard shard(Spec(4, InitKind::kZeros), opt.get());
  shard.ApplyBatch({}, nullptr);
  std::vector<float> none;
  shard.Gather({}, none.data());
  EXPECT_EQ(shard.num_rows(), 0u);
}

}  // namespace
}  // namespace distopt
