// Tests for the strict TOML job configuration: a full file, defaults, every
// kind of error with its exact file:line message, --set overrides, and the
// ConfigToToml -> ParseConfig round trip.
#include "cli/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

namespace distopt {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A directory made with mkdtemp, removed with its files at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = std::filesystem::temp_directory_path().string() + "/distopt_config_XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  std::string Write(const std::string& name, const std::string& text) const {
    std::string p = path_ + "/" + name;
    std::FILE* f = std::fopen(p.c_str(), "wb");
    if (f != nullptr) {
      std::fwrite(text.data(), 1, text.size(), f);
      std::fclose(f);
    }
    return p;
  }

 private:
  std::string path_;
};

// Lines 1-3 of most test documents: the least a valid config needs.
const std::string kData =
    "[data]\n"
    "train = \"train-images.gz\"\n"
    "train_labels = \"train-labels.gz\"\n";

Result<JobConfig> Parse(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return ParseConfig(text, "fashion.toml", overrides);
}

// The error message of parsing `text` ("" if it parsed).
std::string ErrorOf(const std::string& text, const std::vector<std::string>& overrides = {}) {
  Result<JobConfig> r = Parse(text, overrides);
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  return r.status().message();
}

// ModelOptions and OptimizerOptions (other layers' structs) have no
// operator==; compare them field by field.
void ExpectSameModel(const ModelOptions& a, const ModelOptions& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.hidden, b.hidden);
  EXPECT_EQ(a.activation, b.activation);
  EXPECT_EQ(a.num_classes, b.num_classes);
  EXPECT_EQ(a.fm_factors, b.fm_factors);
  EXPECT_EQ(a.init_scale, b.init_scale);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.dense_weights, b.dense_weights);
}

void ExpectSameOptimizer(const OptimizerOptions& a, const OptimizerOptions& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.lr, b.lr);
  EXPECT_EQ(a.momentum, b.momentum);
  EXPECT_EQ(a.nesterov, b.nesterov);
  EXPECT_EQ(a.weight_decay, b.weight_decay);
  EXPECT_EQ(a.beta1, b.beta1);
  EXPECT_EQ(a.beta2, b.beta2);
  EXPECT_EQ(a.eps, b.eps);
  EXPECT_EQ(a.initial_accumulator, b.initial_accumulator);
  EXPECT_EQ(a.ftrl_beta, b.ftrl_beta);
  EXPECT_EQ(a.l1, b.l1);
  EXPECT_EQ(a.l2, b.l2);
  EXPECT_EQ(a.schedule.kind, b.schedule.kind);
  EXPECT_EQ(a.schedule.warmup_steps, b.schedule.warmup_steps);
  EXPECT_EQ(a.schedule.step_size, b.schedule.step_size);
  EXPECT_EQ(a.schedule.gamma, b.schedule.gamma);
  EXPECT_EQ(a.schedule.total_steps, b.schedule.total_steps);
  EXPECT_EQ(a.schedule.min_lr, b.schedule.min_lr);
}

void ExpectSameConfig(const JobConfig& a, const JobConfig& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.source, b.source);
  EXPECT_EQ(a.cluster, b.cluster);
  EXPECT_EQ(a.data, b.data);
  EXPECT_EQ(a.faults, b.faults);
  ExpectSameModel(a.model, b.model);
  ExpectSameOptimizer(a.optimizer, b.optimizer);
  EXPECT_EQ(a.train, b.train);
}

