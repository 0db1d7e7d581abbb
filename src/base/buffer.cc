#include "base/buffer.h"

#include <cstdlib>
#include <new>

namespace distopt {

Buffer Buffer::Copy(const void* data, size_t size) {
  uint8_t* out = nullptr;
  Buffer b = Allocate(size, &out);
  if (size > 0) std::memcpy(out, data, size);
  return b;
}

Buffer Buffer::Allocate(size_t size, uint8_t** writable) {
  // 64-byte alignment keeps Eigen and the vectorized optimizers on aligned loads.
  size_t rounded = (size + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(64, rounded);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, size);
  std::shared_ptr<const void> owner(p, [](const void* q) { std::free(const_cast<void*>(q)); });
  *writable = static_cast<uint8_t*>(p);
  return Buffer(std::move(owner), p, size);
}

}  // namespace distopt
