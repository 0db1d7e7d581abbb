#include "kv/consistency_gate.h"

#include <algorithm>
#include <limits>

namespace distopt {

ConsistencyGate::ConsistencyGate(ConsistencyOptions options, uint32_t num_workers)
    : options_(options), worker_clock_(num_workers, 0) {}

void ConsistencyGate::Saw(uint32_t rank, int64_t clock) {
  worker_clock_[rank] = std::max(worker_clock_[rank], clock + 1);
}

void ConsistencyGate::MoveTo(uint32_t rank, int64_t clock) {
  worker_clock_[rank] = std::max(worker_clock_[rank], clock);
}

void ConsistencyGate::Advance(bool held) {
  ++applied_;
  if (held) confirmed_ = applied_;
}

void ConsistencyGate::ConfirmUpTo(int64_t clock) { confirmed_ = std::max(confirmed_, clock); }

void ConsistencyGate::Restart(int64_t clock) {
  applied_ = confirmed_ = clock;
  std::fill(worker_clock_.begin(), worker_clock_.end(), clock);
  parked_.clear();
}

void ConsistencyGate::Install(int64_t applied, std::vector<int64_t> worker_clocks) {
  applied_ = confirmed_ = applied;
  worker_clock_ = std::move(worker_clocks);
}

int64_t ConsistencyGate::MinClock(const std::vector<bool>& live) const {
  int64_t min = std::numeric_limits<int64_t>::max();
  for (uint32_t r = 0; r < live.size() && r < worker_clock_.size(); ++r) {
    if (live[r]) min = std::min(min, worker_clock_[r]);
  }
  return min;
}

int64_t ConsistencyGate::MaxClock(const std::vector<bool>& live) const {
  int64_t max = 0;
  for (uint32_t r = 0; r < live.size() && r < worker_clock_.size(); ++r) {
    if (live[r]) max = std::max(max, worker_clock_[r]);
  }
  return max;
}

bool ConsistencyGate::Ready(int64_t clock, const std::vector<bool>& live) const {
  switch (options_.mode) {
    case Consistency::kBsp:
      return clock <= confirmed_;
    case Consistency::kSsp:
      return MinClock(live) >= clock - options_.staleness;
    case Consistency::kAsp:
      return true;
  }
  return true;
}

bool ConsistencyGate::Ready(const ParkedRequest& p, const std::vector<bool>& live,
                            uint64_t confirmed_seq) const {
  if (p.need_seq > confirmed_seq) return false;
  return p.need_clock == kAnyClock || Ready(p.need_clock, live);
}

std::vector<ParkedRequest> ConsistencyGate::TakeReady(const std::vector<bool>& live,
                                                      uint64_t confirmed_seq) {
  std::vector<ParkedRequest> ready;
  if (parked_.empty()) return ready;
  std::vector<ParkedRequest> still;
  for (ParkedRequest& p : parked_) {
    // A parked request of a worker that died is dropped: nobody waits for it.
    if (p.rank >= live.size() || !live[p.rank]) continue;
    (Ready(p, live, confirmed_seq) ? ready : still).push_back(std::move(p));
  }
  parked_ = std::move(still);
  return ready;
}

std::string ConsistencyGate::WhoIsSlow(int64_t clock, const std::vector<bool>& live,
                                       const std::vector<bool>& pushed) const {
  std::string out;
  for (uint32_t r = 0; r < live.size() && r < worker_clock_.size(); ++r) {
    if (!live[r]) continue;
    const bool behind =
        bsp() ? r >= pushed.size() || !pushed[r] : worker_clock_[r] < clock - options_.staleness;
    if (!behind) continue;
    if (!out.empty()) out += ", ";
    out += "worker/" + std::to_string(r) + " (at clock " + std::to_string(worker_clock_[r]) + ")";
  }
  return out.empty() ? "nobody (a bug: please report)" : out;
}

}  // namespace distopt
