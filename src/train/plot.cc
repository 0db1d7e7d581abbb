#include "train/plot.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

#include "base/file_util.h"

namespace distopt {
namespace {

using json = nlohmann::json;

// metrics.jsonl grows by a few hundred bytes per logged step; a gigabyte is
// far past any real run and bounds what one call may allocate.
constexpr size_t kMaxMetricsBytes = size_t{1} << 30;

// ---------------------------------------------------------------------------
// Reading metrics.jsonl

struct TrainPoint {
  std::optional<double> epoch, step, elapsed_s;
  double loss = 0;
};

// The test metrics a chart is drawn for, in the order charts are written.
// `key` is the eval record's field, `file` the chart's name stem.
struct MetricInfo {
  const char* key;
  const char* file;
  const char* label;
};
constexpr std::array<MetricInfo, 3> kMetrics = {{
    {"test_accuracy", "accuracy", "test accuracy"},
    {"test_auc", "auc", "test AUC"},
    {"test_rmse", "rmse", "test RMSE"},
}};

struct EvalPoint {
  std::optional<double> epoch, step, elapsed_s;
  std::optional<double> test_loss;
  std::array<std::optional<double>, kMetrics.size()> metrics;
};

struct RunMetrics {
  // From the latest start record (0 when absent).
  double steps_per_epoch = 0;
  int64_t epochs = 0, workers = 0, servers = 0, batch_size = 0;
  std::vector<TrainPoint> train;
  std::vector<EvalPoint> evals;
};

// A finite number under `key`, or nothing: a missing field, a string where a
// number belongs, NaN or infinity (a diverged loss) are all just "no value".
std::optional<double> Number(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  double v = it->get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

int64_t Count(const json& j, const char* key) {
  std::optional<double> v = Number(j, key);
  if (!v || *v < 0 || *v > 1e15) return 0;
  return static_cast<int64_t>(*v);
}

void ParseLine(std::string_view line, RunMetrics* run) {
  // No exceptions: a line that does not parse yields a discarded value.
  json j = json::parse(line, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return;
  auto type_it = j.find("type");
  if (type_it == j.end() || !type_it->is_string()) return;
  const std::string& type = type_it->get_ref<const std::string&>();
  if (type == "start") {
    run->steps_per_epoch = static_cast<double>(Count(j, "steps_per_epoch"));
    run->epochs = Count(j, "epochs");
    run->workers = Count(j, "workers");
    run->servers = Count(j, "servers");
    run->batch_size = Count(j, "batch_size");
  } else if (type == "train") {
    std::optional<double> loss = Number(j, "loss");
    if (!loss) return;
    run->train.push_back({Number(j, "epoch"), Number(j, "step"), Number(j, "elapsed_s"), *loss});
  } else if (type == "eval") {
    EvalPoint e{
        Number(j, "epoch"), Number(j, "step"), Number(j, "elapsed_s"), Number(j, "test_loss"), {}};
    bool any = e.test_loss.has_value();
    for (size_t m = 0; m < kMetrics.size(); ++m) {
      e.metrics[m] = Number(j, kMetrics[m].key);
      any |= e.metrics[m].has_value();
    }
    if (any) run->evals.push_back(e);
  }
  // Other types ("done", ...) carry nothing to plot.
}

RunMetrics ParseMetrics(std::string_view text) {
  RunMetrics run;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    // The last line may be cut short by a writer still at work; if so it
    // fails to parse (a cut object lacks its closing brace) and is skipped.
    ParseLine(line, &run);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return run;
}

// Position on the epoch axis. The step (global, counted from 0) divided by
// steps per epoch is exact mid-epoch; the record's own epoch field is the
// fallback when the start record is missing.
std::optional<double> EpochX(std::optional<double> epoch, std::optional<double> step,
                             double steps_per_epoch) {
  if (step && steps_per_epoch > 0) return *step / steps_per_epoch;
  return epoch;
}

// ---------------------------------------------------------------------------
// Formatting

// Fixed-point text independent of the process locale (printf is not).
std::string Fixed(double v, int decimals) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed, decimals);
  if (ec != std::errc()) return "0";
  std::string s(buf, end);
  if (s.size() > 1 && s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
  return s;
}

// Escapes text for XML content and attribute values. Characters XML 1.0
// forbids (controls) and bytes that are not UTF-8 become '?', so a run name
// from anywhere cannot make the file unreadable.
std::string XmlEscape(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size();) {
    auto c = static_cast<unsigned char>(in[i]);
    if (c < 0x80) {
      switch (c) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&quot;";
          break;
        case '\'':
          out += "&apos;";
          break;
        default:
          out += (c < 0x20 && c != '\t' && c != '\n' && c != '\r') ? '?' : static_cast<char>(c);
      }
      ++i;
      continue;
    }
    // A well-formed UTF-8 sequence (no overlongs, surrogates or > U+10FFFF).
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    bool ok = len != 0 && c <= 0xF4 && i + len <= in.size();
    for (size_t k = 1; ok && k < len; ++k)
      ok = (static_cast<unsigned char>(in[i + k]) & 0xC0) == 0x80;
    if (ok && len >= 3) {
      auto c1 = static_cast<unsigned char>(in[i + 1]);
      if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0) || (c == 0xF0 && c1 < 0x90) ||
          (c == 0xF4 && c1 >= 0x90)) {
        ok = false;
      }
    }
    if (!ok) {
      out += '?';
      ++i;
      continue;
    }
    out.append(in.substr(i, len));
    i += len;
  }
  return out;
}

