// ShareSource: where a worker's training rows come from. The training set
// is cut into shares (one per worker by default, data.shares); a worker
// reads its own and, when it takes over for a dead worker, that one's too,
// and nothing else. FileShares reads text files by their split plan
// (data/input_split.h); MemoryShares cuts a dataset already in memory (IDX,
// tests) into strided shares. Not thread-safe: the trainer's thread uses it.
//
//   ASSIGN_OR_RETURN(std::vector<InputFile> files, ListInputs("data/part-*.svm"));
//   FileShares source(PlanSplits(std::move(files), workers), format);
//   ASSIGN_OR_RETURN(const Dataset* mine, source.Get(rank));
#ifndef DISTOPT_DATA_SHARES_H_
#define DISTOPT_DATA_SHARES_H_

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/input_split.h"
#include "data/share_reader.h"
#include "distopt/status.h"

namespace distopt {

class ShareSource {
 public:
  virtual ~ShareSource() = default;
  virtual size_t num_shares() const = 0;
  // The rows of share `s`: read on first use, then kept.
  virtual Result<const Dataset*> Get(size_t s) = 0;
  // Its row count when known without reading it.
  virtual std::optional<size_t> KnownRows(size_t s) const = 0;
  // Calls `fn` with every training row once, in share order, in one or
  // more pieces, keeping no more in memory than it already held and a chunk
  // (the final model's sparse keys). Ignores max_rows: every key counts.
  virtual Status VisitAll(const std::function<void(const Dataset&)>& fn) = 0;
  // What reading took so far, summed over the shares read.
  virtual ShareStats stats() const { return {}; }
};

// A whole dataset in memory cut into `num_shares` strided shares: row r is
// in share r % num_shares, so every share sees the whole set's mix.
class MemoryShares : public ShareSource {
 public:
  // Borrows `whole`, which must outlive this.
  MemoryShares(const Dataset* whole, size_t num_shares);
  // Owns it.
  MemoryShares(Dataset whole, size_t num_shares);
  const Dataset& whole() const { return *whole_; }
  size_t num_shares() const override { return num_shares_; }
  Result<const Dataset*> Get(size_t s) override;
  std::optional<size_t> KnownRows(size_t s) const override;
  Status VisitAll(const std::function<void(const Dataset&)>& fn) override;

 private:
  std::shared_ptr<const Dataset> whole_;
  const size_t num_shares_;
  std::map<size_t, Dataset> shares_;
};

struct FileShareOptions {
  // 0: every row. Else about this many in all, for quick experiments: each
  // share keeps its first ceil(max_rows / shares) rows.
  size_t max_rows = 0;
};

// Text files (LibSVM, CSV) read share by share through their split plan.
class FileShares : public ShareSource {
 public:
  FileShares(SplitPlan plan, TextFormat format, FileShareOptions options = {});
  size_t num_shares() const override { return plan_.shares.size(); }
  Result<const Dataset*> Get(size_t s) override;
  std::optional<size_t> KnownRows(size_t s) const override;
  Status VisitAll(const std::function<void(const Dataset&)>& fn) override;
  ShareStats stats() const override { return stats_; }
  const SplitPlan& plan() const { return plan_; }

 private:
  void Count(const ShareStats& s);
  Result<Dataset> Read(size_t s, ShareStats* stats) const;

  const SplitPlan plan_;
  const TextFormat format_;
  const FileShareOptions options_;
  std::map<size_t, Dataset> shares_;
  ShareStats stats_;
};

// The rows of `shares` (ascending) back to back, as BatchOptions::share_rows
// describes them: the one share itself, or several copied into `storage`.
// `share_rows` gets each share's row count.
Result<const Dataset*> JoinShares(ShareSource& source, const std::vector<int>& shares,
                                  Dataset* storage, std::vector<size_t>* share_rows);

// The shares worker `rank` of `workers` reads of `num_shares`: s with
// s % workers == rank (its own share when there is one per worker).
std::vector<int> SharesOfRank(uint32_t rank, uint32_t workers, size_t num_shares);

// The rows of `d` whose indices are listed, in that order.
Dataset SelectRows(const Dataset& d, const std::vector<uint32_t>& rows);

}  // namespace distopt

#endif  // DISTOPT_DATA_SHARES_H_
