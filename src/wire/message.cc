#include "wire/message.h"

#include <cstring>

namespace distopt {
namespace {

// The header as it sits on the wire (naturally aligned, no padding; host
// order is little-endian on every platform distopt builds for, base/bytes.cc).
struct WireHeader {
  uint32_t magic;       //  0
  uint8_t version;      //  4
  uint8_t type;         //  5
  uint16_t flags;       //  6
  uint32_t sender;      //  8
  uint32_t epoch;       // 12
  uint64_t request_id;  // 16
  uint64_t num_keys;    // 24
  uint64_t num_values;  // 32
  uint32_t status;      // 40
  uint32_t body_size;   // 44
};
static_assert(sizeof(WireHeader) == kHeaderSize, "wire header layout changed");

bool Aligned(const Buffer& b, size_t align) {
  return reinterpret_cast<uintptr_t>(b.data()) % align == 0;
}

Buffer AlignedCopy(const Buffer& b) { return Buffer::Copy(b.data(), b.size()); }

}  // namespace

const char* MsgTypeName(MsgType t) {
  switch (t) {
    case MsgType::kInvalid:
      return "invalid";
    case MsgType::kRegister:
      return "register";
    case MsgType::kRegisterReply:
      return "register-reply";
    case MsgType::kHeartbeat:
      return "heartbeat";
    case MsgType::kBarrier:
      return "barrier";
    case MsgType::kBarrierRelease:
      return "barrier-release";
    case MsgType::kMembership:
      return "membership";
    case MsgType::kDone:
      return "done";
    case MsgType::kShutdown:
      return "shutdown";
    case MsgType::kAbort:
      return "abort";
    case MsgType::kCheckpoint:
      return "checkpoint";
    case MsgType::kReplicaSynced:
      return "replica-synced";
    case MsgType::kReplicate:
      return "replicate";
    case MsgType::kReplicateAck:
      return "replicate-ack";
    case MsgType::kPush:
      return "push";
    case MsgType::kPushAck:
      return "push-ack";
    case MsgType::kPull:
      return "pull";
    case MsgType::kPullReply:
      return "pull-reply";
    case MsgType::kPushPull:
      return "push-pull";
    case MsgType::kKvError:
      return "kv-error";
    case MsgType::kClock:
      return "clock";
    case MsgType::kResultFile:
      return "result-file";
    case MsgType::kResultFileAck:
      return "result-file-ack";
    case MsgType::kManifest:
      return "manifest";
    case MsgType::kHostPush:
      return "host-push";
    case MsgType::kHostParams:
      return "host-params";
    case MsgType::kMaxType:
      break;
  }
  return "unknown";
}

std::vector<Buffer> EncodeFrames(const Message& msg) {
  WireHeader h{};
  h.magic = kWireMagic;
  h.version = kWireVersion;
  h.type = static_cast<uint8_t>(msg.type);
  h.flags = msg.flags;
  h.sender = msg.sender;
  h.epoch = msg.epoch;
  h.request_id = msg.request_id;
  h.num_keys = msg.num_keys();
  h.num_values = msg.num_values();
  h.status = msg.status;
  h.body_size = static_cast<uint32_t>(msg.body.size());
  std::vector<Buffer> frames;
  frames.reserve(kFramesPerMessage);
  frames.push_back(Buffer::Copy(&h, sizeof(h)));
  frames.push_back(msg.body);
  frames.push_back(msg.keys);
  frames.push_back(msg.values);
  return frames;
}

Result<Message> DecodeFrames(std::vector<Buffer> frames, const WireLimits& limits) {
  if (frames.size() != kFramesPerMessage) {
    return InvalidArgumentError("expected " + std::to_string(kFramesPerMessage) + " frames, got " +
                                std::to_string(frames.size()));
  }
  if (frames[0].size() != kHeaderSize) {
    return InvalidArgumentError("header frame is " + std::to_string(frames[0].size()) +
                                " bytes, expected " + std::to_string(kHeaderSize));
  }
  WireHeader h;
  std::memcpy(&h, frames[0].data(), sizeof(h));
  if (h.magic != kWireMagic) {
    return InvalidArgumentError("bad magic 0x" + [&] {
      char buf[16];
      std::snprintf(buf, sizeof(buf), "%08x", h.magic);
      return std::string(buf);
    }());
  }
  if (h.version != kWireVersion) {
    return InvalidArgumentError("unsupported wire version " + std::to_string(h.version) +
                                " (this node speaks " + std::to_string(kWireVersion) + ")");
  }
  if (h.type == 0 || h.type >= static_cast<uint8_t>(MsgType::kMaxType) ||
      std::string_view(MsgTypeName(static_cast<MsgType>(h.type))) == "unknown") {
    return InvalidArgumentError("unknown message type " + std::to_string(h.type));
  }
  if (h.body_size > limits.max_body_bytes) {
    return InvalidArgumentError("body of " + std::to_string(h.body_size) +
                                " bytes exceeds the limit of " +
                                std::to_string(limits.max_body_bytes));
  }
  if (h.num_keys > limits.max_keys) {
    return InvalidArgumentError(std::to_string(h.num_keys) + " keys exceed the limit of " +
                                std::to_string(limits.max_keys));
  }
  if (h.num_values > limits.max_values) {
    return InvalidArgumentError(std::to_string(h.num_values) + " values exceed the limit of " +
                                std::to_string(limits.max_values));
  }
  if (frames[1].size() != h.body_size) {
    return InvalidArgumentError("body frame is " + std::to_string(frames[1].size()) +
                                " bytes, header says " + std::to_string(h.body_size));
  }
  if (frames[2].size() != h.num_keys * sizeof(uint64_t)) {
    return InvalidArgumentError("keys frame is " + std::to_string(frames[2].size()) +
                                " bytes, header says " + std::to_string(h.num_keys) + " keys");
  }
  if (frames[3].size() != h.num_values * sizeof(float)) {
    return InvalidArgumentError("values frame is " + std::to_string(frames[3].size()) +
                                " bytes, header says " + std::to_string(h.num_values) + " floats");
  }
  Message m;
  m.type = static_cast<MsgType>(h.type);
  m.flags = h.flags;
  m.sender = h.sender;
  m.epoch = h.epoch;
  m.request_id = h.request_id;
  m.status = h.status;
  m.body = std::move(frames[1]);
  m.keys = Aligned(frames[2], alignof(uint64_t)) ? std::move(frames[2]) : AlignedCopy(frames[2]);
  m.values = Aligned(frames[3], alignof(float)) ? std::move(frames[3]) : AlignedCopy(frames[3]);
  return m;
}

std::vector<uint8_t> EncodePacked(const Message& msg) {
  std::vector<uint8_t> out;
  for (const Buffer& f : EncodeFrames(msg)) {
    uint32_t n = static_cast<uint32_t>(f.size());
    const auto* p = reinterpret_cast<const uint8_t*>(&n);
    out.insert(out.end(), p, p + 4);
    out.insert(out.end(), f.data(), f.data() + f.size());
  }
  return out;
}

Result<Message> DecodePacked(const uint8_t* data, size_t size, const WireLimits& limits) {
  std::vector<Buffer> frames;
  size_t pos = 0;
  while (pos < size) {
    if (frames.size() == kFramesPerMessage) {
      return InvalidArgumentError("trailing bytes after " + std::to_string(kFramesPerMessage) +
                                  " frames");
    }
    if (size - pos < 4) return InvalidArgumentError("truncated frame length");
    uint32_t n;
    std::memcpy(&n, data + pos, 4);
    pos += 4;
    if (n > size - pos) {
      return InvalidArgumentError("frame of " + std::to_string(n) + " bytes but only " +
                                  std::to_string(size - pos) + " remain");
    }
    frames.push_back(Buffer::Copy(data + pos, n));
    pos += n;
  }
  return DecodeFrames(std::move(frames), limits);
}

}  // namespace distopt
