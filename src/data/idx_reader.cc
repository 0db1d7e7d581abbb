#include "data/idx_reader.h"

#include <cstdint>
#include <cstdio>
#include <string>

#include "data/file_reader.h"

namespace distopt {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // u8, 3 dims: count, rows, cols
constexpr uint32_t kLabelsMagic = 0x00000801;  // u8, 1 dim: count

uint32_t BigEndian32(std::string_view bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + offset);
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | static_cast<uint32_t>(p[3]);
}

std::string Hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

const char* TypeName(uint8_t type) {
  switch (type) {
    case 0x08:
      return "u8";
    case 0x09:
      return "i8";
    case 0x0b:
      return "i16";
    case 0x0c:
      return "i32";
    case 0x0d:
      return "f32";
    case 0x0e:
      return "f64";
    default:
      return nullptr;
  }
}

// What a magic number that did not match looks like, for the message.
std::string DescribeMagic(uint32_t magic) {
  if ((magic >> 16) == 0x1f8b) return "gzip data, decompress first";
  const char* type = TypeName(static_cast<uint8_t>(magic >> 8));
  if ((magic >> 16) != 0 || type == nullptr) return "not an IDX header";
  return std::string(type) + ", " + std::to_string(magic & 0xff) + " dims";
}

// A validated IDX header: `dims` sizes, and where the payload starts.
struct IdxHeader {
  uint32_t dims[3] = {0, 0, 0};
  size_t header_bytes = 0;
  size_t body_bytes = 0;
};

std::string DimsText(const IdxHeader& h, int ndims) {
  std::string s = std::to_string(h.dims[0]);
  for (int i = 1; i < ndims; ++i) s += "x" + std::to_string(h.dims[i]);
  return s;
}

// Checks magic, dimension count, nonzero sizes, the size cap and that `bytes`
// is exactly header + payload long.
Result<IdxHeader> ParseHeader(std::string_view bytes, std::string_view name, uint32_t want_magic,
                              const char* what, size_t max_bytes) {
  const std::string n(name);
  const int ndims = static_cast<int>(want_magic & 0xff);
  if (bytes.size() < 4) {
    return DataLossError(n + ": truncated header: expected a 4-byte magic number, found " +
                         std::to_string(bytes.size()) + " bytes");
  }
  uint32_t magic = BigEndian32(bytes, 0);
  if (magic != want_magic) {
    return InvalidArgumentError(n + ": bad magic: expected " + Hex32(want_magic) + " (" + what +
                                ", u8, " + std::to_string(ndims) + " dims), found " + Hex32(magic) +
                                " (" + DescribeMagic(magic) + ")");
  }
  IdxHeader h;
  h.header_bytes = 4 + 4 * static_cast<size_t>(ndims);
  if (bytes.size() < h.header_bytes) {
    return DataLossError(n + ": truncated header: expected " + std::to_string(h.header_bytes) +
                         " bytes, found " + std::to_string(bytes.size()));
  }
  uint64_t body = 1;
  bool overflow = false;
  for (int i = 0; i < ndims; ++i) {
    h.dims[i] = BigEndian32(bytes, 4 + 4 * static_cast<size_t>(i));
    overflow |= __builtin_mul_overflow(body, uint64_t{h.dims[i]}, &body);
  }
  for (int i = 0; i < ndims; ++i) {
    if (h.dims[i] == 0) {
      return InvalidArgumentError(n + ": expected nonzero dimensions, found " + DimsText(h, ndims));
    }
  }
  if (overflow || body > max_bytes) {
    return InvalidArgumentError(n + ": expected at most " + std::to_string(max_bytes) +
                                " bytes of " + what + ", found a header promising " +
                                DimsText(h, ndims));
  }
  h.body_bytes = static_cast<size_t>(body);
  const size_t want = h.header_bytes + h.body_bytes;
  if (bytes.size() != want) {
    std::string sizes = "expected " + std::to_string(want) + " bytes (" +
                        std::to_string(h.header_bytes) + "-byte header + " + DimsText(h, ndims) +
                        "), found " + std::to_string(bytes.size());
    if (bytes.size() < want) return DataLossError(n + ": truncated body: " + sizes);
    return InvalidArgumentError(n + ": trailing bytes: " + sizes);
  }
  return h;
}

}  // namespace

Result<Dataset> ParseIdx(std::string_view images, std::string_view labels,
                         std::string_view images_name, std::string_view labels_name,
                         const IdxOptions& options) {
  ASSIGN_OR_RETURN(IdxHeader ih,
                   ParseHeader(images, images_name, kImagesMagic, "images", options.max_bytes));
  ASSIGN_OR_RETURN(IdxHeader lh,
                   ParseHeader(labels, labels_name, kLabelsMagic, "labels", options.max_bytes));
  if (lh.dims[0] != ih.dims[0]) {
    return InvalidArgumentError(std::string(labels_name) + ": count mismatch: expected " +
                                std::to_string(ih.dims[0]) + " labels (one per image in " +
                                std::string(images_name) + "), found " +
                                std::to_string(lh.dims[0]));
  }
  // body_bytes <= max_bytes was checked above, so this allocation is bounded
  // by 4 * max_bytes and was never sized from an unchecked field.
  Dataset d;
  d.num_rows = ih.dims[0];
  d.num_features = static_cast<size_t>(ih.dims[1]) * ih.dims[2];
  d.sparse = false;
  d.dense.resize(ih.body_bytes);
  const auto* px = reinterpret_cast<const unsigned char*>(images.data() + ih.header_bytes);
  // A 256-entry table keeps the conversion exact and the loop trivially
  // vectorizable; it is the whole cost of reading an uncompressed file.
  float lut[256];
  for (int v = 0; v < 256; ++v) lut[v] = static_cast<float>(v) * options.scale;
  float* out = d.dense.data();
  for (size_t i = 0; i < ih.body_bytes; ++i) out[i] = lut[px[i]];

  d.labels.resize(d.num_rows);
  const auto* lb = reinterpret_cast<const unsigned char*>(labels.data() + lh.header_bytes);
  for (size_t i = 0; i < d.num_rows; ++i) d.labels[i] = static_cast<float>(lb[i]);
  return d;
}

Result<Dataset> ReadIdx(const std::string& images_path, const std::string& labels_path,
                        const IdxOptions& options) {
  // The cap leaves room for the header in front of max_bytes of payload.
  const size_t max_file = options.max_bytes + 16;
  ASSIGN_OR_RETURN(std::string images, ReadFileContents(images_path, max_file));
  ASSIGN_OR_RETURN(std::string labels, ReadFileContents(labels_path, max_file));
  return ParseIdx(images, labels, images_path, labels_path, options);
}

}  // namespace distopt
