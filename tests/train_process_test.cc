// End to end through the `distopt` binary: `distopt train` runs a
// coordinator, 2 servers and 2 workers as processes on a small IDX subset
// (the first images of Fashion-MNIST, or synthetic images when the dataset
// is not installed) and must learn; `distopt eval` on the saved model must
// report the figures the run logged. Then the ways a job must fail: a bad
// config key, a worker that cannot read its data (the job ends, naming the
// node, and leaves no process behind), a model that does not fit the config.
#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "base/subprocess.h"
#include "data/idx_reader.h"

namespace distopt {
namespace {

using std::chrono::seconds;

const char kFashionDir[] = "/usr/share/datasets/fashion-mnist";
constexpr size_t kTrainRows = 3000, kTestRows = 1000;

std::string DistoptBinary() {
  // build/<preset>/tests/train_process_test -> build/<preset>/src/cli/distopt
  std::string self = SelfExecutable();
  return self.substr(0, self.rfind('/')) + "/../src/cli/distopt";
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void PutU32(std::string* s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s->push_back(static_cast<char>((v >> shift) & 0xff));
}

// Writes rows [0, n) of `d` (pixels 0..255, 28 x 28) as IDX image and label files.
void WriteIdx(const Dataset& d, size_t n, const std::string& images, const std::string& labels) {
  std::string img, lab;
  PutU32(&img, 0x00000803);
  PutU32(&img, static_cast<uint32_t>(n));
  PutU32(&img, 28);
  PutU32(&img, 28);
  for (size_t i = 0; i < n * 784; ++i) img.push_back(static_cast<char>(d.dense[i]));
  PutU32(&lab, 0x00000801);
  PutU32(&lab, static_cast<uint32_t>(n));
  for (size_t i = 0; i < n; ++i) lab.push_back(static_cast<char>(d.labels[i]));
  WriteAll(images, img);
  WriteAll(labels, lab);
}

// 28 x 28 images of 10 classes when Fashion-MNIST is not installed: class c
// brightens one 7 x 7 block of a 4 x 4 grid, under heavy noise.
Dataset SyntheticImages(size_t rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> noise(0, 150);
  Dataset d;
  d.num_rows = rows;
  d.num_features = 784;
  d.dense.resize(rows * 784);
  d.labels.resize(rows);
  for (size_t r = 0; r < rows; ++r) {
    int c = static_cast<int>(rng() % 10);
    d.labels[r] = static_cast<float>(c);
    for (int y = 0; y < 28; ++y) {
      for (int x = 0; x < 28; ++x) {
        int v = noise(rng);
        if (y / 7 == c / 4 && x / 7 == c % 4) v += 100;
        d.dense[r * 784 + y * 28 + x] = static_cast<float>(v);
      }
    }
  }
  return d;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/distopt-e2e-XXXXXX";
    path_ = mkdtemp(tmpl) != nullptr ? tmpl : "";
  }
  ~TempDir() {
    if (::testing::Test::HasFailure()) return;  // keep the logs to look at
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct Outcome {
  int code = -1;
  std::string output;  // stdout and stderr together
};

// Runs distopt with `args`; kills it (and so, by their parent-death signal,
// its nodes) if it has not exited by the deadline.
Outcome RunDistopt(const std::vector<std::string>& args, const std::string& log,
                   Duration deadline = seconds(300)) {
  std::vector<std::string> argv = {DistoptBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  Outcome out;
  auto p = Subprocess::Spawn(argv, {.log = log});
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  if (!p.ok()) return out;
  auto code = p->Wait(Deadline::After(deadline));
  if (!code.ok()) {
    p->Signal(SIGKILL);
    (void)p->Wait(Deadline::After(seconds(10)));
    ADD_FAILURE() << "distopt " << args[0] << " did not exit in time; output in " << log;
  } else {
    out.code = *code;
  }
  out.output = ReadAll(log);
  return out;
}

// The pids of processes whose command line mentions `needle`.
std::vector<pid_t> ProcessesMentioning(const std::string& needle) {
  std::vector<pid_t> out;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return out;
  while (dirent* e = readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == getpid()) continue;
    std::string cmd = ReadAll("/proc/" + std::string(e->d_name) + "/cmdline");
    for (char& ch : cmd) {
      if (ch == '\0') ch = ' ';
    }
    if (cmd.find(needle) != std::string::npos) out.push_back(static_cast<pid_t>(pid));
  }
  closedir(proc);
  return out;
}

// The IDX subset and a config over it, made once for the suite.
class TrainProcessTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    const std::string d = dir_->path();
    IdxOptions raw;
    raw.scale = 1.0f;  // keep the 0..255 bytes
    auto train = ReadIdx(std::string(kFashionDir) + "/train-images-idx3-ubyte.gz",
                         std::string(kFashionDir) + "/train-labels-idx1-ubyte.gz", raw);
    auto test = ReadIdx(std::string(kFashionDir) + "/t10k-images-idx3-ubyte.gz",
                        std::string(kFashionDir) + "/t10k-labels-idx1-ubyte.gz", raw);
    real_data_ = train.ok() && test.ok();
    if (real_data_) {
      WriteIdx(*train, kTrainRows, d + "/train-images", d + "/train-labels");
      WriteIdx(*test, kTestRows, d + "/test-images", d + "/test-labels");
    } else {
      std::fprintf(stderr, "Fashion-MNIST not found under %s (%s); using synthetic images\n",
                   kFashionDir, train.status().ToString().c_str());
      WriteIdx(SyntheticImages(kTrainRows, 1), kTrainRows, d + "/train-images",
               d + "/train-labels");
      WriteIdx(SyntheticImages(kTestRows, 2), kTestRows, d + "/test-images", d + "/test-labels");
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  // A config over the subset; `extra` lines go into [train].
  std::string WriteConfig(const std::string& name, const std::string& test_images,
                          const std::string& extra_train = "") {
    const std::string d = dir_->path();
    std::string text =
        "name = \"e2e\"\n"
        "[cluster]\n"
        "workers = 2\n"
        "servers = 2\n"
        "consistency = \"bsp\"\n"
        "[data]\n"
        "format = \"idx\"\n"
        "train = \"" +
        d +
        "/train-images\"\n"
        "train_labels = \"" +
        d +
        "/train-labels\"\n"
        "test = \"" +
        test_images +
        "\"\n"
        "test_labels = \"" +
        d +
        "/test-labels\"\n"
        "[model]\n"
        "kind = \"mlp\"\n"
        "hidden = [32]\n"
        "num_classes = 10\n"
        "[optimizer]\n"
        "kind = \"sgd\"\n"
        "lr = 0.1\n"
        "momentum = 0.9\n"
        "[train]\n"
        "epochs = 4\n"
        "batch_size = 32\n"
        "seed = 7\n" +
        extra_train;
    std::string path = d + "/" + name;
    WriteAll(path, text);
    return path;
  }

  static TempDir* dir_;
  static bool real_data_;
};

TempDir* TrainProcessTest::dir_ = nullptr;
bool TrainProcessTest::real_data_ = false;

std::vector<nlohmann::json> JsonLines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line, nullptr, false));
  }
  return out;
}

