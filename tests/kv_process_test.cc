// The BSP scenario again, with every node a separate process talking ZeroMQ
// tcp over loopback: the result must equal the single-process reference,
// and every process must exit 0 when the job is done. And replication: the
// primary server of a partition SIGKILLed mid-run loses no acknowledged push.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <thread>

#include "base/file_util.h"
#include "base/subprocess.h"
#include "base/test_time_scale.h"
#include "scenario.h"

namespace distopt {
namespace {

std::string NodeBinary() {
  std::string self = SelfExecutable();
  return self.substr(0, self.rfind('/')) + "/kv_scenario_node";
}

// Starts the scenario's coordinator with `args` and waits for the address it
// listens on (empty if it did not come up in 30 s).
std::pair<Result<Subprocess>, std::string> StartCoordinator(const std::string& dir,
                                                            std::vector<std::string> args) {
  const std::string addr_file = dir + "/coord.addr";
  args.insert(args.begin(), {NodeBinary(), "coordinator", addr_file});
  auto coord = Subprocess::Spawn(args, {.log = dir + "/coordinator.log"});
  std::string addr;
  Deadline d = Deadline::After(Scaled(std::chrono::seconds(30)));
  while (coord.ok() && addr.empty() && !d.expired()) {
    std::ifstream in(addr_file);
    if (in) std::getline(in, addr);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return {std::move(coord), addr};
}

class KvProcessTest : public ::testing::TestWithParam<std::pair<uint32_t, uint32_t>> {};

TEST_P(KvProcessTest, BspOverZeroMqEqualsTheSingleProcessReference) {
  auto [servers, workers] = GetParam();
  char tmpl[] = "/tmp/distopt-kvproc-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl, out = dir + "/final.bin";
  std::string s_str = std::to_string(servers), w_str = std::to_string(workers);
  auto [coord, addr] = StartCoordinator(dir, {s_str, w_str});
  ASSERT_TRUE(coord.ok()) << coord.status().ToString();
  ASSERT_FALSE(addr.empty());
  std::vector<Subprocess> nodes;
  for (uint32_t s = 0; s < servers; ++s) {
    auto p = Subprocess::Spawn({NodeBinary(), "server", addr, s_str, w_str},
                               {.log = dir + "/server" + std::to_string(s) + ".log"});
    ASSERT_TRUE(p.ok());
    nodes.push_back(std::move(*p));
  }
  for (uint32_t w = 0; w < workers; ++w) {
    auto p = Subprocess::Spawn({NodeBinary(), "worker", addr, s_str, w_str, out},
                               {.log = dir + "/worker" + std::to_string(w) + ".log"});
    ASSERT_TRUE(p.ok());
    nodes.push_back(std::move(*p));
  }
  for (auto& n : nodes) {
    auto code = n.Wait(Deadline::After(Scaled(std::chrono::seconds(120))));
    ASSERT_TRUE(code.ok()) << "a node hung; logs in " << dir;
    EXPECT_EQ(*code, 0) << "logs in " << dir;
  }
  auto code = coord->Wait(Deadline::After(Scaled(std::chrono::seconds(30))));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0);

  std::vector<double> ref = scenario::Reference(workers);
  std::vector<float> got(ref.size());
  std::ifstream in(out, std::ios::binary);
  in.read(reinterpret_cast<char*>(got.data()), got.size() * 4);
  ASSERT_TRUE(in.good()) << "no result file";
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num += (got[i] - ref[i]) * (got[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  EXPECT_LE(std::sqrt(num / den), 1e-6);
}

std::string Slurp(const std::string& path) {
  auto text = ReadFile(path, 64 << 20);
  return text.ok() ? *text : std::string();  // not written yet
}

std::vector<int64_t> ReadCounts(const std::string& path) {
  std::vector<int64_t> c(1 + scenario::kCounterKeys, -2);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(c.data()), static_cast<std::streamsize>(c.size() * 8));
  if (!in.good()) c.clear();
  return c;
}

// ASP with replication 2 over 3 server processes: server 0 (the primary of
// partition 0) is SIGKILLed while 3 workers push. Each worker counts the
// pushes it got acknowledged, per dense entry and per sparse key; the final
// parameters (each push adds 1) must equal the sum of those counters: no
// acknowledged push lost, none applied twice. Every survivor exits 0.
TEST(KvReplicationProcessTest, SigkillOfAPrimaryLosesNoAcknowledgedPush) {
  constexpr int kWorkers = 3, kServers = 3, kSteps = 300;
  char tmpl[] = "/tmp/distopt-kvrepl-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl, prefix = dir + "/counts";
  const std::string s_str = std::to_string(kServers), w_str = std::to_string(kWorkers);
  auto [coord, addr] = StartCoordinator(dir, {s_str, w_str, "2"});
  ASSERT_TRUE(coord.ok()) << coord.status().ToString();
  ASSERT_FALSE(addr.empty());
  std::vector<Subprocess> servers, workers;
  for (int s = 0; s < kServers; ++s) {
    auto p = Subprocess::Spawn({NodeBinary(), "counter-server", addr, s_str, w_str},
                               {.log = dir + "/server" + std::to_string(s) + ".log"});
    ASSERT_TRUE(p.ok());
    servers.push_back(std::move(*p));
  }
  for (int w = 0; w < kWorkers; ++w) {
    auto p = Subprocess::Spawn(
        {NodeBinary(), "counter-worker", addr, s_str, w_str, prefix, std::to_string(kSteps)},
        {.log = dir + "/worker" + std::to_string(w) + ".log"});
    ASSERT_TRUE(p.ok());
    workers.push_back(std::move(*p));
  }
  // Mid-run: once a worker had step 60 acknowledged, kill the server that
  // registered as rank 0 (the owner of partition 0).
  Deadline d = Deadline::After(Scaled(std::chrono::seconds(60)));
  bool mid_run = false;
  while (!mid_run && !d.expired()) {
    for (int w = 0; w < kWorkers; ++w) {
      mid_run |= Slurp(dir + "/worker" + std::to_string(w) + ".log").find("step 60 ack") !=
                 std::string::npos;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(mid_run) << "the workers never got going; logs in " << dir;
  int victim = -1;
  for (int s = 0; s < kServers; ++s) {
    if (Slurp(dir + "/server" + std::to_string(s) + ".log").find("admitted as server/0 ") !=
        std::string::npos) {
      victim = s;
    }
  }
  ASSERT_GE(victim, 0) << "logs in " << dir;
  servers[victim].Signal(SIGKILL);
  for (auto& w : workers) {
    auto code = w.Wait(Deadline::After(Scaled(std::chrono::seconds(120))));
    ASSERT_TRUE(code.ok()) << "a worker hung; logs in " << dir;
    EXPECT_EQ(*code, 0) << "logs in " << dir;
  }
  for (int s = 0; s < kServers; ++s) {
    auto code = servers[s].Wait(Deadline::After(Scaled(std::chrono::seconds(30))));
    ASSERT_TRUE(code.ok()) << "a server hung; logs in " << dir;
    if (s != victim) {
      EXPECT_EQ(*code, 0) << "logs in " << dir;
    }
  }
  auto code = coord->Wait(Deadline::After(Scaled(std::chrono::seconds(30))));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0) << "logs in " << dir;
  const std::string clog = Slurp(dir + "/coordinator.log");
  EXPECT_NE(clog.find("partition 0 fails over from server/0 to its backup server/1"),
            std::string::npos)
      << clog;

  std::vector<int64_t> acked(1 + scenario::kCounterKeys, 0);
  for (int w = 0; w < kWorkers; ++w) {
    auto c = ReadCounts(prefix + ".w" + std::to_string(w));
    ASSERT_FALSE(c.empty()) << "no counters from worker " << w << "; logs in " << dir;
    for (size_t i = 0; i < c.size(); ++i) acked[i] += c[i];
  }
  auto applied = ReadCounts(prefix + ".final");
  ASSERT_FALSE(applied.empty()) << "no final parameters; logs in " << dir;
  EXPECT_EQ(acked[0], kSteps * kWorkers);
  EXPECT_EQ(applied[0], acked[0]) << "dense: applied vs acknowledged pushes";
  int bad = 0;
  for (uint64_t k = 0; k < scenario::kCounterKeys; ++k) {
    if (applied[1 + k] == acked[1 + k]) continue;
    if (bad++ < 5) {
      ADD_FAILURE() << "key " << k << ": " << applied[1 + k] << " applied, " << acked[1 + k]
                    << " acknowledged";
    }
  }
  EXPECT_EQ(bad, 0) << "logs in " << dir;
}

INSTANTIATE_TEST_SUITE_P(Processes, KvProcessTest,
                         ::testing::Values(std::make_pair(1u, 1u), std::make_pair(2u, 2u),
                                           std::make_pair(2u, 4u)),
                         [](const auto& p) {
                           return std::to_string(p.param.first) + "servers_" +
                                  std::to_string(p.param.second) + "workers";
                         });

}  // namespace
}  // namespace distopt
