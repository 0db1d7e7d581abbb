#include "data/csv_reader.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace distopt {
namespace {

using data_internal::CountByte;
using data_internal::ParseFloat;
using data_internal::Quote;

// Splits a line at `delim` without copying; each field comes out trimmed of
// padding (spaces and tabs that are not the delimiter) and of one pair of
// surrounding double quotes.
class Fields {
 public:
  Fields(std::string_view line, char delim)
      : p_(line.data()), end_(line.data() + line.size()), delim_(delim) {}
  bool Next(std::string_view* field) {
    if (done_) return false;
    const char* hit =
        static_cast<const char*>(std::memchr(p_, delim_, static_cast<size_t>(end_ - p_)));
    const char* stop = hit != nullptr ? hit : end_;
    *field = Clean(std::string_view(p_, static_cast<size_t>(stop - p_)));
    if (hit != nullptr) {
      p_ = hit + 1;
    } else {
      done_ = true;
    }
    return true;
  }

 private:
  std::string_view Clean(std::string_view f) const {
    auto pad = [this](char c) { return (c == ' ' || c == '\t') && c != delim_; };
    while (!f.empty() && pad(f.front())) f.remove_prefix(1);
    while (!f.empty() && pad(f.back())) f.remove_suffix(1);
    if (f.size() >= 2 && f.front() == '"' && f.back() == '"') f = f.substr(1, f.size() - 2);
    return f;
  }

  const char* p_;
  const char* end_;
  char delim_;
  bool done_ = false;
};

bool IsBlank(std::string_view line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t'; });
}

class CsvParser {
 public:
  CsvParser(std::string_view name, const CsvOptions& options, Dataset* d)
      : name_(name), options_(options), d_(d) {}

  // Reads the header line: column names, column count, the label column.
  Status Header(std::string_view line, size_t line_no) {
    Fields fields(line, options_.delimiter);
    std::string_view f;
    while (fields.Next(&f)) names_.emplace_back(f);
    ncols_ = names_.size();
    if (ncols_ < 2) {
      return Error(line_no, "a header of at least 2 columns (label and a feature)", line);
    }
    if (!options_.label_name.empty()) {
      auto it = std::find(names_.begin(), names_.end(), options_.label_name);
      if (it == names_.end()) {
        return Error(line_no, "a column named '" + Quote(options_.label_name) + "' in the header",
                     line);
      }
      label_ = static_cast<size_t>(it - names_.begin());
      return Status::Ok();
    }
    return ResolveLabel(ncols_, line_no, line, &label_);
  }

  // Parses one data line and appends it; leaves `d` untouched on error.
  Status Row(std::string_view line, size_t line_no) {
    size_t ncols = ncols_;
    size_t label = label_;
    if (ncols == 0) {
      // No header: the first good line fixes the shape for the rest.
      ncols = CountByte(line, options_.delimiter) + 1;
      if (ncols < 2) return Error(line_no, "at least 2 fields (label and a feature)", line);
      RETURN_IF_ERROR(ResolveLabel(ncols, line_no, line, &label));
    }
    const size_t start = d_->dense.size();
    Fields fields(line, options_.delimiter);
    std::string_view f;
    float label_value = 0;
    size_t c = 0;
    for (; fields.Next(&f); ++c) {
      if (c >= ncols) return Rollback(start, CountError(line_no, ncols, line));
      if (c == label) {
        if (f.empty()) return Rollback(start, Error(line_no, "a label" + Column(c), f));
        if (!ParseFloat(f, &label_value)) {
          return Rollback(start, Error(line_no, "a numeric label" + Column(c), f));
        }
        continue;
      }
      float v = 0;
      if (!ParseFloat(f, &v)) return Rollback(start, Error(line_no, "a number" + Column(c), f));
      d_->dense.push_back(v);
    }
    if (c != ncols) return Rollback(start, CountError(line_no, ncols, line));
    if (ncols_ == 0) {
      ncols_ = ncols;
      label_ = label;
    }
    d_->labels.push_back(label_value);
    return Status::Ok();
  }

  size_t ncols() const { return ncols_; }

 private:
  Status ResolveLabel(size_t ncols, size_t line_no, std::string_view line, size_t* label) const {
    const int64_t col = options_.label_column;
    const auto n = static_cast<int64_t>(ncols);
    if (col >= n || col < -n) {
      return Error(
          line_no,
          "a label column " + std::to_string(col) + " within " + std::to_string(ncols) + " columns",
          line);
    }
    *label = static_cast<size_t>(col < 0 ? n + col : col);
    return Status::Ok();
  }

