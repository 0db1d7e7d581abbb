// Tests for the update rules and Optimizer::Create (the schedules are in
// schedule_test.cc). Expected values are either worked out by hand (the
// literals, with the arithmetic in comments) or computed by a plain
// double-precision reference written here from the papers' formulas; no
// expectation comes from the code under test.
#include "optim/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "distopt/status.h"

namespace distopt {
namespace {

using Vec = std::vector<double>;

std::unique_ptr<Optimizer> Make(const OptimizerOptions& o) {
  Result<std::unique_ptr<Optimizer>> r = Optimizer::Create(o);
  if (!r.ok()) {
    ADD_FAILURE() << "Create failed: " << r.status().ToString();
    return nullptr;
  }
  return std::move(r).value();
}

// Parameters plus their optimizer state, driven one step at a time.
struct Table {
  Table(const Optimizer& opt, const std::vector<float>& init) : opt(opt), w(init) {
    state.resize(static_cast<size_t>(opt.state_slots()) * w.size(), -7.0f);  // poison
    opt.InitState(state.data(), w.size());
  }
  // Applies the gradient as update number `step` (1 for the first).
  void Step(const std::vector<float>& g, int64_t step) {
    ASSERT_EQ(g.size(), w.size());
    opt.Update(w.data(), g.data(), state.data(), w.size(), step);
  }
  // Slot k of parameter i, per the slot-major layout.
  float slot(int k, size_t i) const { return state[k * w.size() + i]; }

  const Optimizer& opt;
  std::vector<float> w;
  std::vector<float> state;
};

// Float results against double expectations: relative 2e-6 (about 16 float
// ulps), absolute below magnitude 1.
void ExpectClose(const std::vector<float>& actual, const Vec& expected, double tol = 2e-6) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], tol * std::max(1.0, std::fabs(expected[i])))
        << "at index " << i;
  }
}

// ---------------------------------------------------------------------------
// Double-precision references, straight from the formulas in the brief.

void RefAdam(Vec& w, Vec& m, Vec& v, const Vec& g, int t, double lr, double b1, double b2,
             double eps, double wd, bool decoupled) {
  for (size_t i = 0; i < w.size(); ++i) {
    double gi = g[i];
    if (decoupled) {
      w[i] -= lr * wd * w[i];
    } else {
      gi += wd * w[i];
    }
    m[i] = b1 * m[i] + (1 - b1) * gi;
    v[i] = b2 * v[i] + (1 - b2) * gi * gi;
    const double mhat = m[i] / (1 - std::pow(b1, t));
    const double vhat = v[i] / (1 - std::pow(b2, t));
    w[i] -= lr * mhat / (std::sqrt(vhat) + eps);
  }
}

void RefAdagrad(Vec& w, Vec& acc, const Vec& g, double lr, double eps, double wd) {
  for (size_t i = 0; i < w.size(); ++i) {
    const double gi = g[i] + wd * w[i];
    acc[i] += gi * gi;
    w[i] -= lr * gi / (std::sqrt(acc[i]) + eps);
  }
}

void RefSgd(Vec& w, Vec& buf, const Vec& g, double lr, double mu, bool nesterov, double wd) {
  for (size_t i = 0; i < w.size(); ++i) {
    const double gi = g[i] + wd * w[i];
    buf[i] = mu * buf[i] + gi;
    w[i] -= lr * (nesterov ? gi + mu * buf[i] : buf[i]);
  }
}

void RefFtrl(Vec& w, Vec& z, Vec& n, const Vec& g, double alpha, double beta, double l1,
             double l2) {
  for (size_t i = 0; i < w.size(); ++i) {
    const double sigma = (std::sqrt(n[i] + g[i] * g[i]) - std::sqrt(n[i])) / alpha;
    z[i] += g[i] - sigma * w[i];
    n[i] += g[i] * g[i];
    if (std::fabs(z[i]) <= l1) {
      w[i] = 0;
    } else {
      const double sign = z[i] < 0 ? -1.0 : 1.0;
      w[i] = -(z[i] - sign * l1) / ((beta + std::sqrt(n[i])) / alpha + l2);
    }
  }
}

Vec ToDouble(const std::vector<float>& v) { return Vec(v.begin(), v.end()); }

