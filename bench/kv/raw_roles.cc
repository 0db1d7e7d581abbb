// The ceiling of a benchmark case: the same bytes as distopt's push+pull, in
// a raw ZeroMQ round trip between the same number of processes. An echo
// (ROUTER) answers each request with its last frame, sent back zero-copy
// from the received message; a raw client (one DEALER per echo) sends what
// distopt's client would send and lands the replies in its own buffer.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <span>
#include <sstream>
#include <vector>

#include "base/file_util.h"
#include "base/time.h"
#include "node.h"
#include "raw_zmq.h"

namespace distopt::bench {
namespace {

// A request of more frames than this is not ours.
constexpr size_t kMaxFrames = 16;
// A lost reply is an error, not a hang.
constexpr int kReplyTimeoutMs = 60000;

bool IsStop(RawZmqMessage& m) { return m.size() == 4 && std::memcmp(m.data(), "STOP", 4) == 0; }

std::vector<std::string> SplitPeers(const std::string& peers) {
  std::vector<std::string> out;
  std::stringstream ss(peers);
  for (std::string p; std::getline(ss, p, ',');) {
    if (!p.empty()) out.push_back(p);
  }
  return out;
}

// One step's requests, one per echo: dense slices of floats/S each; sparse
// keys and rows split by server, as two frames.
Status SendStep(const Case& c, std::vector<uint8_t>& payload, std::vector<RawZmqSocket>& socks) {
  const size_t n = socks.size();
  for (size_t i = 0; i < n; ++i) {
    if (c.kind == "sparse") {
      const size_t kb = c.keys * 8 / n, vb = c.keys * c.dim * 4 / n;
      RawZmqMessage km, vm;
      RETURN_IF_ERROR(km.Borrow(payload.data(), kb));
      RETURN_IF_ERROR(vm.Borrow(payload.data() + kb, vb));
      RETURN_IF_ERROR(km.Send(socks[i].get(), ZMQ_SNDMORE));
      RETURN_IF_ERROR(vm.Send(socks[i].get(), 0));
    } else {
      RawZmqMessage m;
      RETURN_IF_ERROR(m.Borrow(payload.data(), c.push_bytes() / n));
      RETURN_IF_ERROR(m.Send(socks[i].get(), 0));
    }
  }
  return Status::Ok();
}

Status ReceiveStep(const std::vector<std::string>& peers, std::vector<RawZmqSocket>& socks,
                   std::vector<uint8_t>& sink) {
  for (size_t i = 0; i < socks.size(); ++i) {
    RawZmqMessage m;
    Status s = m.Recv(socks[i].get());
    if (s.code() == StatusCode::kDeadlineExceeded) {
      return DeadlineExceededError("raw client: no echo from " + peers[i] + " in " +
                                   std::to_string(kReplyTimeoutMs / 1000) + " s");
    }
    RETURN_IF_ERROR(s);
    // Like distopt's client, land the reply in the caller's buffer.
    std::memcpy(sink.data(), m.data(), std::min(m.size(), sink.size()));
  }
  return Status::Ok();
}

}  // namespace

Status RunEcho(const BenchNodeArgs& a) {
  ASSIGN_OR_RETURN(RawZmqContext ctx, RawZmqContext::Create());
  ASSIGN_OR_RETURN(RawZmqSocket router, RawZmqSocket::Create(ctx, ZMQ_ROUTER, /*linger_ms=*/0));
  RETURN_IF_ERROR(router.Bind("tcp://127.0.0.1:0"));
  ASSIGN_OR_RETURN(std::string endpoint, router.LastEndpoint());
  // Atomically: the driver polls for this file and must never read half of it.
  RETURN_IF_ERROR(WriteFileAtomically(
      a.addr_file,
      {std::span(reinterpret_cast<const uint8_t*>(endpoint.data()), endpoint.size())}));
  // Reused for every request: a receive releases what the message held.
  std::array<RawZmqMessage, kMaxFrames> frames;
  while (true) {
    size_t n = 0;
    do {
      if (n == kMaxFrames) return InternalError("echo: a request of more than 16 frames");
      RETURN_IF_ERROR(frames[n].Recv(router.get()));
      ++n;
    } while (frames[n - 1].more());
    // [identity, "STOP"] from StopEcho.
    if (n == 2 && IsStop(frames[1])) return Status::Ok();
    RETURN_IF_ERROR(frames[0].Send(router.get(), ZMQ_SNDMORE));  // routes the reply
    RETURN_IF_ERROR(frames[n - 1].Send(router.get(), 0));
  }
}

Status RunRawClient(const BenchNodeArgs& a) {
  const Case& c = a.c;
  const std::vector<std::string> peers = SplitPeers(a.peers);
  if (peers.empty()) return InvalidArgumentError("raw client: no --peers");
  // Declared before the context: sent messages borrow `payload` until the
  // sockets are closed.
  std::vector<uint8_t> payload(c.push_bytes() + 64);
  std::vector<uint8_t> sink(c.pull_bytes() + 64);
  ASSIGN_OR_RETURN(RawZmqContext ctx, RawZmqContext::Create());
  std::vector<RawZmqSocket> socks;
  for (const auto& p : peers) {
    ASSIGN_OR_RETURN(RawZmqSocket s, RawZmqSocket::Create(ctx, ZMQ_DEALER, /*linger_ms=*/0));
    RETURN_IF_ERROR(s.SetIntOption(ZMQ_RCVTIMEO, kReplyTimeoutMs, "ZMQ_RCVTIMEO"));
    RETURN_IF_ERROR(s.Connect(p));
    socks.push_back(std::move(s));
  }
  double elapsed = 0;
  for (int64_t k = 0; k < kWarmupSteps + c.reps; ++k) {
    auto start = std::chrono::steady_clock::now();
    RETURN_IF_ERROR(SendStep(c, payload, socks));
    RETURN_IF_ERROR(ReceiveStep(peers, socks, sink));
    if (k >= kWarmupSteps) elapsed += ToSeconds(std::chrono::steady_clock::now() - start);
  }
  return WriteSecondsFile(a.out, elapsed);
}

Status StopEcho(const std::string& endpoint) {
  ASSIGN_OR_RETURN(RawZmqContext ctx, RawZmqContext::Create());
  // A linger of 1 s: the STOP must leave before the context terminates.
  ASSIGN_OR_RETURN(RawZmqSocket s, RawZmqSocket::Create(ctx, ZMQ_DEALER, /*linger_ms=*/1000));
  RETURN_IF_ERROR(s.Connect(endpoint));
  return s.Send("STOP", 4, 0);
}

}  // namespace distopt::bench
