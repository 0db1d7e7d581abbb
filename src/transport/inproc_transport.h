// In-process transport: every node of a cluster runs as threads of one
// process and messages are handed over through queues. Messages still go
// through EncodeFrames/DecodeFrames, so tests exercise the same validation as
// the network path, but payloads are shared, never copied. The hub maps
// addresses to transports; it is created by the test (no global registry).
// Thread-safe.
//
//   auto hub = std::make_shared<InProcHub>();
//   auto a = hub->Create("inproc://server/0", log);
#ifndef DISTOPT_TRANSPORT_INPROC_TRANSPORT_H_
#define DISTOPT_TRANSPORT_INPROC_TRANSPORT_H_

#include <map>
#include <memory>
#include <string>

#include "base/logging.h"
#include "base/mutex.h"
#include "transport/transport.h"

namespace distopt {

class InProcTransport;

class InProcHub : public std::enable_shared_from_this<InProcHub> {
 public:
  // A new transport at `address` ("inproc://..."); an empty address picks a
  // unique one.
  Result<std::unique_ptr<Transport>> Create(std::string address, Logger log,
                                            WireLimits limits = {});

 private:
  friend class InProcTransport;
  // Delivers frames to the transport at `address`; false if nobody is there.
  bool Deliver(const std::string& address, std::vector<Buffer> frames, const std::string& from);
  void Remove(const std::string& address, InProcTransport* t);

  Mutex mu_;
  std::map<std::string, InProcTransport*> nodes_ GUARDED_BY(mu_);
  uint64_t next_auto_ GUARDED_BY(mu_) = 0;
};

}  // namespace distopt

#endif  // DISTOPT_TRANSPORT_INPROC_TRANSPORT_H_
