#include "data/input_split.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "data/data_test_util.h"
#include "data/share_reader.h"

namespace distopt {
namespace {

using testing::TempDir;

// Lines of random lengths: empty ones, CRLF ones, one huge one, and a final
// newline or not.
std::string RandomText(std::mt19937_64& rng, size_t lines, bool final_newline) {
  std::string text;
  const size_t huge = rng() % (lines + 1);
  for (size_t i = 0; i < lines; ++i) {
    size_t len = rng() % 5 == 0 ? 0 : rng() % 120;
    if (i == huge) len = 20000 + rng() % 5000;
    for (size_t k = 0; k < len; ++k) text.push_back(static_cast<char>('a' + rng() % 26));
    if (rng() % 4 == 0) text.push_back('\r');
    if (i + 1 < lines || final_newline) text.push_back('\n');
  }
  return text;
}

// The text of every share in share order, each chunk checked to hold whole
// lines and, where counted, the real number of its first line.
std::string ReadShares(const SplitPlan& plan, size_t chunk_bytes,
                       const std::vector<std::string>& contents) {
  std::string out;
  for (size_t s = 0; s < plan.shares.size(); ++s) {
    for (const Piece& p : plan.shares[s]) {
      auto r = PieceReader::Open(plan.files[p.file], p, chunk_bytes);
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      if (!r.ok()) return out;
      TextChunk c;
      while (true) {
        auto more = r->Next(&c);
        EXPECT_TRUE(more.ok()) << more.status().ToString();
        if (!more.ok() || !*more) break;
        const std::string& whole = contents[p.file];
        EXPECT_EQ(whole.substr(c.offset, c.text.size()), c.text);
        EXPECT_TRUE(c.offset == 0 || whole[c.offset - 1] == '\n') << "chunk starts mid-line";
        if (c.first_line != 0) {
          EXPECT_EQ(c.first_line, 1 + std::count(whole.begin(), whole.begin() + c.offset, '\n'));
        }
        out += c.text;
      }
    }
  }
  return out;
}

TEST(InputSplitTest, EveryLineIsReadExactlyOnceForEveryWorkerCount) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 6; ++trial) {
    std::vector<std::string> contents;
    std::vector<InputFile> files;
    const int nfiles = trial < 3 ? 1 : 1 + trial;
    std::string whole;
    for (int f = 0; f < nfiles; ++f) {
      contents.push_back(RandomText(rng, 1 + rng() % 400, (trial + f) % 2 == 0));
      if (trial == 5 && f == 1) contents.back().clear();  // an empty file
      const std::string path =
          dir.Write("t" + std::to_string(trial) + "-" + std::to_string(f), contents.back());
      whole += contents.back();
      auto listed = ListInputs(path);
      ASSERT_TRUE(listed.ok()) << listed.status().ToString();
      files.push_back((*listed)[0]);
    }
    for (int workers = 1; workers <= 16; ++workers) {
      SplitPlan plan = PlanSplits(files, workers);
      ASSERT_EQ(plan.shares.size(), static_cast<size_t>(workers));
      for (size_t chunk : {size_t{7}, size_t{500}, size_t{1} << 20}) {
        // Files may end without a newline: the concatenation of what the
        // shares read is then the files' concatenation, byte for byte.
        EXPECT_EQ(ReadShares(plan, chunk, contents), whole)
            << "trial " << trial << ", " << workers << " workers, chunk " << chunk;
      }
    }
  }
}

TEST(InputSplitTest, ALineCrossingASplitBelongsToTheShareItStartsIn) {
  TempDir dir;
  // 10 bytes per line; 2 shares cut at byte 15, inside line 2.
  const std::string text = "line00001\nline00002\nline00003\n";
  const std::string path = dir.Write("a.txt", text);
  auto files = ListInputs(path);
  ASSERT_TRUE(files.ok());
  InputFile f = (*files)[0];
  auto read = [&](uint64_t b, uint64_t e) {
    auto r = PieceReader::Open(f, {0, b, e});
    std::string out;
    TextChunk c;
    while (r.ok() && *r->Next(&c)) out += c.text;
    return out;
  };
  EXPECT_EQ(read(0, 15), "line00001\nline00002\n");
  EXPECT_EQ(read(15, 30), "line00003\n");
  EXPECT_EQ(read(0, 10), "line00001\n");  // a line starting at the end is the next piece's
  EXPECT_EQ(read(10, 11), "line00002\n");
  EXPECT_EQ(read(11, 20), "");
}

