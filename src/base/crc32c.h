// CRC32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum of
// checkpoint files and anything else written to disk. Uses the SSE4.2 crc32
// instruction when the CPU has it (checked once at run time), else a portable
// slicing-by-8 table. Pure functions; thread-safe.
//
//   uint32_t crc = Crc32c(header.data(), header.size());
//   crc = Crc32c(payload.data(), payload.size(), crc);  // == CRC of header+payload
#ifndef DISTOPT_BASE_CRC32C_H_
#define DISTOPT_BASE_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace distopt {

// The CRC32C of `n` bytes at `data`. `init` is the CRC of the bytes that came
// before (0 for none), so Crc32c(b, nb, Crc32c(a, na)) == Crc32c(a||b).
uint32_t Crc32c(const void* data, size_t n, uint32_t init = 0);

namespace crc32c_internal {

// Both implementations, exposed so tests can check they agree.
uint32_t Portable(const void* data, size_t n, uint32_t init);
// Only call when HardwareAvailable().
uint32_t Hardware(const void* data, size_t n, uint32_t init);
bool HardwareAvailable();

}  // namespace crc32c_internal
}  // namespace distopt

#endif  // DISTOPT_BASE_CRC32C_H_
