#include "train/model_file.h"

#include <cstring>

#include "base/bytes.h"
#include "base/crc32c.h"
#include "base/file_util.h"

namespace distopt {
namespace {

constexpr char kMagic[8] = {'D', 'O', 'M', 'O', 'D', 'E', 'L', '1'};
constexpr uint32_t kVersion = 1;

}  // namespace

Status SaveModel(const std::string& path, const SavedModel& model, Env* env) {
  ByteWriter w;
  w.Raw(kMagic, sizeof(kMagic));
  w.U32(kVersion);
  w.I64(model.step);
  w.U32(static_cast<uint32_t>(model.tables.size()));
  for (const SavedTable& t : model.tables) {
    uint64_t expect = t.sparse ? t.keys.size() * t.dim : t.size;
    if (t.values.size() != expect) {
      return InvalidArgumentError("table '" + t.name + "' has " + std::to_string(t.values.size()) +
                                  " values, expected " + std::to_string(expect));
    }
    w.Str(t.name);
    w.U8(t.sparse ? 1 : 0);
    w.U64(t.size);
    w.U32(t.dim);
    w.U64(t.keys.size());
    w.Raw(t.keys.data(), t.keys.size() * sizeof(uint64_t));
    w.U64(t.values.size());
    w.Raw(t.values.data(), t.values.size() * sizeof(float));
  }
  uint32_t crc = Crc32c(w.bytes().data(), w.bytes().size());
  w.U32(crc);
  const auto& bytes = w.bytes();
  return WriteFileAtomically(env, path, {std::span<const uint8_t>(bytes.data(), bytes.size())});
}

Result<SavedModel> LoadModel(const std::string& path, uint64_t max_bytes) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, max_bytes));
  auto fail = [&](const std::string& what) { return DataLossError(path + ": " + what); };
  if (bytes.size() < sizeof(kMagic) + 4 + 4 || std::memcmp(bytes.data(), kMagic, 8) != 0) {
    return fail("not a distopt model file (bad magic)");
  }
  uint32_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 4, 4);
  if (Crc32c(bytes.data(), bytes.size() - 4) != stored) {
    return fail("checksum mismatch: the file is corrupt or truncated");
  }
  ByteReader r(bytes.data() + 8, bytes.size() - 12);
  uint32_t version = 0, ntables = 0;
  SavedModel m;
  RETURN_IF_ERROR(r.U32(&version));
  if (version != kVersion) {
    return fail("format version " + std::to_string(version) +
                " is not supported (this build reads " + std::to_string(kVersion) + ")");
  }
  RETURN_IF_ERROR(r.I64(&m.step));
  RETURN_IF_ERROR(r.Count(&ntables, 1, 1 << 16, "tables"));
  m.tables.resize(ntables);
  for (SavedTable& t : m.tables) {
    uint8_t sparse = 0;
    uint64_t nkeys = 0, nvalues = 0;
    RETURN_IF_ERROR(r.Str(&t.name, 1024));
    RETURN_IF_ERROR(r.U8(&sparse));
    t.sparse = sparse != 0;
    RETURN_IF_ERROR(r.U64(&t.size));
    RETURN_IF_ERROR(r.U32(&t.dim));
    RETURN_IF_ERROR(r.U64(&nkeys));
    if (nkeys > r.remaining() / sizeof(uint64_t)) return fail("key count exceeds the file");
    t.keys.resize(nkeys);
    for (auto& k : t.keys) RETURN_IF_ERROR(r.U64(&k));
    for (size_t i = 1; i < t.keys.size(); ++i) {
      if (t.keys[i] <= t.keys[i - 1]) {
        return fail("table '" + t.name + "': keys are not strictly ascending at position " +
                    std::to_string(i));
      }
    }
    RETURN_IF_ERROR(r.U64(&nvalues));
    if (nvalues > r.remaining() / sizeof(float)) return fail("value count exceeds the file");
    uint64_t expect = t.sparse ? nkeys * t.dim : t.size;
    if (nvalues != expect) {
      return fail("table '" + t.name + "' has " + std::to_string(nvalues) + " values, expected " +
                  std::to_string(expect));
    }
    t.values.resize(nvalues);
    for (auto& v : t.values) RETURN_IF_ERROR(r.F32(&v));
  }
  RETURN_IF_ERROR(r.ExpectEnd("model"));
  return m;
}

}  // namespace distopt