TEST(ConfigTest, FullFileParsesToItsValues) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.Write("fashion.toml", R"(# Fashion-MNIST, 4 workers
name = "fashion"

[cluster]
workers = 4
servers = 2
consistency = "ssp"
staleness = 3
host = "0.0.0.0"
heartbeat_interval_ms = 500
heartbeat_timeout_ms = 5000
startup_timeout_s = 60
request_timeout_s = 90
retry_interval_ms = 2000
max_restarts = 2
replication = 2

[data]
format = "idx"
train = "data/train-images-idx3-ubyte.gz"
train_labels = "data/train-labels-idx1-ubyte.gz"
test = "data/t10k-images-idx3-ubyte.gz"
test_labels = "data/t10k-labels-idx1-ubyte.gz"
skip_bad_lines = true
scale = 0.5
max_train_rows = 1000
max_test_rows = 500

[model]
kind = "mlp"
hidden = [256, 128]
activation = "tanh"
num_classes = 10
seed = 7

[optimizer]
kind = "adam"
lr = 0.001
beta1 = 0.8
beta2 = 0.99
eps = 1e-6
weight_decay = 0.0001

[optimizer.schedule]
kind = "cosine"
warmup_steps = 100
total_steps = 5000
min_lr = 1e-5

[train]
epochs = 5
batch_size = 128
seed = 9
target_metric = "test_accuracy"
target = 0.88
eval_every_epochs = 2
log_every_steps = 10
checkpoint_every_steps = 1000
checkpoint_every_s = 600
keep_checkpoints = 5
global_order = false
)");
  Result<JobConfig> r = LoadConfig(path, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const JobConfig& c = *r;
  EXPECT_EQ(c.name, "fashion");
  EXPECT_EQ(c.source, path);

  ClusterConfig cluster;
  cluster.workers = 4;
  cluster.servers = 2;
  cluster.consistency = Consistency::kSsp;
  cluster.staleness = 3;
  cluster.host = "0.0.0.0";
  cluster.heartbeat_interval_ms = 500;
  cluster.heartbeat_timeout_ms = 5000;
  cluster.startup_timeout_s = 60;
  cluster.request_timeout_s = 90;
  cluster.retry_interval_ms = 2000;
  cluster.max_restarts = 2;
  cluster.replication = 2;
  EXPECT_EQ(c.cluster, cluster);

  DataConfig data;
  data.format = "idx";
  data.train = "data/train-images-idx3-ubyte.gz";
  data.train_labels = "data/train-labels-idx1-ubyte.gz";
  data.test = "data/t10k-images-idx3-ubyte.gz";
  data.test_labels = "data/t10k-labels-idx1-ubyte.gz";
  data.skip_bad_lines = true;
  data.scale = 0.5;
  data.max_train_rows = 1000;
  data.max_test_rows = 500;
  EXPECT_EQ(c.data, data);

  ModelOptions model;
  model.kind = "mlp";
  model.hidden = {256, 128};
  model.activation = "tanh";
  model.num_classes = 10;
  model.seed = 7;
  ExpectSameModel(c.model, model);

  OptimizerOptions opt;
  opt.kind = "adam";
  opt.lr = 0.001f;
  opt.beta1 = 0.8f;
  opt.beta2 = 0.99f;
  opt.eps = 1e-6f;
  opt.weight_decay = 0.0001f;
  opt.schedule.kind = "cosine";
  opt.schedule.warmup_steps = 100;
  opt.schedule.total_steps = 5000;
  opt.schedule.min_lr = 1e-5f;
  ExpectSameOptimizer(c.optimizer, opt);

  TrainConfig train;
  train.epochs = 5;
  train.batch_size = 128;
  train.seed = 9;
  train.target_metric = "test_accuracy";
  train.target = 0.88;
  train.eval_every_epochs = 2;
  train.log_every_steps = 10;
  train.checkpoint_every_steps = 1000;
  train.checkpoint_every_s = 600;
  train.keep_checkpoints = 5;
  train.global_order = false;
  EXPECT_EQ(c.train, train);
}

TEST(ConfigTest, MissingKeysTakeTheirDefaults) {
  Result<JobConfig> r = Parse(kData);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  JobConfig want;
  want.source = "fashion.toml";
  want.data.train = "train-images.gz";
  want.data.train_labels = "train-labels.gz";
  ExpectSameConfig(*r, want);
  // Spot-check a few defaults by value, so the test fails if the structs'
  // defaults and the parser's disagree in both places at once.
  EXPECT_EQ(r->name, "job");
  EXPECT_EQ(r->cluster.consistency, Consistency::kBsp);
  EXPECT_EQ(r->model.hidden, std::vector<int>{128});
  EXPECT_EQ(r->optimizer.schedule.kind, "constant");
  EXPECT_EQ(r->train.epochs, 10);
}

TEST(ConfigTest, UnknownKeySuggestsTheClosestKnownKey) {
  EXPECT_EQ(ErrorOf(kData + "[train]\nepoch = 3\n"),
            "fashion.toml:5: unknown key 'train.epoch' (did you mean 'train.epochs'?)");
  EXPECT_EQ(ErrorOf(kData + "[cluster]\nstalenes = 3\n"),
            "fashion.toml:5: unknown key 'cluster.stalenes' (did you mean 'cluster.staleness'?)");
  // A misspelt table is reported at its header.
  EXPECT_EQ(ErrorOf(kData + "[optimzer]\nlr = 0.1\n"),
            "fashion.toml:4: unknown key 'optimzer' (did you mean 'optimizer'?)");
  EXPECT_EQ(ErrorOf(kData + "[optimizer.shedule]\nkind = \"cosine\"\n"),
            "fashion.toml:4: unknown key 'optimizer.shedule' (did you mean 'optimizer.schedule'?)");
}