// Three parameters over three steps, used by several tests below.
const std::vector<float> kW0 = {1.0f, -2.0f, 0.5f};
const std::vector<std::vector<float>> kGrads = {{1.0f, 2.0f, -4.0f},  //
                                                {0.5f, -1.0f, 2.0f},
                                                {-1.0f, 0.0f, 1.0f}};

// ---------------------------------------------------------------------------
// SGD

TEST(SgdTest, PlainMatchesHandComputed) {
  OptimizerOptions o;
  o.lr = 0.1f;
  auto opt = Make(o);
  ASSERT_NE(opt, nullptr);
  EXPECT_EQ(opt->state_slots(), 0);
  Table t(*opt, kW0);
  t.Step(kGrads[0], 1);  // w - 0.1 * g = {1 - .1, -2 - .2, .5 + .4}
  ExpectClose(t.w, {0.9, -2.2, 0.9});
  t.Step(kGrads[1], 2);  // {.9 - .05, -2.2 + .1, .9 - .2}
  ExpectClose(t.w, {0.85, -2.1, 0.7});
  t.Step(kGrads[2], 3);  // {.85 + .1, -2.1, .7 - .1}
  ExpectClose(t.w, {0.95, -2.1, 0.6});
}

TEST(SgdTest, MomentumMatchesHandComputed) {
  OptimizerOptions o;
  o.lr = 0.1f;
  o.momentum = 0.9f;
  auto opt = Make(o);
  ASSERT_NE(opt, nullptr);
  EXPECT_EQ(opt->state_slots(), 1);
  Table t(*opt, kW0);
  for (int s = 0; s < 3; ++s) t.Step(kGrads[s], s + 1);
  // Parameter 0 (g = 1, .5, -1): buf = 1, .9 + .5 = 1.4, 1.26 - 1 = .26;
  //   w = 1 - .1 = .9, .9 - .14 = .76, .76 - .026 = .734.
  // Parameter 1 (g = 2, -1, 0): buf = 2, .8, .72; w = -2.2, -2.28, -2.352.
  // Parameter 2 (g = -4, 2, 1): buf = -4, -1.6, -.44; w = .9, 1.06, 1.104.
  ExpectClose(t.w, {0.734, -2.352, 1.104});
  EXPECT_NEAR(t.slot(0, 0), 0.26, 1e-6);
  EXPECT_NEAR(t.slot(0, 1), 0.72, 1e-6);
  EXPECT_NEAR(t.slot(0, 2), -0.44, 1e-6);
}

TEST(SgdTest, NesterovMatchesHandComputed) {
  OptimizerOptions o;
  o.lr = 0.1f;
  o.momentum = 0.9f;
  o.nesterov = true;
  auto opt = Make(o);
  ASSERT_NE(opt, nullptr);
  Table t(*opt, kW0);
  for (int s = 0; s < 3; ++s) t.Step(kGrads[s], s + 1);
  // Same buffers as plain momentum; the step is lr * (g + .9 * buf):
  // Parameter 0: .1*(1 + .9) = .19 -> .81; .1*(.5 + 1.26) = .176 -> .634;
  //   .1*(-1 + .234) = -.0766 -> .7106.
  // Parameter 1: .38 -> -2.38; .1*(-1 + .72) = -.028 -> -2.352; .0648 -> -2.4168.
  // Parameter 2: -.76 -> 1.26; .1*(2 - 1.44) = .056 -> 1.204; .0604 -> 1.1436.
  ExpectClose(t.w, {0.7106, -2.4168, 1.1436});
  EXPECT_NEAR(t.slot(0, 0), 0.26, 1e-6);  // the buffer itself is as without Nesterov
}

TEST(SgdTest, CoupledWeightDecayShrinksThroughTheGradient) {
  // g = 0, so only decay moves w: g' = .1 * w.
  OptimizerOptions o;
  o.lr = 0.1f;
  o.weight_decay = 0.1f;
  auto plain = Make(o);
  o.momentum = 0.9f;
  auto momentum = Make(o);
  ASSERT_NE(plain, nullptr);
  ASSERT_NE(momentum, nullptr);
  Table a(*plain, {1.0f}), b(*momentum, {1.0f});
  for (int s = 1; s <= 3; ++s) {
    a.Step({0.0f}, s);
    b.Step({0.0f}, s);
  }
  // Plain: w *= (1 - .01) each step: .99, .9801, .970299.
  ExpectClose(a.w, {0.970299});
  // Momentum: the decay term accumulates in the buffer:
  //   g' = .1,     buf = .1,               w = .99
  //   g' = .099,   buf = .09 + .099 = .189,  w = .99 - .0189 = .9711
  //   g' = .09711, buf = .1701 + .09711 = .26721, w = .9711 - .026721 = .944379
  ExpectClose(b.w, {0.944379});
}

