#include "data/idx_reader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "data/data_test_util.h"

namespace distopt {
namespace {

using testing::TempDir;

void PutBigEndian(std::string* s, uint32_t v) {
  s->push_back(static_cast<char>(v >> 24));
  s->push_back(static_cast<char>(v >> 16));
  s->push_back(static_cast<char>(v >> 8));
  s->push_back(static_cast<char>(v));
}

std::string Images(uint32_t n, uint32_t rows, uint32_t cols, const std::vector<uint8_t>& px) {
  std::string s;
  PutBigEndian(&s, 0x00000803);
  PutBigEndian(&s, n);
  PutBigEndian(&s, rows);
  PutBigEndian(&s, cols);
  s.append(px.begin(), px.end());
  return s;
}

std::string Labels(const std::vector<uint8_t>& labels) {
  std::string s;
  PutBigEndian(&s, 0x00000801);
  PutBigEndian(&s, static_cast<uint32_t>(labels.size()));
  s.append(labels.begin(), labels.end());
  return s;
}

// Three 2x2 images with distinct pixels, labels 7, 0, 255.
const std::vector<uint8_t> kPixels = {0, 255, 51, 102, 1, 2, 3, 4, 200, 100, 50, 25};
const std::vector<uint8_t> kLabels = {7, 0, 255};

void ExpectSmallDataset(const Dataset& d, float scale) {
  EXPECT_FALSE(d.sparse);
  ASSERT_EQ(d.num_rows, 3u);
  ASSERT_EQ(d.num_features, 4u);
  ASSERT_EQ(d.dense.size(), 12u);
  for (size_t i = 0; i < kPixels.size(); ++i) {
    EXPECT_FLOAT_EQ(d.dense[i], static_cast<float>(kPixels[i]) * scale) << i;
  }
  EXPECT_EQ(d.labels, (std::vector<float>{7, 0, 255}));
  EXPECT_FLOAT_EQ(d.DenseRow(2)[0], 200.0f * scale);
}

class IdxReaderTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(dir_.ok()); }
  // Reads `images` against the good labels file (or `labels` if given).
  Result<Dataset> Read(const std::string& images, const std::string& labels) {
    images_path_ = dir_.Write("images.idx", images);
    labels_path_ = dir_.Write("labels.idx", labels);
    return ReadIdx(images_path_, labels_path_);
  }
  TempDir dir_;
  std::string images_path_;
  std::string labels_path_;
};

TEST_F(IdxReaderTest, ReadsPlainFilesScaledToUnitRange) {
  Result<Dataset> d = Read(Images(3, 2, 2, kPixels), Labels(kLabels));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ExpectSmallDataset(*d, 1.0f / 255.0f);
  EXPECT_FLOAT_EQ(d->dense[1], 1.0f);
}

TEST_F(IdxReaderTest, ReadsGzipFilesDetectedByMagicNotName) {
  // Deliberately no .gz suffix: detection is by the 1f 8b magic bytes.
  std::string images = dir_.WriteGzip("images.idx", Images(3, 2, 2, kPixels));
  std::string labels = dir_.WriteGzip("labels.bin", Labels(kLabels));
  Result<Dataset> d = ReadIdx(images, labels, {});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ExpectSmallDataset(*d, 1.0f / 255.0f);
}

TEST_F(IdxReaderTest, AppliesConfiguredScale) {
  std::string images = dir_.Write("i", Images(3, 2, 2, kPixels));
  std::string labels = dir_.Write("l", Labels(kLabels));
  Result<Dataset> d = ReadIdx(images, labels, {.scale = 1.0f});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ExpectSmallDataset(*d, 1.0f);
}

TEST_F(IdxReaderTest, ShortMagicIsTruncatedHeader) {
  Result<Dataset> d = Read(std::string("\0\0\x08", 3), Labels(kLabels));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(d.status().message(),
            images_path_ + ": truncated header: expected a 4-byte magic number, found 3 bytes");
}

TEST_F(IdxReaderTest, TruncatedHeaderNamesBothSizes) {
  std::string images = Images(3, 2, 2, kPixels).substr(0, 10);
  Result<Dataset> d = Read(images, Labels(kLabels));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(d.status().message(), images_path_ + ": truncated header: expected 16 bytes, found 10");
}

TEST_F(IdxReaderTest, WrongMagicSaysWhatWasExpectedAndFound) {
  // A labels file where the images should be.
  Result<Dataset> d = Read(Labels(kLabels), Labels(kLabels));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(d.status().message(),
            images_path_ +
                ": bad magic: expected 0x00000803 (images, u8, 3 dims), found 0x00000801 (u8, 1 "
                "dims)");
}

TEST_F(IdxReaderTest, WrongMagicInLabelsFile) {
  Result<Dataset> d = Read(Images(3, 2, 2, kPixels), Images(3, 2, 2, kPixels));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(),
            labels_path_ +
                ": bad magic: expected 0x00000801 (labels, u8, 1 dims), found 0x00000803 (u8, 3 "
                "dims)");
}

TEST_F(IdxReaderTest, TruncatedBody) {
  std::string images = Images(3, 2, 2, kPixels);
  images.pop_back();
  Result<Dataset> d = Read(images, Labels(kLabels));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(
      d.status().message(),
      images_path_ + ": truncated body: expected 28 bytes (16-byte header + 3x2x2), found 27");
}

TEST_F(IdxReaderTest, TrailingBytes) {
  std::string labels = Labels(kLabels) + "x";
  Result<Dataset> d = Read(Images(3, 2, 2, kPixels), labels);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(d.status().message(),
            labels_path_ + ": trailing bytes: expected 11 bytes (8-byte header + 3), found 12");
}

