// Test helpers for the data layer: a temporary directory made with mkdtemp
// (removed with its files at scope exit) and writers for plain and gzip
// files. Test-only; not thread-safe.
#ifndef DISTOPT_DATA_DATA_TEST_UTIL_H_
#define DISTOPT_DATA_DATA_TEST_UTIL_H_

#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
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

// `rows` rows of LibSVM text shaped like a click log: a 0/1 label and 20
// increasing feature ids with 3-decimal values each, from a fixed LCG (the
// same bytes every time). Shared by the parser's test and its benchmark.
inline std::string SyntheticLibSvm(size_t rows) {
  std::string text;
  text.reserve(rows * 200);
  char buf[32];
  uint64_t x = 12345;
  for (size_t r = 0; r < rows; ++r) {
    text += (r % 3 == 0) ? "1" : "0";
    uint64_t id = 0;
    for (int k = 0; k < 20; ++k) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      id += 1 + (x >> 45);
      const int n =
          std::snprintf(buf, sizeof(buf), " %llu:%.3f", static_cast<unsigned long long>(id),
                        static_cast<double>(x >> 54) / 1024.0);
      text.append(buf, static_cast<size_t>(n));
    }
    text += '\n';
  }
  return text;
}

}  // namespace distopt::testing

#endif  // DISTOPT_DATA_DATA_TEST_UTIL_H_
