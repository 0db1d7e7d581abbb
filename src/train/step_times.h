// StepTimes: the wall time of each training step of a worker (fetch,
// forward/backward, push and wait), kept so the run can report its
// distribution, not only its mean: a stall (a checkpoint, a straggler, a
// failover) shows in the tail. The median, p90, p99 and max over the whole
// run, and the max over the current log window. Not thread-safe.
//
//   StepTimes times;
//   const SteadyTime t0 = std::chrono::steady_clock::now();
//   ... one step ...
//   times.Add(std::chrono::steady_clock::now() - t0);
//   double p99 = times.Quantile(0.99);
#ifndef DISTOPT_TRAIN_STEP_TIMES_H_
#define DISTOPT_TRAIN_STEP_TIMES_H_

#include <algorithm>
#include <cmath>
#include <vector>

#include "base/time.h"

namespace distopt {

class StepTimes {
 public:
  void Add(Duration d) {
    const double ms = std::chrono::duration<double, std::milli>(d).count();
    ms_.push_back(ms);
    window_max_ = std::max(window_max_, ms);
  }
  size_t count() const { return ms_.size(); }
  // The q-quantile (0 <= q <= 1) of every step so far, nearest rank; 0 if none.
  double Quantile(double q) const {
    if (ms_.empty()) return 0;
    std::vector<double> sorted = ms_;
    const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
    const size_t i = rank == 0 ? 0 : rank - 1;
    std::nth_element(sorted.begin(), sorted.begin() + i, sorted.end());
    return sorted[i];
  }
  double Max() const { return ms_.empty() ? 0 : *std::max_element(ms_.begin(), ms_.end()); }
  // The longest step since the last call (the log window's).
  double TakeWindowMax() {
    const double m = window_max_;
    window_max_ = 0;
    return m;
  }

 private:
  std::vector<double> ms_;
  double window_max_ = 0;
};

}  // namespace distopt

#endif  // DISTOPT_TRAIN_STEP_TIMES_H_
