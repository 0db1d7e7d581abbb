#include "data/share_reader.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <utility>

namespace distopt {
namespace {

double ThreadCpuSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

bool IsBlankLine(std::string_view line) {
  for (char c : line) {
    if (c != ' ' && c != '\t') return false;
  }
  return true;
}

}  // namespace

ShareStream::ShareStream(const SplitPlan* plan, size_t share, TextFormat format, size_t chunk_bytes)
    : plan_(plan), share_(share), format_(std::move(format)), chunk_bytes_(chunk_bytes) {}

Result<bool> ShareStream::Next(Dataset* rows) {
  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = ThreadCpuSeconds();
  const std::vector<Piece>& pieces = plan_->shares[share_];
  TextChunk chunk;
  while (true) {
    if (!reader_.has_value()) {
      if (next_piece_ >= pieces.size()) {
        stats_.cpu_seconds += ThreadCpuSeconds() - cpu0;
        return false;
      }
      const Piece& p = pieces[next_piece_++];
      ASSIGN_OR_RETURN(PieceReader r, PieceReader::Open(plan_->files[p.file], p, chunk_bytes_));
      reader_.emplace(std::move(r));
      reader_bytes_ = 0;
      ++stats_.pieces;
    }
    ASSIGN_OR_RETURN(bool more, reader_->Next(&chunk));
    stats_.bytes += reader_->bytes_read() - reader_bytes_;
    reader_bytes_ = reader_->bytes_read();
    if (more) break;
    reader_.reset();
  }
  const InputFile& file = plan_->files[pieces[next_piece_ - 1].file];
  ASSIGN_OR_RETURN(*rows, Parse(chunk, file));
  stats_.rows += rows->num_rows;
  stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stats_.cpu_seconds += ThreadCpuSeconds() - cpu0;
  return true;
}

Result<Dataset> ShareStream::Parse(const TextChunk& chunk, const InputFile& file) {
  ReadStats rs;
  Result<Dataset> d = ParseAt(chunk, file, chunk.first_line == 0 ? 1 : chunk.first_line, &rs);
  if (chunk.first_line == 0 && (!d.ok() || rs.bad_lines > 0)) {
    // A piece that starts inside the file did not count the lines before
    // it; they are counted only now that a message needs the real number.
    ASSIGN_OR_RETURN(uint64_t before, CountLinesBefore(file.path, chunk.offset));
    d = ParseAt(chunk, file, before + 1, &rs);
  }
  if (!d.ok()) return d.status();
  stats_.lines += rs.lines;
  if (rs.bad_lines > 0 && stats_.bad_lines == 0) stats_.first_error = rs.first_error;
  stats_.bad_lines += rs.bad_lines;
  return d;
}

Result<Dataset> ShareStream::ParseAt(const TextChunk& chunk, const InputFile& file,
                                     uint64_t first_line, ReadStats* rs) {
  if (!format_.csv) {
    LibSvmOptions o = format_.libsvm;
    o.first_line = first_line;
    return ParseLibSvm(chunk.text, file.path, o, rs);
  }
  CsvOptions o = format_.csv_options;
  o.first_line = first_line;
  if (o.header && chunk.offset > 0) {
    ASSIGN_OR_RETURN(o.header_line, HeaderOf(file));
  }
  return ParseCsv(chunk.text, file.path, o, rs);
}

Result<std::string> ShareStream::HeaderOf(const InputFile& file) {
  const auto id = static_cast<uint32_t>(&file - plan_->files.data());
  if (auto it = headers_.find(id); it != headers_.end()) return it->second;
  ASSIGN_OR_RETURN(PieceReader r, PieceReader::Open(file, {id, 0, file.size}, size_t{1} << 16));
  TextChunk c;
  bool first = true;
  while (true) {
    ASSIGN_OR_RETURN(bool more, r.Next(&c));
    if (!more) break;
    std::string_view text = c.text;
    if (first && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
    first = false;
    while (!text.empty()) {
      size_t nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (IsBlankLine(line)) continue;
      return headers_[id] = std::string(line);
    }
  }
  return InvalidArgumentError(file.path + ": expected a header line, found no lines");
}

Result<Dataset> ReadShare(const SplitPlan& plan, size_t share, const TextFormat& format,
                          ShareStats* stats, size_t chunk_bytes) {
  ShareStream stream(&plan, share, format, chunk_bytes);
  Dataset all;
  all.sparse = !format.csv;
  if (all.sparse) all.row_ptr.push_back(0);
  if (!format.csv && format.libsvm.num_features > 0) all.num_features = format.libsvm.num_features;
  const uint64_t share_bytes = plan.ShareBytes(share);
  Dataset rows;
  bool reserved = false;
  while (true) {
    ASSIGN_OR_RETURN(bool more, stream.Next(&rows));
    if (!more) break;
    if (!reserved && rows.num_rows > 0 && stream.stats().bytes > 0) {
      // Sized once from the first chunk's density (5% spare), so the share
      // is not copied again and again as its vectors double: the peak stays
      // near the share's own size. Only an estimate; the vectors still grow.
      const double scale =
          1.05 * static_cast<double>(share_bytes) / static_cast<double>(stream.stats().bytes);
      auto est = [scale](size_t n) { return static_cast<size_t>(static_cast<double>(n) * scale); };
      all.labels.reserve(est(rows.labels.size()));
      all.dense.reserve(est(rows.dense.size()));
      all.row_ptr.reserve(est(rows.row_ptr.size()));
      all.col_idx.reserve(est(rows.col_idx.size()));
      all.col_val.reserve(est(rows.col_val.size()));
      reserved = true;
    }
    RETURN_IF_ERROR(AppendRows(&all, std::move(rows)));
  }
  if (stats != nullptr) *stats = stream.stats();
  return all;
}

Status AppendRows(Dataset* into, Dataset&& more) {
  if (more.num_rows == 0) {
    if (into->sparse && more.sparse) {
      into->num_features = std::max(into->num_features, more.num_features);
    }
    return Status::Ok();
  }
  if (into->num_rows == 0 && into->labels.capacity() == 0) {
    const size_t width = into->sparse ? into->num_features : 0;
    *into = std::move(more);
    if (into->sparse) into->num_features = std::max(into->num_features, width);
    return Status::Ok();
  }
  if (into->sparse != more.sparse) {
    return InvalidArgumentError("expected rows of one kind, found sparse and dense mixed");
  }
  if (!into->sparse) {
    if (into->num_rows == 0) into->num_features = more.num_features;
    if (into->num_features != more.num_features) {
      return InvalidArgumentError("expected " + std::to_string(into->num_features) +
                                  " features per row in every file, found " +
                                  std::to_string(more.num_features));
    }
    into->dense.insert(into->dense.end(), more.dense.begin(), more.dense.end());
  } else {
    const uint64_t base = into->row_ptr.back();
    for (size_t r = 1; r < more.row_ptr.size(); ++r)
      into->row_ptr.push_back(base + more.row_ptr[r]);
    into->col_idx.insert(into->col_idx.end(), more.col_idx.begin(), more.col_idx.end());
    into->col_val.insert(into->col_val.end(), more.col_val.begin(), more.col_val.end());
    into->num_features = std::max(into->num_features, more.num_features);
  }
  into->labels.insert(into->labels.end(), more.labels.begin(), more.labels.end());
  into->num_rows += more.num_rows;
  return Status::Ok();
}

}  // namespace distopt
