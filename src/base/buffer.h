// Buffer: an immutable view of bytes whose lifetime is shared, so a value
// array can travel from a model's memory to a socket (or from a socket into a
// table) without being copied. Copying a Buffer copies the view, never the
// bytes. Thread-safe for concurrent readers; the bytes must not be mutated
// while any Buffer views them.
#ifndef DISTOPT_BASE_BUFFER_H_
#define DISTOPT_BASE_BUFFER_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace distopt {

class Buffer {
 public:
  Buffer() = default;

  // Shares `owner`; the view is [data, data+size).
  Buffer(std::shared_ptr<const void> owner, const void* data, size_t size)
      : owner_(std::move(owner)), data_(static_cast<const uint8_t*>(data)), size_(size) {}

  // Takes ownership of a vector without copying its elements.
  template <typename T>
  static Buffer FromVector(std::vector<T> v) {
    auto holder = std::make_shared<std::vector<T>>(std::move(v));
    const void* data = holder->data();
    size_t size = holder->size() * sizeof(T);
    return Buffer(std::shared_ptr<const void>(holder, data), data, size);
  }

  // Copies `size` bytes (for small control payloads and tests).
  static Buffer Copy(const void* data, size_t size);
  static Buffer FromString(const std::string& s) { return Copy(s.data(), s.size()); }

  // Borrows memory the caller keeps alive for as long as any copy of the
  // Buffer exists (the KV client guarantees this by waiting on its request).
  static Buffer Borrow(const void* data, size_t size) { return Buffer(nullptr, data, size); }

  // A fresh zero-filled writable allocation of `size` bytes, aligned for SIMD.
  static Buffer Allocate(size_t size, uint8_t** writable);

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  template <typename T>
  std::span<const T> as() const {
    return {reinterpret_cast<const T*>(data_), size_ / sizeof(T)};
  }

  Buffer Slice(size_t offset, size_t length) const {
    Buffer b(owner_, data_ + offset, length);
    b.lent_ = lent_;
    return b;
  }

  // True for the Buffers of a Loan (base/loan.h): the bytes are the
  // lender's, who waits for the last Buffer to go before reusing them.
  bool lent() const { return lent_; }

  std::string ToString() const { return std::string(reinterpret_cast<const char*>(data_), size_); }

  // The shared owner (may be null for borrowed memory).
  const std::shared_ptr<const void>& owner() const { return owner_; }

 private:
  friend class Loan;

  std::shared_ptr<const void> owner_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool lent_ = false;
};

}  // namespace distopt

#endif  // DISTOPT_BASE_BUFFER_H_
