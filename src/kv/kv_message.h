// The kv layer's header of its messages: push, pull, push-pull, clock, their
// replies and refusals, and replication with its acks (the kv types of
// wire/message.h). It names the table and the partition a message is about,
// the worker clock, a dense request's slice start and kv's flag bits, and
// sits at the front of the wire body; wire only frames the bytes, kv owns
// their meaning. Pure functions on values; thread-safe.
//
// Layout (28 bytes, little-endian, offsets from the start of the body):
//
//    0  u32  table      the table addressed (replication snapshots: 0)
//    4  u32  partition  the partition addressed: every request, update and
//                       ack names it (a dense request's must be the one its
//                       slice start lies in)
//    8  i64  clock      the worker clock (step); a pull at a negative clock
//                       asks where the job is; replies carry the clock served
//   16  u64  offset     a dense request's first element (< kMaxDenseSize);
//                       0 for sparse requests and replication
//   24  u32  flags      kKvSparse | kKvCheckpoint | kKvGroup; any other bit
//                       is refused
//
// What follows it is the type's own body: nothing for push, pull, push-pull
// (with kKvGroup, a push or push-pull of the workers of one host summed: u32
// n, then the n worker ranks it speaks for, ascending, the sender's among them),
// clock, push-ack and pull-reply; the reason for kKvError; the replication
// header and snapshot for kReplicate (kv/repl_codec.h); the acknowledged
// sequence number (u64) for kReplicateAck. DecodeKvHeader checks all of it
// that does not need the job (sizes, flag bits and where they may appear,
// the offset's range); the server checks table and partition against the
// layout. Reached from fuzz/wire_fuzz.cc.
//
//   Message m;
//   m.type = MsgType::kPush;
//   m.body = EncodeKvBody({.table = 0, .partition = p, .clock = step, .offset = slice.begin});
//   ...
//   ASSIGN_OR_RETURN(KvHeader h, DecodeKvHeader(m));
//   ByteReader rest = KvBodyRest(m);  // the type's own bytes
#ifndef DISTOPT_KV_KV_MESSAGE_H_
#define DISTOPT_KV_KV_MESSAGE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/buffer.h"
#include "base/bytes.h"
#include "distopt/status.h"
#include "wire/message.h"

namespace distopt {

inline constexpr size_t kKvHeaderSize = 28;
inline constexpr uint32_t kKvSparse = 1u << 0;  // the keys frame carries sparse keys
// On a push of clock t: checkpoint once clock t is applied (time-based
// checkpoints, decided by worker 0; see KvMaySend).
inline constexpr uint32_t kKvCheckpoint = 1u << 1;
// A push (or push-pull) carrying the sum of several workers' gradients
// (per-host aggregation, BSP only); their ranks follow the header.
inline constexpr uint32_t kKvGroup = 1u << 2;
// The most workers one combined push may speak for.
inline constexpr uint32_t kMaxGroupSize = 4096;

struct KvHeader {
  uint32_t table = 0;
  uint32_t partition = 0;
  int64_t clock = 0;
  uint64_t offset = 0;
  bool sparse = false;
  bool checkpoint = false;
  // kKvGroup: the worker ranks a push speaks for, ascending (empty: only its
  // sender's): a host's combined push, or dead workers' slots a survivor
  // adopted (train/adoption.h).
  std::vector<uint32_t> group;
};

// Whether `type` is one of kv's (its body starts with a KvHeader).
bool IsKvMessage(MsgType type);

// Appends the 28 bytes of `h` to `w`, and its group if it has one (the
// type's own body follows).
void WriteKvHeader(ByteWriter& w, const KvHeader& h);
// A body of `h` (its group included) followed by `rest` (kKvError: the
// reason), in one allocation.
Buffer EncodeKvBody(const KvHeader& h, std::string_view rest = {});

// The header at the front of `m.body`, checked against `m.type`:
// InvalidArgument naming what is wrong (a body too short, bytes after a
// header that ends its type's body, an unknown flag bit, a checkpoint bit on
// anything but a push, an offset out of range or on a sparse message, a group
// on anything but a push (or a sparse push-pull) or one whose ranks are not
// ascending).
Result<KvHeader> DecodeKvHeader(const Message& m);
// The bytes of `m.body` after the header; call once DecodeKvHeader(m)
// succeeded (pushes, which have none, never ask).
// The reader points into `m`, so `m` must outlive it (a temporary cannot).
ByteReader KvBodyRest(const Message& m);
ByteReader KvBodyRest(const Message&& m) = delete;
// A kKvError's reason (the rest of its body, as text).
std::string KvErrorReason(const Message& m);

}  // namespace distopt

#endif  // DISTOPT_KV_KV_MESSAGE_H_
