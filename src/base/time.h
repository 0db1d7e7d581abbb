// Time types and Deadline: every wait in distopt has a deadline. Code whose
// timing a test must control reads the clock of its Env (base/env.h,
// Env::Now). Deadline is a value type.
#ifndef DISTOPT_BASE_TIME_H_
#define DISTOPT_BASE_TIME_H_

#include <chrono>
#include <cstdint>

namespace distopt {

using SteadyTime = std::chrono::steady_clock::time_point;
using Duration = std::chrono::steady_clock::duration;

class Deadline {
 public:
  static Deadline Never() { return Deadline(SteadyTime::max()); }
  static Deadline After(Duration d) { return Deadline(std::chrono::steady_clock::now() + d); }
  static Deadline At(SteadyTime t) { return Deadline(t); }

  SteadyTime when() const { return when_; }
  bool is_never() const { return when_ == SteadyTime::max(); }
  bool expired() const { return !is_never() && std::chrono::steady_clock::now() >= when_; }
  Duration remaining() const {
    if (is_never()) return Duration::max();
    auto r = when_ - std::chrono::steady_clock::now();
    return r < Duration::zero() ? Duration::zero() : r;
  }
  Deadline Earlier(Deadline other) const { return other.when_ < when_ ? other : *this; }

 private:
  explicit Deadline(SteadyTime t) : when_(t) {}
  SteadyTime when_;
};

inline int64_t ToMillis(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}
inline double ToSeconds(Duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace distopt

#endif  // DISTOPT_BASE_TIME_H_
