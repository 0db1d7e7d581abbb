#include "transport/faulty_transport.h"

#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>

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

  Status Send(NodeId peer, Message msg) override {
    int copies = 1;
    Duration delay = Duration::zero();
    bool kill = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
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
        std::lock_guard<std::mutex> lock(mu_);
        delayed_.emplace(std::chrono::steady_clock::now() + delay, std::make_pair(peer, msg));
        cv_.notify_one();
      } else {
        RETURN_IF_ERROR(inner_->Send(peer, msg));
      }
    }
    return Status::Ok();
  }

  Result<Message> Recv(Deadline deadline) override { return inner_->Recv(deadline); }

  void Shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (timer_.joinable()) timer_.join();
    inner_->Shutdown();
  }

  TransportStats Stats() const override { return inner_->Stats(); }

 private:
  void TimerLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      if (delayed_.empty()) {
        cv_.wait(lock);
        continue;
      }
      auto first = delayed_.begin();
      if (std::chrono::steady_clock::now() < first->first) {
        cv_.wait_until(lock, first->first);
        continue;
      }
      auto [peer, msg] = std::move(first->second);
      delayed_.erase(first);
      lock.unlock();
      inner_->Send(peer, std::move(msg)).IgnoreError();
      lock.lock();
    }
  }

  const std::unique_ptr<Transport> inner_;
  const FaultOptions options_;
  const Logger log_;
  const std::shared_ptr<FaultStats> stats_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::mt19937_64 rng_;                                            // guarded by mu_
  int64_t sent_ = 0;                                               // guarded by mu_
  bool dead_ = false;                                              // guarded by mu_
  bool stopping_ = false;                                          // guarded by mu_
  std::multimap<SteadyTime, std::pair<NodeId, Message>> delayed_;  // guarded by mu_
  std::thread timer_;
};

}  // namespace

std::unique_ptr<Transport> WithFaults(std::unique_ptr<Transport> inner, FaultOptions options,
                                      Logger log, std::shared_ptr<FaultStats> stats) {
  return std::make_unique<FaultyTransport>(std::move(inner), std::move(options), std::move(log),
                                           std::move(stats));
}

}  // namespace distopt