// Tick labels share one scale and decimal count, chosen from the step, so a
// column reads 0.2, 0.4, ... and never 0.6000000000000001.
struct TickFormat {
  double scale = 1;
  const char* suffix = "";
  int decimals = 0;

  explicit TickFormat(const Ticks& ticks) {
    double max_abs = 0;
    for (double v : ticks.values) max_abs = std::max(max_abs, std::fabs(v));
    if (max_abs >= 1e9) {
      scale = 1e9, suffix = "G";
    } else if (max_abs >= 1e6) {
      scale = 1e6, suffix = "M";
    } else if (max_abs >= 1e4) {
      scale = 1e3, suffix = "k";
    }
    double s = ticks.step / scale;
    decimals = s > 0 ? std::clamp(static_cast<int>(std::ceil(-std::log10(s) - 1e-9)), 0, 12) : 0;
  }
  std::string operator()(double v) const { return Fixed(v / scale, decimals) + suffix; }
};

// Three significant digits for tooltips: "0.412", "41.2", "4120".
std::string Short(double v) {
  double a = std::fabs(v);
  int decimals = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : a >= 0.01 ? 3 : 6;
  return Fixed(v, decimals);
}

// ---------------------------------------------------------------------------
// Charts

struct Series {
  std::string name;   // legend text
  std::string klass;  // CSS class: lets a reader (or a test) find the series
  std::string color;
  bool markers = false;  // evals: circles joined by a thin dashed line
  std::vector<std::pair<double, double>> points;
};

struct Chart {
  std::string title, subtitle, x_title, y_title;
  std::vector<Series> series;
  bool empty() const {
    return std::all_of(series.begin(), series.end(),
                       [](const Series& s) { return s.points.empty(); });
  }
};

constexpr double kWidth = 800, kHeight = 500;
constexpr double kLeft = 76, kRight = 776, kTop = 60, kBottom = 440;  // the plot area

struct Range {
  double lo, hi;
};

// The data's extent with a margin, so no point sits on the frame; a flat
// series (every loss equal) still gets a visible band.
Range PadRange(double lo, double hi, double frac) {
  if (hi - lo <= 1e-12 * std::max(1.0, std::fabs(hi))) {
    double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    return {lo - pad, hi + pad};
  }
  double pad = (hi - lo) * frac;
  return {lo - pad, hi + pad};
}