TEST(ConfigTest, UnknownKeyUnderTheWrongTableSuggestsItsTable) {
  EXPECT_EQ(ErrorOf(kData + "[train]\nlr = 0.1\n"),
            "fashion.toml:5: unknown key 'train.lr' (did you mean 'optimizer.lr'?)");
  // Forgot the [train] header: the key lands at the top level.
  EXPECT_EQ(ErrorOf("epochs = 3\n" + kData),
            "fashion.toml:1: unknown key 'epochs' (did you mean 'train.epochs'?)");
}

TEST(ConfigTest, UnknownKeyFarFromAnyKnownKeyHasNoSuggestion) {
  EXPECT_EQ(ErrorOf(kData + "[train]\nzzz_qqq = 1\n"),
            "fashion.toml:5: unknown key 'train.zzz_qqq'");
}

TEST(ConfigTest, FirstErrorIsReportedInFileOrder) {
  // toml++ keeps tables sorted by key ("cluster" < "train"); the report
  // follows the file instead.
  EXPECT_EQ(ErrorOf(kData + "[train]\nepoch = 3\n[cluster]\nworkerz = 2\n"),
            "fashion.toml:5: unknown key 'train.epoch' (did you mean 'train.epochs'?)");
}

TEST(ConfigTest, WrongTypeNamesTheKeyAndBothTypes) {
  EXPECT_EQ(ErrorOf(kData + "[optimizer]\nlr = \"fast\"\n"),
            "fashion.toml:5: 'optimizer.lr' must be a number, found a string");
  EXPECT_EQ(ErrorOf(kData + "[cluster]\nworkers = \"4\"\n"),
            "fashion.toml:5: 'cluster.workers' must be an integer, found a string");
  EXPECT_EQ(
      ErrorOf(kData + "zero_based = 1\n"),
      "fashion.toml:4: 'data.zero_based' must be a boolean (true or false), found an integer");
  EXPECT_EQ(ErrorOf(kData + "[model]\nhidden = 128\n"),
            "fashion.toml:5: 'model.hidden' must be an array of integers, found an integer");
  EXPECT_EQ(ErrorOf(kData + "[model]\nhidden = [128, \"wide\"]\n"),
            "fashion.toml:5: 'model.hidden[1]' must be an integer, found a string");
  EXPECT_EQ(ErrorOf(kData + "[cluster]\nconsistency = 1\n"),
            "fashion.toml:5: 'cluster.consistency' must be a string, found an integer");
  EXPECT_EQ(ErrorOf("cluster = 3\n" + kData),
            "fashion.toml:1: 'cluster' must be a table, found an integer");
}

