// Reading one share of a text training set (LibSVM or CSV): its pieces
// (data/input_split.h), chunk by chunk, each chunk parsed into rows.
// ShareStream hands the rows out a chunk at a time (what streaming under a
// memory budget builds on); ReadShare gathers them into one Dataset. Errors
// keep the file's real "file:line", also in a piece that starts in the
// middle of a file. A ShareStream is used by one thread; the plan it reads
// must outlive it.
//
//   ShareStream stream(&plan, rank, format);
//   Dataset rows;
//   while (true) { ASSIGN_OR_RETURN(bool more, stream.Next(&rows)); if (!more) break; ... }
//   // or: ASSIGN_OR_RETURN(Dataset share, ReadShare(plan, rank, format, &stats));
#ifndef DISTOPT_DATA_SHARE_READER_H_
#define DISTOPT_DATA_SHARE_READER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "data/csv_reader.h"
#include "data/dataset.h"
#include "data/input_split.h"
#include "data/libsvm_reader.h"
#include "distopt/status.h"

namespace distopt {

struct TextFormat {
  bool csv = false;  // else LibSVM
  LibSvmOptions libsvm{};
  CsvOptions csv_options{};
};

// What reading a share took, for the log and metrics.jsonl.
struct ShareStats {
  uint64_t rows = 0;
  uint64_t bytes = 0;  // text bytes parsed (decompressed, for gzip)
  uint64_t lines = 0;
  uint64_t bad_lines = 0;     // skipped (data.skip_bad_lines)
  std::string first_error{};  // "file:line: ..." of the first skipped line
  uint64_t pieces = 0;
  double seconds = 0;      // reading and parsing
  double cpu_seconds = 0;  // of the reading thread
};

class ShareStream {
 public:
  ShareStream(const SplitPlan* plan, size_t share, TextFormat format,
              size_t chunk_bytes = size_t{16} << 20);

  // The rows of the next chunk (replacing *rows); false once the share is
  // read. The first error ends the stream.
  Result<bool> Next(Dataset* rows);
  const ShareStats& stats() const { return stats_; }

 private:
  Result<Dataset> Parse(const TextChunk& chunk, const InputFile& file);
  Result<Dataset> ParseAt(const TextChunk& chunk, const InputFile& file, uint64_t first_line,
                          ReadStats* rs);
  // The file's header line (CSV with header = true), read once per file.
  Result<std::string> HeaderOf(const InputFile& file);

  const SplitPlan* plan_;
  const size_t share_;
  const TextFormat format_;
  const size_t chunk_bytes_;
  size_t next_piece_ = 0;
  std::optional<PieceReader> reader_;
  std::map<uint32_t, std::string> headers_;
  ShareStats stats_;
};

// Every row of `share`, in file order.
Result<Dataset> ReadShare(const SplitPlan& plan, size_t share, const TextFormat& format,
                          ShareStats* stats = nullptr, size_t chunk_bytes = size_t{16} << 20);

// Appends the rows of `more` to `into` (an empty `into` takes them as they
// are). Both sparse, or both dense of the same width; a sparse result has
// the larger num_features.
Status AppendRows(Dataset* into, Dataset&& more);

}  // namespace distopt

#endif  // DISTOPT_DATA_SHARE_READER_H_
