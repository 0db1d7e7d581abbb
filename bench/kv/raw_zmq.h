// Raw ZeroMQ for the benchmark's ceiling processes (the echo and the raw
// client), with every call checked: a failed call becomes a Status that names
// the call and zmq's errno text ("zmq_bind tcp://...: Address already in
// use"). Owners close what they own on every path, error paths included: a
// RawZmqContext terminates its context, a RawZmqSocket closes its socket
// (declare the context first, so the sockets close before it terminates), a
// RawZmqMessage closes its message. Single-threaded, like the sockets.
//
//   ASSIGN_OR_RETURN(RawZmqContext ctx, RawZmqContext::Create());
//   ASSIGN_OR_RETURN(RawZmqSocket s, RawZmqSocket::Create(ctx, ZMQ_DEALER, /*linger_ms=*/0));
//   RETURN_IF_ERROR(s.Connect("tcp://127.0.0.1:7000"));
//   RETURN_IF_ERROR(s.Send("STOP", 4, 0));
#ifndef DISTOPT_BENCH_KV_RAW_ZMQ_H_
#define DISTOPT_BENCH_KV_RAW_ZMQ_H_

#include <zmq.h>

#include <cstddef>
#include <string>

#include "distopt/status.h"

namespace distopt::bench {

// UnavailableError("<call>[ <what>]: <zmq_strerror(zmq_errno())>").
Status ZmqCallError(const std::string& call, const std::string& what = "");

class RawZmqContext {
 public:
  static Result<RawZmqContext> Create();
  RawZmqContext(RawZmqContext&& o) noexcept : ctx_(o.ctx_) { o.ctx_ = nullptr; }
  RawZmqContext& operator=(RawZmqContext&&) = delete;
  RawZmqContext(const RawZmqContext&) = delete;
  ~RawZmqContext();  // zmq_ctx_term: waits for the sockets' linger
  void* get() const { return ctx_; }

 private:
  explicit RawZmqContext(void* ctx) : ctx_(ctx) {}
  void* ctx_;
};

class RawZmqSocket {
 public:
  // ZMQ_LINGER is set at once: with the default (forever) an error path that
  // leaves unsent messages would hang in the context's destructor.
  static Result<RawZmqSocket> Create(const RawZmqContext& ctx, int type, int linger_ms);
  RawZmqSocket(RawZmqSocket&& o) noexcept : sock_(o.sock_) { o.sock_ = nullptr; }
  RawZmqSocket& operator=(RawZmqSocket&&) = delete;
  RawZmqSocket(const RawZmqSocket&) = delete;
  ~RawZmqSocket();
  void* get() const { return sock_; }

  Status SetIntOption(int option, int value, const char* name);
  Status Bind(const std::string& endpoint);
  Status Connect(const std::string& endpoint);
  // The endpoint actually bound (after binding to port 0).
  Result<std::string> LastEndpoint();
  // A copied send of a short message (zmq_send).
  Status Send(const void* data, size_t size, int flags);

 private:
  explicit RawZmqSocket(void* sock) : sock_(sock) {}
  void* sock_;
};

// One zmq_msg_t, initialized empty on construction and closed on
// destruction. It must not move once initialized (a received message may
// share a refcounted buffer), so it is neither copyable nor movable.
class RawZmqMessage {
 public:
  RawZmqMessage();
  ~RawZmqMessage();
  RawZmqMessage(const RawZmqMessage&) = delete;
  RawZmqMessage& operator=(const RawZmqMessage&) = delete;

  // Points the message at `size` bytes of the caller's memory (zero copy):
  // they must stay valid and unchanged until the socket has sent them.
  Status Borrow(void* data, size_t size);
  // zmq_msg_recv into this message (its previous content is released).
  // EAGAIN (a ZMQ_RCVTIMEO expired) is returned as DeadlineExceeded; EINTR
  // is retried.
  Status Recv(void* sock);
  // zmq_msg_send: on success the message is empty again. EINTR is retried.
  Status Send(void* sock, int flags);

  const void* data() { return zmq_msg_data(&msg_); }
  size_t size() const { return zmq_msg_size(&msg_); }
  bool more() const { return zmq_msg_more(&msg_) != 0; }

 private:
  zmq_msg_t msg_;
};

}  // namespace distopt::bench

#endif  // DISTOPT_BENCH_KV_RAW_ZMQ_H_
