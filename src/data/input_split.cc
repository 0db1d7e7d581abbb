#include "data/input_split.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <system_error>
#include <utility>

#include "data/file_reader.h"

namespace distopt {
namespace {

std::string ErrnoText(int err) { return std::generic_category().message(err); }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsGlob(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

Result<InputFile> StatInput(const std::string& path, std::pair<dev_t, ino_t>* id) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFoundError(path + ": no such file");
    return InvalidArgumentError(path + ": cannot stat: " + ErrnoText(errno));
  }
  if (S_ISDIR(st.st_mode)) {
    return InvalidArgumentError(path + ": expected a file, found a directory (a glob such as " +
                                path + "/* names its files)");
  }
  if (!S_ISREG(st.st_mode)) return InvalidArgumentError(path + ": expected a regular file");
  InputFile f;
  f.path = path;
  f.size = static_cast<uint64_t>(st.st_size);
  f.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return InvalidArgumentError(path + ": cannot open: " + ErrnoText(errno));
  char magic[2] = {0, 0};
  const ssize_t got = ::pread(fd, magic, 2, 0);
  ::close(fd);
  f.gzip = got == 2 && IsGzip(std::string_view(magic, 2));
  *id = {st.st_dev, st.st_ino};
  return f;
}

Result<std::vector<std::string>> Expand(const std::string& item) {
  if (!IsGlob(item)) return std::vector<std::string>{item};
  glob_t g{};
  const int rc = ::glob(item.c_str(), GLOB_ERR, nullptr, &g);
  std::vector<std::string> out;
  if (rc == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  }
  ::globfree(&g);
  if (rc == GLOB_NOMATCH || (rc == 0 && out.empty())) {
    return NotFoundError("the pattern '" + item + "' matches no file");
  }
  if (rc != 0) return InvalidArgumentError("the pattern '" + item + "' could not be expanded");
  return out;  // glob sorts its matches
}

__extension__ typedef unsigned __int128 Uint128;  // a*b of two byte counts may pass 2^64

uint64_t MulDiv(uint64_t a, uint64_t b, uint64_t c) {
  return static_cast<uint64_t>(static_cast<Uint128>(a) * b / c);
}

// The share whose bytes [s*T/S, (s+1)*T/S) hold global offset `at`.
size_t ShareAt(uint64_t at, uint64_t total, size_t shares) {
  if (total == 0) return 0;
  return std::min(shares - 1, static_cast<size_t>(MulDiv(at, shares, total)));
}

// Every file whole, to the share of its middle byte.
std::vector<std::vector<Piece>> WholeFiles(const std::vector<InputFile>& files, size_t shares,
                                           uint64_t total) {
  std::vector<std::vector<Piece>> out(shares);
  uint64_t at = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    const size_t s = ShareAt(at + files[f].size / 2, total, shares);
    if (files[f].size > 0) out[s].push_back({static_cast<uint32_t>(f), 0, files[f].size});
    at += files[f].size;
  }
  return out;
}

// Plain files cut at the share boundaries; gzip files whole.
std::vector<std::vector<Piece>> ByteRanges(const std::vector<InputFile>& files, size_t shares,
                                           uint64_t total) {
  std::vector<std::vector<Piece>> out(shares);
  uint64_t at = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    const uint64_t size = files[f].size;
    const auto id = static_cast<uint32_t>(f);
    if (files[f].gzip) {
      if (size > 0) out[ShareAt(at + size / 2, total, shares)].push_back({id, 0, size});
    } else {
      for (size_t s = ShareAt(at, total, shares); s < shares && size > 0; ++s) {
        const uint64_t lo = MulDiv(s, total, shares);
        const uint64_t hi = MulDiv(s + 1, total, shares);
        const uint64_t begin = std::max(lo, at);
        const uint64_t end = std::min(hi, at + size);
        if (begin >= at + size) break;
        if (begin < end) out[s].push_back({id, begin - at, end - at});
      }
    }
    at += size;
  }
  return out;
}

std::string Megabytes(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

}  // namespace

Result<std::vector<InputFile>> ListInputs(std::string_view spec) {
  std::vector<InputFile> out;
  std::set<std::pair<dev_t, ino_t>> seen;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t comma = spec.find(',', start);
    if (comma == std::string_view::npos) comma = spec.size();
    const std::string item(Trim(spec.substr(start, comma - start)));
    start = comma + 1;
    if (item.empty()) {
      return InvalidArgumentError("expected a file or a pattern, found an empty item in '" +
                                  std::string(spec) + "'");
    }
    ASSIGN_OR_RETURN(std::vector<std::string> paths, Expand(item));
    for (const std::string& p : paths) {
      std::pair<dev_t, ino_t> id;
      ASSIGN_OR_RETURN(InputFile f, StatInput(p, &id));
      if (!seen.insert(id).second) {
        return InvalidArgumentError(p + ": named twice (its rows would be read twice)");
      }
      out.push_back(std::move(f));
    }
  }
  return out;
}

