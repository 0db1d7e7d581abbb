#include "data/libsvm_reader.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "data/data_test_util.h"

namespace distopt {
namespace {

using testing::TempDir;

// Comments, a blank line, qid, CRLF, "+1" labels, tabs and an empty row.
constexpr char kGood[] =
    "# header comment\n"
    "+1 1:0.5 3:2 10:-1e-1\n"
    "\n"
    "-1 qid:7 2:1   4:.25 # trailing comment\n"
    "0.5\t5:3\r\n"
    "0\n";

void ExpectGood(const Dataset& d) {
  EXPECT_TRUE(d.sparse);
  ASSERT_EQ(d.num_rows, 4u);
  EXPECT_EQ(d.num_features, 10u);  // one-based ids up to 10 -> zero-based 0..9
  EXPECT_EQ(d.labels, (std::vector<float>{1, -1, 0.5f, 0}));
  EXPECT_EQ(d.row_ptr, (std::vector<uint64_t>{0, 3, 5, 6, 6}));
  EXPECT_EQ(d.col_idx, (std::vector<uint64_t>{0, 2, 9, 1, 3, 4}));
  EXPECT_EQ(d.col_val, (std::vector<float>{0.5f, 2, -0.1f, 1, 0.25f, 3}));
}

TEST(LibSvmReaderTest, ParsesLabelsFeaturesCommentsQidAndBlankLines) {
  ReadStats stats;
  Result<Dataset> d = ParseLibSvm(kGood, "good.svm", {}, &stats);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ExpectGood(*d);
  EXPECT_EQ(stats.lines, 6u);
  EXPECT_EQ(stats.rows, 4u);
  EXPECT_EQ(stats.bad_lines, 0u);
}

TEST(LibSvmReaderTest, ReadsPlainAndGzipFiles) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  for (const std::string& path :
       {dir.Write("good.svm", kGood), dir.WriteGzip("good.svm.gz", kGood)}) {
    Result<Dataset> d = ReadLibSvm(path);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ExpectGood(*d);
  }
}

TEST(LibSvmReaderTest, ZeroBasedIdsAndConfiguredFeatureCount) {
  Result<Dataset> d = ParseLibSvm("1 0:1 7:2\n0 3:4\n", "z.svm", {.zero_based = true});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->col_idx, (std::vector<uint64_t>{0, 7, 3}));
  EXPECT_EQ(d->num_features, 8u);

  Result<Dataset> wide =
      ParseLibSvm("1 0:1 7:2\n", "z.svm", {.zero_based = true, .num_features = 100});
  ASSERT_TRUE(wide.ok());
  EXPECT_EQ(wide->num_features, 100u);

  Result<Dataset> out =
      ParseLibSvm("1 0:1 7:2\n0 8:1\n", "z.svm", {.zero_based = true, .num_features = 8});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(), "z.svm:2: expected a feature index below 8, found '8:1'");

  // One-based: the message speaks the file's numbering (ids 1..8 allowed).
  Result<Dataset> out1 = ParseLibSvm("1 9:1\n", "o.svm", {.num_features = 8});
  ASSERT_FALSE(out1.ok());
  EXPECT_EQ(out1.status().message(), "o.svm:1: expected a feature index below 9, found '9:1'");
}

struct BadLine {
  const char* line;
  const char* message;  // after "bad.svm:3: "
};

class LibSvmBadLineTest : public ::testing::TestWithParam<BadLine> {};

