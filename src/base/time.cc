#include "base/time.h"

namespace distopt {
namespace {
class SystemClockImpl : public Clock {
 public:
  SteadyTime Now() const override { return std::chrono::steady_clock::now(); }
};
}  // namespace

const Clock* SystemClock() {
  static const SystemClockImpl clock;
  return &clock;
}

}  // namespace distopt
