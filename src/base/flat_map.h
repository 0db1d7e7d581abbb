// FlatMap: an open-addressing hash map from uint64 keys to uint32 values
// (row indices), for the sparse hot paths (client dedup, server rows,
// aggregation). Linear probing over one contiguous array, power-of-two
// capacity, load factor <= 1/2; no deletion (rows are never removed one by
// one; Clear() resets). 3-5x faster than std::unordered_map here and one
// allocation instead of one per key. Not thread-safe.
//
//   FlatMap m;
//   auto [slot, fresh] = m.Insert(key, next_row);
//   if (!fresh) use(*slot);
//
// A map larger than the cache costs a cache miss per lookup; a loop over a
// batch of keys calls Prefetch(keys[i + 16]) before looking up keys[i] so
// the misses overlap (SparseShard does).
#ifndef DISTOPT_BASE_FLAT_MAP_H_
#define DISTOPT_BASE_FLAT_MAP_H_

#include <cstdint>
#include <utility>
#include <vector>

namespace distopt {

class FlatMap {
 public:
  FlatMap() { Rehash(16); }

  // Inserts key -> value unless present; returns the stored value's slot
  // and whether it was inserted.
  std::pair<uint32_t*, bool> Insert(uint64_t key, uint32_t value) {
    if ((size_ + 1) * 2 > slots_.size()) Rehash(slots_.size() * 2);
    size_t i = Mix(key) & mask_;
    while (true) {
      Slot& s = slots_[i];
      if (!s.used) {
        s = Slot{key, value, true};
        ++size_;
        return {&s.value, true};
      }
      if (s.key == key) return {&s.value, false};
      i = (i + 1) & mask_;
    }
  }

  // The value of `key`, or nullptr.
  const uint32_t* Find(uint64_t key) const {
    size_t i = Mix(key) & mask_;
    while (true) {
      const Slot& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.key == key) return &s.value;
      i = (i + 1) & mask_;
    }
  }

  // Starts loading the slot `key` hashes to (a hint: no effect on contents).
  // A later Insert of more keys may rehash, which only wastes the hint.
  void Prefetch(uint64_t key) const { __builtin_prefetch(&slots_[Mix(key) & mask_]); }

  void Reserve(size_t n) {
    size_t cap = slots_.size();
    while (n * 2 > cap) cap *= 2;
    if (cap != slots_.size()) Rehash(cap);
  }

  void Clear() {
    for (Slot& s : slots_) s.used = false;
    size_ = 0;
  }

  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t key = 0;
    uint32_t value = 0;
    bool used = false;
  };

  // Keys are often small consecutive ids: mix so they spread over slots.
  static uint64_t Mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
  }

  void Rehash(size_t capacity) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    size_ = 0;
    for (const Slot& s : old) {
      if (s.used) Insert(s.key, s.value);
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace distopt

#endif  // DISTOPT_BASE_FLAT_MAP_H_