TEST_P(LibSvmBadLineTest, FailsWithFileLineExpectedFound) {
  // Line 1 a comment, line 2 good, line 3 the bad one, line 4 good.
  std::string text = std::string("# c\n1 1:1\n") + GetParam().line + "\n0 2:2\n";
  Result<Dataset> d = ParseLibSvm(text, "bad.svm");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(d.status().message(), std::string("bad.svm:3: ") + GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    AllKinds, LibSvmBadLineTest,
    ::testing::Values(
        BadLine{"1:0.5 2:1", "expected a label before the features, found '1:0.5'"},
        BadLine{"abc 1:1", "expected a numeric label, found 'abc'"},
        BadLine{"1e999 1:1", "expected a numeric label, found '1e999'"},
        BadLine{"1 3:x", "expected a numeric feature value, found '3:x'"},
        BadLine{"1 3:", "expected a numeric feature value, found '3:'"},
        BadLine{"1 3:nan", "expected a numeric feature value, found '3:nan'"},
        BadLine{"1 3:1.5.2", "expected a numeric feature value, found '3:1.5.2'"},
        BadLine{"1 a:1", "expected a feature index (non-negative integer), found 'a:1'"},
        BadLine{"1 -2:1", "expected a feature index (non-negative integer), found '-2:1'"},
        BadLine{"1 99999999999999999999:1",
                "expected a feature index (non-negative integer), found "
                "'99999999999999999999:1'"},
        BadLine{"1 5", "expected index:value, found '5'"},
        BadLine{"1 3:1 2:1",
                "expected a feature index above 3 (ids strictly ascending), found "
                "'2:1'"},
        BadLine{"1 3:1 3:1",
                "expected a feature index above 3 (ids strictly ascending), found "
                "'3:1'"},
        BadLine{"1 0:1", "expected a feature index >= 1 (one-based ids), found '0:1'"},
        BadLine{"1 qid:x 1:1", "expected qid:<non-negative integer>, found 'qid:x'"},
        BadLine{"1 1:1 qid:3", "expected qid only right after the label, found 'qid:3'"},
        BadLine{"1 1:1\x01", "expected a numeric feature value, found '1:1\\x01'"}));

TEST(LibSvmReaderTest, LongBadTokenIsCutInTheMessage) {
  std::string token(1000, 'z');
  Result<Dataset> d = ParseLibSvm(token + " 1:1\n", "long.svm");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(),
            "long.svm:1: expected a numeric label, found '" + std::string(48, 'z') + "...'");
}

TEST(LibSvmReaderTest, SkipModeCountsBadLinesAndKeepsTheRest) {
  const char* text =
      "1 1:1 2:2\n"
      "0 3:1 2:1\n"  // not ascending, after one feature was already taken
      "1 4:4\n"
      "x 1:1\n"
      "0 5:5 6:oops\n"
      "1 7:7\n";
  ReadStats stats;
  Result<Dataset> d = ParseLibSvm(text, "skip.svm", {.skip_bad_lines = true}, &stats);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(stats.lines, 6u);
  EXPECT_EQ(stats.rows, 3u);
  EXPECT_EQ(stats.bad_lines, 3u);
  EXPECT_EQ(stats.first_error,
            "skip.svm:2: expected a feature index above 3 (ids strictly ascending), found '2:1'");
  // Features of a skipped line never leak into the kept rows.
  EXPECT_EQ(d->labels, (std::vector<float>{1, 1, 1}));
  EXPECT_EQ(d->row_ptr, (std::vector<uint64_t>{0, 2, 3, 4}));
  EXPECT_EQ(d->col_idx, (std::vector<uint64_t>{0, 1, 3, 6}));
  EXPECT_EQ(d->col_val, (std::vector<float>{1, 2, 4, 7}));
  EXPECT_EQ(d->num_features, 7u);
}

TEST(LibSvmReaderTest, EmptyAndCommentOnlyInputGiveNoRows) {
  for (const char* text : {"", "\n\n", "# only\n  # comment\n"}) {
    Result<Dataset> d = ParseLibSvm(text, "e.svm");
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(d->num_rows, 0u);
    EXPECT_EQ(d->row_ptr, (std::vector<uint64_t>{0}));
  }
}

TEST(LibSvmReaderTest, MissingFileIsNotFound) {
  Result<Dataset> d = ReadLibSvm("/nonexistent/dir/x.svm");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kNotFound);
}

// A large input parses whole: every row and every entry. How fast is
// bench/text_parse_benchmark.cc's to measure (no timed assertion here).
TEST(LibSvmReaderTest, LargeInputParsesEveryRowAndEntry) {
  const size_t rows = 200000;
  const std::string text = testing::SyntheticLibSvm(rows);
  Result<Dataset> d = ParseLibSvm(text, "big.svm");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->num_rows, rows);
  EXPECT_EQ(d->col_idx.size(), rows * 20);
  EXPECT_EQ(d->labels.front(), 1.0f);  // row 0: r % 3 == 0
  EXPECT_EQ(d->labels[1], 0.0f);
}

}  // namespace
}  // namespace distopt