TEST(ConfigTest, IntegerIsAcceptedWhereANumberIsExpected) {
  Result<JobConfig> r = Parse(kData + "scale = 2\n[optimizer]\nlr = 1\n[train]\ntarget = 0\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->data.scale, 2.0);
  EXPECT_EQ(r->optimizer.lr, 1.0f);
}

TEST(ConfigTest, FloatIsRejectedWhereAnIntegerIsExpected) {
  EXPECT_EQ(ErrorOf(kData + "[train]\nepochs = 3.0\n"),
            "fashion.toml:5: 'train.epochs' must be an integer, found a float");
  EXPECT_EQ(ErrorOf(kData + "[optimizer.schedule]\nwarmup_steps = 1e3\n"),
            "fashion.toml:5: 'optimizer.schedule.warmup_steps' must be an integer, found a float");
}

TEST(ConfigTest, OutOfRangeNamesTheKeyAndTheAllowedRange) {
  struct Case {
    std::string lines;  // appended to kData
    std::string error;
  };
  const Case cases[] = {
      {"[cluster]\nworkers = 0\n",
       "fashion.toml:5: 'cluster.workers' must be in [1, 65534], got 0"},
      {"[cluster]\nservers = 0\n",
       "fashion.toml:5: 'cluster.servers' must be in [1, 65534], got 0"},
      {"[cluster]\nworkers = -1\n",
       "fashion.toml:5: 'cluster.workers' must be in [1, 65534], got -1"},
      {"[cluster]\nstaleness = -1\n", "fashion.toml:5: 'cluster.staleness' must be >= 0, got -1"},
      {"[cluster]\nreplication = 3\n",
       "fashion.toml:5: 'cluster.replication' must be 1 or 2, got 3"},
      // cluster.transport was never read (nodes always talk over TCP): gone.
      {"[cluster]\ntransport = \"ipc\"\n", "fashion.toml:5: unknown key 'cluster.transport'"},
      {"[cluster]\nconsistency = \"eventual\"\n",
       "fashion.toml:5: 'cluster.consistency' must be one of bsp, ssp, asp, got 'eventual'"},
      {"[cluster]\nheartbeat_interval_ms = 0\n",
       "fashion.toml:5: 'cluster.heartbeat_interval_ms' must be in [1, 1000000000], got 0"},
      {"format = \"parquet\"\n",
       "fashion.toml:4: 'data.format' must be one of idx, libsvm, csv, got 'parquet'"},
      {"scale = 0\n", "fashion.toml:4: 'data.scale' must be finite and > 0, got 0"},
      {"scale = nan\n", "fashion.toml:4: 'data.scale' must be finite and > 0, got nan"},
      {"delimiter = \";;\"\n",
       "fashion.toml:4: 'data.delimiter' must be a single character other than a quote or line "
       "break, got \";;\""},
      {"[model]\nhidden = [128, 0]\n",
       "fashion.toml:5: 'model.hidden[1]' must be in [1, 2147483647], got 0"},
      {"[model]\nnum_classes = 1\n",
       "fashion.toml:5: 'model.num_classes' must be in [2, 2147483647], got 1"},
      {"[optimizer]\nlr = 1e300\n",
       "fashion.toml:5: 'optimizer.lr' is out of range for a 32-bit float, got 1e+300"},
      // Just past the largest float (3.4028235e38 still reads as FLT_MAX).
      {"[optimizer]\nlr = 3.41e38\n",
       "fashion.toml:5: 'optimizer.lr' is out of range for a 32-bit float, got 3.41e+38"},
      {"[train]\nepochs = 0\n", "fashion.toml:5: 'train.epochs' must be >= 1, got 0"},
      {"[train]\nbatch_size = 0\n",
       "fashion.toml:5: 'train.batch_size' must be in [1, 16777216], got 0"},
      {"[train]\ntarget_metric = \"accuracy\"\n",
       "fashion.toml:5: 'train.target_metric' must be one of \"\", test_accuracy, test_auc, "
       "test_loss, test_rmse, got 'accuracy'"},
      {"[train]\nseed = -1\n", "fashion.toml:5: 'train.seed' must be >= 0, got -1"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ErrorOf(kData + c.lines), c.error) << c.lines;
  }
  EXPECT_EQ(ErrorOf("name = \"a/b\"\n" + kData),
            "fashion.toml:1: 'name' must be non-empty, without control characters, '/' or '\\', "
            "got \"a/b\"");
}

TEST(ConfigTest, SyntaxErrorHasLineAndColumn) {
  // file:line:col, then toml++'s own description of what went wrong.
  const std::string value = ErrorOf(kData + "[train]\nepochs = = 4\n");
  EXPECT_THAT(value, StartsWith("fashion.toml:5:10: "));
  EXPECT_THAT(value, HasSubstr("could not determine value type"));
  const std::string twice = ErrorOf(kData + "[train]\nepochs = 3\nepochs = 4\n");
  EXPECT_THAT(twice, StartsWith("fashion.toml:6:10: "));
  EXPECT_THAT(twice, HasSubstr("cannot redefine existing integer 'epochs'"));
  const std::string header = ErrorOf(kData + "[train\n");
  EXPECT_THAT(header, StartsWith("fashion.toml:4:7: "));
  EXPECT_THAT(header, HasSubstr("expected ']'"));
}

TEST(ConfigTest, MissingFileIsNotFoundNamingThePath) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.path() + "/nope.toml";
  Result<JobConfig> r = LoadConfig(path, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(),
            "config file '" + path + "' not found: No such file or directory");

  Result<JobConfig> d = LoadConfig(dir.path(), {});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(), "config file '" + dir.path() + "' is not a regular file");
}

TEST(ConfigTest, LoadedFileErrorsNameThePathAndLine) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.Write("job.toml", kData + "[optimizer]\nlr = \"fast\"\n");
  Result<JobConfig> r = LoadConfig(path, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), path + ":5: 'optimizer.lr' must be a number, found a string");
}

