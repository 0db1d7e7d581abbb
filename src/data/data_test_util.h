// Test helpers for the data layer: a temporary directory made with mkdtemp
// (removed with its files at scope exit) and writers for plain and gzip
// files. Test-only; not thread-safe.
#ifndef DISTOPT_DATA_DATA_TEST_UTIL_H_
#define DISTOPT_DATA_DATA_TEST_UTIL_H_

#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

namespace distopt::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = std::filesystem::temp_directory_path().string() + "/distopt_data_XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  bool ok() const { return !path_.empty(); }
  std::string Path(std::string_view name) const { return path_ + "/" + std::string(name); }

  // Writes `bytes` to `name` (plain) and returns the full path.
  std::string Write(std::string_view name, std::string_view bytes) const {
    std::string p = Path(name);
    std::FILE* f = std::fopen(p.c_str(), "wb");
    if (f != nullptr) {
      std::fwrite(bytes.data(), 1, bytes.size(), f);
      std::fclose(f);
    }
    return p;
  }

  // Writes `bytes` gzip-compressed to `name` and returns the full path.
  std::string WriteGzip(std::string_view name, std::string_view bytes) const {
    std::string p = Path(name);
    gzFile gz = ::gzopen(p.c_str(), "wb");
    if (gz != nullptr) {
      if (!bytes.empty()) ::gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size()));
      ::gzclose(gz);
    }
    return p;
  }

 private:
  std::string path_;
};

}  // namespace distopt::testing

#endif  // DISTOPT_DATA_DATA_TEST_UTIL_H_