class Svg {
 public:
  void Open(std::string_view tag, std::string_view attrs) {
    out_ += "<";
    out_ += tag;
    if (!attrs.empty()) out_ += " ", out_ += attrs;
    out_ += ">\n";
  }
  void Close(std::string_view tag) { out_ += "</", out_ += tag, out_ += ">\n"; }
  void Empty(std::string_view tag, std::string_view attrs) {
    out_ += "<", out_ += tag, out_ += " ", out_ += attrs, out_ += "/>\n";
  }
  void Text(double x, double y, std::string_view attrs, std::string_view text) {
    out_ += "<text x=\"" + Fixed(x, 1) + "\" y=\"" + Fixed(y, 1) + "\"";
    if (!attrs.empty()) out_ += " ", out_ += attrs;
    out_ += ">" + XmlEscape(text) + "</text>\n";
  }
  void Line(double x1, double y1, double x2, double y2, std::string_view attrs = {}) {
    out_ += "<line x1=\"" + Fixed(x1, 1) + "\" y1=\"" + Fixed(y1, 1) + "\" x2=\"" + Fixed(x2, 1) +
            "\" y2=\"" + Fixed(y2, 1) + "\"";
    if (!attrs.empty()) out_ += " ", out_ += attrs;
    out_ += "/>\n";
  }
  std::string& raw() { return out_; }

 private:
  std::string out_;
};

std::string Attr(std::string_view name, std::string_view value) {
  return std::string(name) + "=\"" + XmlEscape(value) + "\"";
}

// Where a chart's data lands: the padded ranges, their ticks, and the map
// from data to plot-area pixels.
struct Frame {
  Range xr, yr;
  Ticks x_ticks, y_ticks;
  double px(double x) const { return kLeft + (x - xr.lo) / (xr.hi - xr.lo) * (kRight - kLeft); }
  double py(double y) const { return kBottom - (y - yr.lo) / (yr.hi - yr.lo) * (kBottom - kTop); }
};

Frame FitFrame(const Chart& chart) {
  double x_min = std::numeric_limits<double>::infinity(), x_max = -x_min;
  double y_min = x_min, y_max = -x_min;
  for (const Series& s : chart.series) {
    for (auto [x, y] : s.points) {
      x_min = std::min(x_min, x), x_max = std::max(x_max, x);
      y_min = std::min(y_min, y), y_max = std::max(y_max, y);
    }
  }
  // Time and epochs start at 0: the x axis shows the run from its beginning.
  Frame f;
  f.xr = PadRange(std::min(0.0, x_min), x_max, 0.02);
  if (x_min >= 0) f.xr.lo = 0;
  f.yr = PadRange(y_min, y_max, 0.05);
  f.x_ticks = NiceTicks(f.xr.lo, f.xr.hi, 8);
  f.y_ticks = NiceTicks(f.yr.lo, f.yr.hi, 6);
  return f;
}

// The titles, the grid with its tick labels, the frame and the axis titles.
void DrawAxes(Svg& svg, const Chart& chart, const Frame& f) {
  svg.Text(kWidth / 2, 24, "text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\"",
           chart.title);
  if (!chart.subtitle.empty()) {
    svg.Text(kWidth / 2, 43, "text-anchor=\"middle\" fill=\"#555\"", chart.subtitle);
  }
  TickFormat x_fmt(f.x_ticks), y_fmt(f.y_ticks);
  svg.Open("g", "class=\"grid\" stroke=\"#e3e3e3\" stroke-width=\"1\"");
  for (double v : f.x_ticks.values) svg.Line(f.px(v), kTop, f.px(v), kBottom);
  for (double v : f.y_ticks.values) svg.Line(kLeft, f.py(v), kRight, f.py(v));
  svg.Close("g");
  svg.Open("g", "class=\"x-ticks\" text-anchor=\"middle\" fill=\"#333\"");
  for (double v : f.x_ticks.values) svg.Text(f.px(v), kBottom + 18, "", x_fmt(v));
  svg.Close("g");
  svg.Open("g", "class=\"y-ticks\" text-anchor=\"end\" fill=\"#333\"");
  for (double v : f.y_ticks.values) svg.Text(kLeft - 8, f.py(v) + 4, "", y_fmt(v));
  svg.Close("g");
  svg.Empty("rect", "x=\"" + Fixed(kLeft, 1) + "\" y=\"" + Fixed(kTop, 1) + "\" width=\"" +
                        Fixed(kRight - kLeft, 1) + "\" height=\"" + Fixed(kBottom - kTop, 1) +
                        "\" fill=\"none\" stroke=\"#333\"");
  svg.Text((kLeft + kRight) / 2, kHeight - 22, "text-anchor=\"middle\" font-size=\"13\"",
           chart.x_title);
  double y_mid = (kTop + kBottom) / 2;
  svg.Text(20, y_mid,
           "text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 20 " + Fixed(y_mid, 1) +
               ")\"",
           chart.y_title);
}