TEST(InputSplitTest, APieceToldItsLineNumbersTheLaterChunksFromThere) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 200; ++i) text += "row " + std::to_string(i) + "\n";
  const std::string path = dir.Write("n.txt", text);
  auto files = ListInputs(path);
  ASSERT_TRUE(files.ok());
  auto r = PieceReader::Open((*files)[0], {0, 500, text.size()}, 64);
  ASSERT_TRUE(r.ok());
  TextChunk c;
  ASSERT_TRUE(*r->Next(&c));
  EXPECT_EQ(c.first_line, 0u);  // not counted: the piece starts inside the file
  const auto before = CountLinesBefore(path, c.offset);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(*before,
            static_cast<uint64_t>(std::count(text.begin(), text.begin() + c.offset, '\n')));
  r->SetNextLine(*before + 1 + std::count(c.text.begin(), c.text.end(), '\n'));
  int chunks = 0;
  while (*r->Next(&c)) {
    ++chunks;
    EXPECT_EQ(c.first_line, 1 + std::count(text.begin(), text.begin() + c.offset, '\n'));
  }
  EXPECT_GT(chunks, 5);
}

TEST(InputSplitTest, ManyFilesGoWholeUnlessThatUnbalancesTheShares) {
  std::vector<InputFile> files;
  for (int i = 0; i < 8; ++i) files.push_back({"f" + std::to_string(i), 1000, 0, false});
  SplitPlan even = PlanSplits(files, 4);
  EXPECT_TRUE(even.by_file);
  for (size_t s = 0; s < 4; ++s) {
    ASSERT_EQ(even.shares[s].size(), 2u);
    EXPECT_EQ(even.shares[s][0], (Piece{static_cast<uint32_t>(2 * s), 0, 1000}));
  }
  files[0].size = 100000;  // one big file: whole files would leave shares unfair
  SplitPlan skewed = PlanSplits(files, 4);
  EXPECT_FALSE(skewed.by_file);
  for (size_t s = 0; s < 4; ++s) {
    EXPECT_NEAR(static_cast<double>(skewed.ShareBytes(s)), 107000.0 / 4, 1.0);
  }
}

TEST(InputSplitTest, GzipFilesGoWholeAndTheIdleSharesAreNamed) {
  TempDir dir;
  std::vector<InputFile> files;
  std::string whole;
  std::vector<std::string> contents;
  for (int i = 0; i < 3; ++i) {
    contents.push_back("1 1:1\n0 2:1\n" + std::to_string(i) + " 3:1\n");
    whole += contents.back();
    auto f = ListInputs(dir.WriteGzip("p" + std::to_string(i) + ".gz", contents.back()));
    ASSERT_TRUE(f.ok());
    EXPECT_TRUE((*f)[0].gzip);
    files.push_back((*f)[0]);
  }
  SplitPlan plan = PlanSplits(files, 5);
  EXPECT_EQ(plan.IdleShares().size(), 2u);
  for (const auto& share : plan.shares) {
    for (const Piece& p : share) {
      EXPECT_EQ(p.begin, 0u);
      EXPECT_EQ(p.end, files[p.file].size);
    }
  }
  EXPECT_EQ(ReadShares(plan, 4, contents), whole);
}

