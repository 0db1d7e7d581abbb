// For tests: how much slower than a release build the process tests run. The
// sanitizer test presets set DISTOPT_TEST_TIME_SCALE (TSan runs 5-15x
// slower): the tests stretch the nodes' heartbeat timeouts and their own
// deadlines by it, so a node is declared dead because it was killed, never
// because it is instrumented. 1 when unset or not a number in 1..100.
#ifndef DISTOPT_BASE_TEST_TIME_SCALE_H_
#define DISTOPT_BASE_TEST_TIME_SCALE_H_

#include <cstdlib>
#include <string>

namespace distopt {

inline int TestTimeScale() {
  const char* v = std::getenv("DISTOPT_TEST_TIME_SCALE");
  if (v == nullptr) return 1;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return end != v && *end == '\0' && n >= 1 && n <= 100 ? static_cast<int>(n) : 1;
}

// `d` (a duration or a count of milliseconds) stretched by TestTimeScale().
template <typename D>
D Scaled(D d) {
  return d * TestTimeScale();
}

}  // namespace distopt

#endif  // DISTOPT_BASE_TEST_TIME_SCALE_H_
