#include "transport/zmq_transport.h"

#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "base/queue.h"

namespace distopt {
namespace {

// Frames smaller than this are copied into ZeroMQ's own message (cheaper
// than the bookkeeping of a zero-copy hand-off).
constexpr size_t kZeroCopyThreshold = 4096;

std::string ZmqError(const char* what) {
  return std::string(what) + ": " + zmq_strerror(zmq_errno());
}

// Keeps a Buffer alive until ZeroMQ is done sending it.
void ReleaseBuffer(void* /*data*/, void* hint) { delete static_cast<Buffer*>(hint); }

// Owns a received zmq_msg_t so a Buffer can view it without a copy.
struct ZmqMsgHolder {
  zmq_msg_t msg;
  ~ZmqMsgHolder() { zmq_msg_close(&msg); }
};

struct Outgoing {
  NodeId peer;
  std::vector<Buffer> frames;
};

class ZmqTransport : public Transport {
 public:
  ZmqTransport(ZmqOptions options, Logger log)
      : options_(std::move(options)), log_(std::move(log)) {}

  ~ZmqTransport() override {
    Shutdown();
    if (ctx_ != nullptr) zmq_ctx_term(ctx_);
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  Status Start() {
    ctx_ = zmq_ctx_new();
    if (ctx_ == nullptr) return InternalError(ZmqError("zmq_ctx_new"));
    zmq_ctx_set(ctx_, ZMQ_IO_THREADS, options_.io_threads);
    router_ = zmq_socket(ctx_, ZMQ_ROUTER);
    if (router_ == nullptr) return InternalError(ZmqError("zmq_socket(ROUTER)"));
    // Refuse oversized messages before ZeroMQ allocates them.
    int64_t max_msg = static_cast<int64_t>(options_.limits.max_values * sizeof(float) +
                                           options_.limits.max_keys * sizeof(uint64_t) +
                                           options_.limits.max_body_bytes + kHeaderSize);
    zmq_setsockopt(router_, ZMQ_MAXMSGSIZE, &max_msg, sizeof(max_msg));
    int hwm = 0;  // flow control lives in the KV layer (bounded requests)
    zmq_setsockopt(router_, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    int linger = 0;
    zmq_setsockopt(router_, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_bind(router_, options_.bind.c_str()) != 0) {
      return UnavailableError(ZmqError(("cannot listen on " + options_.bind).c_str()));
    }
    char endpoint[256];
    size_t len = sizeof(endpoint);
    zmq_getsockopt(router_, ZMQ_LAST_ENDPOINT, endpoint, &len);
    address_ = endpoint;
    // ZeroMQ reports a wildcard bind as 0.0.0.0; peers need a routable host.
    for (const char* wildcard : {"tcp://0.0.0.0:", "tcp://*:"}) {
      if (address_.rfind(wildcard, 0) == 0) {
        address_ =
            "tcp://" + options_.advertise_host + ":" + address_.substr(std::strlen(wildcard));
      }
    }
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) return InternalError(std::string("eventfd: ") + std::strerror(errno));
    io_thread_ = std::thread([this] { IoLoop(); });
    return Status::Ok();
  }

  std::string address() const override { return address_; }

  Status Connect(NodeId peer, const std::string& address) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return AbortedError("transport is shut down");
      pending_connects_.push_back({peer, address});
    }
    Wake();
    return Status::Ok();
  }