TEST(InputSplitTest, ListsAndGlobsKeepTheirOrder) {
  TempDir dir;
  for (const char* n : {"part-2.svm", "part-0.svm", "part-1.svm", "other.txt"}) dir.Write(n, "x\n");
  auto g = ListInputs(dir.Path("part-*.svm"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_EQ(g->size(), 3u);
  EXPECT_EQ((*g)[0].path, dir.Path("part-0.svm"));
  EXPECT_EQ((*g)[2].path, dir.Path("part-2.svm"));
  auto l = ListInputs(dir.Path("other.txt") + ", " + dir.Path("part-1.svm"));
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  ASSERT_EQ(l->size(), 2u);
  EXPECT_EQ((*l)[0].path, dir.Path("other.txt"));
  EXPECT_EQ((*l)[1].size, 2u);
}

TEST(InputSplitTest, BadSpecsAreClearErrors) {
  TempDir dir;
  dir.Write("a.svm", "x\n");
  auto empty_glob = ListInputs(dir.Path("nothing-*.svm"));
  ASSERT_FALSE(empty_glob.ok());
  EXPECT_EQ(empty_glob.status().code(), StatusCode::kNotFound);
  EXPECT_NE(empty_glob.status().message().find("nothing-*.svm' matches no file"), std::string::npos)
      << empty_glob.status().message();
  auto missing = ListInputs(dir.Path("b.svm"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("b.svm: no such file"), std::string::npos);
  auto twice = ListInputs(dir.Path("a.svm") + "," + dir.Path("*.svm"));
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("named twice"), std::string::npos);
  auto directory = ListInputs(dir.Path(""));
  ASSERT_FALSE(directory.ok());
  EXPECT_NE(directory.status().message().find("found a directory"), std::string::npos);
  auto blank = ListInputs(dir.Path("a.svm") + ",,");
  ASSERT_FALSE(blank.ok());
  EXPECT_NE(blank.status().message().find("empty item"), std::string::npos);
}

TEST(InputSplitTest, AFileThatVanishesOrChangesAfterListingIsAnError) {
  TempDir dir;
  const std::string a = dir.Write("a.svm", "1 1:1\n0 1:2\n");
  const std::string b = dir.Write("b.svm", "1 1:1\n");
  auto files = ListInputs(a + "," + b);
  ASSERT_TRUE(files.ok());
  SplitPlan plan = PlanSplits(*files, 2);
  ASSERT_EQ(::unlink(a.c_str()), 0);
  dir.Write("b.svm", "1 1:1\n1 1:3\n");
  auto gone = ReadShare(plan, 0, {});
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound);
  EXPECT_NE(gone.status().message().find("a.svm: no such file (listed, then gone)"),
            std::string::npos)
      << gone.status().message();
  auto changed = ReadShare(plan, 1, {});
  ASSERT_FALSE(changed.ok());
  EXPECT_NE(changed.status().message().find("b.svm: changed since it was listed"),
            std::string::npos)
      << changed.status().message();
}

TEST(ShareReaderTest, BadLinesNameTheirLineInTheWholeFile) {
  TempDir dir;
  std::string text;
  for (int i = 1; i <= 400; ++i) text += i == 350 ? "1 2:x\n" : "1 " + std::to_string(i) + ":1\n";
  const std::string path = dir.Write("d.svm", text);
  auto files = ListInputs(path);
  ASSERT_TRUE(files.ok());
  SplitPlan plan = PlanSplits(*files, 4);
  auto bad = ReadShare(plan, 3, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(path + ":350: expected a numeric feature value"),
            std::string::npos)
      << bad.status().message();
  TextFormat skip;
  skip.libsvm.skip_bad_lines = true;
  ShareStats stats;
  auto skipped = ReadShare(plan, 3, skip, &stats, 64);
  ASSERT_TRUE(skipped.ok()) << skipped.status().ToString();
  EXPECT_EQ(stats.bad_lines, 1u);
  EXPECT_NE(stats.first_error.find(path + ":350:"), std::string::npos) << stats.first_error;
  size_t rows = 0;
  for (size_t s = 0; s < 4; ++s) {
    ShareStats st;
    auto d = ReadShare(plan, s, skip, &st);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->num_rows, st.rows);
    rows += d->num_rows;
  }
  EXPECT_EQ(rows, 399u);
}

TEST(ShareReaderTest, CsvSharesWithAHeaderEqualTheWholeFile) {
  TempDir dir;
  std::string text = "\xEF\xBB\xBF\nf1,price,f2\r\n";
  for (int i = 0; i < 300; ++i) {
    text += std::to_string(i) + "," + std::to_string(i % 7) + "," + std::to_string(-i) + "\r\n";
  }
  const std::string path = dir.Write("h.csv", text);
  CsvOptions o;
  o.label_name = "price";
  auto whole = ReadCsv(path, o);
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  auto files = ListInputs(path);
  ASSERT_TRUE(files.ok());
  TextFormat fmt;
  fmt.csv = true;
  fmt.csv_options = o;
  for (int workers : {1, 3, 16}) {
    SplitPlan plan = PlanSplits(*files, workers);
    Dataset all;
    for (int s = 0; s < workers; ++s) {
      auto d = ReadShare(plan, static_cast<size_t>(s), fmt, nullptr, 100);
      ASSERT_TRUE(d.ok()) << d.status().ToString();
      ASSERT_TRUE(AppendRows(&all, std::move(*d)).ok());
    }
    EXPECT_EQ(all.num_rows, 300u);
    EXPECT_EQ(all.num_features, 2u);
    EXPECT_EQ(all.labels, whole->labels);
    EXPECT_EQ(all.dense, whole->dense);
  }
}

}  // namespace
}  // namespace distopt
