// ReadCsv: reads delimited numeric text (CSV, TSV, ...) into a dense Dataset:
// one column is the label, every other column a float feature, in file order.
// Fields may be padded with spaces and wrapped in double quotes; a quoted
// delimiter inside a field is not supported (numeric data has none). Strict
// by default: the first bad line is an InvalidArgument "file:line: expected
// X, found 'Y'". The file may be gzip. Stateless; safe from any thread.
//
//   ASSIGN_OR_RETURN(Dataset d, ReadCsv("housing.csv", {.label_name = "price"}));
//   CsvOptions tsv{.delimiter = '\t', .header = false, .label_column = -1};
//   ASSIGN_OR_RETURN(Dataset e, ReadCsv("data.tsv", tsv));
#ifndef DISTOPT_DATA_CSV_READER_H_
#define DISTOPT_DATA_CSV_READER_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "data/dataset.h"
#include "data/file_reader.h"
#include "distopt/status.h"

namespace distopt {

struct CsvOptions {
  char delimiter = ',';
  // The first line names the columns (and is not an example).
  bool header = true;
  // The label column, counted from 0; negative counts from the end (-1 is the
  // last column). Ignored when label_name is set.
  int label_column = 0;
  // The label column by its header name (requires header = true).
  std::string label_name{};
  // Skip malformed lines, counting them in ReadStats, instead of failing.
  bool skip_bad_lines = false;
  // Upper bound on the (decompressed) file size.
  size_t max_file_bytes = size_t{1} << 34;
  // The number of the text's first line in its file, for messages (a chunk
  // of a file read in pieces).
  size_t first_line = 1;
  // With header = true: the file's header line, given because the text is
  // a later chunk of the file and does not start with it.
  std::string header_line{};
};

// The header of CSV text as ParseCsv takes it: the first line that is not
// blank, without a leading UTF-8 byte order mark and a trailing '\r'.
// Empty when the text has no such line.
std::string_view CsvHeaderLine(std::string_view text);

Result<Dataset> ReadCsv(const std::string& path, const CsvOptions& options = {},
                        ReadStats* stats = nullptr);

// The same from text in memory; `name` stands for the file in messages. The
// file reader and the fuzz target both go through here.
Result<Dataset> ParseCsv(std::string_view text, std::string_view name,
                         const CsvOptions& options = {}, ReadStats* stats = nullptr);

}  // namespace distopt

#endif  // DISTOPT_DATA_CSV_READER_H_
