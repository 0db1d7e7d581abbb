#include "wire/message.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>

namespace distopt {
namespace {

// The header no longer carries kv's clock, table and offset: a kv message's
// own header round-trips in kv/kv_message_test.cc.
Message SamplePush() {
  Message m;
  m.type = MsgType::kPush;
  m.flags = 0x8001;  // layer-defined bits: carried as they are
  m.sender = 7;
  m.epoch = 3;
  m.request_id = 99;
  m.status = 5;
  m.keys = Buffer::FromVector(std::vector<uint64_t>{5, 9});
  m.values = Buffer::FromVector(std::vector<float>{1.5f, -2.0f, 3.0f, 4.0f});
  m.body = Buffer::FromString("meta");
  return m;
}

TEST(WireTest, RoundTripsEveryField) {
  Message in = SamplePush();
  auto bytes = EncodePacked(in);
  auto out = DecodePacked(bytes.data(), bytes.size(), WireLimits{});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->type, MsgType::kPush);
  EXPECT_EQ(out->flags, 0x8001);
  EXPECT_EQ(out->sender, 7u);
  EXPECT_EQ(out->epoch, 3u);
  EXPECT_EQ(out->request_id, 99u);
  EXPECT_EQ(out->status, 5u);
  EXPECT_EQ(out->body.ToString(), "meta");
  ASSERT_EQ(out->num_keys(), 2u);
  EXPECT_EQ(out->keys.as<uint64_t>()[1], 9u);
  ASSERT_EQ(out->num_values(), 4u);
  EXPECT_EQ(out->values.as<float>()[1], -2.0f);
}

TEST(WireTest, EncodeSharesValueBuffersWithoutCopy) {
  Message in = SamplePush();
  auto frames = EncodeFrames(in);
  EXPECT_EQ(frames[3].data(), in.values.data());
  EXPECT_EQ(frames[2].data(), in.keys.data());
  EXPECT_EQ(frames[1].data(), in.body.data());
}

TEST(WireTest, HeaderIsTheGenericFortyEightBytesOfVersionTwo) {
  auto frames = EncodeFrames(SamplePush());
  ASSERT_EQ(frames[0].size(), 48u);
  EXPECT_EQ(frames[0].data()[4], 2u);  // kWireVersion: the kv fields left the header
  uint64_t keys = 0, values = 0;
  std::memcpy(&keys, frames[0].data() + 24, 8);
  std::memcpy(&values, frames[0].data() + 32, 8);
  EXPECT_EQ(keys, 2u);
  EXPECT_EQ(values, 4u);
}

// Table-driven: each case corrupts a well-formed message and names the
// error the decoder must report.
struct BadCase {
  const char* name;
  std::function<void(std::vector<Buffer>&)> corrupt;
  const char* expected;
};

void PatchHeader(std::vector<Buffer>& f, size_t offset, const void* v, size_t n) {
  std::vector<uint8_t> h(f[0].data(), f[0].data() + f[0].size());
  std::memcpy(h.data() + offset, v, n);
  f[0] = Buffer::Copy(h.data(), h.size());
}

TEST(WireTest, RejectsTruncatedOversizedAndInconsistentMessages) {
  const std::vector<BadCase> cases = {
      {"too few frames", [](auto& f) { f.pop_back(); }, "expected 4 frames"},
      {"too many frames", [](auto& f) { f.push_back(Buffer()); }, "expected 4 frames"},
      {"truncated header", [](auto& f) { f[0] = f[0].Slice(0, 40); }, "header frame is 40"},
      {"bad magic",
       [](auto& f) {
         uint32_t x = 1;
         PatchHeader(f, 0, &x, 4);
       },
       "bad magic"},
      {"future version",
       [](auto& f) {
         uint8_t v = 9;
         PatchHeader(f, 4, &v, 1);
       },
       "unsupported wire version 9"},
      {"unknown type",
       [](auto& f) {
         uint8_t t = 200;
         PatchHeader(f, 5, &t, 1);
       },
       "unknown message type 200"},
      {"keys count disagrees",
       [](auto& f) {
         uint64_t n = 3;
         PatchHeader(f, 24, &n, 8);
       },
       "keys frame is 16 bytes"},
      {"values truncated", [](auto& f) { f[3] = f[3].Slice(0, 6); }, "values frame is 6 bytes"},
      {"oversized values count",
       [](auto& f) {
         uint64_t n = 1ull << 40;
         PatchHeader(f, 32, &n, 8);
       },
       "exceed the limit"},
      {"oversized keys count",
       [](auto& f) {
         uint64_t n = 1ull << 40;
         PatchHeader(f, 24, &n, 8);
       },
       "exceed the limit"},
      {"body size disagrees", [](auto& f) { f[1] = Buffer::FromString("x"); },
       "body frame is 1 bytes"},
      {"body size field disagrees",
       [](auto& f) {
         uint32_t n = 5;
         PatchHeader(f, 44, &n, 4);
       },
       "body frame is 4 bytes, header says 5"},
  };
  for (const auto& c : cases) {
    auto frames = EncodeFrames(SamplePush());
    c.corrupt(frames);
    auto r = DecodeFrames(std::move(frames), WireLimits{});
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(r.status().message().find(c.expected), std::string::npos)
        << c.name << ": " << r.status().message();
  }
}

TEST(WireTest, EnforcesConfiguredLimits) {
  WireLimits tight;
  tight.max_values = 3;
  auto r = DecodeFrames(EncodeFrames(SamplePush()), tight);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("4 values exceed the limit of 3"), std::string::npos);
}

TEST(WireTest, PackedDecoderRejectsFramesRunningPastTheEnd) {
  auto bytes = EncodePacked(SamplePush());
  for (size_t cut : {size_t{1}, size_t{10}, bytes.size() - 1}) {
    auto r = DecodePacked(bytes.data(), cut, WireLimits{});
    EXPECT_FALSE(r.ok()) << "cut at " << cut;
  }
}

TEST(WireTest, MisalignedPayloadIsCopiedToAlignedMemory) {
  Message in = SamplePush();
  auto frames = EncodeFrames(in);
  std::vector<uint8_t> raw(frames[3].size() + 1);
  std::memcpy(raw.data() + 1, frames[3].data(), frames[3].size());
  frames[3] = Buffer::Borrow(raw.data() + 1, frames[3].size());
  auto r = DecodeFrames(std::move(frames), WireLimits{});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r->values.data()) % alignof(float), 0u);
  EXPECT_EQ(r->values.as<float>()[3], 4.0f);
}

}  // namespace
}  // namespace distopt