// The value printed on a "name value" line of `text`; NaN if absent.
double PrintedValue(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return std::nan("");
}

std::string Fixed4(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4f", v);
  return buf;
}

TEST_F(TrainProcessTest, TrainsAndEvalReproducesTheLoggedAccuracy) {
  const std::string d = dir_->path();
  const std::string config = WriteConfig("good.toml", d + "/test-images");
  const std::string run = d + "/run-good";
  Outcome train =
      RunDistopt({"train", config, "--run-dir", run, "--workers", "2", "--servers", "2"},
                 d + "/train-good.out");
  ASSERT_EQ(train.code, 0) << train.output;
  EXPECT_NE(train.output.find("2 server(s), 2 worker(s)"), std::string::npos) << train.output;

  // The run folder.
  for (const char* f :
       {"/config.toml", "/metrics.jsonl", "/model.bin", "/logs/coordinator.log",
        "/logs/server-0.log", "/logs/server-1.log", "/logs/worker-0.log", "/logs/worker-1.log"}) {
    EXPECT_TRUE(std::filesystem::exists(run + f)) << f;
  }
  auto lines = JsonLines(run + "/metrics.jsonl");
  ASSERT_FALSE(lines.empty());
  std::vector<double> accuracy;
  double last_loss = 0;
  for (const auto& l : lines) {
    ASSERT_FALSE(l.is_discarded()) << "a line of metrics.jsonl is not JSON";
    if (l.value("type", "") == "eval") {
      accuracy.push_back(l.at("test_accuracy").get<double>());
      last_loss = l.at("test_loss").get<double>();
    }
  }
  EXPECT_EQ(lines.front().value("type", ""), "start");
  EXPECT_EQ(lines.back().value("type", ""), "done");
  ASSERT_EQ(accuracy.size(), 4u) << "one evaluation per epoch";
  // Untrained, 10 classes: ~0.1. Trained on 3000 images: about 0.75-0.8
  // (Fashion-MNIST) or ~1 (synthetic).
  EXPECT_GT(accuracy.back(), 0.6);

  // `distopt eval` on the run folder scores the saved model: the same figures.
  Outcome eval = RunDistopt({"eval", run, config}, d + "/eval-good.out", seconds(120));
  ASSERT_EQ(eval.code, 0) << eval.output;
  double acc = PrintedValue(eval.output, "test_accuracy");
  double loss = PrintedValue(eval.output, "test_loss");
  ASSERT_FALSE(std::isnan(acc)) << eval.output;
  EXPECT_EQ(Fixed4(acc), Fixed4(accuracy.back())) << eval.output;
  EXPECT_EQ(Fixed4(loss), Fixed4(last_loss)) << eval.output;
  EXPECT_NE(eval.output.find("(" + std::to_string(kTestRows) + " rows)"), std::string::npos)
      << eval.output;

  // The same model file named directly; and a config whose model does not
  // match it is refused, not evaluated.
  eval = RunDistopt({"eval", run + "/model.bin", config}, d + "/eval-file.out", seconds(120));
  ASSERT_EQ(eval.code, 0) << eval.output;
  EXPECT_EQ(Fixed4(PrintedValue(eval.output, "test_accuracy")), Fixed4(accuracy.back()));
  eval = RunDistopt({"eval", run, config, "--set", "model.hidden=[16]"}, d + "/eval-bad.out",
                    seconds(120));
  EXPECT_NE(eval.code, 0) << eval.output;
  EXPECT_NE(eval.output.find("does not match"), std::string::npos) << eval.output;
  EXPECT_NE(eval.output.find("25088 floats"), std::string::npos)
      << "784 x 32 weights: " << eval.output;
  EXPECT_TRUE(std::isnan(PrintedValue(eval.output, "test_accuracy"))) << eval.output;
}

