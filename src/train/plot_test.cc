#include "train/plot.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/file_util.h"

namespace distopt {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// A small XML well-formedness check (the subset an SVG writer emits: a
// declaration, comments, elements, quoted attributes, text, the predefined
// and numeric entities). Returns "" when well-formed, else what is wrong.

bool IsNameStart(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':';
}
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9') || c == '-' || c == '.'; }

// Character data or an attribute value: '<' is never allowed, '&' only as
// an entity reference.
std::string CheckChars(std::string_view s, bool attribute) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<') return "raw '<' in " + std::string(attribute ? "attribute" : "text");
    if (s[i] == '&') {
      size_t semi = s.find(';', i);
      if (semi == std::string_view::npos) return "unterminated entity";
      std::string_view ref = s.substr(i + 1, semi - i - 1);
      static const std::set<std::string_view> kNamed = {"amp", "lt", "gt", "quot", "apos"};
      bool numeric = ref.size() > 1 && ref[0] == '#' &&
                     std::all_of(ref.begin() + 1, ref.end(),
                                 [](char c) { return std::isxdigit(c) || c == 'x'; });
      if (!kNamed.count(ref) && !numeric) return "unknown entity &" + std::string(ref) + ";";
    }
  }
  return "";
}

std::string CheckXml(std::string_view doc) {
  std::vector<std::string> open;
  bool seen_root = false;
  size_t i = 0;
  auto skip_space = [&] {
    while (i < doc.size() && std::isspace(static_cast<unsigned char>(doc[i]))) ++i;
  };
  auto read_name = [&]() -> std::string {
    size_t start = i;
    if (i >= doc.size() || !IsNameStart(doc[i])) return "";
    while (i < doc.size() && IsNameChar(doc[i])) ++i;
    return std::string(doc.substr(start, i - start));
  };
  if (doc.substr(0, 5) == "<?xml") {
    size_t end = doc.find("?>");
    if (end == std::string_view::npos) return "unterminated declaration";
    i = end + 2;
  }
  while (i < doc.size()) {
    size_t lt = doc.find('<', i);
    std::string_view text = doc.substr(i, lt == std::string_view::npos ? doc.size() - i : lt - i);
    if (open.empty()) {
      if (text.find_first_not_of(" \t\r\n") != std::string_view::npos) return "text outside root";
    } else if (std::string e = CheckChars(text, false); !e.empty()) {
      return e;
    }
    if (lt == std::string_view::npos) break;
    i = lt + 1;
    if (doc.substr(i, 3) == "!--") {
      size_t end = doc.find("-->", i);
      if (end == std::string_view::npos) return "unterminated comment";
      i = end + 3;
      continue;
    }
    if (i < doc.size() && doc[i] == '/') {
      ++i;
      std::string name = read_name();
      skip_space();
      if (i >= doc.size() || doc[i] != '>') return "bad end tag </" + name;
      ++i;
      if (open.empty() || open.back() != name) return "mismatched </" + name + ">";
      open.pop_back();
      continue;
    }
    std::string name = read_name();
    if (name.empty()) return "bad tag name at offset " + std::to_string(i);
    if (open.empty() && seen_root) return "second root element <" + name + ">";
    seen_root = true;
    std::set<std::string> attrs;
    for (;;) {
      size_t before = i;
      skip_space();
      if (i >= doc.size()) return "unterminated tag <" + name;
      if (doc[i] == '>') {
        ++i;
        open.push_back(name);
        break;
      }
      if (doc.substr(i, 2) == "/>") {
        i += 2;
        break;
      }
      if (i == before) return "no space before attribute in <" + name;
      std::string attr = read_name();
      if (attr.empty()) return "bad attribute in <" + name;
      if (!attrs.insert(attr).second) return "duplicate attribute " + attr + " in <" + name;
      if (i >= doc.size() || doc[i] != '=') return "attribute " + attr + " without value";
      ++i;
      if (i >= doc.size() || (doc[i] != '"' && doc[i] != '\'')) return "unquoted " + attr;
      char quote = doc[i++];
      size_t close = doc.find(quote, i);
      if (close == std::string_view::npos) return "unterminated value of " + attr;
      if (std::string e = CheckChars(doc.substr(i, close - i), true); !e.empty()) return e;
      i = close + 1;
    }
  }
  if (!open.empty()) return "unclosed <" + open.back() + ">";
  if (!seen_root) return "no root element";
  return "";
}

