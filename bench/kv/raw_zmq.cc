#include "raw_zmq.h"

#include <cerrno>
#include <cstdio>

namespace distopt::bench {

Status ZmqCallError(const std::string& call, const std::string& what) {
  return UnavailableError(call + (what.empty() ? "" : " " + what) + ": " +
                          zmq_strerror(zmq_errno()));
}

Result<RawZmqContext> RawZmqContext::Create() {
  void* ctx = zmq_ctx_new();
  if (ctx == nullptr) return ZmqCallError("zmq_ctx_new");
  return RawZmqContext(ctx);
}

// A destructor cannot return the error; it says it on stderr, which the
// driver keeps in the process's log.
RawZmqContext::~RawZmqContext() {
  if (ctx_ == nullptr) return;
  while (zmq_ctx_term(ctx_) != 0) {
    if (zmq_errno() == EINTR) continue;
    std::fprintf(stderr, "zmq_ctx_term: %s\n", zmq_strerror(zmq_errno()));
    break;
  }
}

Result<RawZmqSocket> RawZmqSocket::Create(const RawZmqContext& ctx, int type, int linger_ms) {
  void* s = zmq_socket(ctx.get(), type);
  if (s == nullptr) return ZmqCallError("zmq_socket");
  RawZmqSocket sock(s);
  RETURN_IF_ERROR(sock.SetIntOption(ZMQ_LINGER, linger_ms, "ZMQ_LINGER"));
  return sock;
}

RawZmqSocket::~RawZmqSocket() {
  if (sock_ != nullptr && zmq_close(sock_) != 0) {
    std::fprintf(stderr, "zmq_close: %s\n", zmq_strerror(zmq_errno()));
  }
}

Status RawZmqSocket::SetIntOption(int option, int value, const char* name) {
  if (zmq_setsockopt(sock_, option, &value, sizeof(value)) != 0) {
    return ZmqCallError("zmq_setsockopt", name);
  }
  return Status::Ok();
}

Status RawZmqSocket::Bind(const std::string& endpoint) {
  if (zmq_bind(sock_, endpoint.c_str()) != 0) return ZmqCallError("zmq_bind", endpoint);
  return Status::Ok();
}

Status RawZmqSocket::Connect(const std::string& endpoint) {
  if (zmq_connect(sock_, endpoint.c_str()) != 0) return ZmqCallError("zmq_connect", endpoint);
  return Status::Ok();
}

Result<std::string> RawZmqSocket::LastEndpoint() {
  char ep[256];
  size_t len = sizeof(ep);
  if (zmq_getsockopt(sock_, ZMQ_LAST_ENDPOINT, ep, &len) != 0) {
    return ZmqCallError("zmq_getsockopt", "ZMQ_LAST_ENDPOINT");
  }
  // len counts the terminating NUL.
  return std::string(ep, len > 0 ? len - 1 : 0);
}

Status RawZmqSocket::Send(const void* data, size_t size, int flags) {
  while (zmq_send(sock_, data, size, flags) < 0) {
    if (zmq_errno() != EINTR) return ZmqCallError("zmq_send");
  }
  return Status::Ok();
}

// zmq_msg_init cannot fail (it only zeroes the structure), per its manual.
RawZmqMessage::RawZmqMessage() { zmq_msg_init(&msg_); }

RawZmqMessage::~RawZmqMessage() {
  if (zmq_msg_close(&msg_) != 0) {
    std::fprintf(stderr, "zmq_msg_close: %s\n", zmq_strerror(zmq_errno()));
  }
}

Status RawZmqMessage::Borrow(void* data, size_t size) {
  if (zmq_msg_close(&msg_) != 0) return ZmqCallError("zmq_msg_close");
  // No free function: the caller owns the bytes.
  if (zmq_msg_init_data(&msg_, data, size, nullptr, nullptr) != 0) {
    zmq_msg_init(&msg_);  // keep the destructor's close valid
    return ZmqCallError("zmq_msg_init_data");
  }
  return Status::Ok();
}

Status RawZmqMessage::Recv(void* sock) {
  while (zmq_msg_recv(&msg_, sock, 0) < 0) {
    const int err = zmq_errno();
    if (err == EINTR) continue;
    if (err == EAGAIN) return DeadlineExceededError("zmq_msg_recv: timed out (ZMQ_RCVTIMEO)");
    return ZmqCallError("zmq_msg_recv");
  }
  return Status::Ok();
}

Status RawZmqMessage::Send(void* sock, int flags) {
  while (zmq_msg_send(&msg_, sock, flags) < 0) {
    if (zmq_errno() != EINTR) return ZmqCallError("zmq_msg_send");
  }
  return Status::Ok();
}

}  // namespace distopt::bench