// Lines first, eval markers (with a tooltip each) on top.
void DrawSeries(Svg& svg, const Chart& chart, const Frame& f) {
  for (const Series& s : chart.series) {
    if (s.points.empty()) continue;
    std::string pts;
    for (auto [x, y] : s.points) {
      if (!pts.empty()) pts += ' ';
      pts += Fixed(f.px(x), 1) + "," + Fixed(f.py(y), 1);
    }
    std::string style = s.markers ? "stroke-width=\"1.2\" stroke-dasharray=\"4 3\""
                                  : "stroke-width=\"1.6\" stroke-linejoin=\"round\"";
    svg.Empty("polyline", Attr("class", "series " + s.klass) + " fill=\"none\" " +
                              Attr("stroke", s.color) + " " + style + " points=\"" + pts + "\"");
  }
  for (const Series& s : chart.series) {
    // A lone train point draws no line; give it a dot so it is visible.
    if (!s.markers && s.points.size() != 1) continue;
    svg.Open("g", Attr("class", "markers " + s.klass) + " " + Attr("fill", s.color) +
                      " stroke=\"white\" stroke-width=\"1\"");
    for (auto [x, y] : s.points) {
      svg.Open("circle",
               "cx=\"" + Fixed(f.px(x), 1) + "\" cy=\"" + Fixed(f.py(y), 1) + "\" r=\"4\"");
      svg.raw() += "<title>" +
                   XmlEscape(chart.x_title + " " + Short(x) + ": " + s.name + " " + Short(y)) +
                   "</title>\n";
      svg.Close("circle");
    }
    svg.Close("g");
  }
}

// The legend, in the corner of the plot area that covers the fewest points.
void DrawLegend(Svg& svg, const Chart& chart, const Frame& f) {
  std::vector<const Series*> shown;
  size_t longest = 0;
  for (const Series& s : chart.series) {
    if (s.points.empty()) continue;
    shown.push_back(&s);
    longest = std::max(longest, s.name.size());
  }
  double lw = 44 + 7.0 * static_cast<double>(longest), lh = 8 + 18.0 * shown.size();
  std::array<std::pair<double, double>, 4> corners = {{{kRight - 10 - lw, kTop + 10},
                                                       {kLeft + 10, kTop + 10},
                                                       {kRight - 10 - lw, kBottom - 10 - lh},
                                                       {kLeft + 10, kBottom - 10 - lh}}};
  size_t best_hits = SIZE_MAX;
  std::pair<double, double> at = corners[0];
  for (auto [cx, cy] : corners) {
    size_t hits = 0;
    for (const Series* s : shown) {
      for (auto [x, y] : s->points) {
        double u = f.px(x), v = f.py(y);
        hits += u >= cx - 4 && u <= cx + lw + 4 && v >= cy - 4 && v <= cy + lh + 4;
      }
    }
    if (hits < best_hits) best_hits = hits, at = {cx, cy};
  }
  auto [lx, ly] = at;
  svg.Open("g", "class=\"legend\"");
  svg.Empty("rect", "x=\"" + Fixed(lx, 1) + "\" y=\"" + Fixed(ly, 1) + "\" width=\"" +
                        Fixed(lw, 1) + "\" height=\"" + Fixed(lh, 1) +
                        "\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#bbb\"");
  for (size_t i = 0; i < shown.size(); ++i) {
    const Series& s = *shown[i];
    double y = ly + 4 + 18.0 * i + 9;
    svg.Line(lx + 8, y, lx + 32, y,
             Attr("stroke", s.color) + (s.markers ? " stroke-width=\"1.2\" stroke-dasharray=\"4 3\""
                                                  : " stroke-width=\"2\""));
    if (s.markers) {
      svg.Empty("circle", "cx=\"" + Fixed(lx + 20, 1) + "\" cy=\"" + Fixed(y, 1) + "\" r=\"4\" " +
                              Attr("fill", s.color) + " stroke=\"white\"");
    }
    svg.Text(lx + 38, y + 4, "", s.name);
  }
  svg.Close("g");
}

