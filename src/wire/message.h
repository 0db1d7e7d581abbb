// The wire format: every message is four frames, [header][body][keys][values].
// The 72-byte header names the type, sender, request id, clock, table and the
// counts; `body` carries small control payloads (encoded by the layer that
// owns them); `keys` is a raw little-endian uint64 array and `values` a raw
// little-endian float array, each in its own frame so large arrays travel
// from a model's buffer to the socket without another representation.
// Decode checks every count against the frame sizes and the configured limits
// before anything is trusted. Messages are values; not thread-safe to mutate.
#ifndef DISTOPT_WIRE_MESSAGE_H_
#define DISTOPT_WIRE_MESSAGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "distopt/status.h"

namespace distopt {

using NodeId = uint32_t;
inline constexpr NodeId kCoordinatorId = 0;
inline constexpr NodeId kUnassignedId = 0xFFFFFFFFu;

inline constexpr uint32_t kWireMagic = 0x5450'4F44;  // "DOPT" little-endian
inline constexpr uint8_t kWireVersion = 1;
inline constexpr size_t kHeaderSize = 72;
inline constexpr size_t kFramesPerMessage = 4;

enum class MsgType : uint8_t {
  kInvalid = 0,
  // cluster
  kRegister = 1,        // node -> coordinator: role, address, rank hint
  kRegisterReply = 2,   // coordinator -> node: id, rank, job layout
  kHeartbeat = 3,       // node -> coordinator
  kBarrier = 4,         // node -> coordinator: wait for every live member
  kBarrierRelease = 5,  // coordinator -> node
  kMembership = 6,      // coordinator -> all: the member list changed (epoch)
  kDone = 7,            // worker -> coordinator: my training is over
  kShutdown = 8,        // coordinator -> all: exit now (body: reason)
  kAbort = 9,           // node -> coordinator: fatal error, stop the job
  kCheckpoint = 10,     // server -> coordinator: my files of checkpoint N are durable
  kReplicaSynced = 11,  // server -> coordinator: my backup copy of a partition is complete
  // kv
  kPush = 16,  // worker -> server: gradients (dense slice or sparse rows)
  kPushAck = 17,
  kPull = 18,  // worker -> server: parameters wanted (slice or keys)
  kPullReply = 19,
  kPushPull = 20,  // push then pull the same keys at clock+1
  kKvError = 21,   // server -> worker: request refused (body: reason)
  kClock = 22,     // worker -> server: clock advanced without a push
  // replication (server -> server)
  kReplicate = 23,     // owner -> backup: an applied update or a snapshot (seq in body)
  kReplicateAck = 24,  // backup -> owner: everything up to seq is applied
  // results (worker 0 -> coordinator): a chunk of a file for the
  // coordinator's run folder (metrics.jsonl, model.bin), and its ack
  kResultFile = 25,
  kResultFileAck = 26,
  kManifest = 27,  // coordinator -> servers: a complete checkpoint's manifest (a copy to keep)
  kMaxType = 28,
};

const char* MsgTypeName(MsgType t);

// Header flags.
inline constexpr uint16_t kFlagSparse = 1u << 0;  // keys frame carries sparse keys
// On a push of clock t: checkpoint once clock t is applied (time-based
// checkpoints, decided by worker 0).
inline constexpr uint16_t kFlagCheckpoint = 1u << 1;

struct Message {
  MsgType type = MsgType::kInvalid;
  uint16_t flags = 0;
  NodeId sender = kUnassignedId;
  uint32_t epoch = 0;       // membership epoch the sender believed current
  uint64_t request_id = 0;  // echoed in replies; retries reuse it
  int64_t clock = 0;        // worker clock (step) for kv messages
  uint32_t table = 0;
  uint32_t status = 0;  // StatusCode on replies
  uint64_t offset = 0;  // dense: first element of the slice
  Buffer body;
  Buffer keys;    // uint64 array
  Buffer values;  // float array

  // Not on the wire: the receiving transport's word on who sent this. `peer`
  // is the sender's authenticated name under CURVE ("worker/3"), else empty;
  // `peer_host` the sender's IP address where the transport knows it.
  std::string peer;
  std::string peer_host;

  size_t num_keys() const { return keys.size() / sizeof(uint64_t); }
  size_t num_values() const { return values.size() / sizeof(float); }
  size_t ByteSize() const { return kHeaderSize + body.size() + keys.size() + values.size(); }
};

// Caps a decoder enforces before trusting any count (a node's configuration).
struct WireLimits {
  uint64_t max_body_bytes = 16ull << 20;
  uint64_t max_keys = 1ull << 28;
  uint64_t max_values = 1ull << 30;  // 4 GiB of floats
};

// The four frames of `msg`: a freshly encoded header, then the three payload
// buffers shared without copying.
std::vector<Buffer> EncodeFrames(const Message& msg);

// Validates and decodes frames. Payload buffers are shared, not copied,
// unless misaligned for their element type (then copied once, aligned).
Result<Message> DecodeFrames(std::vector<Buffer> frames, const WireLimits& limits);

// Convenience for tests and fuzzing: decode from one byte string holding the
// frames back to back, each preceded by a little-endian u32 length.
Result<Message> DecodePacked(const uint8_t* data, size_t size, const WireLimits& limits);
std::vector<uint8_t> EncodePacked(const Message& msg);

}  // namespace distopt

#endif  // DISTOPT_WIRE_MESSAGE_H_
