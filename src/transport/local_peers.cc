#include "transport/local_peers.h"

#include <map>
#include <mutex>

namespace distopt {
namespace {

// The process's co-located transports by address. A sender holds the lock
// while it delivers, so an entry cannot be destroyed in the middle of it.
struct Registry {
  std::mutex mu;
  std::map<std::string, Transport*> by_address;
};

Registry& Local() {
  static Registry* r = new Registry();  // never destroyed: used until exit
  return *r;
}

class LocalPeersTransport : public Transport {
 public:
  LocalPeersTransport(std::unique_ptr<Transport> inner, std::shared_ptr<LocalPeerStats> stats)
      : inner_(std::move(inner)), stats_(std::move(stats)), address_(inner_->address()) {
    std::lock_guard<std::mutex> lock(Local().mu);
    Local().by_address[address_] = inner_.get();
  }
  ~LocalPeersTransport() override { Shutdown(); }

  std::string address() const override { return address_; }

  Status Connect(NodeId peer, const std::string& address) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      peers_[peer] = address;
    }
    return inner_->Connect(peer, address);
  }

  void Disconnect(NodeId peer) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      peers_.erase(peer);
    }
    inner_->Disconnect(peer);
  }

  Status Send(NodeId peer, Message msg) override {
    std::string to;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = peers_.find(peer);
      if (it != peers_.end()) to = it->second;
    }
    if (!to.empty() && to != address_) {
      std::lock_guard<std::mutex> lock(Local().mu);
      auto it = Local().by_address.find(to);
      if (it != Local().by_address.end()) {
        const size_t bytes = msg.ByteSize();
        Status s = it->second->Deliver(std::move(msg));
        if (s.ok() && stats_) {
          stats_->local_messages.fetch_add(1, std::memory_order_relaxed);
          stats_->local_bytes.fetch_add(bytes, std::memory_order_relaxed);
        }
        // A co-located node that is shut down is like a dead peer: the
        // message vanishes.
        return s.code() == StatusCode::kAborted ? Status::Ok() : s;
      }
    }
    return inner_->Send(peer, std::move(msg));
  }

  Result<Message> Recv(Deadline deadline) override { return inner_->Recv(deadline); }
  Status Deliver(Message msg) override { return inner_->Deliver(std::move(msg)); }

  void Shutdown() override {
    {
      std::lock_guard<std::mutex> lock(Local().mu);
      auto it = Local().by_address.find(address_);
      if (it != Local().by_address.end() && it->second == inner_.get()) {
        Local().by_address.erase(it);
      }
    }
    inner_->Shutdown();
  }

  TransportStats Stats() const override { return inner_->Stats(); }

 private:
  const std::unique_ptr<Transport> inner_;
  const std::shared_ptr<LocalPeerStats> stats_;
  const std::string address_;
  std::mutex mu_;
  std::map<NodeId, std::string> peers_;  // guarded by mu_
};

}  // namespace

std::unique_ptr<Transport> WithLocalPeers(std::unique_ptr<Transport> inner,
                                          std::shared_ptr<LocalPeerStats> stats) {
  return std::make_unique<LocalPeersTransport>(std::move(inner), std::move(stats));
}

}  // namespace distopt