// cluster.placement = "process": each worker's process serves a partition
// itself (no server processes), and BSP trains the very same model as with
// servers of their own.
TEST_F(TrainProcessTest, ServersInTheWorkersProcessesTrainTheSameModel) {
  const std::string d = dir_->path();
  const std::string config = WriteConfig("placement.toml", d + "/test-images");
  std::vector<std::string> base = {"train",     config, "--workers", "2",
                                   "--servers", "2",    "--set",     "train.epochs=2"};
  std::vector<std::string> separate = base, process = base;
  separate.insert(separate.end(), {"--run-dir", d + "/run-separate"});
  process.insert(process.end(),
                 {"--run-dir", d + "/run-process", "--set", "cluster.placement=process"});
  Outcome a = RunDistopt(separate, d + "/train-separate.out");
  ASSERT_EQ(a.code, 0) << a.output;
  Outcome b = RunDistopt(process, d + "/train-process.out");
  ASSERT_EQ(b.code, 0) << b.output;
  EXPECT_NE(b.output.find("2 server(s) in the workers' processes"), std::string::npos) << b.output;
  EXPECT_FALSE(std::filesystem::exists(d + "/run-process/logs/server-0.log"));
  EXPECT_NE(ReadAll(d + "/run-process/logs/worker-1.log").find("[server/1]"), std::string::npos);
  const std::string ma = ReadAll(d + "/run-separate/model.bin");
  ASSERT_FALSE(ma.empty());
  EXPECT_TRUE(ma == ReadAll(d + "/run-process/model.bin")) << "the models differ";
}

