#include "transport/faulty_transport.h"

#include <map>
#include <random>
#include <thread>

#include "base/mutex.h"

namespace distopt {
namespace {

bool IsKv(MsgType t) { return static_cast<uint8_t>(t) >= static_cast<uint8_t>(MsgType::kPush); }

class FaultyTransport : public Transport {
 public:
  FaultyTransport(std::unique_ptr<Transport> inner, FaultOptions o, Logger log,
                  std::shared_ptr<FaultStats> stats)
      : inner_(std::move(inner)),
        options_(std::move(o)),
        log_(std::move(log)),
        stats_(stats ? std::move(stats) : std::make_shared<FaultStats>()),
        rng_(options_.seed) {
    if (options_.max_delay > Duration::zero()) timer_ = std::thread([this] { TimerLoop(); });
  }

  ~FaultyTransport() override { Shutdown(); }

  std::string address() const override { return inner_->address(); }
  Status Connect(NodeId peer, const std::string& address) override {
    return inner_->Connect(peer, address);
  }
  void Disconnect(NodeId peer) override { inner_->Disconnect(peer); }
  void DropQueued(NodeId peer) override { inner_->DropQueued(peer); }

  Status Send(NodeId peer, Message msg) override {
    int copies = 1;
    Duration delay = Duration::zero();
    bool kill = false;
    {
      MutexLock lock(&mu_);
      if (dead_) return Status::Ok();  // a dead node's messages go nowhere
      if (options_.kill_after >= 0 && ++sent_ > options_.kill_after) {
        dead_ = true;
        kill = true;
      } else if (!options_.kv_only || IsKv(msg.type)) {
        std::uniform_real_distribution<double> u(0.0, 1.0);
        if (u(rng_) < options_.drop) {
          ++stats_->dropped;
          return Status::Ok();
        }
        if (u(rng_) < options_.duplicate) {
          ++stats_->duplicated;
          copies = 2;
        }
        if (options_.max_delay > Duration::zero()) {
          delay = Duration(static_cast<Duration::rep>(u(rng_) * options_.max_delay.count()));
          ++stats_->delayed;
        }
      }
    }
    if (kill) {
      log_.Warn("fault injection: killing this node after ", options_.kill_after, " messages");
      if (options_.on_kill) options_.on_kill();
      inner_->Shutdown();
      return Status::Ok();
    }
    for (int i = 0; i < copies; ++i) {
      if (delay > Duration::zero()) {
        MutexLock lock(&mu_);
        delayed_.emplace(std::chrono::steady_clock::now() + delay, std::make_pair(peer, msg));
        cv_.Signal();
      } else {
        RETURN_IF_ERROR(inner_->Send(peer, msg));
      }
    }
    return Status::Ok();
  }

  Result<Message> Recv(Deadline deadline) override { return inner_->Recv(deadline); }
  // A co-located node's hand-off (cluster.placement = "process") is not the
  // network's: no faults.
  Status Deliver(Message msg) override { return inner_->Deliver(std::move(msg)); }

  // Two threads may shut down at once (Dispatcher::Stop runs on a node's own
  // thread and on the one that kills it): the first takes the timer thread
  // and joins it, as joining one std::thread twice is undefined.
  void Shutdown() override {
    std::thread timer;
    {
      MutexLock lock(&mu_);
      stopping_ = true;
      timer.swap(timer_);
    }
    cv_.SignalAll();
    if (timer.joinable()) timer.join();
    inner_->Shutdown();
  }

  TransportStats Stats() const override { return inner_->Stats(); }

 private:
  void TimerLoop() {
    MutexLock lock(&mu_);
    while (!stopping_) {
      if (delayed_.empty()) {
        cv_.Wait(&mu_);
        continue;
      }
      auto first = delayed_.begin();
      if (std::chrono::steady_clock::now() < first->first) {
        cv_.WaitUntil(&mu_, Deadline::At(first->first));
        continue;
      }
      auto [peer, msg] = std::move(first->second);
      delayed_.erase(first);
      lock.Unlock();
      inner_->Send(peer, std::move(msg)).IgnoreError();
      lock.Lock();
    }
  }

  const std::unique_ptr<Transport> inner_;
  const FaultOptions options_;
  const Logger log_;
  const std::shared_ptr<FaultStats> stats_;

  Mutex mu_;
  CondVar cv_;
  std::mt19937_64 rng_ GUARDED_BY(mu_);
  int64_t sent_ GUARDED_BY(mu_) = 0;
  bool dead_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::multimap<SteadyTime, std::pair<NodeId, Message>> delayed_ GUARDED_BY(mu_);
  std::thread timer_ GUARDED_BY(mu_);  // taken by the first Shutdown()
};

}  // namespace

std::unique_ptr<Transport> WithFaults(std::unique_ptr<Transport> inner, FaultOptions options,
                                      Logger log, std::shared_ptr<FaultStats> stats) {
  return std::make_unique<FaultyTransport>(std::move(inner), std::move(options), std::move(log),
                                           std::move(stats));
}

}  // namespace distopt
