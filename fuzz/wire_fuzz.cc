// Fuzzes the decoders of network bytes: the 4-frame message decoder (fed as
// length-prefixed frames), and the control payloads a node decodes from a
// message body (cluster view, registration, barrier, checkpoint report,
// layout, replication header and snapshot); and the decoders of checkpoint
// file bytes (a shard file's header against a file size, MANIFEST text).
// Any input must give a value or a Status, never a crash, and a decoded
// message must re-encode to frames the decoder accepts again.
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
#include "kv/layout.h"
#include "kv/repl_codec.h"
#include "wire/message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace distopt;  // NOLINT: a fuzz target
  if (size == 0) return 0;
  const uint8_t which = data[0] % 11;
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
    case 8: {
      // A kReplicate message: its first two bytes split the rest into the
      // body and the keys and values frames.
      if (n < 2) break;
      const size_t body = std::min<size_t>(n - 2, p[0] * 16u);
      const size_t rest = n - 2 - body;
      const size_t key_bytes = std::min<size_t>(rest, p[1] * 64u) / 8 * 8;
      Buffer keys = Buffer::Copy(p + 2 + body, key_bytes);
      Buffer values = Buffer::Copy(p + 2 + body + key_bytes, (rest - key_bytes) / 4 * 4);
      ByteReader r(p + 2, body);
      ReplHeader h;
      if (!ReadReplHeader(r, &h).ok()) break;
      std::vector<TableClocks> clocks;
      std::vector<ShardSnapshot> shards;
      if (DecodeSnapshot(r, {keys.as<uint64_t>(), values.as<float>()}, 2, 3, &clocks, &shards)
              .ok()) {
        // Every accepted shard lies inside the frames.
        size_t floats = 0;
        for (const ShardSnapshot& sh : shards) floats += sh.params.size() + sh.state.size();
        if (floats != values.as<float>().size() || clocks.size() != 2) __builtin_trap();
      }
      break;
    }
    case 9: {
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
    case 10: {
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
