#include "data/libsvm_reader.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

namespace distopt {
namespace {

using data_internal::ParseFloat;
using data_internal::ParseUint;
using data_internal::Quote;

inline bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

// Splits a line into whitespace-separated tokens without copying.
class Tokens {
 public:
  explicit Tokens(std::string_view line) : p_(line.data()), end_(line.data() + line.size()) {}
  bool Next(std::string_view* tok) {
    while (p_ < end_ && IsSpace(*p_)) ++p_;
    if (p_ == end_) return false;
    const char* start = p_;
    while (p_ < end_ && !IsSpace(*p_)) ++p_;
    *tok = std::string_view(start, static_cast<size_t>(p_ - start));
    return true;
  }

 private:
  const char* p_;
  const char* end_;
};

// Parses one line (comment already removed) and appends it to `d`. Leaves `d`
// untouched on error and when the line is blank (*blank = true).
class LineParser {
 public:
  LineParser(std::string_view name, const LibSvmOptions& options, Dataset* d) : name_(name), d_(d) {
    base_ = options.zero_based ? 0 : 1;
    // Largest zero-based id accepted: below num_features if set, and never
    // UINT64_MAX, so that 1 + max id still fits num_features.
    limit_ = options.num_features > 0 ? uint64_t{options.num_features}
                                      : std::numeric_limits<uint64_t>::max();
  }

  Status Parse(std::string_view line, size_t line_no, bool* blank) {
    Tokens tokens(line);
    std::string_view tok;
    *blank = !tokens.Next(&tok);
    if (*blank) return Status::Ok();

    float label = 0;
    if (tok.find(':') != std::string_view::npos) {
      return Error(line_no, "a label before the features", tok);
    }
    if (!ParseFloat(tok, &label)) return Error(line_no, "a numeric label", tok);

    const size_t start = d_->col_idx.size();
    uint64_t prev = 0;
    bool have_prev = false;
    bool qid_allowed = true;
    while (tokens.Next(&tok)) {
      const size_t colon = tok.find(':');
      if (colon == std::string_view::npos) {
        return Rollback(start, Error(line_no, "index:value", tok));
      }
      std::string_view key = tok.substr(0, colon);
      std::string_view val = tok.substr(colon + 1);
      if (key == "qid") {
        uint64_t qid = 0;
        if (!qid_allowed || !ParseUint(val, &qid)) {
          return Rollback(start, Error(line_no,
                                       qid_allowed ? "qid:<non-negative integer>"
                                                   : "qid only right after the label",
                                       tok));
        }
        qid_allowed = false;
        continue;
      }
      qid_allowed = false;
      uint64_t raw = 0;
      if (!ParseUint(key, &raw)) {
        return Rollback(start, Error(line_no, "a feature index (non-negative integer)", tok));
      }
      float value = 0;
      if (!ParseFloat(val, &value)) {
        return Rollback(start, Error(line_no, "a numeric feature value", tok));
      }
      if (raw < base_) {
        return Rollback(start, Error(line_no, "a feature index >= 1 (one-based ids)", tok));
      }
      const uint64_t id = raw - base_;
      if (id >= limit_) {
        return Rollback(start,
                        Error(line_no,
                              "a feature index below " +
                                  std::to_string(limit_ + (limit_ == UINT64_MAX ? 0 : base_)),
                              tok));
      }
      if (have_prev && id <= prev) {
        return Rollback(start, Error(line_no,
                                     "a feature index above " + std::to_string(prev + base_) +
                                         " (ids strictly ascending)",
                                     tok));
      }
      prev = id;
      have_prev = true;
      d_->col_idx.push_back(id);
      d_->col_val.push_back(value);
    }
    // prev is the line's largest id, and below UINT64_MAX (see limit_).
    if (have_prev && prev + 1 > max_id_plus_one_) max_id_plus_one_ = prev + 1;
    d_->labels.push_back(label);
    d_->row_ptr.push_back(d_->col_idx.size());
    return Status::Ok();
  }

  uint64_t max_id_plus_one() const { return max_id_plus_one_; }

 private:
  Status Error(size_t line_no, const std::string& expected, std::string_view found) const {
    return InvalidArgumentError(std::string(name_) + ":" + std::to_string(line_no) + ": expected " +
                                expected + ", found '" + Quote(found) + "'");
  }
  Status Rollback(size_t start, Status s) {
    d_->col_idx.resize(start);
    d_->col_val.resize(start);
    return s;
  }

  std::string_view name_;
  Dataset* d_;
  uint64_t base_ = 1;
  uint64_t limit_ = 0;
  uint64_t max_id_plus_one_ = 0;
};

}  // namespace

Result<Dataset> ParseLibSvm(std::string_view text, std::string_view name,
                            const LibSvmOptions& options, ReadStats* stats) {
  Dataset d;
  d.sparse = true;
  // Counting first sizes every vector once; both counts are bounded by the
  // text length, so nothing here is sized by an unchecked number.
  const size_t max_lines = data_internal::CountByte(text, '\n') + 1;
  const size_t max_pairs = data_internal::CountByte(text, ':');
  d.labels.reserve(max_lines);
  d.row_ptr.reserve(max_lines + 1);
  d.col_idx.reserve(max_pairs);
  d.col_val.reserve(max_pairs);
  d.row_ptr.push_back(0);

  ReadStats local;
  LineParser parser(name, options, &d);
  const char* p = text.data();
  const char* const end = p + text.size();
  size_t line_no = options.first_line - 1;
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    const char* line_end = nl != nullptr ? nl : end;
    std::string_view line(p, static_cast<size_t>(line_end - p));
    p = nl != nullptr ? nl + 1 : end;
    ++line_no;
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    bool blank = false;
    Status s = parser.Parse(line, line_no, &blank);
    if (!s.ok()) {
      if (!options.skip_bad_lines) return s;
      if (local.bad_lines++ == 0) local.first_error = s.message();
    }
  }
  d.num_rows = d.labels.size();
  d.num_features = options.num_features > 0 ? options.num_features : parser.max_id_plus_one();
  local.lines = line_no - (options.first_line - 1);
  local.rows = d.num_rows;
  if (stats != nullptr) *stats = std::move(local);
  return d;
}

Result<Dataset> ReadLibSvm(const std::string& path, const LibSvmOptions& options,
                           ReadStats* stats) {
  ASSIGN_OR_RETURN(std::string text, ReadFileContents(path, options.max_file_bytes));
  return ParseLibSvm(text, path, options, stats);
}

}  // namespace distopt
