// Transport: moves Messages between nodes. One instance per node; it owns the
// node's sockets and the I/O thread that drives them. Send() queues and never
// blocks on the network; Recv() hands out the next message that decoded
// cleanly (bad ones are logged with the peer, counted and dropped). All
// methods are thread-safe. Implementations: ZeroMQ (tcp://, ipc://) and
// in-process (threads of one test process), plus decorators (fault injection).
//
//   ASSIGN_OR_RETURN(auto t, CreateZmqTransport({.bind = "tcp://127.0.0.1:0"}, log));
//   RETURN_IF_ERROR(t->Connect(kCoordinatorId, "tcp://10.0.0.5:7070"));
//   RETURN_IF_ERROR(t->Send(kCoordinatorId, std::move(msg)));
//   ASSIGN_OR_RETURN(Message reply, t->Recv(Deadline::After(5s)));
#ifndef DISTOPT_TRANSPORT_TRANSPORT_H_
#define DISTOPT_TRANSPORT_TRANSPORT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "base/queue.h"
#include "base/time.h"
#include "distopt/status.h"
#include "wire/message.h"

namespace distopt {

struct TransportStats {
  uint64_t messages_sent = 0;
  uint64_t bytes_sent = 0;
  uint64_t messages_received = 0;
  uint64_t bytes_received = 0;
  uint64_t bad_messages = 0;   // failed to decode, dropped
  uint64_t unroutable = 0;     // sent to a peer we have no address for
  uint64_t refused_peers = 0;  // connections refused: unknown key, wrong mechanism, bad handshake
  uint64_t unauthorized = 0;   // messages dropped: the sender's role may not send them
  uint64_t local_lane_dials = 0;  // connections made over the local lane (zmq_transport.h)
};

// Counters shared by the implementations (relaxed atomics: statistics only).
struct TransportCounters {
  std::atomic<uint64_t> messages_sent{0};
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> messages_received{0};
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> bad_messages{0};
  std::atomic<uint64_t> unroutable{0};
  std::atomic<uint64_t> refused_peers{0};
  std::atomic<uint64_t> unauthorized{0};
  std::atomic<uint64_t> local_lane_dials{0};
  TransportStats Snapshot() const;
  void CountSent(uint64_t bytes) {
    messages_sent.fetch_add(1, std::memory_order_relaxed);
    bytes_sent.fetch_add(bytes, std::memory_order_relaxed);
  }
  void CountReceived(uint64_t bytes) {
    messages_received.fetch_add(1, std::memory_order_relaxed);
    bytes_received.fetch_add(bytes, std::memory_order_relaxed);
  }
};

// Recv() of the implementations that queue decoded messages for the node:
// the next one, kDeadlineExceeded, or kAborted once the queue is closed.
Result<Message> PopInbox(BlockingQueue<Message>& inbox, Deadline deadline);

class Transport {
 public:
  virtual ~Transport() = default;

  // The address other nodes reach this one at (resolved: a real port).
  virtual std::string address() const = 0;

  // Makes `peer` reachable at `address`; replaces an older address.
  virtual Status Connect(NodeId peer, const std::string& address) = 0;
  virtual void Disconnect(NodeId peer) = 0;
  // Discards what is queued for `peer` and not yet written, releasing its
  // Buffers; `peer` stays reachable at its address. For a peer that died or
  // messages nobody waits for any more. A transport that hands messages
  // over at once (in process) has no queue: a no-op.
  virtual void DropQueued(NodeId /*peer*/) {}

  // Queues `msg` for `peer`. Payload buffers are shared with the socket, not
  // copied: callers must not modify them afterwards.
  virtual Status Send(NodeId peer, Message msg) = 0;

  // The next inbound message; kDeadlineExceeded when none arrived in time,
  // kAborted once the transport is shut down.
  virtual Result<Message> Recv(Deadline deadline) = 0;

  // Hands `msg` to this node's Recv as if it had arrived (a co-located node
  // of the same process sending without a socket; see local_peers.h).
  // kUnimplemented where a transport cannot take it, kAborted once shut down.
  virtual Status Deliver(Message msg) {
    (void)msg;
    return UnimplementedError("this transport takes no local deliveries");
  }
  // Stops the I/O thread and wakes Recv callers. Idempotent.
  virtual void Shutdown() = 0;

  virtual TransportStats Stats() const = 0;
};

}  // namespace distopt

#endif  // DISTOPT_TRANSPORT_TRANSPORT_H_
