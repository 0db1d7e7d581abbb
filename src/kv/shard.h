// Server-side storage of one table's part: a DenseShard holds a contiguous
// slice of a dense table, a SparseShard the rows of the keys that hash into
// this server's range (created on first touch with the table's initializer).
// Optimizer state lives beside the parameters. Dense parameters are held in a
// shared Buffer and replaced copy-on-write when a pull reply still views
// them, so pulls are answered without copying. Not thread-safe: the server's
// request thread owns them.
#ifndef DISTOPT_KV_SHARD_H_
#define DISTOPT_KV_SHARD_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "base/buffer.h"
#include "base/flat_map.h"
#include "distopt/status.h"
#include "kv/layout.h"
#include "optim/optimizer.h"

namespace distopt {

class DenseShard {
 public:
  DenseShard(const TableSpec& spec, const DenseSlice& slice, const Optimizer* opt);

  uint64_t begin() const { return begin_; }
  uint64_t size() const { return size_; }
  int64_t steps() const { return steps_; }

  // The parameters, shared without copying: later updates go to a new
  // buffer while any snapshot is alive.
  Buffer Snapshot() const;
  const float* data() const { return writable_; }

  // One optimizer step with gradient `grad` (size() floats).
  void Apply(const float* grad);

  // Overwrites parameters (tests).
  void Assign(std::span<const float> values);

  // Checkpoints: a copy of everything, and the way back.
  const std::vector<float>& state() const { return state_; }
  // Replaces parameters, optimizer state and update count; sizes must match.
  Status Restore(std::span<const float> params, std::span<const float> state, int64_t steps);

 private:
  void MakeWritable();

  const Optimizer* const opt_;
  const uint64_t begin_;
  const uint64_t size_;
  Buffer params_;
  float* writable_ = nullptr;
  // Snapshots of params_ still alive. A snapshot's release (on whatever
  // thread drops it, e.g. a socket's) is a release store the next update's
  // acquire load pairs with: reusing the buffer then happens after every
  // read of it (shared_ptr::use_count is a relaxed load and would not say so).
  std::shared_ptr<std::atomic<int64_t>> views_;
  std::vector<float> state_;
  int64_t steps_ = 0;
};

class SparseShard {
 public:
  SparseShard(const TableSpec& spec, const Optimizer* opt);

  uint32_t dim() const { return dim_; }
  size_t num_rows() const { return keys_.size(); }

  // Copies the rows of `keys` into out (keys.size() * dim floats), creating
  // missing rows with the initializer.
  void Gather(std::span<const uint64_t> keys, float* out);
  // One optimizer step on the row of `key` with gradient `grad` (dim floats).
  void Apply(uint64_t key, const float* grad);
  // Apply(keys[i], grads + i * dim) for i = 0, 1, ... in order, bit for bit
  // (repeated keys included), at a fraction of the cost on a table larger
  // than the cache: the lookups and the row updates of later keys are
  // prefetched, new rows are made in one go, and the optimizer is called
  // once (Optimizer::UpdateRows) rather than once per key.
  void ApplyBatch(std::span<const uint64_t> keys, const float* grads);
  // The row of `key` if it exists (tests), else nullptr.
  const float* Find(uint64_t key) const;
  int64_t RowSteps(uint64_t key) const;

  // Checkpoints: every row, and the way back (replacing all rows).
  const std::vector<uint64_t>& keys() const { return keys_; }
  const std::vector<float>& values() const { return values_; }
  const std::vector<float>& state() const { return state_; }
  const std::vector<int64_t>& row_steps() const { return steps_; }
  Status Restore(std::vector<uint64_t> keys, std::vector<float> values, std::vector<float> state,
                 std::vector<int64_t> row_steps);

 private:
  uint32_t Row(uint64_t key);
  // rows_[i] = the row of keys[i], created if missing.
  void ResolveRows(std::span<const uint64_t> keys);
  // Sizes values_, state_ and steps_ for keys_ and initializes the rows from
  // `first` on (those keys_ just appended).
  void InitRows(size_t first);

  const Optimizer* const opt_;
  const TableSpec spec_;
  const uint32_t dim_;
  const int slots_;
  FlatMap index_;  // key -> row
  std::vector<uint64_t> keys_;
  std::vector<float> values_;  // rows * dim
  std::vector<float> state_;   // rows * dim * slots, slot-major within a row
  std::vector<int64_t> steps_;
  std::vector<uint32_t> rows_;  // scratch of ResolveRows, kept to reuse its memory
};

}  // namespace distopt

#endif  // DISTOPT_KV_SHARD_H_
