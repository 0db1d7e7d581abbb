#include "transport/local_peers.h"

#include <map>
#include <optional>

#include "base/mutex.h"

namespace distopt {
namespace {

// The process's co-located transports by address. A sender holds the lock
// while it delivers, so an entry cannot be destroyed in the middle of it.
class Registry {
 public:
  void Enter(const std::string& address, Transport* t) {
    MutexLock lock(&mu_);
    by_address_[address] = t;
  }
  // Removes `t`'s entry, unless another transport took the address since.
  void Leave(const std::string& address, Transport* t) {
    MutexLock lock(&mu_);
    auto it = by_address_.find(address);
    if (it != by_address_.end() && it->second == t) by_address_.erase(it);
  }
  // Hands `msg` to the co-located transport at `address` and returns what
  // its Deliver said; nothing (and `msg` untouched) if none is there.
  std::optional<Status> Deliver(const std::string& address, Message& msg) {
    MutexLock lock(&mu_);
    auto it = by_address_.find(address);
    if (it == by_address_.end()) return std::nullopt;
    return it->second->Deliver(std::move(msg));
  }

 private:
  Mutex mu_;
  std::map<std::string, Transport*> by_address_ GUARDED_BY(mu_);
};

Registry& Local() {
  static Registry* r = new Registry();  // never destroyed: used until exit
  return *r;
}

class LocalPeersTransport : public Transport {
 public:
  LocalPeersTransport(std::unique_ptr<Transport> inner, std::shared_ptr<LocalPeerStats> stats)
      : inner_(std::move(inner)), stats_(std::move(stats)), address_(inner_->address()) {
    Local().Enter(address_, inner_.get());
  }
  ~LocalPeersTransport() override { Shutdown(); }

  std::string address() const override { return address_; }

  Status Connect(NodeId peer, const std::string& address) override {
    {
      MutexLock lock(&mu_);
      peers_[peer] = address;
    }
    return inner_->Connect(peer, address);
  }

  void Disconnect(NodeId peer) override {
    {
      MutexLock lock(&mu_);
      peers_.erase(peer);
    }
    inner_->Disconnect(peer);
  }

  Status Send(NodeId peer, Message msg) override {
    std::string to;
    {
      MutexLock lock(&mu_);
      auto it = peers_.find(peer);
      if (it != peers_.end()) to = it->second;
    }
    if (!to.empty() && to != address_) {
      const size_t bytes = msg.ByteSize();
      if (std::optional<Status> s = Local().Deliver(to, msg)) {
        if (s->ok() && stats_) {
          stats_->local_messages.fetch_add(1, std::memory_order_relaxed);
          stats_->local_bytes.fetch_add(bytes, std::memory_order_relaxed);
        }
        // A co-located node that is shut down is like a dead peer: the
        // message vanishes.
        return s->code() == StatusCode::kAborted ? Status::Ok() : *s;
      }
    }
    return inner_->Send(peer, std::move(msg));
  }

  Result<Message> Recv(Deadline deadline) override { return inner_->Recv(deadline); }
  Status Deliver(Message msg) override { return inner_->Deliver(std::move(msg)); }

  void Shutdown() override {
    Local().Leave(address_, inner_.get());
    inner_->Shutdown();
  }

  TransportStats Stats() const override { return inner_->Stats(); }

 private:
  const std::unique_ptr<Transport> inner_;
  const std::shared_ptr<LocalPeerStats> stats_;
  const std::string address_;
  Mutex mu_;
  std::map<NodeId, std::string> peers_ GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<Transport> WithLocalPeers(std::unique_ptr<Transport> inner,
                                          std::shared_ptr<LocalPeerStats> stats) {
  return std::make_unique<LocalPeersTransport>(std::move(inner), std::move(stats));
}

}  // namespace distopt
