// Fuzzes the decoders of network bytes: the 4-frame message decoder (fed as
// length-prefixed frames), and the payloads a node decodes from a message
// body (cluster view, registration, barrier, checkpoint report, layout, the
// kv header of every kv message with kv's role rule on it, and a kReplicate
// message whole: kv header, replication header and snapshot); and the
// decoders of checkpoint file bytes (a shard file's header against a file
// size, MANIFEST text). Any input must give a value or a Status, never a
// crash; a decoded message must re-encode to frames the decoder accepts
// again, and a decoded kv header to the very bytes it came from.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "base/crc32c.h"
#include "cluster/membership.h"
#include "kv/checkpoint.h"
#include "kv/checkpoint_format.h"
#include "kv/kv_message.h"
#include "kv/kv_role_policy.h"
#include "kv/layout.h"
#include "kv/repl_codec.h"
#include "wire/message.h"

namespace distopt {
namespace {

// A kReplicate message, decoded as the backup does: its first two bytes
// split the rest into the body and the keys and values frames.
void FuzzReplicate(const uint8_t* p, size_t n) {
  if (n < 2) return;
  const size_t body = std::min<size_t>(n - 2, p[0] * 16u);
  const size_t rest = n - 2 - body;
  const size_t key_bytes = std::min<size_t>(rest, p[1] * 64u) / 8 * 8;
  Message m;
  m.type = MsgType::kReplicate;
  m.body = Buffer::Copy(p + 2, body);
  m.keys = Buffer::Copy(p + 2 + body, key_bytes);
  m.values = Buffer::Copy(p + 2 + body + key_bytes, (rest - key_bytes) / 4 * 4);
  if (!DecodeKvHeader(m).ok()) return;
  ByteReader r = KvBodyRest(m);
  ReplHeader h;
  if (!ReadReplHeader(r, &h).ok()) return;
  auto frames = SnapshotFramesOf(m.keys.as<uint64_t>(), m.values.as<float>());
  if (!frames.ok()) return;
  std::vector<TableClocks> clocks;
  std::vector<ShardSnapshot> shards;
  if (!DecodeSnapshot(r, *frames, 2, 3, &clocks, &shards).ok()) return;
  // Every accepted shard lies inside the frames.
  size_t floats = 0;
  for (const ShardSnapshot& sh : shards) floats += sh.params.size() + sh.state.size();
  if (floats != m.values.as<float>().size() || clocks.size() != 2) __builtin_trap();
}

// The kv header of any message type (its first byte), as a server, a
// client and the CURVE role check read it.
void FuzzKvHeader(const uint8_t* p, size_t n) {
  if (n < 1) return;
  Message m;
  m.type = static_cast<MsgType>(p[0] % static_cast<uint8_t>(MsgType::kMaxType));
  m.body = Buffer::Copy(p + 1, n - 1);
  for (const char* peer : {"worker/0", "worker/1", "server/0"}) KvMaySend(peer, m);
  auto h = DecodeKvHeader(m);
  if (!h.ok()) return;
  // What was accepted re-encodes to the bytes it came from.
  Buffer again = EncodeKvBody(*h);
  if (again.size() != kKvHeaderSize || std::memcmp(again.data(), m.body.data(), kKvHeaderSize)) {
    __builtin_trap();
  }
  if (m.type == MsgType::kKvError) KvErrorReason(m);
  if (m.type == MsgType::kReplicateAck) {
    ByteReader r = KvBodyRest(m);
    uint64_t seq = 0;
    if (!r.U64(&seq).ok()) __builtin_trap();  // the header's decoder checked its size
  }
}

}  // namespace
}  // namespace distopt

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace distopt;  // NOLINT: a fuzz target
  if (size == 0) return 0;
  const uint8_t which = data[0] % 12;
  const uint8_t* p = data + 1;
  const size_t n = size - 1;
  WireLimits limits;
  limits.max_body_bytes = 1 << 16;
  limits.max_keys = 1 << 16;
  limits.max_values = 1 << 18;
  switch (which) {
    case 0: {
      auto m = DecodePacked(p, n, limits);
      if (m.ok()) {
        auto again = DecodeFrames(EncodeFrames(*m), limits);
        if (!again.ok() || again->type != m->type || again->num_values() != m->num_values()) {
          __builtin_trap();
        }
      }
      break;
    }
    case 1:
      DecodeView(Buffer::Copy(p, n)).status().IgnoreError();
      break;
    case 2:
      DecodeRegister(Buffer::Copy(p, n)).status().IgnoreError();
      break;
    case 3:
      DecodeBarrier(Buffer::Copy(p, n)).status().IgnoreError();
      break;
    case 4:
      DecodeCheckpointReport(p, n).status().IgnoreError();
      break;
    case 5:
      Layout::Decode(std::string(reinterpret_cast<const char*>(p), n)).status().IgnoreError();
      break;
    case 6: {
      auto c = DecodeFileChunk(Buffer::Copy(p, n));
      // An accepted piece always lies inside its file.
      if (c.ok() && c->offset + c->data.size() > c->total) __builtin_trap();
      break;
    }
    case 7:
      DecodeManifestCopy(p, n).status().IgnoreError();
      break;
    case 8:
      FuzzReplicate(p, n);
      break;
    case 9:
      FuzzKvHeader(p, n);
      break;
    case 10: {
      // A shard header: p[0] bit 0 seals it with its right CRC (so the field
      // checks behind the CRC are explored too), the next 8 bytes are the
      // file size, then the 60 header bytes.
      namespace ci = checkpoint_internal;
      if (n < 9 + ci::kShardHeaderSize) break;
      uint64_t file_size = 0;
      std::memcpy(&file_size, p + 1, sizeof(file_size));
      std::array<uint8_t, ci::kShardHeaderSize> raw{};
      std::memcpy(raw.data(), p + 9, raw.size());
      if (p[0] & 1) {
        const uint32_t crc = Crc32c(raw.data(), ci::kShardHeaderCrcAt);
        std::memcpy(raw.data() + ci::kShardHeaderCrcAt, &crc, sizeof(crc));
      }
      auto h = ci::DecodeShardHeader(raw, file_size, {}, "fuzz");
      // An accepted header's counts describe exactly the bytes the file has.
      uint64_t need = 0;
      if (h.ok() && (!ci::PayloadBytes(*h, &need) ||
                     need != file_size - ci::kShardHeaderSize - ci::kTrailerSize)) {
        __builtin_trap();
      }
      break;
    }
    case 11: {
      // MANIFEST text; p[0] bit 0 appends the right CRC line, so the lines
      // behind it are explored too.
      if (n < 1) break;
      std::string text(reinterpret_cast<const char*>(p + 1), n - 1);
      if (p[0] & 1) {
        char line[32];
        std::snprintf(line, sizeof(line), "crc32c %08x\n", Crc32c(text.data(), text.size()));
        text += line;
      }
      auto m = checkpoint_internal::ParseManifest(text, "fuzz");
      if (m.ok() && m->num_servers == 0) __builtin_trap();
      break;
    }
  }
  return 0;
}
