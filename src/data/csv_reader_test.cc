#include "data/csv_reader.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "data/data_test_util.h"

namespace distopt {
namespace {

using testing::TempDir;

constexpr char kWithHeader[] =
    "a,label,\"b\"\n"
    "1,0,2\n"
    "\n"
    " 3.5 , 1 ,\"-4\"\r\n"
    "5e-1,+1,6\n";

void ExpectWithHeader(const Dataset& d) {
  EXPECT_FALSE(d.sparse);
  ASSERT_EQ(d.num_rows, 3u);
  EXPECT_EQ(d.num_features, 2u);
  EXPECT_EQ(d.labels, (std::vector<float>{0, 1, 1}));
  EXPECT_EQ(d.dense, (std::vector<float>{1, 2, 3.5f, -4, 0.5f, 6}));
}

TEST(CsvReaderTest, HeaderLabelByNamePaddingQuotesCrlfBlankLines) {
  ReadStats stats;
  Result<Dataset> d = ParseCsv(kWithHeader, "h.csv", {.label_name = "label"}, &stats);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ExpectWithHeader(*d);
  EXPECT_EQ(stats.lines, 5u);
  EXPECT_EQ(stats.rows, 3u);
}

TEST(CsvReaderTest, LabelByIndexSameAsByName) {
  Result<Dataset> d = ParseCsv(kWithHeader, "h.csv", {.label_column = 1});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ExpectWithHeader(*d);
}

TEST(CsvReaderTest, Utf8ByteOrderMarkIsNotPartOfTheFirstName) {
  Result<Dataset> d = ParseCsv("\xEF\xBB\xBFy,a\n1,2\n", "bom.csv", {.label_name = "y"});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->labels, (std::vector<float>{1}));
  EXPECT_EQ(d->dense, (std::vector<float>{2}));
}

TEST(CsvReaderTest, ReadsPlainAndGzipFiles) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  for (const std::string& path :
       {dir.Write("h.csv", kWithHeader), dir.WriteGzip("h.csv.gz", kWithHeader)}) {
    Result<Dataset> d = ReadCsv(path, {.label_name = "label"});
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ExpectWithHeader(*d);
  }
}

TEST(CsvReaderTest, TabsNoHeaderLastColumnLabel) {
  Result<Dataset> d = ParseCsv("1\t2\t0\n3\t4\t1\n", "t.tsv",
                               {.delimiter = '\t', .header = false, .label_column = -1});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->num_rows, 2u);
  EXPECT_EQ(d->num_features, 2u);
  EXPECT_EQ(d->labels, (std::vector<float>{0, 1}));
  EXPECT_EQ(d->dense, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(d->DenseRow(1)[1], 4.0f);
}

struct BadCsv {
  const char* line;
  const char* message;  // after "bad.csv:3: "
};

class CsvBadLineTest : public ::testing::TestWithParam<BadCsv> {};

TEST_P(CsvBadLineTest, FailsWithFileLineExpectedFound) {
  // Line 1 header, line 2 good, line 3 bad, line 4 good.
  std::string text = std::string("label,a,b\n1,2,3\n") + GetParam().line + "\n0,5,6\n";
  Result<Dataset> d = ParseCsv(text, "bad.csv");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(d.status().message(), std::string("bad.csv:3: ") + GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    AllKinds, CsvBadLineTest,
    ::testing::Values(BadCsv{"1,2", "expected 3 fields, found 2 in '1,2'"},
                      BadCsv{"1,2,3,4", "expected 3 fields, found 4 in '1,2,3,4'"},
                      BadCsv{"1,x,3", "expected a number in column 1 ('a'), found 'x'"},
                      BadCsv{"1,2,", "expected a number in column 2 ('b'), found ''"},
                      BadCsv{"1,2,inf", "expected a number in column 2 ('b'), found 'inf'"},
                      BadCsv{",2,3", "expected a label in column 0 ('label'), found ''"},
                      BadCsv{"  ,2,3", "expected a label in column 0 ('label'), found ''"},
                      BadCsv{"yes,2,3",
                             "expected a numeric label in column 0 ('label'), found 'yes'"}));

TEST(CsvReaderTest, HeaderProblemsFailEvenWhenSkipping) {
  Result<Dataset> no_name =
      ParseCsv("a,b\n1,2\n", "n.csv", {.label_name = "y", .skip_bad_lines = true});
  ASSERT_FALSE(no_name.ok());
  EXPECT_EQ(no_name.status().message(),
            "n.csv:1: expected a column named 'y' in the header, found 'a,b'");

  Result<Dataset> out_of_range = ParseCsv("a,b\n1,2\n", "r.csv", {.label_column = 2});
  ASSERT_FALSE(out_of_range.ok());
  EXPECT_EQ(out_of_range.status().message(),
            "r.csv:1: expected a label column 2 within 2 columns, found 'a,b'");

  Result<Dataset> needs_header = ParseCsv("1,2\n", "x.csv", {.header = false, .label_name = "y"});
  ASSERT_FALSE(needs_header.ok());
  EXPECT_EQ(needs_header.status().message(),
            "x.csv: label_name 'y' needs a header row, but header is false");

  Result<Dataset> empty = ParseCsv("\n\n", "e.csv");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().message(), "e.csv: expected a header line, found no lines");
}

TEST(CsvReaderTest, SkipModeCountsBadLinesAndKeepsTheRest) {
  const char* text =
      "y,a,b\n"
      "1,1,1\n"
      "0,2,oops\n"  // bad after one feature was already taken
      "1,3,3\n"
      "1,4\n"
      ",5,5\n"
      "0,6,6\n";
  ReadStats stats;
  Result<Dataset> d = ParseCsv(text, "s.csv", {.skip_bad_lines = true}, &stats);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(stats.lines, 7u);
  EXPECT_EQ(stats.rows, 3u);
  EXPECT_EQ(stats.bad_lines, 3u);
  EXPECT_EQ(stats.first_error, "s.csv:3: expected a number in column 2 ('b'), found 'oops'");
  EXPECT_EQ(d->labels, (std::vector<float>{1, 1, 0}));
  EXPECT_EQ(d->dense, (std::vector<float>{1, 1, 3, 3, 6, 6}));
}

TEST(CsvReaderTest, WithoutHeaderTheFirstGoodLineFixesTheShape) {
  // In skip mode a bad first line must not decide the column count.
  ReadStats stats;
  Result<Dataset> d = ParseCsv("1,x,3\n1,2,3\n0,4\n0,5,6\n", "nh.csv",
                               {.header = false, .skip_bad_lines = true}, &stats);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->num_features, 2u);
  EXPECT_EQ(d->dense, (std::vector<float>{2, 3, 5, 6}));
  EXPECT_EQ(stats.bad_lines, 2u);
  EXPECT_EQ(stats.first_error, "nh.csv:1: expected a number in column 1, found 'x'");

  Result<Dataset> strict = ParseCsv("1,2,3\n0,4\n", "nh.csv", {.header = false});
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.status().message(), "nh.csv:2: expected 3 fields, found 2 in '0,4'");
}

}  // namespace
}  // namespace distopt
