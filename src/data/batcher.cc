#include "data/batcher.h"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

namespace distopt {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Uniform in [0, bound) by rejection: unbiased, and defined by this code
// rather than by the standard library's distribution classes.
uint64_t UniformBelow(std::mt19937_64* rng, uint64_t bound) {
  const uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
  while (true) {
    const uint64_t x = (*rng)();
    if (x >= threshold) return x % bound;
  }
}

}  // namespace

std::mt19937_64 ShareRng(uint64_t seed, int epoch, int share) {
  return EpochRng(SplitMix64(seed ^ SplitMix64(0x5eed0000ULL + static_cast<uint64_t>(share))),
                  epoch);
}

void DeterministicShuffle(std::vector<uint32_t>* v, std::mt19937_64* rng) {
  for (size_t i = v->size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(UniformBelow(rng, i));
    std::swap((*v)[i - 1], (*v)[j]);
  }
}

std::mt19937_64 EpochRng(uint64_t seed, int epoch) {
  // Mixing (rather than seed + epoch) keeps (seed, epoch+1) and (seed+1,
  // epoch) from giving the same order.
  return std::mt19937_64(SplitMix64(seed ^ SplitMix64(static_cast<uint64_t>(epoch))));
}

namespace {

Status CheckShares(const Dataset& data, const BatchOptions& o) {
  if (o.share_rows.size() != o.shards.size()) {
    return InvalidArgumentError("batch iterator: expected a row count per shard, found " +
                                std::to_string(o.share_rows.size()) + " for " +
                                std::to_string(o.shards.size()) + " shards");
  }
  size_t total = 0;
  size_t smallest = SIZE_MAX;
  for (size_t n : o.share_rows) {
    total += n;
    smallest = std::min(smallest, n);
  }
  if (total != data.num_rows) {
    return InvalidArgumentError("batch iterator: the shares hold " + std::to_string(total) +
                                " rows, the dataset " + std::to_string(data.num_rows));
  }
  if (o.global_order && o.steps_per_epoch * o.batch_size > smallest) {
    return InvalidArgumentError("batch iterator: " + std::to_string(o.steps_per_epoch) +
                                " steps of " + std::to_string(o.batch_size) +
                                " rows, but a share holds " + std::to_string(smallest));
  }
  return Status::Ok();
}

}  // namespace

Result<BatchIterator> BatchIterator::Create(const Dataset* data, BatchOptions options) {
  if (data == nullptr) {
    return InvalidArgumentError("batch iterator: expected a dataset, found null");
  }
  // Both caps are far above any real use and keep every size computed from
  // them (batch_size * num_shards, n + batch_size) free of overflow.
  constexpr size_t kMaxBatch = size_t{1} << 32;
  constexpr int kMaxShards = 1 << 20;
  if (options.batch_size == 0 || options.batch_size > kMaxBatch) {
    return InvalidArgumentError("batch iterator: expected batch_size in [1, 2^32], found " +
                                std::to_string(options.batch_size));
  }
  if (options.num_shards < 1 || options.num_shards > kMaxShards) {
    return InvalidArgumentError("batch iterator: expected num_shards in [1, 2^20], found " +
                                std::to_string(options.num_shards));
  }
  if (data->num_rows > std::numeric_limits<uint32_t>::max()) {
    return InvalidArgumentError("batch iterator: expected at most 2^32-1 rows, found " +
                                std::to_string(data->num_rows));
  }
  std::vector<int>& shards = options.shards;
  if (!options.share_rows.empty() && !std::is_sorted(shards.begin(), shards.end())) {
    return InvalidArgumentError("batch iterator: expected the shares' shard ids ascending");
  }
  if (shards.empty()) {
    for (int s = 0; s < options.num_shards; ++s) shards.push_back(s);
  }
  std::sort(shards.begin(), shards.end());
  for (size_t i = 0; i < shards.size(); ++i) {
    if (shards[i] < 0 || shards[i] >= options.num_shards) {
      return InvalidArgumentError("batch iterator: expected shard ids in [0, " +
                                  std::to_string(options.num_shards) + "), found " +
                                  std::to_string(shards[i]));
    }
    if (i > 0 && shards[i] == shards[i - 1]) {
      return InvalidArgumentError("batch iterator: expected distinct shard ids, found " +
                                  std::to_string(shards[i]) + " twice");
    }
  }
  if (!options.share_rows.empty()) RETURN_IF_ERROR(CheckShares(*data, options));
  BatchIterator it(data, std::move(options));
  it.StartEpoch(0);
  return it;
}

BatchIterator::BatchIterator(const Dataset* data, BatchOptions options)
    : data_(data), options_(std::move(options)) {
  if (options_.global_order) return;
  if (shares_mode()) {
    rows_.resize(data_->num_rows);
    for (size_t r = 0; r < rows_.size(); ++r) rows_[r] = static_cast<uint32_t>(r);
    return;
  }
  // Strided shards: sizes differ by at most one row and every shard sees the
  // whole file's mix, which matters for files sorted by label or by time (a
  // contiguous cut would give one worker all the zeros).
  const size_t s = static_cast<size_t>(options_.num_shards);
  std::vector<bool> owned(s, false);
  for (int shard : options_.shards) owned[static_cast<size_t>(shard)] = true;
  size_t count = 0;
  for (int shard : options_.shards) {
    const auto sh = static_cast<size_t>(shard);
    count += data_->num_rows / s + (sh < data_->num_rows % s ? 1 : 0);
  }
  rows_.reserve(count);
  for (size_t r = 0; r < data_->num_rows; ++r) {
    if (owned[r % s]) rows_.push_back(static_cast<uint32_t>(r));
  }
}

