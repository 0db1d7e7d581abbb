// Co-located nodes: nodes of one process (a worker and the server shard it
// hosts) talk without a socket. WithLocalPeers wraps a node's transport and
// enters it in a process-wide table under its address; a message to a peer
// whose address is in that table is handed straight to the peer's Recv
// (Transport::Deliver), its payload buffers shared, not copied; any other
// message goes out through the wrapped transport. Thread-safe like any
// Transport.
//
//   auto server_t = WithLocalPeers(*CreateZmqTransport({}, log));
//   auto worker_t = WithLocalPeers(*CreateZmqTransport({}, log));
//   // worker_t->Send(server_id, m) skips the network once it is connected
//   // to server_t->address().
#ifndef DISTOPT_TRANSPORT_LOCAL_PEERS_H_
#define DISTOPT_TRANSPORT_LOCAL_PEERS_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "transport/transport.h"

namespace distopt {

// May be shared by several nodes' decorators (atomics: each counts on its
// own sending thread).
struct LocalPeerStats {
  std::atomic<uint64_t> local_messages{0};  // sent to a co-located node without a socket
  std::atomic<uint64_t> local_bytes{0};
};

std::unique_ptr<Transport> WithLocalPeers(std::unique_ptr<Transport> inner,
                                          std::shared_ptr<LocalPeerStats> stats = nullptr);

}  // namespace distopt

#endif  // DISTOPT_TRANSPORT_LOCAL_PEERS_H_
