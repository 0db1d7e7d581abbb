#include "train/progress.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <system_error>
#include <utility>

namespace distopt {
namespace {

using json = nlohmann::json;

// Bounds what one Poll reads (and so its latency and memory); a backlog past
// this is picked up by the next Poll.
constexpr size_t kMaxPollBytes = size_t{64} << 20;
constexpr size_t kReadChunk = size_t{64} << 10;

// Bar width: the default when the width is unlimited, the most it grows to
// on a wide terminal, and the least worth drawing.
constexpr int kDefaultBar = 20, kMaxBar = 30, kMinBar = 10;

std::optional<double> Number(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  double v = it->get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

// A count field; absent, negative or absurd values read as absent. The cap
// keeps epochs * steps_per_epoch far from int64 overflow.
std::optional<int64_t> Count(const json& j, const char* key) {
  std::optional<double> v = Number(j, key);
  if (!v || *v < 0 || *v > 1e9) return std::nullopt;
  return static_cast<int64_t>(*v);
}

// Fixed-point text independent of the process locale (printf is not).
std::string Fixed(double v, int decimals) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed, decimals);
  if (ec != std::errc()) return "?";
  return std::string(buf, end);
}

// About four significant digits: 0.4123, 12.35, 1234.5.
std::string Value(double v) {
  double a = std::fabs(v);
  if (a != 0 && (a < 1e-3 || a >= 1e6)) {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific, 2);
    return ec == std::errc() ? std::string(buf, end) : "?";
  }
  return Fixed(v, a < 10 ? 3 : a < 100 ? 2 : 1);
}

std::string Rate(double v) {
  if (v >= 1e6) return Fixed(v / 1e6, 2) + "M";
  if (v >= 1e3) return Fixed(v / 1e3, 1) + "k";
  return Fixed(v, 0);
}

// "0:37", "12:05", "1:02:03".
std::string Duration(double seconds) {
  if (!(seconds >= 0)) return "--:--";
  if (seconds >= 100 * 3600.0) return ">99h";
  auto s = static_cast<int64_t>(std::llround(seconds));
  int64_t h = s / 3600, m = s / 60 % 60, sec = s % 60;
  auto two = [](int64_t v) { return (v < 10 ? "0" : "") + std::to_string(v); };
  if (h > 0) return std::to_string(h) + ":" + two(m) + ":" + two(sec);
  return std::to_string(m) + ":" + two(sec);
}

std::string EpochText(const ProgressState& state) {
  int64_t epoch = state.epoch;
  if (epoch <= 0 && state.steps_per_epoch > 0) epoch = state.step / state.steps_per_epoch + 1;
  if (state.epochs > 0) epoch = std::min(epoch, state.epochs);
  std::string text = "epoch " + std::to_string(std::max<int64_t>(epoch, 0));
  if (state.epochs > 0) text += "/" + std::to_string(state.epochs);
  return text;
}

// The headline test metric: what the model reports that a user compares
// runs by, accuracy first.
std::string TestText(const EvalRecord& e) {
  if (e.test_accuracy) return "test acc " + Fixed(*e.test_accuracy * 100, 1) + "%";
  if (e.test_auc) return "test auc " + Fixed(*e.test_auc, 3);
  if (e.test_rmse) return "test rmse " + Value(*e.test_rmse);
  if (e.test_loss) return "test loss " + Value(*e.test_loss);
  return {};
}

struct Segment {
  std::string text;
  // 0: always shown; otherwise dropped, highest first, when the line is too
  // long even with the smallest bar.
  int drop_rank = 0;
  const char* sep = " ";
};

std::string Join(const std::string& head, int bar_width, double fraction, bool complete,
                 const std::vector<const Segment*>& rest) {
  std::string line = head;
  if (bar_width > 0) {
    int filled =
        complete ? bar_width : std::clamp(static_cast<int>(fraction * bar_width), 0, bar_width - 1);
    line += " [" + std::string(filled, '=');
    if (filled < bar_width) line += ">" + std::string(bar_width - filled - 1, ' ');
    line += "]";
  }
  for (const Segment* s : rest) line += s->sep + s->text;
  return line;
}

}  // namespace

