#include "base/bytes.h"

#include <bit>

namespace distopt {

static_assert(std::endian::native == std::endian::little,
              "distopt's wire format is little-endian and encodes by raw copy");

Status ByteReader::Raw(void* out, size_t n, const char* what) {
  if (remaining() < n) {
    return InvalidArgumentError("truncated payload: need " + std::to_string(n) + " bytes for " +
                                what + ", have " + std::to_string(remaining()));
  }
  std::memcpy(out, p_, n);
  p_ += n;
  return Status::Ok();
}

Status ByteReader::Str(std::string* s, size_t max_len) {
  uint32_t n = 0;
  RETURN_IF_ERROR(U32(&n));
  if (n > max_len) {
    return InvalidArgumentError("string length " + std::to_string(n) + " exceeds limit " +
                                std::to_string(max_len));
  }
  if (remaining() < n) {
    return InvalidArgumentError("truncated payload: string of " + std::to_string(n) +
                                " bytes, have " + std::to_string(remaining()));
  }
  s->assign(reinterpret_cast<const char*>(p_), n);
  p_ += n;
  return Status::Ok();
}

Status ByteReader::Count(uint32_t* n, size_t elem_size, uint32_t max, const char* what) {
  RETURN_IF_ERROR(U32(n));
  if (*n > max) {
    return InvalidArgumentError(std::string(what) + " count " + std::to_string(*n) +
                                " exceeds limit " + std::to_string(max));
  }
  if (elem_size > 0 && static_cast<uint64_t>(*n) * elem_size > remaining()) {
    return InvalidArgumentError(std::string(what) + " count " + std::to_string(*n) +
                                " does not fit in the " + std::to_string(remaining()) +
                                " remaining bytes");
  }
  return Status::Ok();
}

Status ByteReader::ExpectEnd(const char* what) const {
  if (remaining() != 0) {
    return InvalidArgumentError(std::to_string(remaining()) + " trailing bytes after " + what);
  }
  return Status::Ok();
}

}  // namespace distopt