std::string RenderChart(const Chart& chart) {
  const Frame frame = FitFrame(chart);
  Svg svg;
  svg.raw() = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  svg.Open("svg",
           "xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"500\" "
           "viewBox=\"0 0 800 500\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\"");
  // An opaque background: a browser in dark mode would otherwise show black
  // text on black.
  svg.Empty("rect", "width=\"800\" height=\"500\" fill=\"white\"");
  DrawAxes(svg, chart, frame);
  DrawSeries(svg, chart, frame);
  DrawLegend(svg, chart, frame);
  svg.Close("svg");
  return std::move(svg.raw());
}

// Wall-time axis in the unit that keeps its labels short.
struct TimeUnit {
  double divisor;
  const char* label;
};
TimeUnit PickTimeUnit(double max_seconds) {
  if (max_seconds > 2 * 3600) return {3600, "elapsed time (h)"};
  if (max_seconds > 120) return {60, "elapsed time (min)"};
  return {1, "elapsed time (s)"};
}

std::string Heading(const std::string& title, const std::string& what) {
  return title.empty() ? what : title + ": " + what;
}

std::string Subtitle(const RunMetrics& run) {
  std::string s;
  auto add = [&s](int64_t n, const char* one, const char* many) {
    if (n <= 0) return;
    if (!s.empty()) s += ", ";
    s += std::to_string(n) + " " + (n == 1 ? one : many);
  };
  add(run.workers, "worker", "workers");
  add(run.servers, "server", "servers");
  if (run.batch_size > 0)
    s += std::string(s.empty() ? "" : ", ") + "batch " + std::to_string(run.batch_size);
  add(run.epochs, "epoch", "epochs");
  return s;
}

enum class XAxis { kTime, kEpoch };

// The loss chart (train loss as a line, test loss as eval markers) when
// `metric` is kLossChart, else the chart of test metric kMetrics[metric].
constexpr int kLossChart = -1;

std::string ChartStem(int metric) { return metric == kLossChart ? "loss" : kMetrics[metric].file; }

