// What servers and the coordinator tell each other about checkpoints: a
// server's report that its files are durable, and the coordinator's copy of
// a complete manifest for servers with a run folder of their own (kept,
// checked and pruned here). Formats are little-endian, counts bounded before
// anything is allocated; the decoders are fuzzed (fuzz/wire_fuzz.cc).
#include <fstream>
#include <iterator>

#include "base/bytes.h"
#include "base/file_util.h"
#include "kv/checkpoint.h"

namespace distopt {

std::vector<uint8_t> EncodeCheckpointReport(const CheckpointReport& r) {
  ByteWriter w;
  w.I64(r.step);
  w.U32(r.server_rank);
  w.U32(static_cast<uint32_t>(r.files.size()));
  for (const auto& f : r.files) {
    w.Str(f.name);
    w.U64(f.size);
    w.U32(f.crc32c);
  }
  return w.Take();
}

Result<CheckpointReport> DecodeCheckpointReport(const uint8_t* data, size_t size) {
  ByteReader r(data, size);
  CheckpointReport out;
  uint32_t n = 0;
  RETURN_IF_ERROR(r.I64(&out.step));
  RETURN_IF_ERROR(r.U32(&out.server_rank));
  RETURN_IF_ERROR(r.Count(&n, 16, 1 << 20, "checkpoint files"));
  out.files.resize(n);
  for (auto& f : out.files) {
    RETURN_IF_ERROR(r.Str(&f.name, 256));
    RETURN_IF_ERROR(r.U64(&f.size));
    RETURN_IF_ERROR(r.U32(&f.crc32c));
  }
  RETURN_IF_ERROR(r.ExpectEnd("checkpoint report"));
  return out;
}

std::vector<uint8_t> EncodeManifestCopy(const ManifestCopy& m) {
  ByteWriter w;
  w.I64(m.step);
  w.Raw(m.bytes.data(), m.bytes.size());
  return w.Take();
}

Result<ManifestCopy> DecodeManifestCopy(const uint8_t* data, size_t size) {
  ByteReader r(data, size);
  ManifestCopy m;
  RETURN_IF_ERROR(r.I64(&m.step));
  if (m.step < 0) return InvalidArgumentError("manifest copy for a negative step");
  m.bytes.assign(data + (size - r.remaining()), data + size);
  return m;
}

Status StoreManifestCopy(const std::string& run_dir, const ManifestCopy& m, int keep) {
  const std::string dir = CheckpointDir(run_dir, m.step);
  const std::string path = dir + "/" + kManifestName;
  {
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> have((std::istreambuf_iterator<char>(in)), {});
    if (in && have == m.bytes) return Status::Ok();  // a shared folder: the coordinator wrote it
  }
  RETURN_IF_ERROR(MakeDirs(dir));
  RETURN_IF_ERROR(WriteFileAtomically(path, {std::span<const uint8_t>(m.bytes)}));
  auto back = ReadManifest(dir);
  if (!back.ok() || back->step != m.step) {
    RemoveTree(path).IgnoreError();
    return back.ok() ? DataLossError(path + ": the manifest copy is for step " +
                                     std::to_string(back->step) + ", not " + std::to_string(m.step))
                     : back.status();
  }
  return PruneCheckpoints(run_dir, keep, CheckpointScope::kOwnShards);
}

}  // namespace distopt
