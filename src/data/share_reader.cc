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
      ++stats_.pieces;
    }
    ASSIGN_OR_RETURN(bool more, reader_->Next(&chunk));
    if (more) break;
    reader_.reset();
  }
  stats_.bytes += chunk.text.size();
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
    // it; they are counted only now that a message needs the real number,
    // once: the reader numbers the chunks after this one itself.
    ASSIGN_OR_RETURN(uint64_t before, CountLinesBefore(file.path, chunk.offset));
    d = ParseAt(chunk, file, before + 1, &rs);
    reader_->SetNextLine(before + 1 + data_internal::CountByte(chunk.text, '\n'));
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
  while (true) {
    ASSIGN_OR_RETURN(bool more, r.Next(&c));
    if (!more) break;
    std::string_view line = CsvHeaderLine(c.text);
    if (!line.empty()) return headers_[id] = std::string(line);
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
  Dataset rows;
  while (true) {
    ASSIGN_OR_RETURN(bool more, stream.Next(&rows));
    if (!more) break;
    const bool first = all.num_rows == 0;
    RETURN_IF_ERROR(AppendRows(&all, std::move(rows)));
    if (first && all.num_rows > 0) {
      // Sized once from the first chunk's density (5% spare), so the share
      // is not copied again and again as its vectors double: the peak stays
      // near the share's own size. Only an estimate; the vectors still grow.
      const double scale = 1.05 * static_cast<double>(plan.ShareBytes(share)) /
                           static_cast<double>(stream.stats().bytes);
      auto est = [scale](size_t n) { return static_cast<size_t>(static_cast<double>(n) * scale); };
      all.labels.reserve(est(all.labels.size()));
      all.dense.reserve(est(all.dense.size()));
      all.row_ptr.reserve(est(all.row_ptr.size()));
      all.col_idx.reserve(est(all.col_idx.size()));
      all.col_val.reserve(est(all.col_val.size()));
    }
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
  if (into->num_rows == 0) {
    const size_t width = into->sparse ? into->num_features : 0;
    *into = std::move(more);
    if (into->sparse) into->num_features = std::max(into->num_features, width);
    return Status::Ok();
  }
  if (into->sparse != more.sparse) {
    return InvalidArgumentError("expected rows of one kind, found sparse and dense mixed");
  }
  if (!into->sparse) {
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