TEST(XmlCheckTest, CatchesWhatMakesXmlInvalid) {
  EXPECT_EQ(CheckXml("<?xml version=\"1.0\"?>\n<a x=\"1\"><b/>t &amp; &#x41;</a>\n"), "");
  EXPECT_NE(CheckXml("<a><b></a></b>"), "");
  EXPECT_NE(CheckXml("<a>"), "");
  EXPECT_NE(CheckXml("<a>x & y</a>"), "");
  EXPECT_NE(CheckXml("<a x=\"<\"/>"), "");
  EXPECT_NE(CheckXml("<a x=1/>"), "");
  EXPECT_NE(CheckXml("<a x=\"1\" x=\"2\"/>"), "");
  EXPECT_NE(CheckXml("<a/><b/>"), "");
}

// ---------------------------------------------------------------------------
// Reading back what WritePlots drew.

// The value of `attr` in the first `<tag ...` that has class="`klass`".
std::string AttrOf(const std::string& svg, const std::string& tag, const std::string& klass,
                   const std::string& attr) {
  std::string needle = "<" + tag + " class=\"" + klass + "\"";
  size_t at = svg.find(needle);
  if (at == std::string::npos) return "<missing>";
  size_t end = svg.find('>', at);
  size_t a = svg.find(" " + attr + "=\"", at);
  if (a == std::string::npos || a > end) return "<missing>";
  a += attr.size() + 3;
  return svg.substr(a, svg.find('"', a) - a);
}

std::vector<std::pair<double, double>> ParsePoints(const std::string& points) {
  std::vector<std::pair<double, double>> out;
  size_t i = 0;
  while (i < points.size()) {
    size_t comma = points.find(',', i), space = points.find(' ', i);
    if (comma == std::string::npos) break;
    if (space == std::string::npos) space = points.size();
    out.push_back({std::stod(points.substr(i, comma - i)),
                   std::stod(points.substr(comma + 1, space - comma - 1))});
    i = space + 1;
  }
  return out;
}

// The centres of the eval markers of a series, in order.
std::vector<std::pair<double, double>> Markers(const std::string& svg, const std::string& klass) {
  std::vector<std::pair<double, double>> out;
  size_t at = svg.find("<g class=\"markers " + klass + "\"");
  if (at == std::string::npos) return out;
  size_t end = svg.find("</g>", at);
  for (size_t c = svg.find("<circle cx=\"", at); c < end; c = svg.find("<circle cx=\"", c + 1)) {
    size_t x = c + 12, y = svg.find("cy=\"", c) + 4;
    out.push_back({std::stod(svg.substr(x)), std::stod(svg.substr(y))});
  }
  return out;
}

size_t CountOf(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t at = s.find(needle); at != std::string::npos; at = s.find(needle, at + 1)) ++n;
  return n;
}

class PlotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = fs::temp_directory_path().string() + "/distopt_plot_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string WriteMetrics(const std::string& text) {
    std::string path = dir_ + "/metrics.jsonl";
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  std::string Read(const std::string& name) {
    Result<std::string> r = ReadFile(dir_ + "/plots/" + name, 1 << 24);
    EXPECT_TRUE(r.ok()) << name << ": " << r.status().ToString();
    return r.ok() ? *r : "";
  }
  std::set<std::string> Plot(const std::string& metrics, const std::string& title = {}) {
    std::vector<std::string> written;
    Status s = WritePlots(WriteMetrics(metrics), dir_ + "/plots", &written, title);
    EXPECT_TRUE(s.ok()) << s.ToString();
    std::set<std::string> names;
    for (const std::string& p : written) {
      EXPECT_EQ(p.rfind(dir_ + "/plots/", 0), 0u) << p;
      std::string name = p.substr(p.find_last_of('/') + 1);
      names.insert(name);
      EXPECT_EQ(CheckXml(Read(name)), "") << p;
    }
    EXPECT_EQ(names.size(), written.size());
    return names;
  }

  std::string dir_;
};

