// libFuzzer target for the CSV reader: arbitrary bytes must give either an
// error naming the input or a dense Dataset of consistent shape with finite
// values. The first byte picks delimiter, header, label column and skip mode.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "data/csv_reader.h"

namespace {

void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace distopt;
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  static constexpr char kDelimiters[] = {',', '\t', ';', ' '};
  CsvOptions options;
  options.delimiter = kDelimiters[flags & 3];
  options.header = (flags & 4) != 0;
  options.skip_bad_lines = (flags & 8) != 0;
  options.label_column = static_cast<int>((flags >> 4) & 7) - 3;  // -3 .. 4
  if (options.header && (flags & 0x80) != 0) options.label_name = "y";
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  ReadStats stats;
  Result<Dataset> result = ParseCsv(text, "fuzz.csv", options, &stats);
  if (!result.ok()) {
    Require(result.status().message().rfind("fuzz.csv", 0) == 0, "message names the input");
    return 0;
  }
  const Dataset& d = *result;
  Require(!d.sparse, "dense");
  Require(d.labels.size() == d.num_rows && stats.rows == d.num_rows, "one label per row");
  Require(d.dense.size() == d.num_rows * d.num_features, "dense shape");
  Require(d.num_rows == 0 || d.num_features >= 1, "at least one feature");
  Require(options.skip_bad_lines || stats.bad_lines == 0, "strict mode skips nothing");
  Require((stats.bad_lines == 0) == stats.first_error.empty(), "first_error iff bad lines");
  for (float v : d.dense) Require(std::isfinite(v), "finite feature");
  for (float v : d.labels) Require(std::isfinite(v), "finite label");
  return 0;
}
