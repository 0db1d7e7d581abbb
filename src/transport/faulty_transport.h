// Fault injection as a transport decorator: wraps a node's transport and, on
// the way out, drops, duplicates or delays messages at random (seeded, so a
// failing run can be replayed), or "kills" the node after it has sent N
// messages. Tests wrap in-process transports with it; `distopt run` wraps
// ZeroMQ when the config has a [faults] section. Thread-safe like any
// Transport; delayed messages leave from the decorator's own timer thread.
//
//   FaultOptions f; f.drop = 0.05; f.duplicate = 0.05; f.seed = 7;
//   auto t = WithFaults(std::move(inner), f, log);
#ifndef DISTOPT_TRANSPORT_FAULTY_TRANSPORT_H_
#define DISTOPT_TRANSPORT_FAULTY_TRANSPORT_H_

#include <atomic>
#include <functional>
#include <memory>

#include "base/logging.h"
#include "transport/transport.h"

namespace distopt {

struct FaultOptions {
  double drop = 0.0;                      // probability that a message is lost
  double duplicate = 0.0;                 // probability that a message is sent twice
  Duration max_delay = Duration::zero();  // each message waits U(0, max_delay)
  int64_t kill_after = -1;                // after this many sends the node dies (-1: never)
  // What "dies" means: the default stops all traffic (and Recv fails);
  // processes pass a function that raises SIGKILL.
  std::function<void()> on_kill;
  uint64_t seed = 1;
  // Leave the cluster's control messages alone (only KV traffic is faulted).
  bool kv_only = false;
};

// May be shared by the decorators of several nodes (atomics: each counts on
// its own sending thread).
struct FaultStats {
  std::atomic<uint64_t> dropped{0};
  std::atomic<uint64_t> duplicated{0};
  std::atomic<uint64_t> delayed{0};
};

std::unique_ptr<Transport> WithFaults(std::unique_ptr<Transport> inner, FaultOptions options,
                                      Logger log, std::shared_ptr<FaultStats> stats = nullptr);

}  // namespace distopt

#endif  // DISTOPT_TRANSPORT_FAULTY_TRANSPORT_H_
