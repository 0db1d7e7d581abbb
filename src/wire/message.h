// The wire format: every message is four frames, [header][body][keys][values].
// The 48-byte header holds only what any layer needs: the type, sender,
// membership epoch, request id, status and the frame sizes. `body` is the
// typed payload of the layer that owns the type, encoded and validated by
// that layer (kv: kv/kv_message.h; cluster: cluster/membership.h); `keys` is
// a raw little-endian array of 64-bit words (sparse keys, unless the owning
// layer documents otherwise) and `values` a raw little-endian float array,
// each in its own frame so large arrays travel from a model's buffer to the
// socket without another representation. Decode checks every count against
// the frame sizes and the configured limits before anything is trusted.
// Messages are values; not thread-safe to mutate.
//
//   Message m;
//   m.type = MsgType::kShutdown;
//   m.body = Buffer::FromString("job complete");  // the owning layer's bytes
//   std::vector<Buffer> frames = EncodeFrames(m);  // payload frames shared, not copied
//   ASSIGN_OR_RETURN(Message got, DecodeFrames(std::move(received_frames), limits));
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
// 2: the kv fields (clock, table, offset, kv flags) left the header for the
// kv header at the front of the body (kv/kv_message.h).
inline constexpr uint8_t kWireVersion = 2;
inline constexpr size_t kHeaderSize = 48;
inline constexpr size_t kFramesPerMessage = 4;

// The registry of message numbers of every layer, kept in one place so two
// layers never pick the same number and the decoder can refuse unknown ones
// before any layer sees the bytes. The layer named beside each group owns
// the type's body and its decoder; wire knows nothing of what a body means.
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
  // Sent to the coordinator, but their bodies are kv's (decoded by kv/node.cc):
  kCheckpoint = 10,     // server -> coordinator: my files of checkpoint N are durable
  kReplicaSynced = 11,  // server -> coordinator: my backup copy of partition (u32) is complete
  // kv (body: a KvHeader, then the type's own bytes; kv/kv_message.h)
  kPush = 16,  // worker -> server: gradients (dense slice or sparse rows)
  kPushAck = 17,
  kPull = 18,  // worker -> server: parameters wanted (slice or keys)
  kPullReply = 19,
  kPushPull = 20,  // push then pull the same keys at clock+1
  kKvError = 21,   // server -> worker: request refused (body: KvHeader, reason)
  kClock = 22,     // worker -> server: clock advanced without a push
  // replication (server -> server; kv too: a KvHeader names the partition)
  kReplicate = 23,     // owner -> backup: an applied update or a snapshot (kv/repl_codec.h)
  kReplicateAck = 24,  // backup -> owner: everything up to seq (u64) is applied
  // results (worker 0 -> coordinator): a chunk of a file for the
  // coordinator's run folder (metrics.jsonl, model.bin), and its ack
  kResultFile = 25,
  kResultFileAck = 26,
  kManifest = 27,  // coordinator -> servers: a complete checkpoint's manifest (kv's ManifestCopy)
  // per-host aggregation (worker -> worker on one host; kv: a KvHeader
  // names the dense table and clock; kv/host_group.h)
  kHostPush = 28,    // member -> its host's leader: its gradient of a table
  kHostParams = 29,  // leader -> member: the parameters its host's push-pull got back
  kMaxType = 30,
};

const char* MsgTypeName(MsgType t);

struct Message {
  MsgType type = MsgType::kInvalid;
  // Bits whose meaning the layer that owns `type` defines; wire carries them
  // unchecked. No layer defines any today: kv keeps its bits (sparse,
  // checkpoint) in its own header, where its decoder checks them.
  uint16_t flags = 0;
  NodeId sender = kUnassignedId;
  uint32_t epoch = 0;       // membership epoch the sender believed current
  uint64_t request_id = 0;  // echoed in replies; retries reuse it
  uint32_t status = 0;      // StatusCode on replies
  Buffer body;              // the owning layer's typed payload
  Buffer keys;              // 64-bit word array (uint64 keys)
  Buffer values;            // float array

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