// cluster.partitions: the model cut into 6 pieces dealt over 2 servers
// (3 each, interleaved) trains bit for bit the model of one per server: the
// mean and the optimizer step are per float, wherever the slices fall.
TEST_F(TrainProcessTest, MorePartitionsThanServersTrainTheSameModel) {
  const std::string d = dir_->path();
  const std::string config = WriteConfig("partitions.toml", d + "/test-images");
  std::vector<std::string> base = {"train",     config, "--workers", "2",
                                   "--servers", "2",    "--set",     "train.epochs=2"};
  std::vector<std::string> two = base, six = base;
  two.insert(two.end(), {"--run-dir", d + "/run-2"});
  six.insert(six.end(), {"--run-dir", d + "/run-6", "--set", "cluster.partitions=6"});
  Outcome a = RunDistopt(two, d + "/train-2.out");
  ASSERT_EQ(a.code, 0) << a.output;
  Outcome b = RunDistopt(six, d + "/train-6.out");
  ASSERT_EQ(b.code, 0) << b.output;
  EXPECT_NE(ReadAll(d + "/run-6/logs/coordinator.log")
                .find("6 partition(s) over 2 server(s); host 127.0.0.1 (capacity "),
            std::string::npos);
  EXPECT_NE(ReadAll(d + "/run-6/logs/server-1.log").find("holding partition(s) 1, 3, 5:"),
            std::string::npos);
  const std::string ma = ReadAll(d + "/run-2/model.bin");
  ASSERT_FALSE(ma.empty());
  EXPECT_TRUE(ma == ReadAll(d + "/run-6/model.bin")) << "the models differ";
}

// LibSVM text of a planted sparse logistic model (the same weights for
// every seed): each row has 8 one-based ids in [lo, hi] of 300, labelled by
// the sign of their weights' sum.
std::string PlantedLibSvm(size_t rows, uint64_t seed, int lo = 1, int hi = 300) {
  std::mt19937_64 planted(99);
  std::vector<double> w(301);
  for (double& x : w) x = std::normal_distribution<double>(0, 1)(planted);
  std::mt19937_64 rng(seed);
  std::string text;
  for (size_t r = 0; r < rows; ++r) {
    std::vector<int> ids;
    while (ids.size() < 8) {
      int id = lo + static_cast<int>(rng() % static_cast<uint64_t>(hi - lo + 1));
      if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
    }
    std::sort(ids.begin(), ids.end());
    double z = 0;
    for (int id : ids) z += w[static_cast<size_t>(id)];
    text += z > 0 ? "1" : "0";
    for (int id : ids) text += " " + std::to_string(id) + ":1";
    text += "\n";
  }
  return text;
}

std::string TextConfig(const std::string& dir, const std::string& train) {
  const std::string path = dir + "/text.toml";
  WriteAll(path,
           "name = \"text\"\n[cluster]\nworkers = 2\nservers = 1\nconsistency = \"bsp\"\n"
           "[data]\nformat = \"libsvm\"\ntrain = \"" +
               train + "\"\ntest = \"" + dir +
               "/text-test.svm\"\n"
               "[model]\nkind = \"logistic_regression\"\n"
               "[optimizer]\nkind = \"sgd\"\nlr = 0.5\n"
               "[train]\nepochs = 2\nbatch_size = 16\nseed = 3\n");
  return path;
}

// The rows of "read N training rows" in a worker's log; -1 if absent.
int64_t RowsRead(const std::string& log) {
  const std::string text = ReadAll(log);
  std::smatch m;
  if (!std::regex_search(text, m, std::regex(R"(\] read (\d+) training rows, )"))) return -1;
  return std::stoll(m[1].str());
}