  void Disconnect(NodeId peer) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_connects_.push_back({peer, ""});
    }
    Wake();
  }

  Status Send(NodeId peer, Message msg) override {
    size_t bytes = msg.ByteSize();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return AbortedError("transport is shut down");
      outbox_.push_back(Outgoing{peer, EncodeFrames(msg)});
    }
    counters_.CountSent(bytes);
    Wake();
    return Status::Ok();
  }

  Result<Message> Recv(Deadline deadline) override { return PopInbox(inbox_, deadline); }

  Status Deliver(Message msg) override {
    const size_t bytes = msg.ByteSize();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return AbortedError("transport is shut down");
    }
    counters_.CountReceived(bytes);
    inbox_.Push(std::move(msg));
    return Status::Ok();
  }

  void Shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    Wake();
    if (io_thread_.joinable()) io_thread_.join();
    inbox_.Close();
  }

  TransportStats Stats() const override { return counters_.Snapshot(); }

 private:
  void Wake() {
    uint64_t one = 1;
    ssize_t n = write(wake_fd_, &one, sizeof(one));
    (void)n;  // EAGAIN means the counter is already non-zero: still awake
  }

  // --- everything below runs on the I/O thread ---

  void IoLoop() {
    zmq_pollitem_t items[2] = {{router_, 0, ZMQ_POLLIN, 0}, {nullptr, wake_fd_, ZMQ_POLLIN, 0}};
    while (true) {
      if (zmq_poll(items, 2, 1000) < 0 && zmq_errno() != EINTR) {
        log_.Error(ZmqError("zmq_poll"));
        break;
      }
      if (items[1].revents & ZMQ_POLLIN) {
        uint64_t v;
        ssize_t n = read(wake_fd_, &v, sizeof(v));
        (void)n;
      }
      bool stop = DrainCommands();
      // Bounded so a flood of inbound messages cannot starve our sends.
      for (int i = 0; i < 256 && ReceiveOne(); ++i) {
      }
      if (stop) break;
    }
    CloseSockets();
  }

  // Applies queued connects and sends; returns true when shutting down.
  bool DrainCommands() {
    std::vector<std::pair<NodeId, std::string>> connects;
    std::deque<Outgoing> out;
    bool stopping;
    {
      std::lock_guard<std::mutex> lock(mu_);
      connects.swap(pending_connects_);
      out.swap(outbox_);
      stopping = stopping_;
    }
    for (auto& [peer, addr] : connects) ApplyConnect(peer, addr);
    for (auto& o : out) SendFrames(o);
    return stopping;
  }

  void ApplyConnect(NodeId peer, const std::string& address) {
    auto it = dealers_.find(peer);
    if (it != dealers_.end()) {
      if (it->second.address == address) return;
      int linger = 0;
      zmq_setsockopt(it->second.socket, ZMQ_LINGER, &linger, sizeof(linger));
      zmq_close(it->second.socket);
      dealers_.erase(it);
    }
    if (address.empty()) return;
    void* s = zmq_socket(ctx_, ZMQ_DEALER);
    int hwm = 0;
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    // Our address is the routing id the peer's ROUTER sees: its logs can
    // name where a bad message came from.
    zmq_setsockopt(s, ZMQ_ROUTING_ID, address_.data(), std::min<size_t>(address_.size(), 255));
    int linger = options_.linger_ms;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_connect(s, address.c_str()) != 0) {
      log_.Error(
          ZmqError(("cannot connect to node " + std::to_string(peer) + " at " + address).c_str()));
      zmq_close(s);
      return;
    }
    dealers_[peer] = Dealer{s, address};
  }

  void SendFrames(Outgoing& o) {
    auto it = dealers_.find(o.peer);
    if (it == dealers_.end()) {
      counters_.unroutable.fetch_add(1, std::memory_order_relaxed);
      log_.Warn("dropped a message to node ", o.peer, ": no address known for it");
      return;
    }
    for (size_t i = 0; i < o.frames.size(); ++i) {
      const Buffer& f = o.frames[i];
      zmq_msg_t m;
      if (f.size() < kZeroCopyThreshold) {
        zmq_msg_init_size(&m, f.size());
        if (f.size() > 0) std::memcpy(zmq_msg_data(&m), f.data(), f.size());
      } else {
        auto* hold = new Buffer(f);
        zmq_msg_init_data(&m, const_cast<uint8_t*>(f.data()), f.size(), ReleaseBuffer, hold);
      }
      int more = i + 1 < o.frames.size() ? ZMQ_SNDMORE : 0;
      if (zmq_msg_send(&m, it->second.socket, more) < 0) {
        log_.Error(ZmqError(("send to node " + std::to_string(o.peer)).c_str()));
        zmq_msg_close(&m);
        return;
      }
    }
  }

  // Receives one multipart message if any is ready; false when none.
  bool ReceiveOne() {
    std::vector<Buffer> frames;
    std::string from;
    size_t bytes = 0;
    bool first = true;
    while (true) {
      auto hold = std::make_shared<ZmqMsgHolder>();
      zmq_msg_init(&hold->msg);
      if (zmq_msg_recv(&hold->msg, router_, first ? ZMQ_DONTWAIT : 0) < 0) {
        if (zmq_errno() != EAGAIN) log_.Error(ZmqError("zmq_msg_recv"));
        return false;
      }
      bool more = zmq_msg_more(&hold->msg) != 0;
      const void* data = zmq_msg_data(&hold->msg);
      size_t size = zmq_msg_size(&hold->msg);
      if (first) {
        from.assign(static_cast<const char*>(data), size);  // routing id = sender address
        first = false;
      } else if (frames.size() <= kFramesPerMessage) {
        // (beyond that the message is bad anyway; keep draining its frames)
        bytes += size;
        frames.emplace_back(std::shared_ptr<const void>(hold, data), data, size);
      }
      if (!more) break;
    }
    auto m = DecodeFrames(std::move(frames), options_.limits);
    if (!m.ok()) {
      counters_.bad_messages.fetch_add(1, std::memory_order_relaxed);
      log_.Warn("dropped a bad message from ", from.empty() ? "an unnamed peer" : from, ": ",
                m.status().message());
      return true;
    }
    counters_.CountReceived(bytes);
    inbox_.Push(std::move(*m));
    return true;
  }

  void CloseSockets() {
    for (auto& [peer, d] : dealers_) zmq_close(d.socket);
    dealers_.clear();
    zmq_close(router_);
    router_ = nullptr;
  }

  struct Dealer {
    void* socket;
    std::string address;
  };

  const ZmqOptions options_;
  const Logger log_;
  void* ctx_ = nullptr;
  int wake_fd_ = -1;
  std::string address_;  // set in Start, constant afterwards
  TransportCounters counters_;
  BlockingQueue<Message> inbox_;
  std::thread io_thread_;

  // Owned by the I/O thread only.
  void* router_ = nullptr;
  std::map<NodeId, Dealer> dealers_;

  std::mutex mu_;
  std::deque<Outgoing> outbox_;                                   // guarded by mu_
  std::vector<std::pair<NodeId, std::string>> pending_connects_;  // guarded by mu_
  bool stopping_ = false;                                         // guarded by mu_
};

}  // namespace

Result<std::unique_ptr<Transport>> CreateZmqTransport(const ZmqOptions& options, Logger log) {
  auto t = std::make_unique<ZmqTransport>(options, std::move(log));
  RETURN_IF_ERROR(t->Start());
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace distopt
