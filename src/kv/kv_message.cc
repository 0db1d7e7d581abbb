#include "kv/kv_message.h"

#include <string>

#include "kv/layout.h"

namespace distopt {
namespace {

constexpr uint32_t kKnownFlags = kKvSparse | kKvCheckpoint | kKvGroup;

// How many bytes may follow the header in a body of `type`: exactly `size`,
// or any number if `any`.
struct RestRule {
  bool any = false;
  size_t size = 0;
};

RestRule RestOf(MsgType type) {
  switch (type) {
    case MsgType::kKvError:     // the reason
    case MsgType::kHostParams:  // the reason, when it carries an error
    case MsgType::kReplicate:   // the replication header decides (kv/repl_codec.h)
      return {true, 0};
    case MsgType::kReplicateAck:
      return {false, sizeof(uint64_t)};  // the sequence number acknowledged
    default:
      return {false, 0};
  }
}

size_t GroupBytes(const KvHeader& h) {
  return h.group.empty() ? 0 : sizeof(uint32_t) * (1 + h.group.size());
}

// The ranks of a kKvGroup push into h.group.
template <typename Bad>
Status DecodeGroup(const Message& m, KvHeader& h, const Bad& bad) {
  if ((m.type != MsgType::kPush && m.type != MsgType::kPushPull) ||
      (h.sparse && m.type != MsgType::kPush)) {
    return bad("only a push may speak for a group of workers (a sparse one: not a push-pull)");
  }
  ByteReader r(m.body.data() + kKvHeaderSize, m.body.size() - kKvHeaderSize);
  uint32_t n = 0;
  if (!r.U32(&n).ok() || n == 0 || n > kMaxGroupSize) {
    return bad("a group of workers needs 1 to " + std::to_string(kMaxGroupSize) + " ranks");
  }
  if (r.remaining() < sizeof(uint32_t) * size_t{n}) {
    return bad("a group of " + std::to_string(n) + " ranks in " + std::to_string(r.remaining()) +
               " bytes");
  }
  h.group.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    RETURN_IF_ERROR(r.U32(&h.group[i]));
    if (i > 0 && h.group[i] <= h.group[i - 1]) {
      return bad("the group's ranks are not ascending (" + std::to_string(h.group[i - 1]) +
                 " then " + std::to_string(h.group[i]) + ")");
    }
  }
  return Status::Ok();
}

}  // namespace

bool IsKvMessage(MsgType type) {
  switch (type) {
    case MsgType::kPush:
    case MsgType::kPushAck:
    case MsgType::kPull:
    case MsgType::kPullReply:
    case MsgType::kPushPull:
    case MsgType::kKvError:
    case MsgType::kClock:
    case MsgType::kReplicate:
    case MsgType::kReplicateAck:
    case MsgType::kHostPush:
    case MsgType::kHostParams:
      return true;
    default:
      return false;
  }
}

void WriteKvHeader(ByteWriter& w, const KvHeader& h) {
  w.U32(h.table);
  w.U32(h.partition);
  w.I64(h.clock);
  w.U64(h.offset);
  w.U32((h.sparse ? kKvSparse : 0) | (h.checkpoint ? kKvCheckpoint : 0) |
        (h.group.empty() ? 0 : kKvGroup));
  if (h.group.empty()) return;
  w.U32(static_cast<uint32_t>(h.group.size()));
  for (uint32_t r : h.group) w.U32(r);
}

Buffer EncodeKvBody(const KvHeader& h, std::string_view rest) {
  ByteWriter w;
  w.Reserve(kKvHeaderSize + GroupBytes(h) + rest.size());
  WriteKvHeader(w, h);
  w.Raw(rest.data(), rest.size());
  return Buffer::FromVector(w.Take());
}

Result<KvHeader> DecodeKvHeader(const Message& m) {
  // Built only on failure: this runs for every push and pull.
  auto bad = [&m](const std::string& why) {
    return InvalidArgumentError(std::string("kv header of a ") + MsgTypeName(m.type) + ": " + why);
  };
  if (!IsKvMessage(m.type)) return bad("not a kv message");
  if (m.body.size() < kKvHeaderSize) {
    return bad("body of " + std::to_string(m.body.size()) + " bytes, the header takes " +
               std::to_string(kKvHeaderSize));
  }
  ByteReader r(m.body.data(), kKvHeaderSize);
  KvHeader h;
  uint32_t flags = 0;
  RETURN_IF_ERROR(r.U32(&h.table));
  RETURN_IF_ERROR(r.U32(&h.partition));
  RETURN_IF_ERROR(r.I64(&h.clock));
  RETURN_IF_ERROR(r.U64(&h.offset));
  RETURN_IF_ERROR(r.U32(&flags));
  if ((flags & ~kKnownFlags) != 0) {
    return bad("unknown flag bits " + std::to_string(flags & ~kKnownFlags));
  }
  h.sparse = (flags & kKvSparse) != 0;
  h.checkpoint = (flags & kKvCheckpoint) != 0;
  size_t rest = m.body.size() - kKvHeaderSize;
  if ((flags & kKvGroup) != 0) {
    RETURN_IF_ERROR(DecodeGroup(m, h, bad));
    rest -= GroupBytes(h);
  }
  const RestRule rule = RestOf(m.type);
  if (!rule.any && rest != rule.size) {
    return bad(std::to_string(rest) + " bytes after the header, expected " +
               std::to_string(rule.size));
  }
  if (h.checkpoint && m.type != MsgType::kPush && m.type != MsgType::kPushPull) {
    return bad("only a push may ask for a checkpoint");
  }
  if (h.offset >= kMaxDenseSize) {
    return bad("offset " + std::to_string(h.offset) + " is out of range (a table holds at most " +
               std::to_string(kMaxDenseSize) + " floats)");
  }
  if (h.sparse && h.offset != 0) {
    return bad("a sparse message has no slice offset, got " + std::to_string(h.offset));
  }
  return h;
}

ByteReader KvBodyRest(const Message& m) {
  const size_t skip = m.body.size() < kKvHeaderSize ? m.body.size() : kKvHeaderSize;
  return ByteReader(m.body.data() + skip, m.body.size() - skip);
}

std::string KvErrorReason(const Message& m) {
  const size_t skip = m.body.size() < kKvHeaderSize ? m.body.size() : kKvHeaderSize;
  return std::string(reinterpret_cast<const char*>(m.body.data()) + skip, m.body.size() - skip);
}

}  // namespace distopt
