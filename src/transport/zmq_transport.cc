#include "transport/zmq_transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <thread>
#include <tuple>

#include "base/mutex.h"
#include "base/queue.h"
#include "transport/local_lane.h"
#include "transport/net_address.h"

namespace distopt {

namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
// Refusals are logged one by one up to this many, then one in 1000.
constexpr uint64_t kRefusalsLoggedInFull = 20;

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

// `bytes` random bytes as hex: a nonce, not a secret.
std::string RandomHex(int bytes) {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < bytes; ++i) {
    const unsigned b = rd() & 0xff;
    out += "0123456789abcdef"[b >> 4];
    out += "0123456789abcdef"[b & 0xf];
  }
  return out;
}

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
    const ZmqSecurity& sec = options_.security;
    if (sec.enabled()) {
      // The ZAP handler must be bound before any CURVE socket accepts.
      zap_ = zmq_socket(ctx_, ZMQ_REP);
      if (zap_ == nullptr || zmq_bind(zap_, kZapEndpoint) != 0) {
        return InternalError(ZmqError("binding the ZAP handler"));
      }
    }
    router_ = zmq_socket(ctx_, ZMQ_ROUTER);
    if (router_ == nullptr) return InternalError(ZmqError("zmq_socket(ROUTER)"));
    if (sec.enabled()) {
      int server = 1;
      if (zmq_setsockopt(router_, ZMQ_CURVE_SERVER, &server, sizeof(server)) != 0 ||
          zmq_setsockopt(router_, ZMQ_CURVE_SECRETKEY, sec.keys.secret_key.c_str(), 41) != 0) {
        return InternalError(ZmqError("enabling CURVE (is libzmq built with libsodium?)"));
      }
      zmq_setsockopt(router_, ZMQ_ZAP_DOMAIN, "distopt", 7);
      // Handshake failures before ZAP (a NULL or PLAIN peer, a wrong server
      // key, garbage bytes) only show as monitor events.
      const std::string mon =
          "inproc://distopt-monitor-" + std::to_string(reinterpret_cast<uintptr_t>(this));
      if (zmq_socket_monitor(router_, mon.c_str(),
                             ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) == 0) {
        monitor_ = zmq_socket(ctx_, ZMQ_PAIR);
        if (monitor_ != nullptr && zmq_connect(monitor_, mon.c_str()) != 0) {
          zmq_close(monitor_);
          monitor_ = nullptr;
        }
      }
    }
    LimitRouter(router_);
    // Dual-stack: tcp://*:PORT takes IPv4 and IPv6 peers, tcp://[fd00::1]:0 works.
    int ipv6 = 1;
    zmq_setsockopt(router_, ZMQ_IPV6, &ipv6, sizeof(ipv6));
    if (zmq_bind(router_, options_.bind.c_str()) != 0) {
      return UnavailableError(ZmqError(("cannot listen on " + options_.bind).c_str()));
    }
    char endpoint[256];
    size_t len = sizeof(endpoint);
    zmq_getsockopt(router_, ZMQ_LAST_ENDPOINT, endpoint, &len);
    address_ = endpoint;
    // With ZMQ_IPV6 on, an IPv4 bind is reported as an IPv4-mapped address.
    if (const std::string mapped = "tcp://[::ffff:"; address_.rfind(mapped, 0) == 0) {
      size_t close = address_.find(']');
      if (close != std::string::npos && address_.find('.') < close) {
        address_ = "tcp://" + address_.substr(mapped.size(), close - mapped.size()) +
                   address_.substr(close + 1);
      }
    }
    // ZeroMQ reports a wildcard bind as 0.0.0.0; peers need a routable host.
    for (const char* wildcard : {"tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:"}) {
      if (address_.rfind(wildcard, 0) == 0) {
        const std::string& h = options_.advertise_host;
        address_ = (h.find(':') != std::string::npos ? "tcp://[" + h + "]:" : "tcp://" + h + ":") +
                   address_.substr(std::strlen(wildcard));
      }
    }
    if (auto hp = ParseHostPort(address_); hp.ok()) own_host_ = hp->host;
    if (sec.enabled()) {
      address_ += "?curve=" + sec.keys.public_key;
      if (options_.local_lane) OpenLocalLane();
    }
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) return InternalError(std::string("eventfd: ") + std::strerror(errno));
    io_thread_ = std::thread([this] { IoLoop(); });
    return Status::Ok();
  }

  // What every ROUTER of this node refuses or never does.
  void LimitRouter(void* r) {
    // Refuse oversized messages before ZeroMQ allocates them.
    int64_t max_msg = static_cast<int64_t>(options_.limits.max_values * sizeof(float) +
                                           options_.limits.max_keys * sizeof(uint64_t) +
                                           options_.limits.max_body_bytes + kHeaderSize);
    zmq_setsockopt(r, ZMQ_MAXMSGSIZE, &max_msg, sizeof(max_msg));
    int hwm = 0;  // flow control lives in the KV layer (bounded requests)
    zmq_setsockopt(r, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    int linger = 0;
    zmq_setsockopt(r, ZMQ_LINGER, &linger, sizeof(linger));
    if (options_.receive_buffer > 0) {
      zmq_setsockopt(r, ZMQ_RCVBUF, &options_.receive_buffer, sizeof(options_.receive_buffer));
    }
  }

  // The local lane (local_lane.h): a PLAIN ROUTER on a Unix socket in this
  // user's private directory, advertised after the key. Without one (the
  // directory refused) every peer is dialled over TCP with CURVE.
  void OpenLocalLane() {
    const std::string dir =
        options_.local_lane_dir.empty() ? DefaultLocalLaneDir() : options_.local_lane_dir;
    const std::string path = dir + "/" + nonce_ + ".sock";
    Status ok = PrepareLocalLaneDir(dir);
    if (ok.ok()) SweepStaleLocalLanes(dir);
    if (ok.ok() && path.size() >= sizeof(sockaddr_un::sun_path)) {
      ok = InvalidArgumentError(path + " is too long for a Unix socket");
    }
    void* r = ok.ok() ? zmq_socket(ctx_, ZMQ_ROUTER) : nullptr;
    if (r != nullptr) {
      int server = 1;
      zmq_setsockopt(r, ZMQ_PLAIN_SERVER, &server, sizeof(server));
      zmq_setsockopt(r, ZMQ_ZAP_DOMAIN, "distopt", 7);
      LimitRouter(r);
      if (zmq_bind(r, ("ipc://" + path).c_str()) != 0) {
        ok = UnavailableError(ZmqError(("cannot listen on ipc://" + path).c_str()));
        zmq_close(r);
        r = nullptr;
      }
    }
    if (r == nullptr) {
      log_.Warn("no local lane (nodes of this host will talk CURVE over TCP): ", ok.message());
      return;
    }
    local_router_ = r;
    local_path_ = path;
    address_ += ";local=" + path;
  }

  // Dial `address`'s local lane rather than its TCP endpoint? Only a peer
  // that advertises our own host and a lane we may trust.
  bool UseLocalLane(const std::string& endpoint, const std::string& lane) const {
    if (local_router_ == nullptr || lane.empty() || !LocalLaneUsable(lane)) return false;
    auto theirs = ParseHostPort(endpoint);
    return theirs.ok() && !own_host_.empty() && theirs->host == own_host_;
  }

  std::string address() const override { return address_; }

  Status Connect(NodeId peer, const std::string& address) override {
    {
      MutexLock lock(&mu_);
      if (stopping_) return AbortedError("transport is shut down");
      pending_connects_.push_back({peer, address});
    }
    Wake();
    return Status::Ok();
  }

  void Disconnect(NodeId peer) override {
    {
      MutexLock lock(&mu_);
      pending_connects_.push_back({peer, ""});
    }
    Wake();
  }

  void DropQueued(NodeId peer) override {
    {
      MutexLock lock(&mu_);
      pending_drops_.push_back(peer);
    }
    Wake();
  }

  Status Send(NodeId peer, Message msg) override {
    size_t bytes = msg.ByteSize();
    {
      MutexLock lock(&mu_);
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
      MutexLock lock(&mu_);
      if (stopping_) return AbortedError("transport is shut down");
    }
    counters_.CountReceived(bytes);
    inbox_.Push(std::move(msg));
    return Status::Ok();
  }

  void Shutdown() override {
    {
      MutexLock lock(&mu_);
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
    // The wake fd, then every socket there is: the ROUTER, the local
    // lane's, the ZAP handler, the monitor.
    std::vector<zmq_pollitem_t> items = {{nullptr, wake_fd_, ZMQ_POLLIN, 0}};
    for (void* s : {router_, local_router_, zap_, monitor_}) {
      if (s != nullptr) items.push_back({s, 0, ZMQ_POLLIN, 0});
    }
    while (true) {
      if (zmq_poll(items.data(), static_cast<int>(items.size()), 1000) < 0 &&
          zmq_errno() != EINTR) {
        log_.Error(ZmqError("zmq_poll"));
        break;
      }
      if (items[0].revents & ZMQ_POLLIN) {
        uint64_t v;
        ssize_t n = read(wake_fd_, &v, sizeof(v));
        (void)n;
      }
      for (const zmq_pollitem_t& it : items) {
        if (!(it.revents & ZMQ_POLLIN)) continue;
        if (it.socket == zap_) AnswerZap();
        if (it.socket == monitor_) ReadMonitor();
      }
      bool stop = DrainCommands();
      // Bounded so a flood of inbound messages cannot starve our sends.
      for (int i = 0; i < 256 && ReceiveOne(router_); ++i) {
      }
      for (int i = 0; local_router_ != nullptr && i < 256 && ReceiveOne(local_router_); ++i) {
      }
      if (stop) break;
    }
    CloseSockets();
  }

  // Applies queued connects and sends; returns true when shutting down.
  bool DrainCommands() {
    std::vector<std::pair<NodeId, std::string>> connects;
    std::vector<NodeId> drops;
    std::deque<Outgoing> out;
    bool stopping;
    {
      MutexLock lock(&mu_);
      connects.swap(pending_connects_);
      drops.swap(pending_drops_);
      out.swap(outbox_);
      stopping = stopping_;
    }
    for (auto& [peer, addr] : connects) ApplyConnect(peer, addr);
    for (NodeId peer : drops) ApplyDrop(peer);
    for (auto& o : out) SendFrames(o);
    return stopping;
  }

  // A DEALER keeps what it could not write (its peer down, or slow) until
  // the socket closes: close it without lingering, which releases those
  // messages, and dial the same address again.
  void ApplyDrop(NodeId peer) {
    auto it = dealers_.find(peer);
    if (it == dealers_.end()) return;
    const std::string address = it->second.address;
    int linger = 0;
    zmq_setsockopt(it->second.socket, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_close(it->second.socket);
    dealers_.erase(it);
    ApplyConnect(peer, address);
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
    auto [endpoint, server_key] = SplitCurveAddress(address);
    const ZmqSecurity& sec = options_.security;
    if (sec.enabled() && server_key.size() != kCurveKeyChars) {
      log_.Error("refused to dial node ", peer, " at ", address,
                 ": this job runs CURVE and the address carries no public key");
      return;
    }
    const std::string lane = LocalLaneOf(address);
    const bool local = sec.enabled() && UseLocalLane(endpoint, lane);
    void* s = zmq_socket(ctx_, ZMQ_DEALER);
    if (local) {
      // PLAIN on a Unix socket only this user can reach: the secret key
      // proves who we are (local_lane.h).
      zmq_setsockopt(s, ZMQ_PLAIN_USERNAME, sec.keys.public_key.data(), sec.keys.public_key.size());
      zmq_setsockopt(s, ZMQ_PLAIN_PASSWORD, sec.keys.secret_key.data(), sec.keys.secret_key.size());
      counters_.local_lane_dials.fetch_add(1, std::memory_order_relaxed);
    } else if (sec.enabled()) {
      zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_key.c_str(), 41);
      zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, sec.keys.public_key.c_str(), 41);
      zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec.keys.secret_key.c_str(), 41);
    }
    int ipv6 = 1;
    zmq_setsockopt(s, ZMQ_IPV6, &ipv6, sizeof(ipv6));
    int hwm = 0;
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    // The routing id the peer's ROUTER sees: our address, so its logs can
    // name where a bad message came from, made unique per connection. A
    // ROUTER ignores a connection whose id is still held by an older one (a
    // redial after DropQueued, or a restart at the same address, before the
    // old connection's end reached it) and reads the messages behind it as
    // routing-id handshakes: they would be lost.
    const std::string me =
        SplitCurveAddress(address_).first + "#" + nonce_ + "." + std::to_string(++dials_);
    zmq_setsockopt(s, ZMQ_ROUTING_ID, me.data(), std::min<size_t>(me.size(), 255));
    int linger = options_.linger_ms;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_connect(s, local ? ("ipc://" + lane).c_str() : endpoint.c_str()) != 0) {
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
      // Never block the I/O thread: a DEALER whose only connection was torn
      // down (a CURVE handshake the peer refused) has no pipe to queue on and
      // would wait forever. The message is dropped; requests are resent above.
      int flags = ZMQ_DONTWAIT | (i + 1 < o.frames.size() ? ZMQ_SNDMORE : 0);
      if (zmq_msg_send(&m, it->second.socket, flags) < 0) {
        const bool no_pipe = zmq_errno() == EAGAIN;
        zmq_msg_close(&m);
        if (no_pipe) {
          uint64_t n = counters_.unroutable.fetch_add(1, std::memory_order_relaxed) + 1;
          if (n <= kRefusalsLoggedInFull || n % 1000 == 0) {
            log_.Warn("dropped a message to node ", o.peer, " at ",
                      SplitCurveAddress(it->second.address).first,
                      ": no connection (refused by its security, or not up)");
          }
        } else {
          log_.Error(ZmqError(("send to node " + std::to_string(o.peer)).c_str()));
        }
        return;
      }
    }
  }

  // Receives one multipart message if any is ready; false when none.
  bool ReceiveOne(void* socket) {
    std::vector<Buffer> frames;
    std::string from, user, peer_host;
    size_t bytes = 0;
    bool first = true;
    while (true) {
      auto hold = std::make_shared<ZmqMsgHolder>();
      zmq_msg_init(&hold->msg);
      if (zmq_msg_recv(&hold->msg, socket, first ? ZMQ_DONTWAIT : 0) < 0) {
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
        if (frames.empty()) {
          // Frames off the wire (not the ROUTER's routing id) carry the
          // connection's metadata: the ZAP handler's user id for it.
          if (const char* u = zmq_msg_gets(&hold->msg, "User-Id")) user = u;
          if (const char* a = zmq_msg_gets(&hold->msg, "Peer-Address"))
            peer_host = NormalizeHost(a);
        }
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
    m->peer = std::move(user);
    // A Unix socket's peer is on this host by construction.
    m->peer_host = socket == local_router_ ? own_host_ : std::move(peer_host);
    const ZmqSecurity& sec = options_.security;
    if (sec.enabled() && sec.authorize && !sec.authorize(m->peer, *m)) {
      uint64_t n = counters_.unauthorized.fetch_add(1, std::memory_order_relaxed) + 1;
      if (n <= kRefusalsLoggedInFull || n % 1000 == 0) {
        log_.Warn("dropped a ", MsgTypeName(m->type), " from ", m->peer, " at ", m->peer_host,
                  ": its role may not send it (", n, " dropped so far)");
      }
      return true;
    }
    counters_.CountReceived(bytes);
    inbox_.Push(std::move(*m));
    return true;
  }

  // ZAP (RFC 27): admit a CURVE peer whose public key is on the allowlist;
  // the reply's user id becomes the "User-Id" of its messages.
  void AnswerZap() {
    std::vector<std::string> req;
    while (true) {
      zmq_msg_t f;
      zmq_msg_init(&f);
      if (zmq_msg_recv(&f, zap_, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&f);
        if (req.empty()) return;
        break;
      }
      req.emplace_back(static_cast<const char*>(zmq_msg_data(&f)), zmq_msg_size(&f));
      bool more = zmq_msg_more(&f) != 0;
      zmq_msg_close(&f);
      if (!more) break;
    }
    // version, request id, domain, address, identity, mechanism, credentials...
    std::string status = "400", text = "malformed ZAP request", user;
    const std::string peer = req.size() > 3 ? NormalizeHost(req[3]) : "?";
    if (req.size() >= 6 && req[0] == "1.0") {
      const std::string& mechanism = req[5];
      if (mechanism == "PLAIN" && local_router_ != nullptr) {
        // Only the local lane runs PLAIN (the TCP ROUTER is a CURVE server,
        // so a PLAIN handshake never gets this far there).
        std::tie(status, text, user) = AdmitLocal(req);
      } else if (mechanism != "CURVE" || req.size() < 7 || req[6].size() != 32) {
        text = "this node admits CURVE only";
        NoteRefusal("a " + mechanism + " connection from " + peer +
                    ": this node admits CURVE only");
      } else {
        char z85[41];
        zmq_z85_encode(z85, reinterpret_cast<const uint8_t*>(req[6].data()), 32);
        auto it = options_.security.allowlist.find(z85);
        if (it == options_.security.allowlist.end()) {
          text = "key not on the allowlist";
          NoteRefusal(std::string("a connection from ") + peer + ": its public key " + z85 +
                      " is not on the job's allowlist");
        } else {
          status = "200";
          text = "OK";
          user = it->second;
        }
      }
    }
    const std::string version = "1.0", id = req.size() > 1 ? req[1] : "";
    const std::string* reply[] = {&version, &id, &status, &text, &user};
    for (const std::string* f : reply) zmq_send(zap_, f->data(), f->size(), ZMQ_SNDMORE);
    zmq_send(zap_, "", 0, 0);  // metadata
  }

  // A PLAIN peer of the local lane: user name = its public key, password =
  // its secret key, which must derive that key; the key must be allowed.
  std::tuple<std::string, std::string, std::string> AdmitLocal(
      const std::vector<std::string>& req) {
    const std::string who = "a local-lane connection";
    if (req.size() < 8 || req[6].size() != kCurveKeyChars || req[7].size() != kCurveKeyChars) {
      NoteRefusal(who + " without a key pair for credentials");
      return {"400", "credentials are a key pair", ""};
    }
    char derived[kCurveKeyChars + 1] = {0};
    if (zmq_curve_public(derived, req[7].c_str()) != 0 || req[6] != derived) {
      NoteRefusal(who + " claiming public key " + req[6] + " with a secret key not its own");
      return {"400", "the secret key does not match the public key", ""};
    }
    auto it = options_.security.allowlist.find(req[6]);
    if (it == options_.security.allowlist.end()) {
      NoteRefusal(who + ": its public key " + req[6] + " is not on the job's allowlist");
      return {"400", "key not on the allowlist", ""};
    }
    return {"200", "OK", it->second};
  }

  // Handshake failures the ZAP handler never sees.
  void ReadMonitor() {
    while (true) {
      zmq_msg_t ev, addr;
      zmq_msg_init(&ev);
      if (zmq_msg_recv(&ev, monitor_, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&ev);
        return;
      }
      uint16_t event = 0;
      uint32_t value = 0;
      if (zmq_msg_size(&ev) >= 6) {
        std::memcpy(&event, zmq_msg_data(&ev), 2);
        std::memcpy(&value, static_cast<const uint8_t*>(zmq_msg_data(&ev)) + 2, 4);
      }
      zmq_msg_close(&ev);
      zmq_msg_init(&addr);
      zmq_msg_recv(&addr, monitor_, 0);
      zmq_msg_close(&addr);
      if (event == ZMQ_EVENT_ACCEPTED) {
        // The peer of the newest connection, for naming it if it fails.
        sockaddr_storage ss{};
        socklen_t len = sizeof(ss);
        if (getpeername(static_cast<int>(value), reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
          char host[64] = {0};
          if (ss.ss_family == AF_INET) {
            inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, host, sizeof(host));
          } else if (ss.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, host,
                      sizeof(host));
          }
          last_accepted_ = NormalizeHost(host);
        }
        continue;
      }
      if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) continue;  // the ZAP handler logged it
      NoteRefusal("a connection (last accepted from " +
                  (last_accepted_.empty() ? std::string("?") : last_accepted_) +
                  ") that failed the CURVE handshake: " +
                  (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                       ? "protocol error " + std::to_string(value) +
                             " (a NULL or PLAIN peer, a wrong server key, or garbage)"
                       : std::string("no detail")));
    }
  }

  void NoteRefusal(const std::string& what) {
    uint64_t n = counters_.refused_peers.fetch_add(1, std::memory_order_relaxed) + 1;
    if (n <= kRefusalsLoggedInFull || n % 1000 == 0) {
      log_.Warn("refused ", what, " (", n, " refused so far)");
    }
  }

  void CloseSockets() {
    for (auto& [peer, d] : dealers_) zmq_close(d.socket);
    dealers_.clear();
    zmq_close(router_);
    router_ = nullptr;
    if (local_router_ != nullptr) {
      zmq_close(local_router_);
      unlink(local_path_.c_str());  // ZeroMQ leaves the socket file behind
    }
    local_router_ = nullptr;
    if (monitor_ != nullptr) zmq_close(monitor_);
    if (zap_ != nullptr) zmq_close(zap_);
    monitor_ = zap_ = nullptr;
  }

  struct Dealer {
    void* socket;
    std::string address;
  };

  const ZmqOptions options_;
  const Logger log_;
  void* ctx_ = nullptr;
  int wake_fd_ = -1;
  std::string address_;   // set in Start, constant afterwards
  std::string own_host_;  // address_'s host, for messages off the local lane
  TransportCounters counters_;
  BlockingQueue<Message> inbox_;
  std::thread io_thread_;

  // Owned by the I/O thread only.
  void* router_ = nullptr;
  void* local_router_ = nullptr;  // CURVE only: the local lane (local_lane.h)
  std::string local_path_;        // its socket file
  void* zap_ = nullptr;           // CURVE only: the ZAP handler
  void* monitor_ = nullptr;       // CURVE only: the ROUTER's handshake events
  std::string last_accepted_;
  std::map<NodeId, Dealer> dealers_;
  // This transport's, in its routing ids and its local lane's file name.
  const std::string nonce_ = RandomHex(8);
  uint64_t dials_ = 0;

  Mutex mu_;
  std::deque<Outgoing> outbox_ GUARDED_BY(mu_);
  std::vector<std::pair<NodeId, std::string>> pending_connects_ GUARDED_BY(mu_);
  std::vector<NodeId> pending_drops_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
};

}  // namespace

Result<std::unique_ptr<Transport>> CreateZmqTransport(const ZmqOptions& options, Logger log) {
  auto t = std::make_unique<ZmqTransport>(options, std::move(log));
  RETURN_IF_ERROR(t->Start());
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace distopt
