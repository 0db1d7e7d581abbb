#include "base/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace distopt {
namespace {

using crc32c_internal::Hardware;
using crc32c_internal::HardwareAvailable;
using crc32c_internal::Portable;

// Runs `check` with each implementation this machine can run.
template <typename F>
void ForEachImpl(F check) {
  check("portable", [](const void* p, size_t n, uint32_t init) { return Portable(p, n, init); });
  if (HardwareAvailable()) {
    check("sse4.2", [](const void* p, size_t n, uint32_t init) { return Hardware(p, n, init); });
  }
}

TEST(Crc32cTest, StandardCheckValue) {
  const char* s = "123456789";
  EXPECT_EQ(Crc32c(s, 9), 0xE3069283u);
  ForEachImpl([&](const char* name, auto crc) { EXPECT_EQ(crc(s, 9, 0), 0xE3069283u) << name; });
}

TEST(Crc32cTest, Rfc3720Vectors) {
  uint8_t zeros[32], ones[32], ascending[32], descending[32];
  std::memset(zeros, 0, 32);
  std::memset(ones, 0xff, 32);
  for (int i = 0; i < 32; ++i) {
    ascending[i] = static_cast<uint8_t>(i);
    descending[i] = static_cast<uint8_t>(31 - i);
  }
  ForEachImpl([&](const char* name, auto crc) {
    EXPECT_EQ(crc(zeros, 32, 0), 0x8A9136AAu) << name;
    EXPECT_EQ(crc(ones, 32, 0), 0x62A8AB43u) << name;
    EXPECT_EQ(crc(ascending, 32, 0), 0x46DD794Eu) << name;
    EXPECT_EQ(crc(descending, 32, 0), 0x113FDB5Cu) << name;
  });
  EXPECT_EQ(Crc32c(ascending, 32), 0x46DD794Eu);
}

TEST(Crc32cTest, EmptyInputKeepsTheRunningValue) {
  EXPECT_EQ(Crc32c(nullptr, 0), 0u);
  EXPECT_EQ(Crc32c(nullptr, 0, 0xE3069283u), 0xE3069283u);
}

TEST(Crc32cTest, ChainingEqualsOneShotAtEverySplit) {
  std::mt19937_64 rng(7);
  std::vector<uint8_t> buf(300);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  ForEachImpl([&](const char* name, auto crc) {
    const uint32_t whole = crc(buf.data(), buf.size(), 0);
    for (size_t split = 0; split <= buf.size(); ++split) {
      uint32_t a = crc(buf.data(), split, 0);
      ASSERT_EQ(crc(buf.data() + split, buf.size() - split, a), whole)
          << name << " split " << split;
    }
    // Three pieces, too.
    uint32_t c = crc(buf.data(), 5, 0);
    c = crc(buf.data() + 5, 100, c);
    c = crc(buf.data() + 105, buf.size() - 105, c);
    EXPECT_EQ(c, whole) << name;
  });
}

TEST(Crc32cTest, ImplementationsAgreeOnRandomBuffersLengthsAndAlignments) {
  std::mt19937_64 rng(42);
  std::vector<uint8_t> buf(70000);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 130; ++n) lengths.push_back(n);
  for (size_t n : {255, 256, 257, 1000, 4095, 4096, 4097, 65536, 69000}) lengths.push_back(n);
  for (size_t n : lengths) {
    for (size_t align = 0; align < 8; ++align) {
      const uint8_t* p = buf.data() + align;
      const auto init = static_cast<uint32_t>(rng());
      uint32_t portable = Portable(p, n, init);
      EXPECT_EQ(Crc32c(p, n, init), portable) << "n=" << n << " align=" << align;
      if (HardwareAvailable()) {
        ASSERT_EQ(Hardware(p, n, init), portable) << "n=" << n << " align=" << align;
      }
    }
  }
}

TEST(Crc32cTest, DetectsEverySingleBitFlip) {
  std::mt19937_64 rng(3);
  std::vector<uint8_t> buf(512);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  const uint32_t clean = Crc32c(buf.data(), buf.size());
  for (size_t i = 0; i < buf.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      buf[i] ^= static_cast<uint8_t>(1u << bit);
      ASSERT_NE(Crc32c(buf.data(), buf.size()), clean) << "byte " << i << " bit " << bit;
      buf[i] ^= static_cast<uint8_t>(1u << bit);
    }
  }
}

}  // namespace
}  // namespace distopt
