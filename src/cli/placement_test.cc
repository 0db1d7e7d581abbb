#include "cli/placement.h"

#include <gtest/gtest.h>

namespace distopt {
namespace {

// The seed job: 1 coordinator + 2 servers + 4 workers = 7 ranks.
constexpr uint32_t kServers = 2, kWorkers = 4;

Result<Placement> Resolve(const Environment& env, PlacementFlags flags = {}) {
  return ResolvePlacement(flags, env, kServers, kWorkers);
}

// Every launcher's global rank maps to the same roles: 0 coordinator,
// 1..2 servers 0..1, 3..6 workers 0..3.
struct LauncherCase {
  const char* launcher;
  Environment (*env)(int rank);
};

const LauncherCase kCases[] = {
    {"openmpi",
     [](int r) {
       return Environment{{"OMPI_COMM_WORLD_RANK", std::to_string(r)},
                          {"OMPI_COMM_WORLD_SIZE", "7"},
                          {"OMPI_COMM_WORLD_LOCAL_SIZE", "7"}};
     }},
    {"pmix",
     [](int r) {
       return Environment{{"PMIX_RANK", std::to_string(r)}, {"DISTOPT_COORDINATOR", "h1:7070"}};
     }},
    {"pmi",
     [](int r) {
       return Environment{
           {"PMI_RANK", std::to_string(r)}, {"PMI_SIZE", "7"}, {"DISTOPT_COORDINATOR", "h1:7070"}};
     }},
    {"slurm",
     [](int r) {
       return Environment{{"SLURM_PROCID", std::to_string(r)},
                          {"SLURM_NTASKS", "7"},
                          {"SLURM_JOB_NODELIST", "node[01-03]"}};
     }},
    {"torchrun",
     [](int r) {
       return Environment{{"RANK", std::to_string(r)},
                          {"WORLD_SIZE", "7"},
                          {"MASTER_ADDR", "10.0.0.9"},
                          {"MASTER_PORT", "29500"}};
     }},
    {"kubernetes",
     [](int r) {
       return Environment{{"JOB_COMPLETION_INDEX", std::to_string(r)},
                          {"DISTOPT_COORDINATOR", "distopt-0.distopt:7070"}};
     }},
};

TEST(ResolvePlacement, EveryLauncherMapsGlobalRanksToCoordinatorServersWorkers) {
  for (const auto& c : kCases) {
    for (int r = 0; r < 7; ++r) {
      auto p = Resolve(c.env(r));
      ASSERT_TRUE(p.ok()) << c.launcher << " rank " << r << ": " << p.status().ToString();
      EXPECT_EQ(p->launcher, c.launcher);
      EXPECT_EQ(p->global_rank, r);
      if (r == 0) {
        EXPECT_EQ(p->role, Role::kCoordinator) << c.launcher;
        EXPECT_EQ(p->rank, -1);
      } else if (r <= 2) {
        EXPECT_EQ(p->role, Role::kServer) << c.launcher << " " << r;
        EXPECT_EQ(p->rank, r - 1);
      } else {
        EXPECT_EQ(p->role, Role::kWorker) << c.launcher << " " << r;
        EXPECT_EQ(p->rank, r - 3);
      }
    }
  }
}

TEST(ResolvePlacement, FindsTheCoordinatorWhereEachLauncherSaysIt) {
  EXPECT_EQ(Resolve(kCases[0].env(4))->coordinator.host, "127.0.0.1");  // mpirun on one host
  auto slurm = Resolve(kCases[3].env(4));
  EXPECT_EQ(slurm->coordinator.host, "node01");
  EXPECT_EQ(slurm->coordinator.port, kDefaultCoordinatorPort);
  auto torch = Resolve(kCases[4].env(4));
  EXPECT_EQ(torch->coordinator.host, "10.0.0.9");
  EXPECT_EQ(torch->coordinator.port, 29500);
  auto k8s = Resolve(kCases[5].env(4));
  EXPECT_EQ(k8s->coordinator.host, "distopt-0.distopt");
  // --port moves the coordinator where a launcher names only the host.
  PlacementFlags f;
  f.port = 9000;
  EXPECT_EQ(Resolve(kCases[3].env(4), f)->coordinator.port, 9000);
  // A flag beats the launcher.
  f.coordinator = "[fd00::1]:7171";
  auto v6 = Resolve(kCases[3].env(4), f);
  ASSERT_TRUE(v6.ok()) << v6.status().ToString();
  EXPECT_EQ(v6->coordinator.host, "fd00::1");
  EXPECT_EQ(v6->coordinator.port, 7171);
}

TEST(ResolvePlacement, MpirunOnSeveralHostsNeedsTheCoordinatorNamed) {
  Environment env{{"OMPI_COMM_WORLD_RANK", "3"},
                  {"OMPI_COMM_WORLD_SIZE", "7"},
                  {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}};
  auto p = Resolve(env);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("--coordinator"), std::string::npos);
  env["DISTOPT_COORDINATOR"] = "h1:7070";
  EXPECT_TRUE(Resolve(env).ok());
}

TEST(ResolvePlacement, AWrongNumberOfRanksNamesBothNumbers) {
  auto p = Resolve({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "8"}});
  ASSERT_FALSE(p.ok());
  const std::string& m = p.status().message();
  EXPECT_NE(m.find("started 8 ranks"), std::string::npos) << m;
  EXPECT_NE(m.find("needs 7"), std::string::npos) << m;
  EXPECT_NE(m.find("2 servers + 4 workers"), std::string::npos) << m;
  // DISTOPT_WORLD_SIZE says it where the launcher does not (Kubernetes).
  auto k = Resolve({{"JOB_COMPLETION_INDEX", "0"}, {"DISTOPT_WORLD_SIZE", "6"}});
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("started 6 ranks"), std::string::npos);
  auto beyond = Resolve({{"JOB_COMPLETION_INDEX", "7"}, {"DISTOPT_COORDINATOR", "h:1"}});
  ASSERT_FALSE(beyond.ok());
  EXPECT_NE(beyond.status().message().find("outside the job's 0..6"), std::string::npos);
}

