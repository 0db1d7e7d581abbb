// ZeroMQ transport (tcp:// and ipc://). Each node binds one ROUTER socket for
// everything it receives and keeps one DEALER per peer for what it sends, so
// sends queue while a peer is still connecting and the ROUTER never drops a
// message to an unknown identity. One I/O thread owns every socket: Send()
// hands frames over through a queue and an eventfd; received messages are
// decoded on the I/O thread and queued for Recv(). Large payload frames go to
// ZeroMQ zero-copy (the Buffer is kept alive until ZeroMQ releases it).
// Thread-safe.
#ifndef DISTOPT_TRANSPORT_ZMQ_TRANSPORT_H_
#define DISTOPT_TRANSPORT_ZMQ_TRANSPORT_H_

#include <memory>
#include <string>

#include "base/logging.h"
#include "transport/transport.h"

namespace distopt {

struct ZmqOptions {
  // Where to listen: "tcp://127.0.0.1:0" picks a free port, "tcp://*:7070",
  // "ipc:///tmp/node.sock".
  std::string bind = "tcp://127.0.0.1:0";
  // Host written into the advertised address when binding to * or 0.0.0.0.
  std::string advertise_host = "127.0.0.1";
  WireLimits limits;
  int io_threads = 1;
  // How long Shutdown waits for queued outbound messages to leave.
  int linger_ms = 2000;
};

Result<std::unique_ptr<Transport>> CreateZmqTransport(const ZmqOptions& options, Logger log);

}  // namespace distopt

#endif  // DISTOPT_TRANSPORT_ZMQ_TRANSPORT_H_
