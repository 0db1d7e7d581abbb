// BatchIterator: hands one worker its mini-batches of a Dataset, epoch by
// epoch. Rows are cut into shards (strided: row r belongs to shard
// r % num_shards) and the worker iterates the shards it owns, shuffled from
// (seed, epoch) identically on every machine. Batches are views into the
// iterator's index buffer. Not thread-safe: one iterator per worker thread;
// the Dataset must outlive it.
//
//   ASSIGN_OR_RETURN(BatchIterator it,
//                    BatchIterator::Create(&train, {.batch_size = 64, .seed = 7,
//                                                   .shards = {rank}, .num_shards = W}));
//   for (int epoch = 0; epoch < epochs; ++epoch) {
//     it.StartEpoch(epoch);
//     Batch b;
//     while (it.Next(&b)) model.ForwardBackward(b, ...);
//   }
#ifndef DISTOPT_DATA_BATCHER_H_
#define DISTOPT_DATA_BATCHER_H_

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "data/dataset.h"
#include "distopt/status.h"

namespace distopt {

struct BatchOptions {
  // Rows per batch (per shard owned, in global_order mode).
  size_t batch_size = 32;
  // With the epoch, the only input to the shuffle.
  uint64_t seed = 0;
  // False: rows in ascending order every epoch (evaluation).
  bool shuffle = true;
  // Drop the last, smaller batch of an epoch.
  bool drop_last = false;
  // The shards this worker owns, each in [0, num_shards); empty means all.
  // When a worker dies its shard ids are handed to a survivor, which then
  // lists several.
  std::vector<int> shards{};
  int num_shards = 1;
  // Global order (for BSP, where W workers with batch B must equal one process
  // with batch W*B): every iterator shuffles the SAME permutation of ALL rows
  // from (seed, epoch) and cuts it into global batches of num_shards *
  // batch_size rows; shard s is then a slot, not a set of rows: it takes
  // elements [s*B, (s+1)*B) of every global batch. A worker owning several
  // slots gets their rows concatenated (in shard order) as one batch per
  // step, so every worker takes exactly batches_per_epoch() steps. A partial
  // last global batch (drop_last = false) of R rows is split as evenly as
  // possible: slot s gets [s*R/W, (s+1)*R/W), empty only if R < W.
  // Aggregating each step weighted by batch size then reproduces the big
  // batch exactly, and a 1-shard iterator with batch W*B (either mode) yields
  // exactly the concatenation of the W slots' batches.
  bool global_order = false;
  // Shares laid out back to back (a worker's own data, data/shares.h): the
  // dataset holds exactly the rows of `shards`, share_rows[i] of them for
  // shards[i] (shards then given ascending). Rows are then not strided.
  // Without global_order every row is this worker's, all shuffled together.
  // With it, each share is shuffled on its own from (seed, epoch, share id)
  // and step k takes rows [k*B, (k+1)*B) of each, concatenated in shard
  // order, for exactly `steps_per_epoch` steps: the same count on every
  // worker (at most the smallest share's full batches), so W workers with
  // batch B equal one process owning all W shares, step for step.
  std::vector<size_t> share_rows{};
  size_t steps_per_epoch = 0;
};

class BatchIterator {
 public:
  // Fails on batch_size outside [1, 2^32], num_shards outside [1, 2^20], a
  // shard id out of range or listed twice, or a dataset of more than 2^32 - 1
  // rows. Starts epoch 0.
  static Result<BatchIterator> Create(const Dataset* data, BatchOptions options);

  // Rewinds and reorders for `epoch`. The order is a pure function of (seed,
  // epoch, num_shards, shards, dataset size): std::mt19937_64 feeding this
  // file's own Fisher-Yates and bounded draws, as std::shuffle and
  // std::uniform_int_distribution are implementation-defined.
  void StartEpoch(int epoch);

  // The next batch of this epoch; false once the epoch is done. `batch` stays
  // valid until the next call to Next or StartEpoch.
  bool Next(Batch* batch);

  size_t batches_per_epoch() const;
  // Rows this iterator yields per epoch (after drop_last).
  size_t rows_per_epoch() const;
  int epoch() const { return epoch_; }
  const BatchOptions& options() const { return options_; }

  // The shard of `row` when not in global_order mode.
  static int ShardOfRow(size_t row, int num_shards) {
    return static_cast<int>(row % static_cast<size_t>(num_shards));
  }

 private:
  BatchIterator(const Dataset* data, BatchOptions options);
  bool NextGlobal(Batch* batch);
  bool NextShares(Batch* batch);  // global order over shares laid out back to back
  bool shares_mode() const { return !options_.share_rows.empty(); }
  // Global mode: [begin, end) of `slot` within global step `step`.
  void SlotRange(size_t step, int slot, size_t* begin, size_t* end) const;

  // Constant after Create.
  const Dataset* data_;
  BatchOptions options_;        // shards sorted, filled in when empty
  std::vector<uint32_t> rows_;  // rows owned (ascending), not in global mode

  // Per epoch.
  std::vector<uint32_t> order_;    // this epoch's order: of rows_, or of all rows
  std::vector<uint32_t> scratch_;  // concatenated slots (global mode, >1 shard)
  size_t pos_ = 0;                 // next index into order_ / next global step
  int epoch_ = 0;
};

// Shuffles `v` in place with the Fisher-Yates algorithm and an unbiased
// bounded draw over `rng`: the same result on every platform and standard
// library. Exposed for tests and for anyone else who needs such a shuffle.
void DeterministicShuffle(std::vector<uint32_t>* v, std::mt19937_64* rng);

// The generator seeded from (seed, epoch) that StartEpoch uses.
std::mt19937_64 EpochRng(uint64_t seed, int epoch);
// The one that shuffles share `share` in an epoch (global order over shares).
std::mt19937_64 ShareRng(uint64_t seed, int epoch, int share);

}  // namespace distopt

#endif  // DISTOPT_DATA_BATCHER_H_
