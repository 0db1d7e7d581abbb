// Co-located nodes: nodes of one process (a worker and the server shard it
// hosts) talk without a socket. A LocalPeers object is the table of such
// nodes, made by whoever builds them (like InProcHub; there is no
// process-wide table). WithLocalPeers wraps a node's transport and enters it
// under its address; a message to a peer whose address is in the same table
// is handed straight to that peer's Recv (Transport::Deliver), its payload
// buffers shared, not copied; any other message goes out through the wrapped
// transport. Separate LocalPeers never see each other's nodes. An address is
// entered once: a second node at a taken address is an error, not a silent
// replacement. Thread-safe like any Transport.
//
// Lifetime: the decorators share the table with their LocalPeers, so either
// may be destroyed first. A node leaves the table when its decorator is shut
// down or destroyed, and its address is free again.
//
//   LocalPeers local;  // in the function or object that builds both nodes
//   ASSIGN_OR_RETURN(auto server_t, WithLocalPeers(local, *CreateZmqTransport({}, log)));
//   ASSIGN_OR_RETURN(auto worker_t, WithLocalPeers(local, *CreateZmqTransport({}, log)));
//   // worker_t->Send(server_id, m) skips the network once it is connected
//   // to server_t->address().
#ifndef DISTOPT_TRANSPORT_LOCAL_PEERS_H_
#define DISTOPT_TRANSPORT_LOCAL_PEERS_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "distopt/status.h"
#include "transport/transport.h"

namespace distopt {

// May be shared by several nodes' decorators (atomics: each counts on its
// own sending thread).
struct LocalPeerStats {
  std::atomic<uint64_t> local_messages{0};  // sent to a co-located node without a socket
  std::atomic<uint64_t> local_bytes{0};
};

class LocalPeers;
class LocalPeerTable;  // local_peers.cc

// `inner` wrapped and entered in `peers` under inner->address().
// AlreadyExists (naming the address) when another node of `peers` holds that
// address, InvalidArgument when it is empty; on an error `inner` is shut down
// and destroyed.
[[nodiscard]] Result<std::unique_ptr<Transport>> WithLocalPeers(
    LocalPeers& peers, std::unique_ptr<Transport> inner,
    std::shared_ptr<LocalPeerStats> stats = nullptr);

class LocalPeers {
 public:
  LocalPeers();
  ~LocalPeers();
  LocalPeers(const LocalPeers&) = delete;
  LocalPeers& operator=(const LocalPeers&) = delete;

 private:
  friend Result<std::unique_ptr<Transport>> WithLocalPeers(LocalPeers& peers,
                                                           std::unique_ptr<Transport> inner,
                                                           std::shared_ptr<LocalPeerStats> stats);
  // Shared with every decorator entered in it (see Lifetime above).
  const std::shared_ptr<LocalPeerTable> table_;
};

}  // namespace distopt

#endif  // DISTOPT_TRANSPORT_LOCAL_PEERS_H_