// ---------------------------------------------------------------------------
// Adagrad

TEST(AdagradTest, MatchesHandComputed) {
  OptimizerOptions o;
  o.kind = "adagrad";
  o.lr = 0.1f;
  auto opt = Make(o);
  ASSERT_NE(opt, nullptr);
  EXPECT_EQ(opt->state_slots(), 1);
  Table t(*opt, {1.0f, -1.0f, 0.0f});
  t.Step({3.0f, -4.0f, 0.0f}, 1);  // acc = 9, 16, 0; w -= .1 * g / sqrt(acc)
  ExpectClose(t.w, {0.9, -0.9, 0.0});
  EXPECT_EQ(t.w[2], 0.0f);        // acc = 0 and g = 0: eps keeps 0/0 from writing NaN
  t.Step({4.0f, 3.0f, 0.0f}, 2);  // acc = 25, 25, 0; w -= .1 * {4/5, 3/5, 0}
  ExpectClose(t.w, {0.82, -0.96, 0.0});
  t.Step({0.0f, 0.0f, 5.0f}, 3);  // acc = 25, 25, 25; only w[2] moves: -.1 * 5/5
  ExpectClose(t.w, {0.82, -0.96, -0.1});
  ExpectClose(t.state, {25.0, 25.0, 25.0});
}

TEST(AdagradTest, InitialAccumulatorSeedsState) {
  OptimizerOptions o;
  o.kind = "adagrad";
  o.lr = 0.1f;
  o.initial_accumulator = 16.0f;
  auto opt = Make(o);
  ASSERT_NE(opt, nullptr);
  Table t(*opt, {1.0f, 1.0f});
  ExpectClose(t.state, {16.0, 16.0});
  t.Step({3.0f, 0.0f}, 1);  // acc = 16 + 9 = 25; w = 1 - .1 * 3 / 5 = .94
  ExpectClose(t.w, {0.94, 1.0});
  ExpectClose(t.state, {25.0, 16.0});
}

TEST(AdagradTest, MatchesReferenceWithLargeEpsAndWeightDecay) {
  // eps = .5 is large enough that putting it inside the sqrt, or forgetting
  // that the decay term enters the accumulator, changes the third digit.
  OptimizerOptions o;
  o.kind = "adagrad";
  o.lr = 0.2f;
  o.eps = 0.5f;
  o.weight_decay = 0.05f;
  o.initial_accumulator = 0.25f;
  auto opt = Make(o);
  ASSERT_NE(opt, nullptr);
  Table t(*opt, kW0);
  Vec w = ToDouble(kW0), acc(3, 0.25);
  for (int s = 0; s < 3; ++s) {
    t.Step(kGrads[s], s + 1);
    RefAdagrad(w, acc, ToDouble(kGrads[s]), 0.2, 0.5, 0.05);
    ExpectClose(t.w, w);
  }
  ExpectClose(t.state, acc);
}

// ---------------------------------------------------------------------------
// Adam / AdamW

TEST(AdamTest, FirstStepMovesEachWeightByLr) {
  // At step 1 the bias corrections undo (1 - b1) and (1 - b2) exactly:
  // mhat = g, vhat = g^2, so w -= lr * g / (|g| + eps) = lr * sign(g). Without
  // the correction the step would be lr * .1 / sqrt(.001) = 3.16 * lr.
  OptimizerOptions o;
  o.kind = "adam";
  o.lr = 0.01f;
  auto opt = Make(o);
  ASSERT_NE(opt, nullptr);
  EXPECT_EQ(opt->state_slots(), 2);
  Table t(*opt, {1.0f, -1.0f, 0.5f});
  t.Step({0.5f, -2.0f, 1e-3f}, 1);
  ExpectClose(t.w, {0.99, -0.99, 0.49});
  // Slot-major state: m = .1 * g in slot 0, v = .001 * g^2 in slot 1. The
  // tolerance is relative 2e-5 because 1 - 0.999f is 0.00099998713 in float.
  const Vec m = {0.05, -0.2, 1e-4}, v = {2.5e-4, 4e-3, 1e-9};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(t.slot(0, i), m[i], 2e-5 * std::fabs(m[i])) << i;
    EXPECT_NEAR(t.slot(1, i), v[i], 2e-5 * v[i]) << i;
  }
}

