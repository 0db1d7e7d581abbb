// Input splits: which bytes of the training files each of S shares reads,
// so that a worker reads and parses only its share (as dmlc-core's
// InputSplit does for ps-lite users). ListInputs expands `data.train` (a
// path, a comma-separated list, globs); PlanSplits cuts the files into
// shares, a pure function of the file list, the sizes and S, so every node
// computes the same plan and any node can read any share (a survivor taking
// over a dead worker's); PieceReader reads one piece in chunks of whole lines.
// Stateless functions; a PieceReader is used by one thread.
//
//   ASSIGN_OR_RETURN(std::vector<InputFile> files, ListInputs("data/part-*.svm"));
//   SplitPlan plan = PlanSplits(std::move(files), workers);
//   for (const Piece& p : plan.shares[rank]) {
//     ASSIGN_OR_RETURN(PieceReader r, PieceReader::Open(plan.files[p.file], p));
//     TextChunk c;
//     while (true) { ASSIGN_OR_RETURN(bool more, r.Next(&c)); if (!more) break; ... }
//   }
#ifndef DISTOPT_DATA_INPUT_SPLIT_H_
#define DISTOPT_DATA_INPUT_SPLIT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "distopt/status.h"

namespace distopt {

struct InputFile {
  std::string path;
  uint64_t size = 0;     // bytes on disk (compressed, for gzip)
  int64_t mtime_ns = 0;  // last modification, from stat
  bool gzip = false;     // told by the magic bytes, never by the name
  bool operator==(const InputFile&) const = default;
};

// The files `spec` names: one path or a comma-separated list of them, each
// item a path or a glob (*, ? or [ in it), whose matches are taken in sorted
// order; items keep their order. Errors name the item: NotFound for a
// missing file or a glob that matches nothing, InvalidArgument for a
// directory, an empty item or a file named twice (it would be read twice).
Result<std::vector<InputFile>> ListInputs(std::string_view spec);

// Bytes [begin, end) of a file: the piece reads every line whose first byte
// is in the range, to its end even past `end` (a line crossing a split
// point belongs to the split it starts in). A gzip file, which cannot be
// entered in the middle, is always one whole piece.
struct Piece {
  uint32_t file = 0;  // index into SplitPlan::files
  uint64_t begin = 0;
  uint64_t end = 0;
  bool operator==(const Piece&) const = default;
};

struct SplitPlan {
  std::vector<InputFile> files;
  std::vector<std::vector<Piece>> shares;  // one list per share, in file order
  // Whole files went to shares (there were at least as many files as
  // shares and that balanced the bytes), rather than byte ranges.
  bool by_file = false;

  uint64_t ShareBytes(size_t share) const;
  // Shares with nothing to read (more shares than gzip files, say).
  std::vector<int> IdleShares() const;
};

// Cuts `files` into `num_shares` (>= 1) shares of about equal bytes, keeping
// file order: share s of the files' concatenation takes the bytes
// [s*T/S, (s+1)*T/S). Files go whole when there are at least as many files
// as shares and no share then gets more than 1.25x its fair part; gzip files
// always go whole, to the share where their middle byte falls.
SplitPlan PlanSplits(std::vector<InputFile> files, int num_shares);

// "share 2 of 4: 89.4 MB, part-0.svm [0, 89.4 MB)" style summary for the log.
std::string DescribeShare(const SplitPlan& plan, size_t share);

// A run of whole lines of a piece. Line numbers are of the whole file.
struct TextChunk {
  std::string text;
  uint64_t offset = 0;  // of text[0] in the file (decompressed, for gzip)
  // 1-based number of the chunk's first line in the file; 0 when not
  // counted (a piece that starts inside a file: see CountLines).
  uint64_t first_line = 0;
};

class PieceReader {
 public:
  // Opens the piece's file. Fails (naming the path) if it cannot be opened,
  // is gone, or is no longer the size or kind the plan saw: a file that
  // changed between listing and reading is never read half old, half new.
  static Result<PieceReader> Open(const InputFile& file, const Piece& piece,
                                  size_t chunk_bytes = size_t{16} << 20);
  PieceReader(PieceReader&&) noexcept;
  PieceReader& operator=(PieceReader&&) noexcept;
  ~PieceReader();

  // The next chunk of about chunk_bytes (more when a line is longer); false
  // at the end of the piece.
  Result<bool> Next(TextChunk* chunk);
  // Tells a piece that starts inside its file the number of the next
  // chunk's first line, once counted (CountLinesBefore): later chunks are
  // then numbered as they pass, not counted from the file's start again.
  void SetNextLine(uint64_t line) { next_line_ = line; }

 private:
  PieceReader() = default;
  // Appends up to `n` bytes from the file to buf_ (false at end of file).
  Result<bool> Fill(size_t n);

  std::string path_;
  int fd_ = -1;
  void* gz_ = nullptr;  // gzFile, for a gzip file
  uint64_t end_ = 0;    // of the piece: lines starting before it are ours
  size_t chunk_bytes_ = 0;
  uint64_t file_size_ = 0;  // plain files: as listed (and checked at Open)
  uint64_t pos_ = 0;        // file offset of buf_[0]
  uint64_t read_pos_ = 0;   // file offset of the next byte to read
  uint64_t next_line_ = 0;  // line number of buf_[0], 0 if not counted
  std::string buf_;         // read, not yet handed out
  bool eof_ = false;
  bool done_ = false;
};

// Lines that start before byte `offset` of a plain file (newlines in
// [0, offset)): how a piece's line numbers are found when one is needed.
Result<uint64_t> CountLinesBefore(const std::string& path, uint64_t offset);

}  // namespace distopt

#endif  // DISTOPT_DATA_INPUT_SPLIT_H_
