// ZeroMQ transport (tcp:// and ipc://). Each node binds one ROUTER socket for
// everything it receives and keeps one DEALER per peer for what it sends, so
// sends queue while a peer is still connecting and the ROUTER never drops a
// message to an unknown identity. One I/O thread owns every socket: Send()
// hands frames over through a queue and an eventfd; received messages are
// decoded on the I/O thread and queued for Recv(). Large payload frames go to
// ZeroMQ zero-copy (the Buffer is kept alive until ZeroMQ releases it).
// Thread-safe.
//
// Security (CURVE): with a key pair set, every socket runs CURVE. The ROUTER
// is a CURVE server with this node's key; a ZAP handler on the I/O thread
// admits only the public keys on the allowlist (refusals are logged with the
// peer's address and counted), and every message is tagged with the
// sender's allowlist name and offered to `authorize` before anyone sees it.
// The address() of a CURVE node carries its public key,
// "tcp://10.0.0.2:4711?curve=<Z85>", so an address is all a peer needs to
// dial it; a CURVE node refuses to dial an address without a key. Nodes of
// one host skip the encryption over a Unix socket only their user can reach,
// still proving their keys (local_lane.h).
#ifndef DISTOPT_TRANSPORT_ZMQ_TRANSPORT_H_
#define DISTOPT_TRANSPORT_ZMQ_TRANSPORT_H_

#include <functional>
#include <memory>
#include <string>

#include "base/logging.h"
#include "transport/curve_keys.h"
#include "transport/net_address.h"
#include "transport/transport.h"

namespace distopt {

struct ZmqSecurity {
  CurveKeyPair keys;  // empty: no security (the NULL mechanism)
  CurveAllowlist allowlist;
  // On the I/O thread, for each decoded message: may the peer named `peer`
  // (its allowlist name) send it? False drops it, logged and counted.
  std::function<bool(const std::string& peer, const Message& m)> authorize;
  bool enabled() const { return !keys.secret_key.empty(); }
};

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
  ZmqSecurity security;
  // CURVE only: talk to the nodes of this host over a Unix socket in a
  // private directory instead of encrypting (local_lane.h), the directory
  // being local_lane_dir ("" = DefaultLocalLaneDir()).
  bool local_lane = true;
  std::string local_lane_dir;
  // SO_RCVBUF of the listening sockets, so of every connection peers make to
  // this node: it bounds what each has in flight (0: the OS's autotuning).
  int receive_buffer = 0;
};

Result<std::unique_ptr<Transport>> CreateZmqTransport(const ZmqOptions& options, Logger log);

}  // namespace distopt

#endif  // DISTOPT_TRANSPORT_ZMQ_TRANSPORT_H_