std::optional<EvalRecord> ApplyMetricsLine(std::string_view line, ProgressState* state) {
  json j = json::parse(line, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  auto type_it = j.find("type");
  if (type_it == j.end() || !type_it->is_string()) return std::nullopt;
  const std::string& type = type_it->get_ref<const std::string&>();

  // Every record that carries a position moves the state forward, never
  // back: an eval logged after the epoch's last train record is the newest.
  auto advance = [&]() {
    if (auto step = Count(j, "step")) state->step = std::max(state->step, *step);
    if (auto epoch = Count(j, "epoch")) state->epoch = std::max(state->epoch, *epoch);
    if (auto t = Number(j, "elapsed_s")) state->elapsed_s = std::max(state->elapsed_s, *t);
  };
  if (type == "start") {
    if (auto v = Count(j, "epochs")) state->epochs = *v;
    if (auto v = Count(j, "steps_per_epoch")) state->steps_per_epoch = *v;
  } else if (type == "train") {
    advance();
    if (auto v = Number(j, "loss")) state->loss = v;
    if (auto v = Number(j, "samples_per_s")) state->samples_per_s = v;
  } else if (type == "eval") {
    advance();
    EvalRecord e;
    e.epoch = Count(j, "epoch").value_or(0);
    e.step = Count(j, "step").value_or(0);
    e.elapsed_s = Number(j, "elapsed_s");
    e.test_loss = Number(j, "test_loss");
    e.test_accuracy = Number(j, "test_accuracy");
    e.test_auc = Number(j, "test_auc");
    e.test_rmse = Number(j, "test_rmse");
    state->last_eval = e;
    return e;
  } else if (type == "done") {
    advance();
    state->done = true;
  }
  return std::nullopt;
}

std::string RenderProgress(const ProgressState& state, int width) {
  const int64_t total = state.total_steps();
  const bool has_total = total > 0;
  const double fraction =
      has_total ? std::clamp(static_cast<double>(state.step) / static_cast<double>(total), 0.0, 1.0)
                : 0;
  const bool complete = state.done || (has_total && state.step >= total);

  std::string head = EpochText(state);
  std::vector<Segment> segments;
  if (has_total) {
    // Rounded, but 100% only when the run really got there.
    int pct = complete ? 100 : std::min(99, static_cast<int>(std::lround(fraction * 100)));
    segments.push_back({std::to_string(pct) + "%"});
    segments.push_back({"step " + std::to_string(state.step) + "/" + std::to_string(total), 3});
  } else {
    segments.push_back({"step " + std::to_string(state.step), 3});
  }
  if (state.loss) segments.push_back({"loss " + Value(*state.loss), 1});
  if (state.samples_per_s) segments.push_back({Rate(*state.samples_per_s) + " samples/s", 4});
  if (state.done) {
    segments.push_back({"done in " + Duration(state.elapsed_s)});
  } else if (has_total) {
    // Average pace so far: elapsed covers start-up too, which makes early
    // estimates pessimistic rather than wildly optimistic.
    bool known = fraction > 0 && state.elapsed_s > 0;
    segments.push_back(
        {"ETA " + (known ? Duration(state.elapsed_s * (1 - fraction) / fraction) : "--:--")});
  } else {
    segments.push_back({"elapsed " + Duration(state.elapsed_s)});
  }
  if (state.last_eval) {
    std::string test = TestText(*state.last_eval);
    if (!test.empty()) segments.push_back({test, 2, " | "});
  }

  auto kept = [&](int limit) {
    std::vector<const Segment*> out;
    for (const Segment& s : segments) {
      if (s.drop_rank < limit) out.push_back(&s);
    }
    return out;
  };
  if (width <= 0) return Join(head, has_total ? kDefaultBar : 0, fraction, complete, kept(5));
  for (int limit = 5; limit >= 1; --limit) {
    std::vector<const Segment*> rest = kept(limit);
    int text = static_cast<int>(Join(head, 0, fraction, complete, rest).size());
    if (!has_total) {
      if (text <= width) return Join(head, 0, fraction, complete, rest);
      continue;
    }
    int room = width - text - 3;  // " [" and "]"
    if (room >= kMinBar) return Join(head, std::min(room, kMaxBar), fraction, complete, rest);
  }
  std::string line = Join(head, 0, fraction, complete, kept(1));
  if (line.size() > static_cast<size_t>(width)) line.resize(static_cast<size_t>(width));
  return line;
}

std::string RenderEval(const EvalRecord& eval, const ProgressState& state) {
  std::string line = "epoch " + std::to_string(eval.epoch);
  if (state.epochs > 0) line += "/" + std::to_string(state.epochs);
  if (eval.test_loss) line += " test loss " + Value(*eval.test_loss);
  if (eval.test_accuracy) line += " acc " + Fixed(*eval.test_accuracy * 100, 1) + "%";
  if (eval.test_auc) line += " auc " + Fixed(*eval.test_auc, 3);
  if (eval.test_rmse) line += " rmse " + Value(*eval.test_rmse);
  if (eval.elapsed_s) line += " (at " + Duration(*eval.elapsed_s) + ")";
  return line;
}

MetricsTail::MetricsTail(std::string path, size_t max_line_bytes)
    : path_(std::move(path)), max_line_bytes_(max_line_bytes) {}

Result<std::vector<EvalRecord>> MetricsTail::Poll(ProgressState* state) {
  std::vector<EvalRecord> evals;
  // Opened per poll, not held: a file replaced under the same name is then
  // seen as the new file (its inode differs), not followed as the old one.
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return evals;  // the run has not written it yet
    return UnavailableError("open " + path_ + ": " +
                            std::error_code(errno, std::generic_category()).message());
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return UnavailableError("stat " + path_ + ": " +
                            std::error_code(errno, std::generic_category()).message());
  }
  const auto dev = static_cast<uint64_t>(st.st_dev), ino = static_cast<uint64_t>(st.st_ino);
  if (dev != dev_ || ino != ino_ || static_cast<uint64_t>(st.st_size) < offset_) {
    offset_ = 0;
    partial_.clear();
    skipping_ = false;
    dev_ = dev, ino_ = ino;
  }

  std::string chunk(kReadChunk, '\0');
  size_t read_this_poll = 0;
  while (read_this_poll < kMaxPollBytes) {
    ssize_t n = ::pread(fd, chunk.data(), chunk.size(), static_cast<off_t>(offset_));
    if (n < 0) {
      if (errno == EINTR) continue;
      return UnavailableError("read " + path_ + ": " +
                              std::error_code(errno, std::generic_category()).message());
    }
    if (n == 0) break;
    offset_ += static_cast<uint64_t>(n);
    read_this_poll += static_cast<size_t>(n);
    std::string_view data(chunk.data(), static_cast<size_t>(n));
    while (!data.empty()) {
      size_t nl = data.find('\n');
      std::string_view piece = data.substr(0, nl);
      if (nl == std::string_view::npos) {
        data = {};
      } else {
        data.remove_prefix(nl + 1);
      }
      if (skipping_) {
        if (nl != std::string_view::npos) skipping_ = false;
        continue;
      }
      partial_.append(piece);
      if (nl != std::string_view::npos) {
        if (std::optional<EvalRecord> e = ApplyMetricsLine(partial_, state)) evals.push_back(*e);
        partial_.clear();
      } else if (partial_.size() > max_line_bytes_) {
        partial_.clear();
        skipping_ = true;
      }
    }
  }
  return evals;
}

}  // namespace distopt
