// RecordingTransport: a Transport for unit tests that keeps what is sent
// (by peer, in order) instead of sending it. Thread-safe.
//
//   RecordingTransport t;
//   stream.Send(...);
//   EXPECT_EQ(t.SentTo(kBackup).size(), 1u);
#ifndef DISTOPT_KV_TESTING_RECORDING_TRANSPORT_H_
#define DISTOPT_KV_TESTING_RECORDING_TRANSPORT_H_

#include <utility>
#include <vector>

#include "base/mutex.h"
#include "transport/transport.h"

namespace distopt {

class RecordingTransport : public Transport {
 public:
  std::string address() const override { return "inproc://recording"; }
  Status Connect(NodeId, const std::string&) override { return Status::Ok(); }
  void Disconnect(NodeId) override {}
  Status Send(NodeId peer, Message msg) override {
    MutexLock lock(&mu_);
    sent_.emplace_back(peer, std::move(msg));
    return Status::Ok();
  }
  Result<Message> Recv(Deadline) override { return DeadlineExceededError("nothing arrives here"); }
  void Shutdown() override {}
  TransportStats Stats() const override { return {}; }

  // The messages sent to `peer` so far, oldest first.
  std::vector<Message> SentTo(NodeId peer) const {
    MutexLock lock(&mu_);
    std::vector<Message> out;
    for (const auto& [p, m] : sent_) {
      if (p == peer) out.push_back(m);
    }
    return out;
  }
  void Clear() {
    MutexLock lock(&mu_);
    sent_.clear();
  }

 private:
  mutable Mutex mu_;
  std::vector<std::pair<NodeId, Message>> sent_ GUARDED_BY(mu_);
};

}  // namespace distopt

#endif  // DISTOPT_KV_TESTING_RECORDING_TRANSPORT_H_