uint64_t SplitPlan::ShareBytes(size_t share) const {
  uint64_t n = 0;
  for (const Piece& p : shares[share]) n += p.end - p.begin;
  return n;
}

std::vector<int> SplitPlan::IdleShares() const {
  std::vector<int> idle;
  for (size_t s = 0; s < shares.size(); ++s) {
    if (shares[s].empty()) idle.push_back(static_cast<int>(s));
  }
  return idle;
}

SplitPlan PlanSplits(std::vector<InputFile> files, int num_shares) {
  SplitPlan plan;
  const size_t shares = static_cast<size_t>(std::max(num_shares, 1));
  uint64_t total = 0;
  for (const InputFile& f : files) total += f.size;
  plan.files = std::move(files);
  if (plan.files.size() >= shares) {
    // Whole files open fewer files per share and keep each file's rows
    // together; taken only when the bytes stay balanced.
    plan.shares = WholeFiles(plan.files, shares, total);
    plan.by_file = true;
    const uint64_t fair = total / shares + 1;
    for (size_t s = 0; s < shares; ++s) {
      if (plan.ShareBytes(s) > fair + fair / 4) plan.by_file = false;
    }
    if (plan.by_file) return plan;
  }
  plan.shares = ByteRanges(plan.files, shares, total);
  return plan;
}

std::string DescribeShare(const SplitPlan& plan, size_t share) {
  std::string s = "share " + std::to_string(share) + " of " + std::to_string(plan.shares.size()) +
                  ": " + Megabytes(plan.ShareBytes(share));
  const std::vector<Piece>& pieces = plan.shares[share];
  if (pieces.empty()) return s + ", nothing to read";
  for (size_t i = 0; i < pieces.size() && i < 3; ++i) {
    const Piece& p = pieces[i];
    const InputFile& f = plan.files[p.file];
    s += i == 0 ? ", " : "; ";
    s += f.path;
    if (p.begin != 0 || p.end != f.size) {
      s += " [" + Megabytes(p.begin) + ", " + Megabytes(p.end) + ")";
    }
  }
  if (pieces.size() > 3) s += "; and " + std::to_string(pieces.size() - 3) + " more file(s)";
  return s;
}

Result<PieceReader> PieceReader::Open(const InputFile& file, const Piece& piece,
                                      size_t chunk_bytes) {
  PieceReader r;
  r.path_ = file.path;
  r.chunk_bytes_ = std::max<size_t>(chunk_bytes, 1);
  r.fd_ = ::open(file.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (r.fd_ < 0) {
    if (errno == ENOENT) return NotFoundError(file.path + ": no such file (listed, then gone)");
    return InvalidArgumentError(file.path + ": cannot open: " + ErrnoText(errno));
  }
  struct stat st {};
  if (::fstat(r.fd_, &st) != 0) {
    return DataLossError(file.path + ": stat failed: " + ErrnoText(errno));
  }
  if (static_cast<uint64_t>(st.st_size) != file.size) {
    return FailedPreconditionError(file.path + ": changed since it was listed (" +
                                   std::to_string(st.st_size) + " bytes, listed with " +
                                   std::to_string(file.size) + ")");
  }
  if (file.gzip) {
    // zlib owns (and closes) a descriptor of its own; fd_ stays for fstat.
    const int gz_fd = ::dup(r.fd_);
    if (gz_fd < 0) return InternalError(file.path + ": dup failed: " + ErrnoText(errno));
    r.gz_ = ::gzdopen(gz_fd, "rb");
    if (r.gz_ == nullptr) {
      ::close(gz_fd);
      return InternalError(file.path + ": gzdopen failed");
    }
    ::gzbuffer(static_cast<gzFile>(r.gz_), 1 << 18);
    r.end_ = UINT64_MAX;
    r.next_line_ = 1;
    return r;
  }
  r.end_ = piece.end;
  r.file_size_ = file.size;
  if (piece.begin == 0) {
    r.next_line_ = 1;
    return r;
  }
  // The line holding byte begin-1 started before the piece: skip to its end.
  r.pos_ = r.read_pos_ = piece.begin - 1;
  while (true) {
    const size_t nl = r.buf_.find('\n');
    if (nl != std::string::npos) {
      r.buf_.erase(0, nl + 1);
      r.pos_ += nl + 1;
      break;
    }
    r.pos_ += r.buf_.size();
    r.buf_.clear();
    ASSIGN_OR_RETURN(bool more, r.Fill(r.chunk_bytes_));
    if (!more) break;
  }
  return r;
}

PieceReader::PieceReader(PieceReader&& o) noexcept { *this = std::move(o); }

PieceReader& PieceReader::operator=(PieceReader&& o) noexcept {
  if (this == &o) return *this;
  if (gz_ != nullptr) ::gzclose(static_cast<gzFile>(gz_));
  if (fd_ >= 0) ::close(fd_);
  path_ = std::move(o.path_);
  fd_ = std::exchange(o.fd_, -1);
  gz_ = std::exchange(o.gz_, nullptr);
  end_ = o.end_;
  chunk_bytes_ = o.chunk_bytes_;
  file_size_ = o.file_size_;
  pos_ = o.pos_;
  read_pos_ = o.read_pos_;
  next_line_ = o.next_line_;
  buf_ = std::move(o.buf_);
  eof_ = o.eof_;
  done_ = o.done_;
  return *this;
}

PieceReader::~PieceReader() {
  if (gz_ != nullptr) ::gzclose(static_cast<gzFile>(gz_));
  if (fd_ >= 0) ::close(fd_);
}

Result<bool> PieceReader::Fill(size_t n) {
  if (gz_ == nullptr) {
    // A plain file says how much is left: no buffer larger than that.
    if (read_pos_ >= file_size_) {
      eof_ = true;
      return false;
    }
    n = static_cast<size_t>(std::min<uint64_t>(n, file_size_ - read_pos_));
  }
  const size_t old = buf_.size();
  buf_.resize(old + n);
  size_t got = 0;
  while (got < n) {
    ssize_t k = 0;
    if (gz_ != nullptr) {
      const unsigned want = static_cast<unsigned>(std::min<size_t>(n - got, 1u << 30));
      k = ::gzread(static_cast<gzFile>(gz_), buf_.data() + old + got, want);
      if (k < 0) {
        int err = 0;
        const char* msg = ::gzerror(static_cast<gzFile>(gz_), &err);
        buf_.resize(old + got);
        return DataLossError(path_ + ": expected a valid gzip stream, found: " +
                             (msg != nullptr ? msg : "unknown zlib error"));
      }
    } else {
      k = ::pread(fd_, buf_.data() + old + got, n - got, static_cast<off_t>(read_pos_ + got));
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) {
        buf_.resize(old + got);
        return DataLossError(path_ + ": read failed: " + ErrnoText(errno));
      }
    }
    if (k == 0) break;
    got += static_cast<size_t>(k);
  }
  buf_.resize(old + got);
  read_pos_ += got;
  if (got < n || (gz_ == nullptr && read_pos_ >= file_size_)) {
    eof_ = true;
    if (gz_ != nullptr) {
      int err = Z_OK;
      const char* msg = ::gzerror(static_cast<gzFile>(gz_), &err);
      if (err != Z_OK && err != Z_STREAM_END) {
        return DataLossError(path_ + ": expected a complete gzip stream, found: " +
                             (msg != nullptr ? msg : "unknown zlib error"));
      }
    }
  }
  return got > 0;
}

