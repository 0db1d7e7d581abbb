#include "kv/bsp_aggregator.h"

#include <algorithm>

#include "base/flat_map.h"
#include "base/vector_ops.h"

namespace distopt {

BspAggregator::AddResult BspAggregator::Add(int64_t clock, std::span<const uint32_t> ranks,
                                            const Message& push) {
  Clock& c = pending_[clock];
  if (c.from.empty()) {
    c.from.assign(num_workers_, false);
    c.pushes.resize(num_workers_);
    c.kept_at.assign(num_workers_, 0);
  }
  // The pushes kept that name one of `ranks` (by the rank each is kept at).
  std::vector<uint32_t> overlapped;
  for (uint32_t r : ranks) {
    if (c.from[r]) overlapped.push_back(c.kept_at[r]);
  }
  if (overlapped.size() == ranks.size()) return kDuplicate;  // nothing new
  if (!overlapped.empty()) {
    // Replaced only if it holds every rank of the pushes it overlaps.
    for (uint32_t r = 0; r < num_workers_; ++r) {
      if (c.from[r] && !std::binary_search(ranks.begin(), ranks.end(), r) &&
          std::find(overlapped.begin(), overlapped.end(), c.kept_at[r]) != overlapped.end()) {
        return kDuplicate;
      }
    }
    for (uint32_t r : ranks) {
      if (!c.from[r]) continue;
      c.pushes[c.kept_at[r]] = Message();
      c.from[r] = false;
      --c.count;
    }
  }
  for (uint32_t r : ranks) {
    c.from[r] = true;
    c.kept_at[r] = ranks.front();
  }
  c.pushes[ranks.front()] = push;  // shares the received buffers
  c.count += static_cast<uint32_t>(ranks.size());
  return kAdded;
}

bool BspAggregator::Complete(int64_t clock, const std::vector<bool>& live) const {
  auto it = pending_.find(clock);
  if (it == pending_.end()) return false;
  for (uint32_t r = 0; r < live.size(); ++r) {
    if (live[r] && (r >= it->second.from.size() || !it->second.from[r])) return false;
  }
  return true;
}

std::vector<bool> BspAggregator::Pushed(int64_t clock) const {
  auto it = pending_.find(clock);
  return it == pending_.end() ? std::vector<bool>() : it->second.from;
}

BspAggregator::Clock BspAggregator::Take(int64_t clock) {
  auto it = pending_.find(clock);
  if (it == pending_.end()) return Clock();
  Clock c = std::move(it->second);
  pending_.erase(it);
  return c;
}

namespace {

MeanGradient SparseMean(uint32_t dim, const BspAggregator::Clock& c) {
  MeanGradient g;
  if (c.count == 1) {
    for (const Message& p : c.pushes) {
      if (p.keys.empty()) continue;
      g.keys_buffer = p.keys;
      g.values_buffer = p.values;
    }
  } else {
    FlatMap row;
    size_t total = 0;
    for (const Message& p : c.pushes) total += p.keys.as<uint64_t>().size();
    row.Reserve(total);  // no rehash while merging (it grew 16 -> 256k slots every step)
    std::vector<uint64_t> keys;
    std::vector<float> sum;
    keys.reserve(total);
    sum.reserve(total * dim);
    for (const Message& p : c.pushes) {
      auto pk = p.keys.as<uint64_t>();
      const float* v = p.values.as<float>().data();
      for (size_t i = 0; i < pk.size(); ++i) {
        auto [slot, fresh] = row.Insert(pk[i], static_cast<uint32_t>(keys.size()));
        if (fresh) {
          keys.push_back(pk[i]);
          sum.insert(sum.end(), v + i * dim, v + (i + 1) * dim);
        } else {
          float* dst = sum.data() + static_cast<size_t>(*slot) * dim;
          for (uint32_t j = 0; j < dim; ++j) dst[j] += v[i * dim + j];
        }
      }
    }
    const float scale = 1.0f / static_cast<float>(c.count);
    for (float& x : sum) x *= scale;
    g.keys_buffer = Buffer::FromVector(std::move(keys));
    g.values_buffer = Buffer::FromVector(std::move(sum));
  }
  g.keys = g.keys_buffer.as<uint64_t>();
  g.values = g.values_buffer.as<float>().data();
  return g;
}

}  // namespace

MeanGradient MeanOf(const TableSpec& spec, size_t dense_size, const BspAggregator::Clock& c,
                    bool own_buffers, std::vector<float>* scratch) {
  if (spec.sparse) return SparseMean(spec.dim, c);
  MeanGradient g;
  std::vector<const Message*> in;  // the pushes with values, in rank order
  std::vector<const float*> grads;
  for (const Message& p : c.pushes) {
    if (p.values.empty()) continue;
    in.push_back(&p);
    grads.push_back(p.values.as<float>().data());
  }
  if (in.empty()) return g;
  if (in.size() == 1 && c.count == 1) {
    // One worker: its push is the mean, no copy.
    g.values = grads[0];
    if (own_buffers) g.values_buffer = in[0]->values;
    return g;
  }
  float* out = nullptr;
  if (own_buffers) {
    uint8_t* bytes = nullptr;
    g.values_buffer = Buffer::Allocate(dense_size * sizeof(float), &bytes);
    out = reinterpret_cast<float*>(bytes);
  } else {
    scratch->resize(dense_size);
    out = scratch->data();
  }
  const float scale = 1.0f / static_cast<float>(c.count);
  SumScaled(grads, dense_size, scale, out);  // in rank order: bit-reproducible
  g.values = out;
  return g;
}

}  // namespace distopt
