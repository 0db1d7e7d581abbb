// The BSP scenario again, with every node a separate process talking ZeroMQ
// tcp over loopback: the result must equal the single-process reference,
// and every process must exit 0 when the job is done.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <thread>

#include "base/subprocess.h"
#include "scenario.h"

namespace distopt {
namespace {

std::string NodeBinary() {
  std::string self = SelfExecutable();
  return self.substr(0, self.rfind('/')) + "/kv_scenario_node";
}

class KvProcessTest : public ::testing::TestWithParam<std::pair<uint32_t, uint32_t>> {};

TEST_P(KvProcessTest, BspOverZeroMqEqualsTheSingleProcessReference) {
  auto [servers, workers] = GetParam();
  char tmpl[] = "/tmp/distopt-kvproc-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl, addr_file = dir + "/coord.addr", out = dir + "/final.bin";
  std::string s_str = std::to_string(servers), w_str = std::to_string(workers);
  auto coord = Subprocess::Spawn({NodeBinary(), "coordinator", addr_file, s_str, w_str},
                                 {.log = dir + "/coordinator.log"});
  ASSERT_TRUE(coord.ok()) << coord.status().ToString();
  std::string addr;
  Deadline d = Deadline::After(std::chrono::seconds(30));
  while (addr.empty() && !d.expired()) {
    std::ifstream in(addr_file);
    if (in) std::getline(in, addr);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
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
    auto code = n.Wait(Deadline::After(std::chrono::seconds(120)));
    ASSERT_TRUE(code.ok()) << "a node hung; logs in " << dir;
    EXPECT_EQ(*code, 0) << "logs in " << dir;
  }
  auto code = coord->Wait(Deadline::After(std::chrono::seconds(30)));
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

INSTANTIATE_TEST_SUITE_P(Processes, KvProcessTest,
                         ::testing::Values(std::make_pair(1u, 1u), std::make_pair(2u, 2u),
                                           std::make_pair(2u, 4u)),
                         [](const auto& p) {
                           return std::to_string(p.param.first) + "servers_" +
                                  std::to_string(p.param.second) + "workers";
                         });

}  // namespace
}  // namespace distopt