TEST(AdamTest, BiasCorrectionUsesTheStepArgument) {
  // Fresh state updated as step 10 (a sparse row created late): m = .1,
  // v = .001, mhat = .1 / (1 - .9^10), vhat = .001 / (1 - .999^10).
  OptimizerOptions o;
  o.kind = "adam";
  o.lr = 0.1f;
  auto opt = Make(o);
  ASSERT_NE(opt, nullptr);
  Table t(*opt, {1.0f});
  t.Step({1.0f}, 10);
  const double mhat = 0.1 / (1 - std::pow(0.9, 10));                // .153533
  const double vhat = 0.001 / (1 - std::pow(0.999, 10));            // .100451
  ExpectClose(t.w, {1.0 - 0.1 * mhat / (std::sqrt(vhat) + 1e-8)});  // 1 - .0484426
}

TEST(AdamTest, ZeroBetasNormalizeEachGradient) {
  // beta1 = beta2 = 0: m = g, v = g^2, corrections are 1, so every step is
  // w -= lr * g / (|g| + eps) = lr * sign(g): 1 -> .9 -> 1 -> .9.
  OptimizerOptions o;
  o.kind = "adam";
  o.lr = 0.1f;
  o.beta1 = 0.0f;
  o.beta2 = 0.0f;
  auto opt = Make(o);
  ASSERT_NE(opt, nullptr);
  Table t(*opt, {1.0f});
  t.Step({2.0f}, 1);
  ExpectClose(t.w, {0.9});
  t.Step({-1.0f}, 2);
  ExpectClose(t.w, {1.0});
  t.Step({0.5f}, 3);
  ExpectClose(t.w, {0.9});
}

TEST(AdamTest, MatchesReferenceOverThreeSteps) {
  // Unusual betas and a large eps so that the bias corrections and where eps
  // sits (after sqrt(vhat), as in PyTorch) are visible at float precision.
  for (bool decoupled : {false, true}) {
    for (float wd : {0.0f, 0.1f}) {
      SCOPED_TRACE(std::string(decoupled ? "adamw" : "adam") + " wd=" + std::to_string(wd));
      OptimizerOptions o;
      o.kind = decoupled ? "adamw" : "adam";
      o.lr = 0.1f;
      o.beta1 = 0.8f;
      o.beta2 = 0.9f;
      o.eps = 0.1f;
      o.weight_decay = wd;
      auto opt = Make(o);
      ASSERT_NE(opt, nullptr);
      Table t(*opt, kW0);
      Vec w = ToDouble(kW0), m(3, 0.0), v(3, 0.0);
      for (int s = 0; s < 3; ++s) {
        t.Step(kGrads[s], s + 1);
        RefAdam(w, m, v, ToDouble(kGrads[s]), s + 1, 0.1, 0.8, 0.9, 0.1, wd, decoupled);
        ExpectClose(t.w, w);
      }
      ExpectClose({t.state.begin(), t.state.begin() + 3}, m);
      ExpectClose({t.state.begin() + 3, t.state.end()}, v);
    }
  }
}

TEST(AdamTest, CoupledAndDecoupledWeightDecayDiffer) {
  // Zero gradient, w = 1, lr = .1, wd = .1.
  OptimizerOptions o;
  o.kind = "adam";
  o.lr = 0.1f;
  o.weight_decay = 0.1f;
  auto adam = Make(o);
  o.kind = "adamw";
  auto adamw = Make(o);
  ASSERT_NE(adam, nullptr);
  ASSERT_NE(adamw, nullptr);
  Table coupled(*adam, {1.0f}), decoupled(*adamw, {1.0f});
  coupled.Step({0.0f}, 1);
  decoupled.Step({0.0f}, 1);
  // Adam: the decay .1 * w is a gradient, normalized like any other, so the
  // first step moves by lr * sign = .1 whatever wd is.
  ExpectClose(coupled.w, {0.9});
  // AdamW: w -= lr * wd * w = .01; the moments stay 0 and add nothing.
  ExpectClose(decoupled.w, {0.99});
  EXPECT_EQ(decoupled.slot(0, 0), 0.0f);
  EXPECT_EQ(decoupled.slot(1, 0), 0.0f);
  decoupled.Step({0.0f}, 2);
  decoupled.Step({0.0f}, 3);
  ExpectClose(decoupled.w, {0.970299});  // .99^3
}

