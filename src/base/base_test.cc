#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "base/buffer.h"
#include "base/bytes.h"
#include "base/flat_map.h"
#include "base/loan.h"
#include "base/logging.h"
#include "base/queue.h"
#include "base/vector_ops.h"
#include "distopt/status.h"

namespace distopt {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgumentError("odd: " + std::to_string(x));
  return x / 2;
}

Result<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(StatusTest, AssignOrReturnPropagatesTheFirstError) {
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "odd: 3");
  EXPECT_EQ(r.status().WithContext("quartering").message(), "quartering: odd: 3");
}

TEST(BytesTest, RoundTripsAndRejectsTruncation) {
  ByteWriter w;
  w.U32(7);
  w.Str("hello");
  w.F64(2.5);
  auto bytes = w.Take();
  ByteReader r(bytes.data(), bytes.size());
  uint32_t a = 0;
  std::string s;
  double d = 0;
  ASSERT_TRUE(r.U32(&a).ok());
  ASSERT_TRUE(r.Str(&s).ok());
  ASSERT_TRUE(r.F64(&d).ok());
  EXPECT_EQ(a, 7u);
  EXPECT_EQ(s, "hello");
  EXPECT_EQ(d, 2.5);
  EXPECT_TRUE(r.ExpectEnd("test").ok());

  ByteReader shortr(bytes.data(), 6);  // u32 + 2 bytes of the string length
  ASSERT_TRUE(shortr.U32(&a).ok());
  EXPECT_FALSE(shortr.Str(&s).ok());
}

TEST(BytesTest, CountIsCheckedAgainstRemainingBytesBeforeAllocation) {
  ByteWriter w;
  w.U32(1000000);  // claims a million 8-byte items
  w.U64(1);
  auto bytes = w.Take();
  ByteReader r(bytes.data(), bytes.size());
  uint32_t n = 0;
  Status s = r.Count(&n, 8, 1 << 30, "keys");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("does not fit"), std::string::npos) << s.message();
}

TEST(BufferTest, SharesWithoutCopying) {
  std::vector<float> v = {1, 2, 3, 4};
  const float* raw = v.data();
  Buffer b = Buffer::FromVector(std::move(v));
  EXPECT_EQ(b.as<float>().data(), raw);
  Buffer c = b.Slice(4, 8);
  EXPECT_EQ(c.as<float>()[0], 2.0f);
  EXPECT_EQ(c.as<float>()[1], 3.0f);
  EXPECT_EQ(c.owner().get(), b.owner().get());
}

TEST(LoanTest, ReturnedOnlyOnceClosedAndEverySliceIsGone) {
  std::vector<float> v = {1, 2, 3, 4};
  Loan loan(v.data(), v.size() * sizeof(float));
  EXPECT_EQ(loan.buffer().as<float>().data(), v.data());  // lent, not copied
  Buffer slice = loan.buffer().Slice(8, 8);
  EXPECT_TRUE(slice.lent());
  EXPECT_FALSE(Buffer::Copy(v.data(), 4).lent());
  std::optional<Buffer> copy = loan.buffer();
  EXPECT_FALSE(loan.returned());
  loan.Close();
  EXPECT_TRUE(loan.buffer().empty());
  EXPECT_FALSE(loan.returned());  // two Buffers still out
  copy.reset();
  EXPECT_FALSE(loan.WaitReturned(Deadline::After(std::chrono::milliseconds(10))));
  EXPECT_EQ(slice.as<float>()[0], 3.0f);
  slice = Buffer();
  EXPECT_TRUE(loan.returned());
}

TEST(LoanTest, ABufferDroppedOnAnotherThreadWakesTheLender) {
  std::vector<uint8_t> bytes(64, 7);
  Loan loan(bytes.data(), bytes.size());
  Buffer held = loan.buffer();
  loan.Close();
  std::thread socket([b = std::move(held)]() mutable {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    b = Buffer();
  });
  EXPECT_TRUE(loan.WaitReturned(Deadline::After(std::chrono::seconds(30))));
  socket.join();
}

TEST(QueueTest, PopTimesOutAndCloseWakesWaiters) {
  BlockingQueue<int> q;
  EXPECT_FALSE(q.Pop(Deadline::After(std::chrono::milliseconds(10))).has_value());
  std::thread t([&] { q.Push(5); });
  auto v = q.Pop(Deadline::After(std::chrono::seconds(10)));
  t.join();
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, 5);
  std::thread closer([&] { q.Close(); });
  EXPECT_FALSE(q.Pop().has_value());
  closer.join();
  EXPECT_FALSE(q.Push(1));
}