TEST(ResolvePlacement, FlagsAndDistoptVariablesOverrideTheLauncher) {
  Environment env = kCases[3].env(5);  // Slurm says worker 2
  PlacementFlags f;
  f.role = "server";
  f.rank = 1;
  auto p = Resolve(env, f);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->role, Role::kServer);
  EXPECT_EQ(p->rank, 1);
  EXPECT_EQ(p->launcher, "flags");
  env["DISTOPT_ROLE"] = "worker";
  auto d = Resolve(env);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->launcher, "distopt");
  EXPECT_EQ(d->role, Role::kWorker);
  EXPECT_EQ(d->rank, -1);  // no rank given with the role: the coordinator picks one
  env["DISTOPT_RANK"] = "x";
  auto bad = Resolve(env);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("DISTOPT_RANK"), std::string::npos);
}

TEST(ResolvePlacement, PsLiteVariablesWork) {
  Environment env{{"DMLC_ROLE", "server"},       {"DMLC_PS_ROOT_URI", "10.1.1.1"},
                  {"DMLC_PS_ROOT_PORT", "9091"}, {"DMLC_NUM_SERVER", "2"},
                  {"DMLC_NUM_WORKER", "4"},      {"DMLC_NODE_HOST", "10.1.1.7"}};
  auto p = Resolve(env);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->launcher, "dmlc");
  EXPECT_EQ(p->role, Role::kServer);
  EXPECT_EQ(p->coordinator.host, "10.1.1.1");
  EXPECT_EQ(p->coordinator.port, 9091);
  EXPECT_EQ(p->advertise_host, "10.1.1.7");
  env["DMLC_ROLE"] = "scheduler";
  EXPECT_EQ(Resolve(env)->role, Role::kCoordinator);
  env["DMLC_NUM_WORKER"] = "8";
  auto bad = Resolve(env);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("DMLC_NUM_WORKER=8"), std::string::npos);
}

TEST(ResolvePlacement, NoRoleAtAllIsAnErrorThatSaysWhatToDo) {
  auto p = Resolve({});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("--role"), std::string::npos);
  PlacementFlags f;
  f.role = "worker";
  f.rank = 4;
  auto out = Resolve({{"DISTOPT_COORDINATOR", "h:1"}}, f);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("worker rank 4 is outside 0..3"), std::string::npos);
  f.rank = 0;
  auto nocoord = Resolve({}, f);
  ASSERT_FALSE(nocoord.ok());
  EXPECT_NE(nocoord.status().message().find("DISTOPT_COORDINATOR"), std::string::npos);
}

TEST(ResolvePlacement, AdvertiseHostAndInterfaceComeFromFlagsOrEnvironment) {
  Environment env = kCases[5].env(3);
  env["DISTOPT_ADVERTISE_HOST"] = "10.244.0.13";
  EXPECT_EQ(Resolve(env)->advertise_host, "10.244.0.13");
  PlacementFlags f;
  f.advertise_host = "[fd00::3]";
  EXPECT_EQ(Resolve(env, f)->advertise_host, "fd00::3");
  env.erase("DISTOPT_ADVERTISE_HOST");
  env["DISTOPT_INTERFACE"] = "eth1";
  EXPECT_EQ(Resolve(env)->interface, "eth1");
  auto both = Resolve(env, f);
  EXPECT_FALSE(both.ok());
}

TEST(ExpandSlurmNodeList, ExpandsCompactForms) {
  auto a = ExpandSlurmNodeList("node[01-04,07]");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(*a, (std::vector<std::string>{"node01", "node02", "node03", "node04", "node07"}));
  auto b = ExpandSlurmNodeList("login1,gpu[9-11]-ib,cpu5");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, (std::vector<std::string>{"login1", "gpu9-ib", "gpu10-ib", "gpu11-ib", "cpu5"}));
  auto c = ExpandSlurmNodeList("single");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, std::vector<std::string>{"single"});
  EXPECT_FALSE(ExpandSlurmNodeList("node[01-").ok());
  EXPECT_FALSE(ExpandSlurmNodeList("node[4-2]").ok());
  EXPECT_FALSE(ExpandSlurmNodeList("node[a-b]").ok());
  EXPECT_FALSE(ExpandSlurmNodeList("").ok());
}

}  // namespace
}  // namespace distopt
