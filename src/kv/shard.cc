#include "kv/shard.h"

#include <cstring>

#include "base/init.h"

namespace distopt {

DenseShard::DenseShard(const TableSpec& spec, const DenseSlice& slice, const Optimizer* opt)
    : opt_(opt), begin_(slice.begin), size_(slice.size()) {
  uint8_t* p = nullptr;
  params_ = Buffer::Allocate(size_ * sizeof(float), &p);
  writable_ = reinterpret_cast<float*>(p);
  views_ = std::make_shared<std::atomic<int64_t>>(0);
  InitFill(spec.init, spec.id, begin_, writable_, size_);
  state_.resize(static_cast<size_t>(opt_->state_slots()) * size_);
  opt_->InitState(state_.data(), size_);
}

Buffer DenseShard::Snapshot() const {
  views_->fetch_add(1, std::memory_order_relaxed);
  std::shared_ptr<const void> view(writable_,
                                   [owner = params_.owner(), views = views_](const void*) {
                                     views->fetch_sub(1, std::memory_order_release);
                                   });
  return Buffer(std::move(view), writable_, size_ * sizeof(float));
}

void DenseShard::MakeWritable() {
  // Someone (a reply on its way to a socket or a worker) still views the
  // current buffer: write the update into a fresh one instead of under
  // their feet.
  if (views_->load(std::memory_order_acquire) > 0) {
    uint8_t* p = nullptr;
    Buffer fresh = Buffer::Allocate(size_ * sizeof(float), &p);
    std::memcpy(p, writable_, size_ * sizeof(float));
    params_ = std::move(fresh);
    writable_ = reinterpret_cast<float*>(p);
    views_ = std::make_shared<std::atomic<int64_t>>(0);
  }
}

void DenseShard::Apply(const float* grad) {
  MakeWritable();
  ++steps_;
  opt_->Update(writable_, grad, state_.data(), size_, steps_);
}

void DenseShard::Assign(std::span<const float> values) {
  MakeWritable();
  std::memcpy(writable_, values.data(), std::min<size_t>(values.size(), size_) * sizeof(float));
}

Status DenseShard::Restore(std::span<const float> params, std::span<const float> state,
                           int64_t steps) {
  if (params.size() != size_ || state.size() != state_.size()) {
    return DataLossError("checkpoint shard holds " + std::to_string(params.size()) +
                         " params and " + std::to_string(state.size()) +
                         " state floats; this slice needs " + std::to_string(size_) + " and " +
                         std::to_string(state_.size()));
  }
  MakeWritable();
  std::memcpy(writable_, params.data(), size_ * sizeof(float));
  std::copy(state.begin(), state.end(), state_.begin());
  steps_ = steps;
  return Status::Ok();
}

SparseShard::SparseShard(const TableSpec& spec, const Optimizer* opt)
    : opt_(opt), spec_(spec), dim_(spec.dim), slots_(opt->state_slots()) {}

uint32_t SparseShard::Row(uint64_t key) {
  auto [slot, inserted] = index_.Insert(key, static_cast<uint32_t>(keys_.size()));
  if (inserted) {
    keys_.push_back(key);
    InitRows(keys_.size() - 1);
  }
  return *slot;
}

void SparseShard::InitRows(size_t first) {
  const size_t n = keys_.size();
  // resize value-initializes (zeros) and grows geometrically.
  values_.resize(n * dim_);
  if (spec_.init.kind != InitKind::kZeros) {
    for (size_t r = first; r < n; ++r) {
      InitFill(spec_.init, spec_.id, keys_[r] * dim_, values_.data() + r * dim_, dim_);
    }
  }
  if (slots_ > 0) {
    const size_t row_state = static_cast<size_t>(dim_) * slots_;
    state_.resize(n * row_state);
    for (size_t r = first; r < n; ++r) opt_->InitState(state_.data() + r * row_state, dim_);
  }
  steps_.resize(n, 0);
}

// The index is far larger than the cache once a table is trained for a
// while, and a lookup is a cache miss: looking up kAhead keys ahead lets
// those misses overlap instead of running one after the other.
void SparseShard::ResolveRows(std::span<const uint64_t> keys) {
  constexpr size_t kAhead = 16;
  const size_t n = keys.size();
  const size_t first = keys_.size();
  rows_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) index_.Prefetch(keys[i + kAhead]);
    auto [slot, inserted] = index_.Insert(keys[i], static_cast<uint32_t>(keys_.size()));
    if (inserted) keys_.push_back(keys[i]);
    rows_[i] = *slot;
  }
  if (keys_.size() > first) InitRows(first);
}

void SparseShard::Gather(std::span<const uint64_t> keys, float* out) {
  ResolveRows(keys);
  constexpr size_t kAhead = 8;
  const size_t n = keys.size();
  const size_t row_bytes = dim_ * sizeof(float);
  for (size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) {
      // A row of 64 bytes may straddle two cache lines.
      const char* ahead = reinterpret_cast<const char*>(
          values_.data() + static_cast<size_t>(rows_[i + kAhead]) * dim_);
      __builtin_prefetch(ahead);
      __builtin_prefetch(ahead + row_bytes - 1);
    }
    std::memcpy(out + i * dim_, values_.data() + static_cast<size_t>(rows_[i]) * dim_, row_bytes);
  }
}

void SparseShard::Apply(uint64_t key, const float* grad) {
  uint32_t r = Row(key);
  float* state = slots_ > 0 ? state_.data() + static_cast<size_t>(r) * dim_ * slots_ : nullptr;
  opt_->Update(values_.data() + static_cast<size_t>(r) * dim_, grad, state, dim_, ++steps_[r]);
}

void SparseShard::ApplyBatch(std::span<const uint64_t> keys, const float* grads) {
  ResolveRows(keys);
  opt_->UpdateRows(values_.data(), slots_ > 0 ? state_.data() : nullptr, steps_.data(),
                   rows_.data(), keys.size(), grads, dim_);
}

const float* SparseShard::Find(uint64_t key) const {
  const uint32_t* row = index_.Find(key);
  return row == nullptr ? nullptr : values_.data() + static_cast<size_t>(*row) * dim_;
}

int64_t SparseShard::RowSteps(uint64_t key) const {
  const uint32_t* row = index_.Find(key);
  return row == nullptr ? 0 : steps_[*row];
}

}  // namespace distopt

namespace distopt {

Status SparseShard::Restore(std::vector<uint64_t> keys, std::vector<float> values,
                            std::vector<float> state, std::vector<int64_t> row_steps) {
  const size_t n = keys.size();
  if (values.size() != n * dim_ || state.size() != n * dim_ * static_cast<size_t>(slots_) ||
      row_steps.size() != n) {
    return DataLossError("checkpoint rows do not match the table's dim or optimizer");
  }
  index_ = FlatMap();
  index_.Reserve(n);
  for (size_t i = 0; i < n; ++i) index_.Insert(keys[i], static_cast<uint32_t>(i));
  keys_ = std::move(keys);
  values_ = std::move(values);
  state_ = std::move(state);
  steps_ = std::move(row_steps);
  return Status::Ok();
}

}  // namespace distopt
