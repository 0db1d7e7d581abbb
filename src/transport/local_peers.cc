#include "transport/local_peers.h"

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "base/mutex.h"

namespace distopt {

// The co-located transports of one LocalPeers, by address. A sender holds the
// lock while it delivers, so an entry cannot be destroyed in the middle of it
// (a decorator leaves before its inner transport shuts down).
class LocalPeerTable {
 public:
  Status Enter(const std::string& address, Transport* t) {
    if (address.empty()) return InvalidArgumentError("a local peer needs an address");
    MutexLock lock(&mu_);
    auto [it, entered] = by_address_.emplace(address, t);
    if (!entered) {
      return AlreadyExistsError("local peer address " + address +
                                " is already taken by another node of these LocalPeers");
    }
    return Status::Ok();
  }
  // Removes `t`'s entry; another transport's entry at the address stays.
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

namespace {

class LocalPeersTransport : public Transport {
 public:
  LocalPeersTransport(std::shared_ptr<LocalPeerTable> table, std::unique_ptr<Transport> inner,
                      std::shared_ptr<LocalPeerStats> stats)
      : table_(std::move(table)),
        inner_(std::move(inner)),
        stats_(std::move(stats)),
        address_(inner_->address()) {}
  ~LocalPeersTransport() override { Shutdown(); }

  // Enters the inner transport in the table (once, by WithLocalPeers).
  Status Enter() { return table_->Enter(address_, inner_.get()); }

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

  void DropQueued(NodeId peer) override { inner_->DropQueued(peer); }

  Status Send(NodeId peer, Message msg) override {
    std::string to;
    {
      MutexLock lock(&mu_);
      auto it = peers_.find(peer);
      if (it != peers_.end()) to = it->second;
    }
    if (!to.empty() && to != address_) {
      const size_t bytes = msg.ByteSize();
      if (std::optional<Status> s = table_->Deliver(to, msg)) {
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
    table_->Leave(address_, inner_.get());
    inner_->Shutdown();
  }

  TransportStats Stats() const override { return inner_->Stats(); }

 private:
  const std::shared_ptr<LocalPeerTable> table_;
  const std::unique_ptr<Transport> inner_;
  const std::shared_ptr<LocalPeerStats> stats_;
  const std::string address_;
  Mutex mu_;
  std::map<NodeId, std::string> peers_ GUARDED_BY(mu_);
};

}  // namespace

LocalPeers::LocalPeers() : table_(std::make_shared<LocalPeerTable>()) {}
LocalPeers::~LocalPeers() = default;

Result<std::unique_ptr<Transport>> WithLocalPeers(LocalPeers& peers,
                                                  std::unique_ptr<Transport> inner,
                                                  std::shared_ptr<LocalPeerStats> stats) {
  auto t = std::make_unique<LocalPeersTransport>(peers.table_, std::move(inner), std::move(stats));
  // On an error `t` is destroyed: its Shutdown leaves nothing (the entry at
  // the address is another transport's) and shuts `inner` down.
  RETURN_IF_ERROR(t->Enter());
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace distopt