// Two epochs of four steps: 8 train records, an eval after each epoch, and
// the kinds of junk a live file can hold.
std::string SyntheticRun() {
  std::string m;
  m +=
      R"({"type":"start","epochs":2,"steps_per_epoch":4,"workers":4,"servers":2,"batch_size":64,"time":1700000000})"
      "\n";
  for (int step = 1; step <= 8; ++step) {
    m += R"({"type":"train","epoch":)" + std::to_string((step - 1) / 4 + 1) + R"(,"step":)" +
         std::to_string(step) + R"(,"loss":)" + std::to_string(2.0 - 0.2 * step) +
         R"(,"samples_per_s":41000.5,"bytes_sent":123,"bytes_received":456,"elapsed_s":)" +
         std::to_string(0.5 * step) + R"(,"future_field":[1,{"x":2}]})" + "\n";
    if (step == 4) {
      m +=
          R"({"type":"eval","epoch":1,"step":4,"test_loss":1.3,"test_accuracy":0.71,"elapsed_s":2.2})"
          "\n";
      m += "this is not json\n";
      m += R"({"type":"train","epoch":1,"step":4,"loss":"high"})"
           "\n";  // mistyped: skipped
      m += "[1,2,3]\n";
      m += R"({"type":"heartbeat","step":4})"
           "\n";
      m += "{\"type\":\"train\",\"note\":\"\xff\xfe\",\"loss\":1}\n";  // invalid UTF-8: skipped
      m += "\n";
    }
  }
  m += R"({"type":"eval","epoch":2,"step":8,"test_loss":0.5,"test_accuracy":0.84,"elapsed_s":4.4})"
       "\n";
  m += R"({"type":"done","elapsed_s":4.5})"
       "\n";
  m += R"({"type":"train","epoch":3,"step":9,"lo)";  // cut short by a writer still at work
  return m;
}

