#include "transport/inproc_transport.h"

#include "base/queue.h"

namespace distopt {

Result<Message> PopInbox(BlockingQueue<Message>& inbox, Deadline deadline) {
  auto m = inbox.Pop(deadline);
  if (m.has_value()) return std::move(*m);
  if (inbox.closed()) return AbortedError("transport is shut down");
  return DeadlineExceededError("no message before the deadline");
}

TransportStats TransportCounters::Snapshot() const {
  TransportStats s;
  s.messages_sent = messages_sent.load(std::memory_order_relaxed);
  s.bytes_sent = bytes_sent.load(std::memory_order_relaxed);
  s.messages_received = messages_received.load(std::memory_order_relaxed);
  s.bytes_received = bytes_received.load(std::memory_order_relaxed);
  s.bad_messages = bad_messages.load(std::memory_order_relaxed);
  s.unroutable = unroutable.load(std::memory_order_relaxed);
  s.refused_peers = refused_peers.load(std::memory_order_relaxed);
  s.unauthorized = unauthorized.load(std::memory_order_relaxed);
  s.local_lane_dials = local_lane_dials.load(std::memory_order_relaxed);
  return s;
}

class InProcTransport : public Transport {
 public:
  InProcTransport(std::shared_ptr<InProcHub> hub, std::string address, Logger log,
                  WireLimits limits)
      : hub_(std::move(hub)), address_(std::move(address)), log_(std::move(log)), limits_(limits) {}

  ~InProcTransport() override { Shutdown(); }

  std::string address() const override { return address_; }

  Status Connect(NodeId peer, const std::string& address) override {
    MutexLock lock(&mu_);
    peers_[peer] = address;
    return Status::Ok();
  }

  void Disconnect(NodeId peer) override {
    MutexLock lock(&mu_);
    peers_.erase(peer);
  }

  Status Send(NodeId peer, Message msg) override {
    std::string to;
    {
      MutexLock lock(&mu_);
      if (closed_) return AbortedError("transport is shut down");
      auto it = peers_.find(peer);
      if (it == peers_.end()) {
        counters_.unroutable.fetch_add(1, std::memory_order_relaxed);
        return UnavailableError("no address for node " + std::to_string(peer));
      }
      to = it->second;
    }
    size_t bytes = msg.ByteSize();
    // A node of the hub that is "killed" keeps its objects, and with them
    // what it received: lent bytes would never go back to their lender (a
    // process that dies takes its copy with it). The receiver gets its own.
    if (msg.values.lent()) msg.values = Buffer::Copy(msg.values.data(), msg.values.size());
    if (!hub_->Deliver(to, EncodeFrames(msg), address_)) {
      // Like a network: a message to a node that is gone vanishes.
      counters_.unroutable.fetch_add(1, std::memory_order_relaxed);
      return Status::Ok();
    }
    counters_.CountSent(bytes);
    return Status::Ok();
  }

  Result<Message> Recv(Deadline deadline) override { return PopInbox(inbox_, deadline); }

  void Shutdown() override {
    {
      MutexLock lock(&mu_);
      if (closed_) return;
      closed_ = true;
    }
    hub_->Remove(address_, this);
    inbox_.Close();
  }

  TransportStats Stats() const override { return counters_.Snapshot(); }

  Status Deliver(Message msg) override {
    {
      MutexLock lock(&mu_);
      if (closed_) return AbortedError("transport is shut down");
    }
    counters_.CountReceived(msg.ByteSize());
    inbox_.Push(std::move(msg));
    return Status::Ok();
  }

  // Called by the hub on the sender's thread.
  void DeliverFrames(std::vector<Buffer> frames, const std::string& from) {
    size_t bytes = 0;
    for (const auto& f : frames) bytes += f.size();
    auto m = DecodeFrames(std::move(frames), limits_);
    if (!m.ok()) {
      counters_.bad_messages.fetch_add(1, std::memory_order_relaxed);
      log_.Warn("dropped a bad message from ", from, ": ", m.status().message());
      return;
    }
    counters_.CountReceived(bytes);
    inbox_.Push(std::move(*m));
  }

 private:
  const std::shared_ptr<InProcHub> hub_;
  const std::string address_;
  const Logger log_;
  const WireLimits limits_;
  TransportCounters counters_;
  BlockingQueue<Message> inbox_;

  Mutex mu_;
  std::map<NodeId, std::string> peers_ GUARDED_BY(mu_);
  bool closed_ GUARDED_BY(mu_) = false;
};

Result<std::unique_ptr<Transport>> InProcHub::Create(std::string address, Logger log,
                                                     WireLimits limits) {
  MutexLock lock(&mu_);
  if (address.empty()) address = "inproc://auto/" + std::to_string(next_auto_++);
  if (nodes_.count(address) != 0) return AlreadyExistsError(address + " is already bound");
  auto t = std::make_unique<InProcTransport>(shared_from_this(), address, std::move(log), limits);
  nodes_[address] = t.get();
  return std::unique_ptr<Transport>(std::move(t));
}

bool InProcHub::Deliver(const std::string& address, std::vector<Buffer> frames,
                        const std::string& from) {
  // Delivery happens under the hub lock so a transport cannot be destroyed
  // while a sender is handing it a message; Deliver only decodes and queues.
  MutexLock lock(&mu_);
  auto it = nodes_.find(address);
  if (it == nodes_.end()) return false;
  it->second->DeliverFrames(std::move(frames), from);
  return true;
}

void InProcHub::Remove(const std::string& address, InProcTransport* t) {
  MutexLock lock(&mu_);
  auto it = nodes_.find(address);
  if (it != nodes_.end() && it->second == t) nodes_.erase(it);
}

}  // namespace distopt