TEST_F(IdxReaderTest, ImageAndLabelCountMismatch) {
  Result<Dataset> d = Read(Images(3, 2, 2, kPixels), Labels({1, 2}));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(), labels_path_ +
                                      ": count mismatch: expected 3 labels (one per "
                                      "image in " +
                                      images_path_ + "), found 2");
}

TEST_F(IdxReaderTest, ZeroDimensionRejected) {
  Result<Dataset> d = Read(Images(3, 0, 2, {}), Labels(kLabels));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(), images_path_ + ": expected nonzero dimensions, found 3x0x2");
}

TEST_F(IdxReaderTest, HugeHeaderRejectedBeforeAllocating) {
  // 2^32-1 cubed overflows 64 bits; 65536^2 x 2 = 2^33 exceeds the 2^31 cap.
  for (auto dims : {std::vector<uint32_t>{0xffffffffu, 0xffffffffu, 0xffffffffu},
                    std::vector<uint32_t>{65536, 65536, 2}}) {
    Result<Dataset> d = Read(Images(dims[0], dims[1], dims[2], {1, 2, 3}), Labels(kLabels));
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(d.status().message().find("expected at most 2147483648 bytes of images, found a "
                                        "header promising"),
              std::string::npos)
        << d.status().message();
  }
}

TEST_F(IdxReaderTest, MaxBytesCapsTheFileItself) {
  std::string images = dir_.Write("i", Images(3, 2, 2, kPixels));
  std::string labels = dir_.Write("l", Labels(kLabels));
  Result<Dataset> d = ReadIdx(images, labels, {.max_bytes = 4});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(), images + ": expected at most 20 bytes, found 28");
}

TEST_F(IdxReaderTest, MissingFileIsNotFound) {
  Result<Dataset> d = ReadIdx(dir_.Path("nope"), dir_.Path("nope2"), {});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(d.status().message(), dir_.Path("nope") + ": no such file");
}

TEST_F(IdxReaderTest, CorruptAndTruncatedGzipAreDataLoss) {
  std::string good = dir_.WriteGzip("good.gz", Images(3, 2, 2, kPixels));
  std::string labels = dir_.Write("l", Labels(kLabels));
  // Compressed bytes: gzip magic, then garbage after the 10-byte gzip header.
  std::string raw;
  {
    std::FILE* f = std::fopen(good.c_str(), "rb");
    ASSERT_NE(f, nullptr);
    char buf[4096];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) raw.append(buf, n);
    std::fclose(f);
  }
  ASSERT_GT(raw.size(), 20u);
  std::string corrupt = raw;
  for (size_t i = 10; i < corrupt.size(); ++i) corrupt[i] = static_cast<char>(0xff);
  Result<Dataset> d1 = ReadIdx(dir_.Write("corrupt.gz", corrupt), labels, {});
  ASSERT_FALSE(d1.ok());
  EXPECT_EQ(d1.status().code(), StatusCode::kDataLoss) << d1.status().ToString();

  Result<Dataset> d2 = ReadIdx(dir_.Write("cut.gz", raw.substr(0, raw.size() / 2)), labels, {});
  ASSERT_FALSE(d2.ok());
  EXPECT_EQ(d2.status().code(), StatusCode::kDataLoss) << d2.status().ToString();
  EXPECT_NE(d2.status().message().find("expected a complete gzip stream"), std::string::npos)
      << d2.status().message();
}

TEST_F(IdxReaderTest, ParseIdxFromMemoryMatchesFileReader) {
  Result<Dataset> d = ParseIdx(Images(3, 2, 2, kPixels), Labels(kLabels), "imgs", "lbls", {});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ExpectSmallDataset(*d, 1.0f / 255.0f);
  Result<Dataset> bad = ParseIdx("", Labels(kLabels), "imgs", "lbls", {});
  EXPECT_EQ(bad.status().message(),
            "imgs: truncated header: expected a 4-byte magic number, found 0 bytes");
}

// The real data, when Debian's dataset-fashion-mnist package is installed.
TEST(FashionMnistTest, ReadsTrainAndTestSets) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir + "/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << dir << " is missing (apt install dataset-fashion-mnist)";
  }
  struct Split {
    std::string prefix;
    size_t rows;
  };
  for (const Split& split : {Split{"train", 60000}, Split{"t10k", 10000}}) {
    auto start = std::chrono::steady_clock::now();
    Result<Dataset> d = ReadIdx(dir + "/" + split.prefix + "-images-idx3-ubyte.gz",
                                dir + "/" + split.prefix + "-labels-idx1-ubyte.gz");
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    std::printf("fashion-mnist %s: %zu x %zu read in %.3f s\n", split.prefix.c_str(), d->num_rows,
                d->num_features, secs);
    RecordProperty(split.prefix + "_read_seconds", std::to_string(secs));
    EXPECT_EQ(d->num_rows, split.rows);
    EXPECT_EQ(d->num_features, 784u);
    ASSERT_EQ(d->dense.size(), split.rows * 784);
    // Fashion-MNIST is balanced: every class 0..9 has a tenth of the rows.
    std::vector<size_t> per_class(10, 0);
    for (float label : d->labels) {
      ASSERT_GE(label, 0.0f);
      ASSERT_LE(label, 9.0f);
      ASSERT_EQ(label, static_cast<float>(static_cast<int>(label)));
      ++per_class[static_cast<size_t>(label)];
    }
    for (size_t c = 0; c < 10; ++c) EXPECT_EQ(per_class[c], split.rows / 10) << "class " << c;
    float lo = 1.0f;
    float hi = 0.0f;
    for (float v : d->dense) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    EXPECT_EQ(lo, 0.0f);
    EXPECT_EQ(hi, 1.0f);
  }
}

}  // namespace
}  // namespace distopt
