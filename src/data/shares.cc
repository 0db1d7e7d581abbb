#include "data/shares.h"

#include <utility>

namespace distopt {

Dataset SelectRows(const Dataset& d, const std::vector<uint32_t>& rows) {
  Dataset out;
  out.sparse = d.sparse;
  out.num_features = d.num_features;
  out.num_rows = rows.size();
  out.labels.reserve(rows.size());
  if (d.sparse) {
    out.row_ptr.reserve(rows.size() + 1);
    out.row_ptr.push_back(0);
    for (uint32_t r : rows) {
      const uint64_t b = d.row_ptr[r];
      const uint64_t e = d.row_ptr[r + 1];
      out.col_idx.insert(out.col_idx.end(), d.col_idx.begin() + static_cast<ptrdiff_t>(b),
                         d.col_idx.begin() + static_cast<ptrdiff_t>(e));
      out.col_val.insert(out.col_val.end(), d.col_val.begin() + static_cast<ptrdiff_t>(b),
                         d.col_val.begin() + static_cast<ptrdiff_t>(e));
      out.row_ptr.push_back(out.col_idx.size());
    }
  } else {
    out.dense.reserve(rows.size() * d.num_features);
    for (uint32_t r : rows) {
      const float* row = d.DenseRow(r);
      out.dense.insert(out.dense.end(), row, row + d.num_features);
    }
  }
  for (uint32_t r : rows) out.labels.push_back(d.labels[r]);
  return out;
}

Result<const Dataset*> JoinShares(ShareSource& source, const std::vector<int>& shares,
                                  Dataset* storage, std::vector<size_t>* share_rows) {
  share_rows->clear();
  const Dataset* one = nullptr;
  Dataset joined;
  for (int s : shares) {
    ASSIGN_OR_RETURN(const Dataset* d, source.Get(static_cast<size_t>(s)));
    share_rows->push_back(d->num_rows);
    if (shares.size() == 1) {
      one = d;
    } else {
      Dataset copy = *d;
      RETURN_IF_ERROR(AppendRows(&joined, std::move(copy)));
    }
  }
  if (one != nullptr) return one;
  *storage = std::move(joined);
  return storage;
}

std::vector<int> SharesOfRank(uint32_t rank, uint32_t workers, size_t num_shares) {
  std::vector<int> out;
  for (size_t s = rank; s < num_shares; s += std::max<uint32_t>(workers, 1)) {
    out.push_back(static_cast<int>(s));
  }
  return out;
}

MemoryShares::MemoryShares(const Dataset* whole, size_t num_shares)
    : whole_(whole, [](const Dataset*) {}), num_shares_(std::max<size_t>(num_shares, 1)) {}

MemoryShares::MemoryShares(Dataset whole, size_t num_shares)
    : whole_(std::make_shared<const Dataset>(std::move(whole))),
      num_shares_(std::max<size_t>(num_shares, 1)) {}

Result<const Dataset*> MemoryShares::Get(size_t s) {
  if (s >= num_shares_) {
    return InvalidArgumentError("share " + std::to_string(s) + " of " +
                                std::to_string(num_shares_) + ": no such share");
  }
  if (num_shares_ == 1) return whole_.get();
  auto it = shares_.find(s);
  if (it == shares_.end()) {
    std::vector<uint32_t> rows;
    for (size_t r = s; r < whole_->num_rows; r += num_shares_)
      rows.push_back(static_cast<uint32_t>(r));
    it = shares_.emplace(s, SelectRows(*whole_, rows)).first;
  }
  return &it->second;
}

std::optional<size_t> MemoryShares::KnownRows(size_t s) const {
  const size_t n = whole_->num_rows;
  return n / num_shares_ + (s < n % num_shares_ ? 1 : 0);
}

Status MemoryShares::VisitAll(const std::function<void(const Dataset&)>& fn) {
  fn(*whole_);
  return Status::Ok();
}

FileShares::FileShares(SplitPlan plan, TextFormat format, FileShareOptions options)
    : plan_(std::move(plan)), format_(std::move(format)), options_(options) {}

Result<Dataset> FileShares::Read(size_t s, ShareStats* stats) const {
  ASSIGN_OR_RETURN(Dataset d, ReadShare(plan_, s, format_, stats));
  if (options_.max_rows > 0) {
    const size_t n = plan_.shares.size();
    const size_t keep = (options_.max_rows + n - 1) / n;
    if (d.num_rows > keep) {
      std::vector<uint32_t> rows(keep);
      for (size_t r = 0; r < keep; ++r) rows[r] = static_cast<uint32_t>(r);
      d = SelectRows(d, rows);
    }
  }
  return d;
}

Result<const Dataset*> FileShares::Get(size_t s) {
  if (s >= plan_.shares.size()) {
    return InvalidArgumentError("share " + std::to_string(s) + " of " +
                                std::to_string(plan_.shares.size()) + ": no such share");
  }
  auto it = shares_.find(s);
  if (it == shares_.end()) {
    ShareStats st;
    ASSIGN_OR_RETURN(Dataset d, Read(s, &st));
    Count(st);
    it = shares_.emplace(s, std::move(d)).first;
  }
  return &it->second;
}

std::optional<size_t> FileShares::KnownRows(size_t s) const {
  auto it = shares_.find(s);
  if (it == shares_.end()) return std::nullopt;
  return it->second.num_rows;
}

Status FileShares::VisitAll(const std::function<void(const Dataset&)>& fn) {
  for (size_t s = 0; s < plan_.shares.size(); ++s) {
    if (auto it = shares_.find(s); it != shares_.end()) {
      fn(it->second);
      continue;
    }
    // A chunk at a time: never a second whole share in memory.
    ShareStream stream(&plan_, s, format_);
    Dataset rows;
    while (true) {
      ASSIGN_OR_RETURN(bool more, stream.Next(&rows));
      if (!more) break;
      fn(rows);
    }
  }
  return Status::Ok();
}

void FileShares::Count(const ShareStats& s) {
  stats_.rows += s.rows;
  stats_.bytes += s.bytes;
  stats_.lines += s.lines;
  if (stats_.bad_lines == 0 && s.bad_lines > 0) stats_.first_error = s.first_error;
  stats_.bad_lines += s.bad_lines;
  stats_.pieces += s.pieces;
  stats_.seconds += s.seconds;
  stats_.cpu_seconds += s.cpu_seconds;
}

}  // namespace distopt