TEST(ConfigTest, CrossFieldErrorsNameTheFileAndKeys) {
  EXPECT_EQ(ErrorOf(""), "fashion.toml: 'data.train' is required (the training data file)");
  EXPECT_EQ(ErrorOf("[data]\ntrain = \"x\"\n"),
            "fashion.toml: 'data.train_labels' is required when data.format is 'idx'");
  EXPECT_EQ(ErrorOf(kData + "test = \"t10k.gz\"\n"),
            "fashion.toml: 'data.test_labels' is required when data.test is set and data.format "
            "is 'idx'");
  EXPECT_EQ(ErrorOf(kData + "test_labels = \"t10k-labels.gz\"\n"),
            "fashion.toml: 'data.test_labels' is set but data.test is not");
  EXPECT_EQ(ErrorOf("[data]\nformat = \"csv\"\ntrain = \"x.csv\"\ntrain_labels = \"y\"\n"),
            "fashion.toml: 'data.train_labels' only applies to data.format 'idx' (format is "
            "'csv')");
  EXPECT_EQ(ErrorOf("[data]\nformat = \"libsvm\"\ntrain = \"x.svm\"\ndelimiter = \";\"\n"),
            "fashion.toml: 'data.delimiter' only applies to data.format 'csv' (format is "
            "'libsvm')");
  EXPECT_EQ(ErrorOf(kData + "[cluster]\nconsistency = \"bsp\"\nstaleness = 2\n"),
            "fashion.toml: 'cluster.staleness' only applies to cluster.consistency 'ssp' "
            "(consistency is 'bsp'), got 2");
  EXPECT_EQ(ErrorOf(kData + "[cluster]\nconsistency = \"asp\"\nstaleness = 1\n"),
            "fashion.toml: 'cluster.staleness' only applies to cluster.consistency 'ssp' "
            "(consistency is 'asp'), got 1");
  EXPECT_EQ(ErrorOf(kData + "[cluster]\nplacement = \"process\"\nworkers = 4\nservers = 2\n"),
            "fashion.toml: 'cluster.placement' = 'process' runs one server in each worker's "
            "process: set cluster.servers = cluster.workers (4), got 2");
  EXPECT_EQ(ErrorOf(kData + "[cluster]\nconsistency = \"asp\"\nhost_aggregation = \"on\"\n"),
            "fashion.toml: 'cluster.host_aggregation' = 'on' needs cluster.consistency 'bsp' (a "
            "host's workers would wait for each other every step), got 'asp'");
  EXPECT_EQ(ErrorOf(kData + "[cluster]\ntcp_receive_buffer = -5\n"),
            "fashion.toml:5: 'cluster.tcp_receive_buffer' must be in [0, 1073741824], got -5");
  EXPECT_EQ(ErrorOf(kData + "[cluster]\nplacement = \"host\"\n"),
            "fashion.toml:5: 'cluster.placement' must be one of separate, process, got 'host'");
  EXPECT_EQ(ErrorOf(kData + "[cluster]\nreplication = 2\n"),
            "fashion.toml: 'cluster.replication' = 2 needs cluster.servers >= 2 (a backup lives on "
            "another server), got 1 server");
  EXPECT_EQ(ErrorOf(kData + "[cluster]\nservers = 3\npartitions = 2\n"),
            "fashion.toml: 'cluster.partitions' must be 0 (one per server, or more for large "
            "tables) or at least cluster.servers (3), got 2");
  EXPECT_EQ(ErrorOf(kData + "[cluster]\ncapacity = -1\n"),
            "fashion.toml:5: 'cluster.capacity' must be in [0, 1048576], got -1");
  EXPECT_EQ(
      ErrorOf(kData + "[cluster]\nheartbeat_interval_ms = 5000\nheartbeat_timeout_ms = 5000\n"),
      "fashion.toml: 'cluster.heartbeat_timeout_ms' must be greater than "
      "cluster.heartbeat_interval_ms (5000), got 5000");
  EXPECT_EQ(ErrorOf(kData + "[train]\ntarget_metric = \"test_accuracy\"\n"),
            "fashion.toml: 'train.target_metric' is 'test_accuracy', which needs test data "
            "(data.test)");
  const std::string with_test = kData + "test = \"t.gz\"\ntest_labels = \"tl.gz\"\n";
  EXPECT_EQ(ErrorOf(with_test + "[train]\ntarget_metric = \"test_auc\"\n"),
            "fashion.toml: 'train.target_metric' is 'test_auc', which model.kind 'mlp' does not "
            "report (it reports test_loss, test_accuracy)");
  EXPECT_EQ(ErrorOf(with_test + "[train]\ntarget_metric = \"test_accuracy\"\ntarget = 88\n"),
            "fashion.toml: 'train.target' must be in [0, 1] for test_accuracy, got 88");
  EXPECT_EQ(ErrorOf(kData + "[train]\ntarget = 0.9\n"),
            "fashion.toml: 'train.target' is set but train.target_metric is empty");
  // Optimizer::Create's message, prefixed with the file.
  EXPECT_EQ(ErrorOf(kData + "[optimizer]\nkind = \"adam\"\nmomentum = 0.9\n"),
            "fashion.toml: optimizer.momentum is not used by 'adam' (only by sgd), got 0.9");
  EXPECT_EQ(ErrorOf(kData + "[optimizer]\nlr = -0.1\n"),
            "fashion.toml: optimizer.lr must be > 0, got -0.1");
  // CreateModel's message, prefixed with the file.
  EXPECT_THAT(ErrorOf(kData + "[model]\nkind = \"mpl\"\n"),
              StartsWith("fashion.toml: model.kind 'mpl' is unknown"));
}

