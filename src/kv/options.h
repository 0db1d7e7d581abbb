// Consistency models and the options shared by KV servers and clients.
// BSP: a server sums the pushes of every live worker for clock t, applies the
// mean once, and answers pulls for t+1 only after. SSP(s): pushes apply on
// arrival; a pull at clock c waits until the slowest live worker has pushed
// clock c-s-1 (it has "reached" c-s). ASP: apply on arrival, never wait.
#ifndef DISTOPT_KV_OPTIONS_H_
#define DISTOPT_KV_OPTIONS_H_

#include <cstdint>
#include <string>

#include "distopt/status.h"

namespace distopt {

enum class Consistency : uint8_t { kBsp = 0, kSsp = 1, kAsp = 2 };

const char* ConsistencyName(Consistency c);
Result<Consistency> ParseConsistency(const std::string& s);

struct ConsistencyOptions {
  Consistency mode = Consistency::kBsp;
  int64_t staleness = 0;  // SSP only
  // BSP: a dead worker's rank is still waited for each clock, because the
  // survivors push its gradient for it (train/adoption.h), so the mean
  // stays over all W slots in the same order and a job that loses workers
  // ends with the model it would have had. Off: the clock completes with
  // the live workers' pushes (clients that do not adopt, like bench kv).
  bool adopt_dead_workers = false;
};

// What a server records when it answers a pull (tests and metrics check the
// consistency contract from these).
struct PullTrace {
  uint32_t table = 0;
  uint32_t worker_rank = 0;
  int64_t clock = 0;      // the clock the worker asked for
  int64_t min_clock = 0;  // the slowest live worker's clock when answered
  bool waited = false;    // the pull was parked before being answered
};

}  // namespace distopt

#endif  // DISTOPT_KV_OPTIONS_H_