// ---------------------------------------------------------------------------
// FTRL-proximal

TEST(FtrlTest, L1ProducesExactZerosForSmallZ) {
  // alpha = .1, beta = 1, l1 = 1, l2 = 0, w starts at 0.
  OptimizerOptions o;
  o.kind = "ftrl";
  o.lr = 0.1f;
  o.l1 = 1.0f;
  auto opt = Make(o);
  ASSERT_NE(opt, nullptr);
  EXPECT_EQ(opt->state_slots(), 2);
  Table t(*opt, {0.0f, 0.0f, 0.0f});
  t.Step({0.5f, 3.0f, -3.0f}, 1);
  // w = 0, so z = g; n = g^2.  |z0| = .5 <= 1 -> exactly 0.
  // w1 = -(3 - 1) / ((1 + 3) / .1) = -.05; w2 = +.05.
  EXPECT_EQ(t.w[0], 0.0f);
  ExpectClose(t.w, {0.0, -0.05, 0.05});
  ExpectClose(t.state, {0.5, 3.0, -3.0, 0.25, 9.0, 9.0});
  t.Step({0.25f, -1.0f, 0.0f}, 2);
  // z0 = .75 (w0 = 0 so sigma does not matter): still exactly 0.
  // n1 = 10, sigma = (sqrt(10) - 3) / .1 = 1.6227766,
  //   z1 = 3 - 1 - 1.6227766 * -.05 = 2.0811388,
  //   w1 = -(2.0811388 - 1) / ((1 + sqrt(10)) / .1) = -.0259747.
  // g2 = 0: sigma = 0, z2 and n2 unchanged, w2 recomputed as .05.
  EXPECT_EQ(t.w[0], 0.0f);
  ExpectClose(t.w, {0.0, -0.0259746927, 0.05});
  EXPECT_NEAR(t.slot(0, 1), 2.0811388, 1e-6);
}

TEST(FtrlTest, WithoutL1SmallZIsNotZero) {
  // The same first step as above with l1 = 0: w0 = -.5 / ((1 + .5) / .1).
  OptimizerOptions o;
  o.kind = "ftrl";
  o.lr = 0.1f;
  auto opt = Make(o);
  ASSERT_NE(opt, nullptr);
  Table t(*opt, {0.0f});
  t.Step({0.5f}, 1);
  ExpectClose(t.w, {-0.5 / 15});
}

TEST(FtrlTest, MatchesReferenceOverThreeSteps) {
  OptimizerOptions o;
  o.kind = "ftrl";
  o.lr = 0.5f;
  o.ftrl_beta = 0.5f;
  o.l1 = 0.3f;
  o.l2 = 0.5f;
  auto opt = Make(o);
  ASSERT_NE(opt, nullptr);
  Table t(*opt, kW0);  // a non-zero initializer: sigma * w matters from step 1
  Vec w = ToDouble(kW0), z(3, 0.0), n(3, 0.0);
  for (int s = 0; s < 3; ++s) {
    t.Step(kGrads[s], s + 1);
    RefFtrl(w, z, n, ToDouble(kGrads[s]), 0.5, 0.5, 0.3, 0.5);
    ExpectClose(t.w, w);
  }
  ExpectClose({t.state.begin(), t.state.begin() + 3}, z);
  ExpectClose({t.state.begin() + 3, t.state.end()}, n);
}

TEST(FtrlTest, ZeroScheduledLrLeavesEverythingUnchanged) {
  // Cosine down to min_lr = 0 reaches lr = 0 at total_steps; 1 / alpha must
  // not turn the state into inf/NaN.
  OptimizerOptions o;
  o.kind = "ftrl";
  o.lr = 0.1f;
  o.schedule.kind = "cosine";
  o.schedule.total_steps = 2;
  auto opt = Make(o);
  ASSERT_NE(opt, nullptr);
  ASSERT_EQ(opt->LearningRate(2), 0.0f);
  Table t(*opt, {0.0f});
  t.Step({3.0f}, 1);
  const std::vector<float> w = t.w, state = t.state;
  t.Step({1.0f}, 2);
  t.Step({1.0f}, 3);
  EXPECT_EQ(t.w, w);
  EXPECT_EQ(t.state, state);
}