TEST(ConfigTest, ValidateConfigChecksConfigsBuiltInCode) {
  JobConfig c;
  c.data.train = "train.gz";
  c.data.train_labels = "labels.gz";
  EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c).ToString();
  c.cluster.workers = 0;
  EXPECT_EQ(ValidateConfig(c).message(), "config: 'cluster.workers' must be in [1, 65534], got 0");
  c.cluster.workers = 1;
  c.source = "job.toml";
  c.train.seed = std::numeric_limits<uint64_t>::max();  // no TOML integer can hold it
  EXPECT_EQ(ValidateConfig(c).message(),
            "job.toml: 'train.seed' must be in [0, 9223372036854775807], got "
            "18446744073709551615");
}

TEST(ConfigTest, OverridesParseTypedValues) {
  Result<JobConfig> r =
      Parse(kData, {"train.epochs=3", "optimizer.lr=0.5", "model.hidden=[64, 32]",
                    "train.global_order=false", "name=\"exp 1\"", " cluster.workers = 8 "});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->train.epochs, 3);
  EXPECT_EQ(r->optimizer.lr, 0.5f);
  EXPECT_EQ(r->model.hidden, (std::vector<int>{64, 32}));
  EXPECT_FALSE(r->train.global_order);
  EXPECT_EQ(r->name, "exp 1");
  EXPECT_EQ(r->cluster.workers, 8u);
}