Chart BuildChart(const RunMetrics& run, XAxis axis, const std::string& title, int metric) {
  const bool loss = metric == kLossChart;
  double max_t = 0;
  for (const TrainPoint& p : run.train) max_t = std::max(max_t, p.elapsed_s.value_or(0));
  for (const EvalPoint& e : run.evals) max_t = std::max(max_t, e.elapsed_s.value_or(0));
  const TimeUnit unit = PickTimeUnit(max_t);

  Chart chart;
  const std::string stem = ChartStem(metric);
  chart.title = Heading(title, stem + (axis == XAxis::kTime ? " vs time" : " vs epoch"));
  chart.subtitle = Subtitle(run);
  chart.x_title = axis == XAxis::kTime ? unit.label : "epoch";
  chart.y_title = loss ? "loss" : kMetrics[metric].label;
  auto x_of = [&](std::optional<double> epoch, std::optional<double> step,
                  std::optional<double> t) -> std::optional<double> {
    if (axis == XAxis::kEpoch) return EpochX(epoch, step, run.steps_per_epoch);
    if (t) return *t / unit.divisor;
    return std::nullopt;
  };

  // Train records carry only the loss; test metrics come from evals.
  Series train{"train loss", "train-" + stem, "#1f77b4", false, {}};
  if (loss) {
    for (const TrainPoint& p : run.train) {
      if (std::optional<double> x = x_of(p.epoch, p.step, p.elapsed_s)) {
        train.points.push_back({*x, p.loss});
      }
    }
  }
  Series test{loss ? "test loss" : kMetrics[metric].label, "test-" + stem, "#e8590c", true, {}};
  for (const EvalPoint& e : run.evals) {
    std::optional<double> y = loss ? e.test_loss : e.metrics[metric];
    std::optional<double> x = x_of(e.epoch, e.step, e.elapsed_s);
    if (x && y) test.points.push_back({*x, *y});
  }
  chart.series.push_back(std::move(train));
  chart.series.push_back(std::move(test));
  return chart;
}

}  // namespace

Ticks NiceTicks(double lo, double hi, int target) {
  Ticks ticks;
  if (!std::isfinite(lo) || !std::isfinite(hi)) return ticks;
  if (lo > hi) std::swap(lo, hi);
  if (hi - lo <= 1e-12 * std::max(1.0, std::fabs(hi))) {
    double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  target = std::max(target, 2);
  // Try 1, 2 and 5 times the powers of ten around range/target and keep the
  // step whose tick count lands nearest the target.
  int base = static_cast<int>(std::floor(std::log10((hi - lo) / target)));
  double best_score = std::numeric_limits<double>::infinity(), best_first = 0, best_last = -1;
  for (int e = base - 1; e <= base + 1; ++e) {
    for (double m : {1.0, 2.0, 5.0}) {
      double step = m * std::pow(10.0, e);
      // The slack keeps a bound that is a multiple (0.6 / 0.2 = 2.9999...).
      double first = std::ceil(lo / step - 1e-9), last = std::floor(hi / step + 1e-9);
      double score = std::fabs(last - first + 1 - target);
      if (score < best_score || (score == best_score && step > ticks.step)) {
        best_score = score, best_first = first, best_last = last, ticks.step = step;
      }
    }
  }
  for (double k = best_first; k <= best_last; ++k) {
    double v = k * ticks.step;
    ticks.values.push_back(std::fabs(v) < ticks.step * 1e-9 ? 0.0 : v);
  }
  return ticks;
}

Status WritePlots(const std::string& metrics_jsonl_path, const std::string& out_dir,
                  std::vector<std::string>* written, const std::string& title) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(metrics_jsonl_path, kMaxMetricsBytes));
  RunMetrics run = ParseMetrics(text);

  std::vector<std::pair<std::string, Chart>> charts;
  for (XAxis axis : {XAxis::kTime, XAxis::kEpoch}) {
    for (int metric = kLossChart; metric < static_cast<int>(kMetrics.size()); ++metric) {
      charts.emplace_back(
          ChartStem(metric) + (axis == XAxis::kTime ? "_vs_time.svg" : "_vs_epoch.svg"),
          BuildChart(run, axis, title, metric));
    }
  }

  bool made_dir = false;
  for (const auto& [name, chart] : charts) {
    if (chart.empty()) continue;
    if (!made_dir) {
      RETURN_IF_ERROR(MakeDirs(out_dir));
      made_dir = true;
    }
    std::string svg = RenderChart(chart);
    std::string path = out_dir + "/" + name;
    std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(svg.data()), svg.size());
    RETURN_IF_ERROR(WriteFileAtomically(path, {bytes}));
    if (written != nullptr) written->push_back(path);
  }
  return Status::Ok();
}

}  // namespace distopt