Result<bool> PieceReader::Next(TextChunk* chunk) {
  while (!done_) {
    if (pos_ >= end_) break;  // the next line starts in the next piece
    const uint64_t limit = end_ - pos_;
    size_t cut = std::string::npos;
    bool last = false;
    if (limit <= buf_.size()) {
      // The line holding the piece's last byte is ours, to its end.
      const size_t nl = buf_.find('\n', static_cast<size_t>(limit - 1));
      if (nl != std::string::npos) {
        cut = nl + 1;
        last = true;
      }
    } else if (buf_.size() >= chunk_bytes_ || eof_) {
      const size_t nl = buf_.rfind('\n');
      if (nl != std::string::npos) cut = nl + 1;
    }
    if (cut == std::string::npos) {
      if (eof_) {
        if (buf_.empty()) break;
        cut = buf_.size();  // a last line without a newline
        last = true;
      } else {
        // Short of a chunk, or one line longer than a chunk: read on.
        RETURN_IF_ERROR(Fill(std::max(chunk_bytes_, buf_.size())).status());
        continue;
      }
    }
    chunk->text.assign(buf_, 0, cut);
    chunk->offset = pos_;
    chunk->first_line = next_line_;
    if (next_line_ != 0) next_line_ += data_internal::CountByte(chunk->text, '\n');
    buf_.erase(0, cut);
    pos_ += cut;
    done_ = last;
    return true;
  }
  done_ = true;
  if (gz_ == nullptr) {
    struct stat st {};
    if (::fstat(fd_, &st) == 0 && eof_ && static_cast<uint64_t>(st.st_size) != read_pos_) {
      return FailedPreconditionError(path_ + ": changed while it was read");
    }
  }
  return false;
}

Result<uint64_t> CountLinesBefore(const std::string& path, uint64_t offset) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFoundError(path + ": cannot open: " + ErrnoText(errno));
  std::string block(size_t{1} << 20, '\0');
  uint64_t lines = 0;
  uint64_t at = 0;
  Status status;
  while (at < offset) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(block.size(), offset - at));
    const ssize_t k = ::pread(fd, block.data(), want, static_cast<off_t>(at));
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      status = DataLossError(path + ": read failed counting lines");
      break;
    }
    lines += data_internal::CountByte(std::string_view(block.data(), static_cast<size_t>(k)), '\n');
    at += static_cast<uint64_t>(k);
  }
  ::close(fd);
  RETURN_IF_ERROR(status);
  return lines;
}

}  // namespace distopt