// data.train as a glob of text files: each worker reads only its share (the
// two shares' rows add up to the files'), the saved model holds the keys of
// both shares (eval reproduces the logged figures), and BSP with 2 workers
// trains the model of 1 worker reading both shares with the 2x batch.
TEST_F(TrainProcessTest, TextFilesAreReadShareByShareAndBspEqualsOneWorkerReadingBoth) {
  const std::string d = dir_->path() + "/text";
  std::filesystem::create_directories(d);
  // The first half of the rows has ids 1-150, the second 151-300: a saved
  // model with the keys of worker 0's share only would score otherwise.
  const std::string rows = PlantedLibSvm(1500, 5, 1, 150) + PlantedLibSvm(1500, 8, 151, 300);
  // Three files, the first half the rows: by file, 1 to share 0 and 2 to share 1.
  size_t half = 0;
  for (int line = 0; line < 1500; ++line) half = rows.find('\n', half) + 1;
  const size_t three_q = rows.find('\n', half + (rows.size() - half) / 2) + 1;
  WriteAll(d + "/part-0.svm", rows.substr(0, half));
  WriteAll(d + "/part-1.svm", rows.substr(half, three_q - half));
  WriteAll(d + "/part-2.svm", rows.substr(three_q));
  WriteAll(d + "/text-test.svm", PlantedLibSvm(1000, 6));
  const std::string config = TextConfig(d, d + "/part-*.svm");
  Outcome two = RunDistopt({"train", config, "--run-dir", d + "/run-2"}, d + "/train-2.out");
  ASSERT_EQ(two.code, 0) << two.output;
  const int64_t r0 = RowsRead(d + "/run-2/logs/worker-0.log");
  const int64_t r1 = RowsRead(d + "/run-2/logs/worker-1.log");
  EXPECT_EQ(r0 + r1, 3000) << r0 << " + " << r1;
  EXPECT_GT(r0, 1000);
  EXPECT_GT(r1, 1000);
  EXPECT_NE(ReadAll(d + "/run-2/logs/worker-1.log").find("part-1.svm; " + d + "/part-2.svm"),
            std::string::npos);
  Outcome one = RunDistopt(
      {"train", config, "--run-dir", d + "/run-1", "--workers", "1", "--set", "data.shares=2"},
      d + "/train-1.out");
  ASSERT_EQ(one.code, 0) << one.output;
  EXPECT_EQ(RowsRead(d + "/run-1/logs/worker-0.log"), 3000);

  double logged_loss = 0;
  int64_t reported_rows = 0;
  for (const auto& l : JsonLines(d + "/run-2/metrics.jsonl")) {
    if (l.value("type", "") == "eval") logged_loss = l.at("test_loss").get<double>();
    if (l.value("type", "") != "data") continue;
    // What each worker read, as its log said it.
    ASSERT_EQ(l.at("workers").size(), 2u) << l.dump();
    for (const auto& w : l.at("workers")) {
      const int64_t rank = w.at("rank").get<int64_t>();
      EXPECT_EQ(w.at("rows").get<int64_t>(), rank == 0 ? r0 : r1) << l.dump();
      EXPECT_GT(w.at("bytes").get<int64_t>(), 0) << l.dump();
      reported_rows += w.at("rows").get<int64_t>();
    }
  }
  EXPECT_EQ(reported_rows, 3000);
  Outcome e2 = RunDistopt({"eval", d + "/run-2", config}, d + "/eval-2.out", seconds(120));
  Outcome e1 = RunDistopt({"eval", d + "/run-1", config}, d + "/eval-1.out", seconds(120));
  ASSERT_EQ(e2.code, 0) << e2.output;
  ASSERT_EQ(e1.code, 0) << e1.output;
  const double loss2 = PrintedValue(e2.output, "test_loss");
  EXPECT_EQ(Fixed4(loss2), Fixed4(logged_loss)) << "the saved model lacks keys: " << e2.output;
  EXPECT_GT(PrintedValue(e2.output, "test_auc"), 0.8) << e2.output;
  // Only the order of float sums differs between the two runs.
  EXPECT_NEAR(PrintedValue(e1.output, "test_loss"), loss2, 1e-4) << e1.output << e2.output;
}