// ---------------------------------------------------------------------------
// Every rule on a length that is not a multiple of any vector width, so both
// the vector body and the scalar tail of each loop are checked.

TEST(UpdateTest, OddLengthMatchesReferenceForEveryRule) {
  constexpr size_t kN = 37;
  uint32_t seed = 12345;
  auto next = [&seed] {  // LCG: the same numbers on every platform
    seed = seed * 1664525u + 1013904223u;
    return static_cast<float>(seed >> 8) / static_cast<float>(1u << 24) * 2.0f - 1.0f;
  };
  std::vector<float> w0(kN);
  for (float& x : w0) x = next();
  std::vector<std::vector<float>> grads(5, std::vector<float>(kN));
  for (auto& g : grads) {
    for (float& x : g) x = next();
  }

  struct Case {
    std::string name;
    std::function<void(OptimizerOptions&)> set;
    std::function<void(Vec& w, Vec& s0, Vec& s1, const Vec& g, int t)> ref;
  };
  const std::vector<Case> cases = {
      {"sgd", [](OptimizerOptions& o) { o.weight_decay = 0.1f; },
       [](Vec& w, Vec& s0, Vec&, const Vec& g, int) { RefSgd(w, s0, g, 0.05, 0, false, 0.1); }},
      {"momentum",
       [](OptimizerOptions& o) {
         o.momentum = 0.9f;
         o.weight_decay = 0.1f;
       },
       [](Vec& w, Vec& s0, Vec&, const Vec& g, int) { RefSgd(w, s0, g, 0.05, 0.9, false, 0.1); }},
      {"nesterov",
       [](OptimizerOptions& o) {
         o.momentum = 0.9f;
         o.nesterov = true;
       },
       [](Vec& w, Vec& s0, Vec&, const Vec& g, int) { RefSgd(w, s0, g, 0.05, 0.9, true, 0); }},
      {"adagrad",
       [](OptimizerOptions& o) {
         o.kind = "adagrad";
         o.eps = 1e-3f;
       },
       [](Vec& w, Vec& s0, Vec&, const Vec& g, int) { RefAdagrad(w, s0, g, 0.05, 1e-3, 0); }},
      {"adam",
       [](OptimizerOptions& o) {
         o.kind = "adam";
         o.eps = 1e-3f;
         o.weight_decay = 0.01f;
       },
       [](Vec& w, Vec& s0, Vec& s1, const Vec& g, int t) {
         RefAdam(w, s0, s1, g, t, 0.05, 0.9, 0.999, 1e-3, 0.01, false);
       }},
      {"adamw",
       [](OptimizerOptions& o) {
         o.kind = "adamw";
         o.eps = 1e-3f;
         o.weight_decay = 0.01f;
       },
       [](Vec& w, Vec& s0, Vec& s1, const Vec& g, int t) {
         RefAdam(w, s0, s1, g, t, 0.05, 0.9, 0.999, 1e-3, 0.01, true);
       }},
      {"ftrl",
       [](OptimizerOptions& o) {
         o.kind = "ftrl";
         o.l1 = 0.2f;
         o.l2 = 0.1f;
       },
       [](Vec& w, Vec& s0, Vec& s1, const Vec& g, int) {
         RefFtrl(w, s0, s1, g, 0.05, 1, 0.2, 0.1);
       }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    OptimizerOptions o;
    o.lr = 0.05f;
    c.set(o);
    auto opt = Make(o);
    ASSERT_NE(opt, nullptr);
    Table t(*opt, w0);
    Vec w = ToDouble(w0), s0(kN, 0.0), s1(kN, 0.0);
    for (int s = 0; s < 5; ++s) {
      t.Step(grads[s], s + 1);
      c.ref(w, s0, s1, ToDouble(grads[s]), s + 1);
    }
    ExpectClose(t.w, w, 1e-5);
    int zeros = 0;
    for (float x : t.w) zeros += x == 0.0f;
    if (c.name == "ftrl") {
      EXPECT_GT(zeros, 0) << "l1 = .2 should zero some weights";
    }
  }
}

TEST(UpdateTest, UsesTheScheduledLr) {
  // SGD, lr = .1 with 2 warmup steps, g = 1: steps move w by .05, .1, .1.
  OptimizerOptions o;
  o.lr = 0.1f;
  o.schedule.warmup_steps = 2;
  auto sgd = Make(o);
  ASSERT_NE(sgd, nullptr);
  Table t(*sgd, {1.0f});
  t.Step({1.0f}, 1);
  ExpectClose(t.w, {0.95});
  t.Step({1.0f}, 2);
  ExpectClose(t.w, {0.85});
  t.Step({1.0f}, 3);
  ExpectClose(t.w, {0.75});

  // Adam's first step moves by the scheduled lr (.05), not the base lr.
  o.kind = "adam";
  auto adam = Make(o);
  ASSERT_NE(adam, nullptr);
  Table a(*adam, {1.0f});
  a.Step({1.0f}, 1);
  ExpectClose(a.w, {0.95});
}

// ---------------------------------------------------------------------------
// Create

TEST(OptimizerCreateTest, AcceptsEveryKindWithDefaults) {
  for (const char* kind : {"sgd", "adagrad", "adam", "adamw", "ftrl"}) {
    OptimizerOptions o;
    o.kind = kind;
    Result<std::unique_ptr<Optimizer>> r = Optimizer::Create(o);
    EXPECT_TRUE(r.ok()) << kind << ": " << r.status().ToString();
  }
}

TEST(OptimizerCreateTest, InitStateZeroesEverySlot) {
  for (const char* kind : {"sgd", "adam", "ftrl"}) {
    SCOPED_TRACE(kind);
    OptimizerOptions o;
    o.kind = kind;
    if (o.kind == "sgd") o.momentum = 0.5f;
    auto opt = Make(o);
    ASSERT_NE(opt, nullptr);
    Table t(*opt, {1.0f, 2.0f, 3.0f});  // Table poisons state before InitState
    EXPECT_EQ(t.state, std::vector<float>(static_cast<size_t>(opt->state_slots()) * 3, 0.0f));
  }
}

struct BadOption {
  std::string name;
  std::function<void(OptimizerOptions&)> set;
  std::string message;
};

// Test names and failure output show the case name, not the struct's bytes.
void PrintTo(const BadOption& b, std::ostream* os) { *os << b.name; }

class OptimizerRejectsTest : public ::testing::TestWithParam<BadOption> {};

TEST_P(OptimizerRejectsTest, NamesTheField) {
  OptimizerOptions o;
  GetParam().set(o);
  Result<std::unique_ptr<Optimizer>> r = Optimizer::Create(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), GetParam().message);
}

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

