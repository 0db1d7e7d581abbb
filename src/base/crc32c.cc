#include "base/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace distopt {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // Castagnoli, bit-reversed

// kTable[0] is the classic byte-at-a-time table; kTable[k][b] is the CRC of
// byte b followed by k zero bytes, which lets the loop below fold 8 input
// bytes with 8 independent lookups (slicing-by-8). Built at compile time, so
// there is no lazy initialization and no mutable global.
constexpr std::array<std::array<uint32_t, 256>, 8> MakeTables() {
  std::array<std::array<uint32_t, 256>, 8> t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int i = 0; i < 8; ++i) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[0][b] = c;
  }
  for (uint32_t b = 0; b < 256; ++b) {
    for (int k = 1; k < 8; ++k) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xff];
  }
  return t;
}
constexpr auto kTable = MakeTables();

inline uint64_t LoadU64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);  // unaligned-safe; little-endian host (see bytes.cc)
  return v;
}

}  // namespace

namespace crc32c_internal {

uint32_t Portable(const void* data, size_t n, uint32_t init) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~init;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v = LoadU64(p) ^ c;
    c = kTable[7][v & 0xff] ^ kTable[6][(v >> 8) & 0xff] ^ kTable[5][(v >> 16) & 0xff] ^
        kTable[4][(v >> 24) & 0xff] ^ kTable[3][(v >> 32) & 0xff] ^ kTable[2][(v >> 40) & 0xff] ^
        kTable[1][(v >> 48) & 0xff] ^ kTable[0][v >> 56];
  }
  for (; n > 0; --n, ++p) c = (c >> 8) ^ kTable[0][(c ^ *p) & 0xff];
  return ~c;
}

#if defined(__x86_64__)

// Compiled for SSE4.2 regardless of -march, so a generic build still gets
// the instruction; only reached after the run-time CPU check.
__attribute__((target("sse4.2"))) uint32_t Hardware(const void* data, size_t n, uint32_t init) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t c = static_cast<uint32_t>(~init);
  for (; n >= 8; n -= 8, p += 8) c = _mm_crc32_u64(c, LoadU64(p));
  auto c32 = static_cast<uint32_t>(c);
  for (; n > 0; --n, ++p) c32 = _mm_crc32_u8(c32, *p);
  return ~c32;
}

bool HardwareAvailable() {
  // Function-local constant: computed once, thread-safe, immutable after.
  static const bool has_sse42 = __builtin_cpu_supports("sse4.2");
  return has_sse42;
}

#else

uint32_t Hardware(const void* data, size_t n, uint32_t init) { return Portable(data, n, init); }
bool HardwareAvailable() { return false; }

#endif

}  // namespace crc32c_internal

uint32_t Crc32c(const void* data, size_t n, uint32_t init) {
  if (crc32c_internal::HardwareAvailable()) return crc32c_internal::Hardware(data, n, init);
  return crc32c_internal::Portable(data, n, init);
}

}  // namespace distopt