TEST(NiceTicksTest, ZeroToPointEightThreeStepsByPointTwo) {
  Ticks t = NiceTicks(0, 0.83);
  EXPECT_DOUBLE_EQ(t.step, 0.2);
  std::vector<double> want = {0, 0.2, 0.4, 0.6, 0.8};
  ASSERT_EQ(t.values.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(t.values[i], want[i], 1e-12) << i;
}

TEST(NiceTicksTest, WideRangeStepsByTwentyThousand) {
  Ticks t = NiceTicks(1234, 98765);
  EXPECT_DOUBLE_EQ(t.step, 20000);
  EXPECT_EQ(t.values, (std::vector<double>{20000, 40000, 60000, 80000}));
}

TEST(NiceTicksTest, OtherRanges) {
  EXPECT_EQ(NiceTicks(0, 10).values, (std::vector<double>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(NiceTicks(-3.7, 2.1).values, (std::vector<double>{-3, -2, -1, 0, 1, 2}));
  Ticks small = NiceTicks(0.0012, 0.0049);
  EXPECT_NEAR(small.step, 0.0005, 1e-15);
  ASSERT_EQ(small.values.size(), 7u);
  EXPECT_NEAR(small.values.front(), 0.0015, 1e-15);
  EXPECT_NEAR(small.values.back(), 0.0045, 1e-15);
  // Reversed bounds are the same range.
  EXPECT_EQ(NiceTicks(10, 0).values, NiceTicks(0, 10).values);
  // A flat series (every value 5) still gets ticks, around 5.
  Ticks flat = NiceTicks(5, 5);
  ASSERT_GE(flat.values.size(), 3u);
  EXPECT_LT(flat.values.front(), 5);
  EXPECT_GT(flat.values.back(), 5);
  EXPECT_TRUE(NiceTicks(0, std::nan("")).values.empty());
}

TEST(NiceTicksTest, StepsAreOneTwoFiveTimesAPowerOfTenAndStayInRange) {
  const std::pair<double, double> ranges[] = {
      {0, 1},     {0.3, 0.31}, {-1e6, 3e6}, {1e-7, 9e-7},   {0.84, 0.97}, {17, 1e5},
      {-5, -4.2}, {0, 7},      {0, 0.0831}, {123.4, 123.9}, {2.3, 0.05},  {0, 36000}};
  for (auto [lo, hi] : ranges) {
    SCOPED_TRACE(std::to_string(lo) + ".." + std::to_string(hi));
    Ticks t = NiceTicks(lo, hi);
    double mantissa = t.step / std::pow(10.0, std::floor(std::log10(t.step)));
    EXPECT_TRUE(std::fabs(mantissa - 1) < 1e-9 || std::fabs(mantissa - 2) < 1e-9 ||
                std::fabs(mantissa - 5) < 1e-9)
        << t.step;
    ASSERT_GE(t.values.size(), 3u);
    EXPECT_LE(t.values.size(), 10u);
    double a = std::min(lo, hi), b = std::max(lo, hi), eps = t.step * 1e-6;
    for (size_t i = 0; i < t.values.size(); ++i) {
      EXPECT_GE(t.values[i], a - eps);
      EXPECT_LE(t.values[i], b + eps);
      double k = t.values[i] / t.step;
      EXPECT_NEAR(k, std::round(k), 1e-6);
      if (i > 0) {
        EXPECT_NEAR(t.values[i] - t.values[i - 1], t.step, eps);
      }
    }
  }
}

TEST_F(PlotTest, WritesLossAndAccuracyChartsWithOnePointPerRecord) {
  std::set<std::string> names = Plot(SyntheticRun());
  EXPECT_EQ(names, (std::set<std::string>{"loss_vs_time.svg", "loss_vs_epoch.svg",
                                          "accuracy_vs_time.svg", "accuracy_vs_epoch.svg"}));

  std::string loss = Read("loss_vs_epoch.svg");
  ASSERT_EQ(CheckXml(loss), "");
  // The 8 valid train records, not the junk and not the cut-off last line.
  auto train = ParsePoints(AttrOf(loss, "polyline", "series train-loss", "points"));
  ASSERT_EQ(train.size(), 8u);
  EXPECT_EQ(ParsePoints(AttrOf(loss, "polyline", "series test-loss", "points")).size(), 2u);
  auto evals = Markers(loss, "test-loss");
  ASSERT_EQ(evals.size(), 2u);
  EXPECT_EQ(CountOf(loss, "<title>"), 2u);  // a tooltip per eval marker
  EXPECT_NE(loss.find("<title>epoch 1.00: test loss 1.30</title>"), std::string::npos);
  EXPECT_NE(loss.find("<title>epoch 2.00: test loss 0.500</title>"), std::string::npos);
  // Train step s sits at epoch s/4: on the line through the evals at epochs
  // 1 (step 4) and 2 (step 8).
  double px_per_epoch = evals[1].first - evals[0].first;
  ASSERT_GT(px_per_epoch, 100);
  for (int s = 1; s <= 8; ++s) {
    EXPECT_NEAR(train[s - 1].first, evals[0].first + (s / 4.0 - 1) * px_per_epoch, 0.15) << s;
  }
  // Loss falls, so each point is drawn lower (larger y) than the one before.
  for (size_t i = 1; i < train.size(); ++i) EXPECT_GT(train[i].second, train[i - 1].second);
  EXPECT_NE(loss.find(">train loss</text>"), std::string::npos);  // the legend
  EXPECT_NE(loss.find(">test loss</text>"), std::string::npos);
  EXPECT_NE(loss.find(">epoch</text>"), std::string::npos);  // the x axis title
  EXPECT_NE(loss.find("4 workers, 2 servers, batch 64, 2 epochs"), std::string::npos);

  std::string loss_t = Read("loss_vs_time.svg");
  EXPECT_EQ(ParsePoints(AttrOf(loss_t, "polyline", "series train-loss", "points")).size(), 8u);
  EXPECT_NE(loss_t.find(">elapsed time (s)</text>"), std::string::npos);

  std::string acc = Read("accuracy_vs_epoch.svg");
  EXPECT_EQ(AttrOf(acc, "polyline", "series train-accuracy", "points"), "<missing>");
  EXPECT_EQ(Markers(acc, "test-accuracy").size(), 2u);
  EXPECT_NE(acc.find("<title>epoch 2.00: test accuracy 0.840</title>"), std::string::npos);
  // Accuracy rises: the second marker is drawn higher.
  auto acc_points = Markers(acc, "test-accuracy");
  EXPECT_LT(acc_points[1].second, acc_points[0].second);
}

TEST_F(PlotTest, TitleIsEscaped) {
  Plot(SyntheticRun(), "run <7> & \"co\"\x01");
  std::string svg = Read("loss_vs_time.svg");
  EXPECT_EQ(CheckXml(svg), "");
  EXPECT_NE(svg.find(">run &lt;7&gt; &amp; &quot;co&quot;?: loss vs time</text>"),
            std::string::npos);
}

TEST_F(PlotTest, NamesTheMetricChartAfterTheMetricTheEvalsCarry) {
  std::string m =
      R"({"type":"start","epochs":3,"steps_per_epoch":100})"
      "\n"
      R"({"type":"train","epoch":1,"step":50,"loss":0.7,"elapsed_s":100})"
      "\n"
      R"({"type":"eval","epoch":1,"step":100,"test_loss":0.6,"test_auc":0.71,"elapsed_s":200})"
      "\n"
      R"({"type":"train","epoch":2,"step":150,"loss":0.6,"elapsed_s":300})"
      "\n"
      R"({"type":"eval","epoch":2,"step":200,"test_loss":0.55,"test_auc":0.75,"elapsed_s":400})"
      "\n";
  std::set<std::string> names = Plot(m);
  EXPECT_EQ(names, (std::set<std::string>{"loss_vs_time.svg", "loss_vs_epoch.svg",
                                          "auc_vs_time.svg", "auc_vs_epoch.svg"}));
  std::string auc = Read("auc_vs_time.svg");
  EXPECT_EQ(Markers(auc, "test-auc").size(), 2u);
  EXPECT_NE(auc.find(">test AUC</text>"), std::string::npos);
  // 400 s of run is labelled in minutes.
  EXPECT_NE(auc.find(">elapsed time (min)</text>"), std::string::npos);

  std::string r = R"({"type":"eval","epoch":1,"step":10,"test_rmse":3.5,"elapsed_s":1})"
                  "\n"
                  R"({"type":"eval","epoch":2,"step":20,"test_rmse":2.5,"elapsed_s":2})"
                  "\n";
  fs::remove_all(dir_ + "/plots");
  EXPECT_EQ(Plot(r), (std::set<std::string>{"rmse_vs_time.svg", "rmse_vs_epoch.svg"}));
}

TEST_F(PlotTest, EpochFieldStandsInWhenThereIsNoStartRecord) {
  std::string m = R"({"type":"train","epoch":1,"step":10,"loss":0.9,"elapsed_s":1})"
                  "\n"
                  R"({"type":"train","epoch":2,"step":20,"loss":0.8,"elapsed_s":2})"
                  "\n"
                  R"({"type":"train","epoch":3,"step":30,"loss":0.7,"elapsed_s":3})"
                  "\n";
  EXPECT_EQ(Plot(m), (std::set<std::string>{"loss_vs_time.svg", "loss_vs_epoch.svg"}));
  auto pts =
      ParsePoints(AttrOf(Read("loss_vs_epoch.svg"), "polyline", "series train-loss", "points"));
  ASSERT_EQ(pts.size(), 3u);
  EXPECT_NEAR(pts[2].first - pts[1].first, pts[1].first - pts[0].first, 0.15);
}

TEST_F(PlotTest, NothingToPlotWritesNothing) {
  EXPECT_TRUE(Plot(R"({"type":"start","epochs":2,"steps_per_epoch":4})"
                   "\n"
                   "garbage\n")
                  .empty());
  EXPECT_FALSE(fs::exists(dir_ + "/plots/loss_vs_time.svg"));
}

TEST_F(PlotTest, MissingMetricsFileIsNotFound) {
  std::vector<std::string> written;
  Status s = WritePlots(dir_ + "/nope.jsonl", dir_ + "/plots", &written);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_TRUE(written.empty());
}

}  // namespace
}  // namespace distopt