// A bad line in the second worker's share is reported with its line in the
// whole file, and ends the job.
TEST_F(TrainProcessTest, ABadLineInAShareNamesItsLineInTheWholeFile) {
  const std::string d = dir_->path() + "/badline";
  std::filesystem::create_directories(d);
  std::string rows = PlantedLibSvm(1000, 7);
  size_t at = 0;
  for (int line = 1; line < 900; ++line) at = rows.find('\n', at) + 1;
  rows.insert(at, "1 5:x\n");  // line 900
  WriteAll(d + "/bad.svm", rows);
  WriteAll(d + "/text-test.svm", PlantedLibSvm(100, 6));
  const std::string config = TextConfig(d, d + "/bad.svm");
  Outcome run =
      RunDistopt({"train", config, "--run-dir", d + "/run"}, d + "/train.out", seconds(120));
  EXPECT_NE(run.code, 0) << run.output;
  EXPECT_NE(run.output.find(d + "/bad.svm:900: expected a numeric feature value"),
            std::string::npos)
      << run.output;
}

TEST_F(TrainProcessTest, UnknownConfigKeyFailsNamingFileLineAndKey) {
  const std::string d = dir_->path();
  // The misspelt key is the last line of the file.
  const std::string config = WriteConfig("typo.toml", d + "/test-images", "epoch = 3\n");
  const std::string text = ReadAll(config);
  const int line = static_cast<int>(std::count(text.begin(), text.end(), '\n'));
  const std::string run = d + "/run-typo";
  Outcome train =
      RunDistopt({"train", config, "--run-dir", run}, d + "/train-typo.out", seconds(60));
  EXPECT_EQ(train.code, 1) << train.output;
  EXPECT_NE(train.output.find(config + ":" + std::to_string(line)), std::string::npos)
      << "expected " << config << ":" << line << " in:\n"
      << train.output;
  EXPECT_NE(train.output.find("epoch"), std::string::npos) << train.output;
  EXPECT_NE(train.output.find("epochs"), std::string::npos) << "no suggestion: " << train.output;
  // Nothing was started.
  EXPECT_FALSE(std::filesystem::exists(run)) << "a run folder was made for a bad config";
}

TEST_F(TrainProcessTest, AWorkerThatCannotReadItsDataEndsTheJobAndLeavesNoProcess) {
  const std::string d = dir_->path();
  // A test image file cut short in the middle of its pixels.
  const std::string corrupt = d + "/corrupt-images";
  WriteAll(corrupt, ReadAll(d + "/test-images").substr(0, 5000));
  const std::string config = WriteConfig("corrupt.toml", corrupt);
  const std::string run = d + "/run-corrupt";
  Outcome train =
      RunDistopt({"train", config, "--run-dir", run}, d + "/train-corrupt.out", seconds(120));
  EXPECT_NE(train.code, 0) << train.output;
  EXPECT_NE(train.code, -1) << "the launcher hung";
  // The failing node is named, with its log quoted (which names the file).
  EXPECT_NE(train.output.find("worker/"), std::string::npos) << train.output;
  EXPECT_NE(train.output.find("corrupt-images"), std::string::npos) << train.output;

  // Every node's command line names the run folder: none may outlive the
  // launcher. Their parent-death signal is asynchronous, so allow them a
  // moment to go (a hard deadline, not a timing assertion).
  std::vector<pid_t> left = ProcessesMentioning(run);
  Deadline deadline = Deadline::After(seconds(20));
  while (!left.empty() && !deadline.expired()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    left = ProcessesMentioning(run);
  }
  for (pid_t p : left) {
    ADD_FAILURE() << "process " << p << " of the failed job is still running: "
                  << ReadAll("/proc/" + std::to_string(p) + "/cmdline");
    kill(p, SIGKILL);
  }
}

}  // namespace
}  // namespace distopt
