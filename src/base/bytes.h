// ByteWriter / ByteReader: little-endian encoding of small control payloads
// (registrations, layouts, table specs). The reader is strict: every read is
// bounds-checked and a short buffer becomes a Status, never a crash; counts
// are checked against the remaining bytes before anything is allocated.
// Not thread-safe; one instance per encode/decode.
#ifndef DISTOPT_BASE_BYTES_H_
#define DISTOPT_BASE_BYTES_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "distopt/status.h"

namespace distopt {

class ByteWriter {
 public:
  void U8(uint8_t v) { Raw(&v, 1); }
  void U16(uint16_t v) { Raw(&v, 2); }
  void U32(uint32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void I64(int64_t v) { Raw(&v, 8); }
  void F32(float v) { Raw(&v, 4); }
  void F64(double v) { Raw(&v, 8); }
  void Str(const std::string& s) {
    U32(static_cast<uint32_t>(s.size()));
    Raw(s.data(), s.size());
  }
  // Room for `n` bytes in all, so a fixed-size encoding allocates once.
  void Reserve(size_t n) { out_.reserve(n); }
  void Raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  const std::vector<uint8_t>& bytes() const { return out_; }
  std::vector<uint8_t> Take() { return std::move(out_); }

 private:
  // Host order is little-endian on every platform distopt builds for (checked
  // by a static_assert in bytes.cc), so raw copies are the wire encoding.
  std::vector<uint8_t> out_;
};

class ByteReader {
 public:
  ByteReader(const void* data, size_t size)
      : p_(static_cast<const uint8_t*>(data)), end_(p_ + size) {}

  Status U8(uint8_t* v) { return Raw(v, 1, "u8"); }
  Status U16(uint16_t* v) { return Raw(v, 2, "u16"); }
  Status U32(uint32_t* v) { return Raw(v, 4, "u32"); }
  Status U64(uint64_t* v) { return Raw(v, 8, "u64"); }
  Status I64(int64_t* v) { return Raw(v, 8, "i64"); }
  Status F32(float* v) { return Raw(v, 4, "f32"); }
  Status F64(double* v) { return Raw(v, 8, "f64"); }
  // `max_len` bounds the string before it is allocated.
  Status Str(std::string* s, size_t max_len = 1 << 16);
  // Reads a count that must be at most `max` and fit `elem_size`-byte items
  // in what remains.
  Status Count(uint32_t* n, size_t elem_size, uint32_t max, const char* what);

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  Status ExpectEnd(const char* what) const;

 private:
  Status Raw(void* out, size_t n, const char* what);
  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace distopt

#endif  // DISTOPT_BASE_BYTES_H_