TEST(LoggingTest, MemorySinkRecordsNamedLines) {
  auto sink = std::make_shared<MemorySink>();
  Logger log(sink, "server/1", LogLevel::kInfo);
  log.Debug("hidden");
  log.Info("waiting for ", 3, " workers");
  ASSERT_EQ(sink->Lines().size(), 1u);
  EXPECT_TRUE(sink->Contains("[server/1] waiting for 3 workers"));
}

}  // namespace
}  // namespace distopt

namespace distopt {
namespace {

TEST(FlatMapTest, InsertsFindsAndKeepsFirstValueAcrossRehashes) {
  FlatMap m;
  std::map<uint64_t, uint32_t> ref;
  uint64_t x = 12345;
  for (uint32_t i = 0; i < 50000; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t key = (x >> 20) % 20000;  // many repeats
    auto [slot, fresh] = m.Insert(key, i);
    auto [it, ref_fresh] = ref.try_emplace(key, i);
    ASSERT_EQ(fresh, ref_fresh);
    ASSERT_EQ(*slot, it->second);
  }
  EXPECT_EQ(m.size(), ref.size());
  for (const auto& [k, v] : ref) {
    const uint32_t* f = m.Find(k);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(*f, v);
  }
  EXPECT_EQ(m.Find(1ull << 40), nullptr);
  m.Clear();
  EXPECT_EQ(m.size(), 0u);
  EXPECT_EQ(m.Find(ref.begin()->first), nullptr);
}

// Keys that share their low hash bits probe into each other's runs; a
// rehash must find every one of them a slot again, and Prefetch (on
// present, absent and colliding keys) must not change anything.
TEST(FlatMapTest, RehashAndReserveKeepEveryKeyIncludingCollidingRuns) {
  FlatMap grown;
  FlatMap reserved;
  reserved.Reserve(30000);
  std::vector<uint64_t> keys;
  for (uint64_t i = 0; i < 20000; ++i) keys.push_back(i);                        // consecutive ids
  for (uint64_t i = 0; i < 10000; ++i) keys.push_back(((i + 1) << 40) | 0xabc);  // high bits only
  for (size_t i = 0; i < keys.size(); ++i) {
    grown.Prefetch(keys[i]);
    grown.Prefetch(keys[i] + (1ull << 63));
    auto [slot, fresh] = grown.Insert(keys[i], static_cast<uint32_t>(i));
    ASSERT_TRUE(fresh) << i;
    EXPECT_EQ(*slot, i);
    reserved.Insert(keys[i], static_cast<uint32_t>(i));
  }
  ASSERT_EQ(grown.size(), keys.size());
  ASSERT_EQ(reserved.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const uint32_t* g = grown.Find(keys[i]);
    const uint32_t* r = reserved.Find(keys[i]);
    ASSERT_NE(g, nullptr) << keys[i];
    ASSERT_NE(r, nullptr) << keys[i];
    EXPECT_EQ(*g, i);
    EXPECT_EQ(*r, i);
    auto [slot, fresh] = grown.Insert(keys[i], 0);
    EXPECT_FALSE(fresh);
    EXPECT_EQ(*slot, i);
  }
  EXPECT_EQ(grown.Find(1ull << 62), nullptr);
  EXPECT_EQ(grown.size(), keys.size());
}

}  // namespace
}  // namespace distopt

namespace distopt {
namespace {

// The vectorized sum equals the plain left-to-right sum bit for bit, for
// lengths around the vector and block sizes, with and without scaling and
// accumulating in place into the first input.
TEST(VectorOpsTest, SumScaledEqualsThePlainLoopBitForBit) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  for (size_t n : {0u, 1u, 15u, 16u, 17u, 4095u, 4096u, 4097u, 10000u}) {
    for (size_t k : {1u, 2u, 4u}) {
      for (float scale : {1.0f, 0.25f, 1.0f / 3.0f}) {
        std::vector<std::vector<float>> in(k, std::vector<float>(n));
        for (auto& v : in) {
          for (float& x : v) x = u(rng);
        }
        std::vector<const float*> ptrs;
        for (auto& v : in) ptrs.push_back(v.data());
        std::vector<float> want(n);
        for (size_t i = 0; i < n; ++i) {
          float s = in[0][i];
          for (size_t j = 1; j < k; ++j) s += in[j][i];
          want[i] = scale == 1.0f ? s : s * scale;
        }
        std::vector<float> out(n, 99.0f);
        SumScaled(ptrs, n, scale, out.data());
        EXPECT_EQ(0, std::memcmp(out.data(), want.data(), n * 4)) << n << " " << k << " " << scale;
        SumScaled(ptrs, n, scale, in[0].data());  // in place
        EXPECT_EQ(0, std::memcmp(in[0].data(), want.data(), n * 4)) << n << " " << k;
      }
    }
  }
}

}  // namespace
}  // namespace distopt