  Status CountError(size_t line_no, size_t ncols, std::string_view line) const {
    const size_t found = CountByte(line, options_.delimiter) + 1;
    return InvalidArgumentError(std::string(name_) + ":" + std::to_string(line_no) + ": expected " +
                                std::to_string(ncols) + " fields, found " + std::to_string(found) +
                                " in '" + Quote(line) + "'");
  }

  std::string Column(size_t c) const {
    std::string s = " in column " + std::to_string(c);
    if (c < names_.size()) s += " ('" + Quote(names_[c]) + "')";
    return s;
  }

  Status Error(size_t line_no, const std::string& expected, std::string_view found) const {
    return InvalidArgumentError(std::string(name_) + ":" + std::to_string(line_no) + ": expected " +
                                expected + ", found '" + Quote(found) + "'");
  }

  Status Rollback(size_t start, Status s) {
    d_->dense.resize(start);
    return s;
  }

  std::string_view name_;
  const CsvOptions& options_;
  Dataset* d_;
  std::vector<std::string> names_;
  size_t ncols_ = 0;  // 0 until the header or the first good line is seen
  size_t label_ = 0;
};

}  // namespace

Result<Dataset> ParseCsv(std::string_view text, std::string_view name, const CsvOptions& options,
                         ReadStats* stats) {
  const std::string n(name);
  if (!options.label_name.empty() && !options.header) {
    return InvalidArgumentError(n + ": label_name '" + options.label_name +
                                "' needs a header row, but header is false");
  }
  if (options.delimiter == '\n' || options.delimiter == '\r' || options.delimiter == '"') {
    return InvalidArgumentError(n + ": expected a field delimiter, found '" +
                                Quote(std::string_view(&options.delimiter, 1)) + "'");
  }
  // Spreadsheet exports often start with a UTF-8 byte order mark; left in, it
  // would become part of the first column's name.
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  Dataset d;
  d.sparse = false;
  CsvParser parser(name, options, &d);
  ReadStats local;
  bool need_header = options.header;
  if (need_header && !options.header_line.empty()) {
    RETURN_IF_ERROR(parser.Header(options.header_line, 1));
    need_header = false;
  }
  bool reserved = false;
  const char* p = text.data();
  const char* const end = p + text.size();
  size_t line_no = options.first_line - 1;
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    const char* line_end = nl != nullptr ? nl : end;
    std::string_view line(p, static_cast<size_t>(line_end - p));
    p = nl != nullptr ? nl + 1 : end;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (IsBlank(line)) continue;
    if (need_header) {
      // A header that does not fit the options is a configuration problem,
      // not a bad line: it fails even when skipping bad lines.
      RETURN_IF_ERROR(parser.Header(line, line_no));
      need_header = false;
      continue;
    }
    Status s = parser.Row(line, line_no);
    if (!s.ok()) {
      if (!options.skip_bad_lines) return s;
      if (local.bad_lines++ == 0) local.first_error = s.message();
    }
    if (!reserved && parser.ncols() > 0) {
      // A good row takes at least 2 bytes per column, which bounds the rows
      // left; sizing from that never trusts a count read from the file.
      const size_t cols = parser.ncols();
      const size_t rows_left =
          std::min(CountByte(text.substr(static_cast<size_t>(p - text.data())), '\n') + 1,
                   static_cast<size_t>(end - p) / (2 * cols - 1) + 1);
      d.dense.reserve(d.dense.size() + rows_left * (cols - 1));
      d.labels.reserve(d.labels.size() + rows_left);
      reserved = true;
    }
  }
  if (need_header) return InvalidArgumentError(n + ": expected a header line, found no lines");
  d.num_rows = d.labels.size();
  d.num_features = parser.ncols() > 0 ? parser.ncols() - 1 : 0;
  local.lines = line_no - (options.first_line - 1);
  local.rows = d.num_rows;
  if (stats != nullptr) *stats = std::move(local);
  return d;
}

std::string_view CsvHeaderLine(std::string_view text) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!IsBlank(line)) return line;
  }
  return {};
}

Result<Dataset> ReadCsv(const std::string& path, const CsvOptions& options, ReadStats* stats) {
  ASSIGN_OR_RETURN(std::string text, ReadFileContents(path, options.max_file_bytes));
  return ParseCsv(text, path, options, stats);
}

}  // namespace distopt