void BatchIterator::StartEpoch(int epoch) {
  epoch_ = epoch;
  pos_ = 0;
  if (shares_mode() && options_.global_order) {
    order_.resize(data_->num_rows);
    size_t at = 0;
    for (size_t i = 0; i < options_.shards.size(); ++i) {
      std::vector<uint32_t> share(options_.share_rows[i]);
      for (size_t r = 0; r < share.size(); ++r) share[r] = static_cast<uint32_t>(at + r);
      if (options_.shuffle) {
        std::mt19937_64 rng = ShareRng(options_.seed, epoch, options_.shards[i]);
        DeterministicShuffle(&share, &rng);
      }
      std::copy(share.begin(), share.end(), order_.begin() + static_cast<ptrdiff_t>(at));
      at += share.size();
    }
    return;
  }
  if (options_.global_order) {
    order_.resize(data_->num_rows);
    for (size_t r = 0; r < order_.size(); ++r) order_[r] = static_cast<uint32_t>(r);
  } else {
    order_ = rows_;
  }
  if (options_.shuffle) {
    std::mt19937_64 rng = EpochRng(options_.seed, epoch);
    DeterministicShuffle(&order_, &rng);
  }
}

size_t BatchIterator::batches_per_epoch() const {
  if (shares_mode() && options_.global_order) return options_.steps_per_epoch;
  const size_t b = options_.global_order
                       ? options_.batch_size * static_cast<size_t>(options_.num_shards)
                       : options_.batch_size;
  const size_t n = options_.global_order ? data_->num_rows : rows_.size();
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

size_t BatchIterator::rows_per_epoch() const {
  if (shares_mode() && options_.global_order) {
    return options_.steps_per_epoch * options_.batch_size * options_.shards.size();
  }
  if (!options_.global_order) {
    return options_.drop_last ? rows_.size() / options_.batch_size * options_.batch_size
                              : rows_.size();
  }
  size_t total = 0;
  const size_t steps = batches_per_epoch();
  for (int slot : options_.shards) {
    // Only the last step can be partial; the others give batch_size each.
    if (steps == 0) break;
    size_t begin = 0;
    size_t end = 0;
    SlotRange(steps - 1, slot, &begin, &end);
    total += (steps - 1) * options_.batch_size + (end - begin);
  }
  return total;
}

void BatchIterator::SlotRange(size_t step, int slot, size_t* begin, size_t* end) const {
  const size_t w = static_cast<size_t>(options_.num_shards);
  const size_t b = options_.batch_size;
  const size_t g = w * b;
  const size_t start = step * g;
  const size_t r = std::min(g, data_->num_rows - start);
  const auto s = static_cast<size_t>(slot);
  if (r == g) {
    *begin = start + s * b;
    *end = *begin + b;
  } else {
    *begin = start + s * r / w;
    *end = start + (s + 1) * r / w;
  }
}

bool BatchIterator::Next(Batch* batch) {
  if (options_.global_order) return NextGlobal(batch);
  if (pos_ >= order_.size()) return false;
  const size_t n = std::min(options_.batch_size, order_.size() - pos_);
  if (options_.drop_last && n < options_.batch_size) return false;
  *batch = Batch{data_, std::span<const uint32_t>(order_.data() + pos_, n)};
  pos_ += n;
  return true;
}

bool BatchIterator::NextShares(Batch* batch) {
  if (pos_ >= options_.steps_per_epoch) return false;
  const size_t b = options_.batch_size;
  const size_t k = pos_++;
  if (options_.shards.size() == 1) {
    *batch = Batch{data_, std::span<const uint32_t>(order_.data() + k * b, b)};
    return true;
  }
  scratch_.clear();
  size_t at = 0;
  for (size_t n : options_.share_rows) {
    const auto first = order_.begin() + static_cast<ptrdiff_t>(at + k * b);
    scratch_.insert(scratch_.end(), first, first + static_cast<ptrdiff_t>(b));
    at += n;
  }
  *batch = Batch{data_, std::span<const uint32_t>(scratch_.data(), scratch_.size())};
  return true;
}

bool BatchIterator::NextGlobal(Batch* batch) {
  if (shares_mode()) return NextShares(batch);
  if (pos_ >= batches_per_epoch()) return false;
  const size_t step = pos_++;
  size_t begin = 0;
  size_t end = 0;
  if (options_.shards.size() == 1) {
    SlotRange(step, options_.shards[0], &begin, &end);
    *batch = Batch{data_, std::span<const uint32_t>(order_.data() + begin, end - begin)};
    return true;
  }
  scratch_.clear();
  for (int slot : options_.shards) {
    SlotRange(step, slot, &begin, &end);
    scratch_.insert(scratch_.end(), order_.begin() + static_cast<ptrdiff_t>(begin),
                    order_.begin() + static_cast<ptrdiff_t>(end));
  }
  *batch = Batch{data_, std::span<const uint32_t>(scratch_.data(), scratch_.size())};
  return true;
}

}  // namespace distopt
