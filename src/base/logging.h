// Logger: a cheap-to-copy handle that writes timestamped lines tagged with the
// node's name ("server/1") to a sink (stderr, a file, or both). There is no
// global logger: each node owns one and passes it down. Thread-safe: sinks
// serialize whole lines.
//
//   Logger log = Logger::Stderr("coordinator");
//   log.Info("waiting for ", missing, " to register at ", address);
#ifndef DISTOPT_BASE_LOGGING_H_
#define DISTOPT_BASE_LOGGING_H_

#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "base/mutex.h"

namespace distopt {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

class LogSink {
 public:
  virtual ~LogSink() = default;
  virtual void Write(std::string_view line) = 0;
};

// Writes to stderr (shared by all nodes of a process).
std::shared_ptr<LogSink> StderrSink();
// Appends to a file; falls back to stderr if it cannot be opened.
std::shared_ptr<LogSink> FileSink(const std::string& path);
// Writes every line to each of `sinks`.
std::shared_ptr<LogSink> TeeSink(std::vector<std::shared_ptr<LogSink>> sinks);
// Keeps lines in memory (tests assert on what a node logged).
class MemorySink : public LogSink {
 public:
  void Write(std::string_view line) override;
  std::vector<std::string> Lines() const;
  bool Contains(std::string_view needle) const;

 private:
  mutable Mutex mu_;
  std::vector<std::string> lines_ GUARDED_BY(mu_);
};

// The level a node logs at: DISTOPT_LOG_LEVEL (debug, info, warning, error)
// if set, else info. Read once; an unknown value is info, said once on stderr.
LogLevel DefaultLogLevel();

class Logger {
 public:
  Logger() : Logger(StderrSink(), "", DefaultLogLevel()) {}
  Logger(std::shared_ptr<LogSink> sink, std::string name, LogLevel min_level)
      : sink_(std::move(sink)), name_(std::move(name)), min_level_(min_level) {}

  static Logger Stderr(std::string name, LogLevel min = DefaultLogLevel()) {
    return Logger(StderrSink(), std::move(name), min);
  }
  // A logger that drops everything (benchmarks).
  static Logger Null();

  Logger Named(std::string name) const { return Logger(sink_, std::move(name), min_level_); }
  const std::string& name() const { return name_; }
  bool enabled(LogLevel level) const { return sink_ && level >= min_level_; }

  template <typename... Args>
  void Debug(const Args&... args) const {
    Log(LogLevel::kDebug, args...);
  }
  template <typename... Args>
  void Info(const Args&... args) const {
    Log(LogLevel::kInfo, args...);
  }
  template <typename... Args>
  void Warn(const Args&... args) const {
    Log(LogLevel::kWarning, args...);
  }
  template <typename... Args>
  void Error(const Args&... args) const {
    Log(LogLevel::kError, args...);
  }

  template <typename... Args>
  void Log(LogLevel level, const Args&... args) const {
    if (!enabled(level)) return;
    std::ostringstream os;
    (os << ... << args);
    Emit(level, os.str());
  }

 private:
  void Emit(LogLevel level, const std::string& text) const;

  std::shared_ptr<LogSink> sink_;
  std::string name_;
  LogLevel min_level_;
};

}  // namespace distopt

#endif  // DISTOPT_BASE_LOGGING_H_
