#include "base/file_util.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace distopt {
namespace {

namespace fs = std::filesystem;

class FileUtilTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = fs::temp_directory_path().string() + "/distopt_file_util_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  std::string dir_;
};

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST_F(FileUtilTest, WriteFileAtomicallyConcatenatesPartsAndReplacesTheOldFile) {
  const std::string path = Path("f.bin");
  std::string a = "hello ", b, c = "world";
  ASSERT_TRUE(WriteFileAtomically(path, {Bytes(a), Bytes(b), Bytes(c)}).ok());
  EXPECT_EQ(*ReadFile(path, 1 << 20), "hello world");

  std::string big(3 << 20, 'x');
  big[12345] = 'y';
  ASSERT_TRUE(WriteFileAtomically(path, {Bytes(big)}).ok());
  EXPECT_EQ(*ReadFile(path, 4 << 20), big);

  ASSERT_TRUE(WriteFileAtomically(path, {}).ok());
  EXPECT_EQ(*ReadFile(path, 10), "");
  // No temp file is left behind.
  EXPECT_EQ(*ListDir(dir_), std::vector<std::string>{"f.bin"});
}

TEST_F(FileUtilTest, WriteIntoMissingDirectoryNamesPathAndErrno) {
  const std::string path = Path("no/such/dir/f.bin");
  std::string a = "x";
  Status s = WriteFileAtomically(path, {Bytes(a)});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("No such file or directory"), std::string::npos) << s.message();
}

TEST_F(FileUtilTest, FailedRenameRemovesTheTempFile) {
  // The target is a non-empty directory, so rename() fails after the temp
  // file was fully written and synced.
  const std::string path = Path("target");
  ASSERT_TRUE(MakeDirs(path + "/inside").ok());
  std::string a = "payload";
  Status s = WriteFileAtomically(path, {Bytes(a)});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("rename"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
  EXPECT_EQ(*ListDir(dir_), std::vector<std::string>{"target"});
}

TEST_F(FileUtilTest, WriteErrorMidFileKeepsOldContentsAndRemovesTheTempFile) {
  const std::string path = Path("f.bin");
  std::string old = "old contents";
  ASSERT_TRUE(WriteFileAtomically(path, {Bytes(old)}).ok());
  // A file-size limit makes write() fail with EFBIG part-way through; done in
  // a child so the limit does not leak into the test process.
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    std::string big(1 << 16, 'z');
    Status s = WriteFileAtomically(path, {Bytes(big)});
    if (s.ok()) ::_exit(1);
    if (s.code() != StatusCode::kResourceExhausted) ::_exit(2);
    if (s.message().find("File too large") == std::string::npos) ::_exit(3);
    if (s.message().find(path) == std::string::npos) ::_exit(4);
    ::_exit(0);
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus));
  EXPECT_EQ(WEXITSTATUS(wstatus), 0) << "1: write succeeded, 2: wrong code, 3/4: message";
  EXPECT_EQ(*ReadFile(path, 100), old);
  EXPECT_EQ(*ListDir(dir_), std::vector<std::string>{"f.bin"});
}

TEST_F(FileUtilTest, ReadFileEnforcesTheLimitAndReportsMissingFiles) {
  const std::string path = Path("f.txt");
  std::string ten = "0123456789";
  ASSERT_TRUE(WriteFileAtomically(path, {Bytes(ten)}).ok());
  EXPECT_EQ(*ReadFile(path, 10), ten);
  Result<std::string> r = ReadFile(path, 9);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("limit of 9"), std::string::npos) << r.status().message();

  r = ReadFile(Path("missing"), 10);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(Path("missing")), std::string::npos);

  r = ReadFile(dir_, 10);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(FileUtilTest, MakeDirsCreatesNestedDirectoriesIdempotently) {
  const std::string path = Path("a/b/c");
  ASSERT_TRUE(MakeDirs(path).ok());
  EXPECT_TRUE(fs::is_directory(path));
  ASSERT_TRUE(MakeDirs(path).ok());
  ASSERT_TRUE(MakeDirs(Path("a/b/")).ok());

  std::string x = "x";
  ASSERT_TRUE(WriteFileAtomically(Path("file"), {Bytes(x)}).ok());
  Status s = MakeDirs(Path("file/sub"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(Path("file")), std::string::npos) << s.message();
}

TEST_F(FileUtilTest, RemoveTreeRemovesEverythingButDoesNotFollowSymlinks) {
  std::string x = "x";
  ASSERT_TRUE(MakeDirs(Path("keep")).ok());
  ASSERT_TRUE(WriteFileAtomically(Path("keep/precious"), {Bytes(x)}).ok());
  ASSERT_TRUE(MakeDirs(Path("t/a/b")).ok());
  ASSERT_TRUE(WriteFileAtomically(Path("t/f1"), {Bytes(x)}).ok());
  ASSERT_TRUE(WriteFileAtomically(Path("t/a/b/f2"), {Bytes(x)}).ok());
  fs::create_directory_symlink(Path("keep"), Path("t/a/link"));

  ASSERT_TRUE(RemoveTree(Path("t")).ok());
  EXPECT_FALSE(fs::exists(Path("t")));
  EXPECT_TRUE(fs::exists(Path("keep/precious")));
  EXPECT_TRUE(RemoveTree(Path("t")).ok()) << "a missing path is not an error";
}

TEST_F(FileUtilTest, ListDirIsSortedAndReportsMissingDirectories) {
  std::string x = "x";
  for (const char* n : {"b", "c", "a"}) {
    ASSERT_TRUE(WriteFileAtomically(Path(n), {Bytes(x)}).ok());
  }
  ASSERT_TRUE(MakeDirs(Path("d")).ok());
  EXPECT_EQ(*ListDir(dir_), (std::vector<std::string>{"a", "b", "c", "d"}));
  Result<std::vector<std::string>> r = ListDir(Path("missing"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST(DirNameTest, SplitsOffTheLastComponent) {
  EXPECT_EQ(DirName("a/b/c"), "a/b");
  EXPECT_EQ(DirName("/x"), "/");
  EXPECT_EQ(DirName("name"), ".");
}

}  // namespace
}  // namespace distopt