INSTANTIATE_TEST_SUITE_P(
    Create, OptimizerRejectsTest,
    ::testing::Values(
        BadOption{"UnknownKind", [](auto& o) { o.kind = "foo"; },
                  "optimizer.kind 'foo' is unknown (expected sgd, adagrad, adam, adamw, ftrl)"},
        BadOption{"NegativeLr", [](auto& o) { o.lr = -1; }, "optimizer.lr must be > 0, got -1"},
        BadOption{"ZeroLr", [](auto& o) { o.lr = 0; }, "optimizer.lr must be > 0, got 0"},
        BadOption{"NanLr", [](auto& o) { o.lr = kNaN; }, "optimizer.lr must be > 0, got nan"},
        BadOption{"InfLr", [](auto& o) { o.lr = kInf; }, "optimizer.lr must be > 0, got inf"},
        BadOption{"NegativeWeightDecay", [](auto& o) { o.weight_decay = -0.5f; },
                  "optimizer.weight_decay must be >= 0, got -0.5"},
        BadOption{"NegativeMomentum", [](auto& o) { o.momentum = -0.5f; },
                  "optimizer.momentum must be >= 0, got -0.5"},
        BadOption{"NesterovWithoutMomentum", [](auto& o) { o.nesterov = true; },
                  "optimizer.nesterov requires optimizer.momentum > 0, got 0"},
        BadOption{"MomentumOnAdam",
                  [](auto& o) {
                    o.kind = "adam";
                    o.momentum = 0.9f;
                  },
                  "optimizer.momentum is not used by 'adam' (only by sgd), got 0.9"},
        BadOption{"Beta1IsOne",
                  [](auto& o) {
                    o.kind = "adam";
                    o.beta1 = 1;
                  },
                  "optimizer.beta1 must be in [0, 1), got 1"},
        BadOption{"NegativeBeta2",
                  [](auto& o) {
                    o.kind = "adamw";
                    o.beta2 = -0.1f;
                  },
                  "optimizer.beta2 must be in [0, 1), got -0.1"},
        BadOption{"ZeroEps",
                  [](auto& o) {
                    o.kind = "adam";
                    o.eps = 0;
                  },
                  "optimizer.eps must be > 0, got 0"},
        BadOption{"NegativeInitialAccumulator",
                  [](auto& o) {
                    o.kind = "adagrad";
                    o.initial_accumulator = -1;
                  },
                  "optimizer.initial_accumulator must be >= 0, got -1"},
        BadOption{"InitialAccumulatorOnSgd", [](auto& o) { o.initial_accumulator = 0.1f; },
                  "optimizer.initial_accumulator is not used by 'sgd' (only by adagrad), got 0.1"},
        BadOption{"NegativeFtrlBeta",
                  [](auto& o) {
                    o.kind = "ftrl";
                    o.ftrl_beta = -1;
                  },
                  "optimizer.ftrl_beta must be >= 0, got -1"},
        BadOption{"NegativeL1",
                  [](auto& o) {
                    o.kind = "ftrl";
                    o.l1 = -1;
                  },
                  "optimizer.l1 must be >= 0, got -1"},
        BadOption{"NegativeL2",
                  [](auto& o) {
                    o.kind = "ftrl";
                    o.l2 = -2;
                  },
                  "optimizer.l2 must be >= 0, got -2"},
        BadOption{"WeightDecayOnFtrl",
                  [](auto& o) {
                    o.kind = "ftrl";
                    o.weight_decay = 0.1f;
                  },
                  "optimizer.weight_decay is not used by 'ftrl' (use optimizer.l2), got 0.1"},
        BadOption{"L1OnAdam",
                  [](auto& o) {
                    o.kind = "adam";
                    o.l1 = 0.1f;
                  },
                  "optimizer.l1 is not used by 'adam' (only by ftrl), got 0.1"},
        BadOption{"UnknownSchedule", [](auto& o) { o.schedule.kind = "linear"; },
                  "optimizer.schedule.kind 'linear' is unknown (expected constant, step, "
                  "cosine, inverse_sqrt)"},
        BadOption{"NegativeWarmup", [](auto& o) { o.schedule.warmup_steps = -1; },
                  "optimizer.schedule.warmup_steps must be >= 0, got -1"},
        BadOption{"StepWithoutStepSize", [](auto& o) { o.schedule.kind = "step"; },
                  "optimizer.schedule.step_size must be > 0 for kind 'step', got 0"},
        BadOption{"ZeroGamma",
                  [](auto& o) {
                    o.schedule.kind = "step";
                    o.schedule.step_size = 10;
                    o.schedule.gamma = 0;
                  },
                  "optimizer.schedule.gamma must be in (0, 1] for kind 'step', got 0"},
        BadOption{"GrowingGamma",
                  [](auto& o) {
                    o.schedule.kind = "step";
                    o.schedule.step_size = 10;
                    o.schedule.gamma = 1.5f;
                  },
                  "optimizer.schedule.gamma must be in (0, 1] for kind 'step', got 1.5"},
        BadOption{"CosineEndsInsideWarmup",
                  [](auto& o) {
                    o.schedule.kind = "cosine";
                    o.schedule.warmup_steps = 10;
                    o.schedule.total_steps = 10;
                  },
                  "optimizer.schedule.total_steps must be > optimizer.schedule.warmup_steps "
                  "(10) for kind 'cosine', got 10"},
        BadOption{"MinLrAboveLr",
                  [](auto& o) {
                    o.schedule.kind = "cosine";
                    o.schedule.total_steps = 100;
                    o.schedule.min_lr = 0.5f;
                  },
                  "optimizer.schedule.min_lr must be in [0, optimizer.lr=0.01] for kind "
                  "'cosine', got 0.5"},
        BadOption{"StepSizeOnConstant", [](auto& o) { o.schedule.step_size = 5; },
                  "optimizer.schedule.step_size is only used by kind 'step' (kind is "
                  "'constant'), got 5"},
        BadOption{"TotalStepsOnStep",
                  [](auto& o) {
                    o.schedule.kind = "step";
                    o.schedule.step_size = 10;
                    o.schedule.total_steps = 100;
                  },
                  "optimizer.schedule.total_steps is only used by kind 'cosine' (kind is "
                  "'step'), got 100"}),
    [](const ::testing::TestParamInfo<BadOption>& p) { return p.param.name; });

}  // namespace
}  // namespace distopt
