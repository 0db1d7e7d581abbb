#include "base/logging.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace distopt {
namespace {

class StderrSinkImpl : public LogSink {
 public:
  void Write(std::string_view line) override {
    MutexLock lock(&mu_);
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
  }

 private:
  Mutex mu_;  // one whole line at a time on stderr (there is no member to guard)
};

class FileSinkImpl : public LogSink {
 public:
  explicit FileSinkImpl(FILE* f) : f_(f) {}
  ~FileSinkImpl() override { std::fclose(f_); }  // no writer is left
  void Write(std::string_view line) override {
    MutexLock lock(&mu_);
    std::fwrite(line.data(), 1, line.size(), f_);
    std::fflush(f_);  // a crashed node's log must hold its last words
  }

 private:
  Mutex mu_;
  // The stream is written under mu_. The analysis checks only dereferences,
  // and fwrite takes the pointer, so this annotation documents more than it checks.
  FILE* const f_ PT_GUARDED_BY(mu_);
};

class TeeSinkImpl : public LogSink {
 public:
  explicit TeeSinkImpl(std::vector<std::shared_ptr<LogSink>> s) : sinks_(std::move(s)) {}
  void Write(std::string_view line) override {
    for (auto& s : sinks_) s->Write(line);
  }

 private:
  std::vector<std::shared_ptr<LogSink>> sinks_;
};

const char* LevelChar(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return "D";
    case LogLevel::kInfo:
      return "I";
    case LogLevel::kWarning:
      return "W";
    case LogLevel::kError:
      return "E";
  }
  return "?";
}

}  // namespace

std::shared_ptr<LogSink> StderrSink() {
  // One sink object per process so lines from nodes sharing stderr never
  // interleave; it holds no state besides its mutex.
  static auto* sink = new std::shared_ptr<LogSink>(std::make_shared<StderrSinkImpl>());
  return *sink;
}

std::shared_ptr<LogSink> FileSink(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "a");
  if (f == nullptr) return StderrSink();
  return std::make_shared<FileSinkImpl>(f);
}

std::shared_ptr<LogSink> TeeSink(std::vector<std::shared_ptr<LogSink>> sinks) {
  return std::make_shared<TeeSinkImpl>(std::move(sinks));
}

void MemorySink::Write(std::string_view line) {
  MutexLock lock(&mu_);
  lines_.emplace_back(line);
}

std::vector<std::string> MemorySink::Lines() const {
  MutexLock lock(&mu_);
  return lines_;
}

bool MemorySink::Contains(std::string_view needle) const {
  MutexLock lock(&mu_);
  for (const auto& l : lines_) {
    if (l.find(needle) != std::string::npos) return true;
  }
  return false;
}

LogLevel DefaultLogLevel() {
  static const LogLevel level = [] {
    const char* env = std::getenv("DISTOPT_LOG_LEVEL");
    if (env == nullptr || *env == '\0') return LogLevel::kInfo;
    const std::string v = env;
    if (v == "debug") return LogLevel::kDebug;
    if (v == "info") return LogLevel::kInfo;
    if (v == "warning") return LogLevel::kWarning;
    if (v == "error") return LogLevel::kError;
    std::fprintf(stderr, "DISTOPT_LOG_LEVEL=%s is not one of debug, info, warning, error: info\n",
                 env);
    return LogLevel::kInfo;
  }();
  return level;
}

Logger Logger::Null() { return Logger(nullptr, "", LogLevel::kError); }

void Logger::Emit(LogLevel level, const std::string& text) const {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  int ms = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::snprintf(stamp, sizeof(stamp), "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  std::string line;
  line.reserve(text.size() + name_.size() + 24);
  line.append(LevelChar(level)).append(" ").append(stamp).append(" ");
  if (!name_.empty()) line.append("[").append(name_).append("] ");
  line.append(text).append("\n");
  sink_->Write(line);
}

}  // namespace distopt
