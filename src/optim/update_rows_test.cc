// Optimizer::UpdateRows against its definition: the loop of Update calls it
// documents, written out here, must give the same bits in the parameters,
// the state and the step counts, for every rule and variant, with schedules
// that change the learning rate per step, odd dims and repeated rows.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace distopt {
namespace {

struct Case {
  std::string name;
  OptimizerOptions options;
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.name; }

OptimizerOptions Kind(const std::string& kind) {
  OptimizerOptions o;
  o.kind = kind;
  o.lr = 0.05f;
  return o;
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  cases.push_back({"sgd", Kind("sgd")});
  OptimizerOptions o = Kind("sgd");
  o.weight_decay = 0.01f;
  cases.push_back({"sgd_wd", o});
  o.momentum = 0.9f;
  cases.push_back({"sgd_momentum", o});
  o.nesterov = true;
  cases.push_back({"sgd_nesterov", o});
  o = Kind("adagrad");
  o.initial_accumulator = 0.1f;
  o.weight_decay = 0.01f;
  cases.push_back({"adagrad", o});
  cases.push_back({"adam", Kind("adam")});
  o = Kind("adam");
  o.weight_decay = 0.02f;
  cases.push_back({"adam_wd", o});
  o = Kind("adamw");
  o.weight_decay = 0.02f;
  cases.push_back({"adamw", o});
  o = Kind("ftrl");
  o.l1 = 0.01f;
  o.l2 = 0.1f;
  cases.push_back({"ftrl", o});
  // Schedules: the lr differs per step count, so rows at different counts
  // in one batch get different scalars.
  o = Kind("adam");
  o.schedule.kind = "cosine";
  o.schedule.warmup_steps = 3;
  o.schedule.total_steps = 40;
  cases.push_back({"adam_cosine_warmup", o});
  o = Kind("sgd");
  o.momentum = 0.5f;
  o.schedule.kind = "step";
  o.schedule.step_size = 2;
  o.schedule.gamma = 0.5f;
  cases.push_back({"sgd_step", o});
  o = Kind("adagrad");
  o.schedule.kind = "inverse_sqrt";
  o.schedule.warmup_steps = 4;
  cases.push_back({"adagrad_inverse_sqrt", o});
  // Reaches lr 0 at step 10: FTRL then skips the row but its count moves.
  o = Kind("ftrl");
  o.l1 = 0.01f;
  o.schedule.kind = "cosine";
  o.schedule.total_steps = 10;
  cases.push_back({"ftrl_cosine_to_zero", o});
  return cases;
}

// Deterministic values in [lo, hi).
std::vector<float> Values(size_t n, uint32_t seed, float lo, float hi) {
  std::vector<float> v(n);
  uint32_t s = seed * 2654435761u + 1;
  for (float& x : v) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    x = lo + (hi - lo) * static_cast<float>(s >> 8) / static_cast<float>(1u << 24);
  }
  return v;
}

// A sparse table's storage as SparseShard keeps it.
struct Rows {
  std::vector<float> params;
  std::vector<float> state;
  std::vector<int64_t> steps;
};

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class UpdateRowsTest : public ::testing::TestWithParam<Case> {};

TEST_P(UpdateRowsTest, EqualsTheLoopOfUpdatesBitForBit) {
  auto created = Optimizer::Create(GetParam().options);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  const Optimizer& opt = **created;
  const size_t slots = static_cast<size_t>(opt.state_slots());
  constexpr size_t kTableRows = 40;
  for (size_t dim : {1, 5, 16, 37}) {
    SCOPED_TRACE("dim " + std::to_string(dim));
    Rows start;
    start.params = Values(kTableRows * dim, 1, -1.0f, 1.0f);
    // Non-negative: a valid accumulator / second moment for every rule.
    start.state = Values(kTableRows * dim * slots, 2, 0.0f, 1.0f);
    // Counts from 0 up, some 16 apart (they share a slot of ForEachRow's
    // scalar cache), one large.
    for (size_t r = 0; r < kTableRows; ++r)
      start.steps.push_back(static_cast<int64_t>(r % 7 * 16 + r % 3));
    start.steps[5] = 1000000;
    // Every row at least once, some many times, in no order; repeats in a
    // batch must see the previous update and the next step count.
    std::vector<uint32_t> rows;
    for (uint32_t i = 0; i < 300; ++i) rows.push_back((i * 17 + i / 40) % kTableRows);
    const std::vector<float> grads = Values(rows.size() * dim, 3, -0.5f, 0.5f);

    Rows loop = start;
    for (size_t i = 0; i < rows.size(); ++i) {
      const size_t r = rows[i];
      float* st = slots > 0 ? loop.state.data() + r * dim * slots : nullptr;
      opt.Update(loop.params.data() + r * dim, grads.data() + i * dim, st, dim, ++loop.steps[r]);
    }
    Rows batch = start;
    opt.UpdateRows(batch.params.data(), slots > 0 ? batch.state.data() : nullptr,
                   batch.steps.data(), rows.data(), rows.size(), grads.data(), dim);
    Rows base = start;  // the generic definition, as a rule without an override runs it
    opt.Optimizer::UpdateRows(base.params.data(), slots > 0 ? base.state.data() : nullptr,
                              base.steps.data(), rows.data(), rows.size(), grads.data(), dim);

    ASSERT_FALSE(SameBits(loop.params, start.params)) << "the updates changed nothing";
    EXPECT_TRUE(SameBits(batch.params, loop.params));
    EXPECT_TRUE(SameBits(batch.state, loop.state));
    EXPECT_EQ(batch.steps, loop.steps);
    EXPECT_TRUE(SameBits(base.params, loop.params));
    EXPECT_TRUE(SameBits(base.state, loop.state));
    EXPECT_EQ(base.steps, loop.steps);
  }
}

TEST_P(UpdateRowsTest, NoRowsChangesNothing) {
  auto created = Optimizer::Create(GetParam().options);
  ASSERT_TRUE(created.ok());
  std::vector<float> params = {1.0f, 2.0f};
  std::vector<float> state(2 * (*created)->state_slots(), 0.5f);
  std::vector<int64_t> steps = {3};
  (*created)->UpdateRows(params.data(), state.empty() ? nullptr : state.data(), steps.data(),
                         nullptr, 0, nullptr, 2);
  EXPECT_EQ(params, (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(steps, std::vector<int64_t>{3});
}

INSTANTIATE_TEST_SUITE_P(EveryRule, UpdateRowsTest, ::testing::ValuesIn(Cases()),
                         [](const auto& p) { return p.param.name; });

}  // namespace
}  // namespace distopt