TEST(ConfigTest, OverrideBareWordIsAString) {
  Result<JobConfig> r = Parse(
      kData, {"cluster.consistency=ssp", "cluster.staleness=4", "model.activation=tanh",
              "name=fashion-v2", "data.train=/data/train images.gz", "cluster.host=10.0.0.5"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->cluster.consistency, Consistency::kSsp);
  EXPECT_EQ(r->cluster.staleness, 4);
  EXPECT_EQ(r->model.activation, "tanh");
  EXPECT_EQ(r->name, "fashion-v2");
  EXPECT_EQ(r->data.train, "/data/train images.gz");
  EXPECT_EQ(r->cluster.host, "10.0.0.5");
}

TEST(ConfigTest, OverrideReachesNestedTables) {
  Result<JobConfig> r =
      Parse(kData, {"optimizer.schedule.kind=cosine", "optimizer.schedule.total_steps=1000",
                    "optimizer.schedule.min_lr=1e-4"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->optimizer.schedule.kind, "cosine");
  EXPECT_EQ(r->optimizer.schedule.total_steps, 1000);
  EXPECT_EQ(r->optimizer.schedule.min_lr, 1e-4f);
}

TEST(ConfigTest, OverrideErrorsNameTheOverride) {
  EXPECT_EQ(ErrorOf(kData, {"optimizer.lrr=0.1"}),
            "--set optimizer.lrr=0.1: unknown key 'optimizer.lrr' (did you mean 'optimizer.lr'?)");
  EXPECT_EQ(ErrorOf(kData, {"train.epochs=ten"}),
            "--set train.epochs=ten: 'train.epochs' must be an integer, found a string");
  EXPECT_EQ(ErrorOf(kData, {"train.epochs=2.5"}),
            "--set train.epochs=2.5: 'train.epochs' must be an integer, found a float");
  EXPECT_EQ(ErrorOf(kData, {"optimizer.lr=\"0.1\""}),
            "--set optimizer.lr=\"0.1\": 'optimizer.lr' must be a number, found a string");
  EXPECT_EQ(ErrorOf(kData, {"cluster.workers=0"}),
            "--set cluster.workers=0: 'cluster.workers' must be in [1, 65534], got 0");
  EXPECT_EQ(ErrorOf(kData, {"train.epochs"}), "--set train.epochs: expected section.key=value");
  EXPECT_EQ(ErrorOf(kData, {"optimizer.schedule=1"}),
            "--set optimizer.schedule=1: 'optimizer.schedule' is a table; set one of its keys "
            "(section.key=value)");
  EXPECT_EQ(ErrorOf(kData, {"train.epochs=3\nname = \"x\""}),
            "--set train.epochs=3\nname = \"x\": the value must be a single TOML value");
  // An override can also break a cross-field rule; that names the file.
  EXPECT_EQ(ErrorOf(kData, {"cluster.staleness=2"}),
            "fashion.toml: 'cluster.staleness' only applies to cluster.consistency 'ssp' "
            "(consistency is 'bsp'), got 2");
}

TEST(ConfigTest, OverridesApplyAfterTheFileInOrder) {
  Result<JobConfig> r =
      Parse(kData + "[train]\nepochs = 7\n", {"train.epochs=3", "train.epochs=5"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->train.epochs, 5);
  // A later override can make an earlier invalid combination valid: only the
  // end result is cross-checked.
  Result<JobConfig> s = Parse(kData, {"cluster.staleness=2", "cluster.consistency=ssp"});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->cluster.staleness, 2);
}

// Configs with a non-default value in every section, covering every field
// across the three (one per data format, as format-specific fields exclude
// each other; likewise per optimizer kind).
std::vector<JobConfig> NonDefaultConfigs() {
  JobConfig base;
  base.name = "round \"trip\" job";
  base.source = "resolved.toml";
  base.cluster.workers = 3;
  base.cluster.servers = 2;
  base.cluster.consistency = Consistency::kSsp;
  base.cluster.staleness = 2;
  base.cluster.host = "10.0.0.5";
  base.cluster.heartbeat_interval_ms = 250;
  base.cluster.heartbeat_timeout_ms = 4000;
  base.cluster.startup_timeout_s = 30;
  base.cluster.request_timeout_s = 45;
  base.cluster.retry_interval_ms = 1500;
  base.cluster.max_restarts = 4;
  base.cluster.replication = 2;
  base.data.test = "test data/é \\ \"q\"\t\x01.gz";
  base.data.skip_bad_lines = true;
  base.data.max_train_rows = 100;
  base.data.max_test_rows = 50;
  base.model.hidden = {300, 100, 7};
  base.model.activation = "sigmoid";
  base.model.num_classes = 3;
  base.model.fm_factors = 16;
  base.model.init_scale = 0.0123f;
  base.model.seed = 99;
  base.train.epochs = 2;
  base.train.batch_size = 33;
  base.train.seed = uint64_t{1} << 62;
  base.train.eval_every_epochs = 3;
  base.train.log_every_steps = 7;
  base.train.checkpoint_every_steps = 500;
  base.train.checkpoint_every_s = 60;
  base.train.keep_checkpoints = 1;
  base.train.global_order = false;

  JobConfig idx = base;
  idx.cluster.consistency = Consistency::kAsp;
  idx.cluster.staleness = 0;
  idx.data.format = "idx";
  idx.data.train = "train-images.gz";
  idx.data.train_labels = "train-labels.gz";
  idx.data.test_labels = "test-labels.gz";
  idx.data.scale = 1.0 / 3.0;
  idx.model.kind = "mlp";
  idx.optimizer.kind = "adagrad";
  idx.optimizer.lr = 0.05f;
  idx.optimizer.initial_accumulator = 0.1f;
  idx.optimizer.eps = 1e-7f;
  idx.optimizer.weight_decay = 3e-5f;
  idx.optimizer.schedule.kind = "step";
  idx.optimizer.schedule.warmup_steps = 10;
  idx.optimizer.schedule.step_size = 1000;
  idx.optimizer.schedule.gamma = 0.5f;
  idx.train.target_metric = "test_accuracy";
  idx.train.target = 0.875;

  JobConfig libsvm = base;
  libsvm.data.format = "libsvm";
  libsvm.data.train = "ctr.svm";
  libsvm.data.num_features = 1000;
  libsvm.data.zero_based = true;
  libsvm.model.kind = "fm";
  libsvm.model.dense_weights = true;
  libsvm.optimizer.kind = "ftrl";
  libsvm.optimizer.lr = 0.2f;
  libsvm.optimizer.ftrl_beta = 1.5f;
  libsvm.optimizer.l1 = 1e-3f;
  libsvm.optimizer.l2 = 2e-4f;
  libsvm.optimizer.schedule.kind = "inverse_sqrt";
  libsvm.optimizer.schedule.warmup_steps = 400;
  libsvm.train.target_metric = "test_auc";
  libsvm.train.target = 0.8;

  JobConfig csv = base;
  csv.cluster.consistency = Consistency::kBsp;
  csv.cluster.staleness = 0;
  csv.data.format = "csv";
  csv.data.train = "housing.csv";
  csv.data.label_column = -1;
  csv.data.header = true;
  csv.data.delimiter = "\t";
  csv.model.kind = "linear_regression";
  csv.optimizer.kind = "sgd";
  csv.optimizer.lr = 1.0f / 3.0f;
  csv.optimizer.momentum = 0.9f;
  csv.optimizer.nesterov = true;
  csv.optimizer.weight_decay = 1e-4f;
  csv.optimizer.beta1 = 0.85f;
  csv.optimizer.beta2 = 0.95f;
  csv.optimizer.schedule.kind = "cosine";
  csv.optimizer.schedule.warmup_steps = 5;
  csv.optimizer.schedule.total_steps = 1000;
  csv.optimizer.schedule.min_lr = 1e-6f;
  csv.train.target_metric = "test_rmse";
  csv.train.target = 2.5e-3;
  return {idx, libsvm, csv};
}

TEST(ConfigTest, ConfigToTomlRoundTripsEveryField) {
  for (const JobConfig& c : NonDefaultConfigs()) {
    SCOPED_TRACE(c.data.format);
    ASSERT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c).ToString();
    const std::string text = ConfigToToml(c);
    Result<JobConfig> r = ParseConfig(text, c.source, {});
    ASSERT_TRUE(r.ok()) << r.status().ToString() << "\n" << text;
    ExpectSameConfig(*r, c);
    EXPECT_EQ(ConfigToToml(*r), text);
  }
}

TEST(ConfigTest, ConfigToTomlWritesDefaultsAndRoundTrips) {
  JobConfig c;
  c.source = "defaults.toml";
  c.data.train = "train.gz";
  c.data.train_labels = "labels.gz";
  const std::string text = ConfigToToml(c);
  // Every setting is written, defaults included, with floats in their
  // shortest exact form.
  EXPECT_THAT(text, HasSubstr("\nname = \"job\"\n"));
  EXPECT_THAT(text, HasSubstr("\n[cluster]\nworkers = 1\nservers = 1\nconsistency = \"bsp\"\n"));
  EXPECT_THAT(text, HasSubstr("\nscale = 0.00392156862745098\n"));
  EXPECT_THAT(text, HasSubstr("\n[optimizer]\nkind = \"sgd\"\nlr = 0.01\n"));
  EXPECT_THAT(text, HasSubstr("\neps = 1e-08\n"));
  EXPECT_THAT(text, HasSubstr("\nftrl_beta = 1.0\n"));
  EXPECT_THAT(text, HasSubstr("\n[optimizer.schedule]\nkind = \"constant\"\n"));
  EXPECT_THAT(text, HasSubstr("\nhidden = [128]\n"));
  EXPECT_THAT(text, HasSubstr("\ntarget_metric = \"\"\n"));
  Result<JobConfig> r = ParseConfig(text, c.source, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString() << "\n" << text;
  ExpectSameConfig(*r, c);
}

TEST(ConfigTest, FloatsRoundTripExactly) {
  // Values whose shortest decimal form is long or sits near a rounding edge.
  const float floats[] = {0.1f,        1.0f / 3.0f, 1e-7f, 3.4028235e38f, 1.17549435e-38f,
                          16777217.0f, 0.9999999f};
  for (const float lr : floats) {
    JobConfig c;
    c.data.train = "t.gz";
    c.data.train_labels = "l.gz";
    c.optimizer.lr = lr;
    c.data.scale = static_cast<double>(lr) / 7.0;
    Result<JobConfig> r = ParseConfig(ConfigToToml(c), "", {});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->optimizer.lr, lr);
    EXPECT_EQ(r->data.scale, c.data.scale);
  }
}

}  // namespace
}  // namespace distopt
