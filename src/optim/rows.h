// Internal to the optim layer: the loop every rule's UpdateRows runs over the
// rows of a sparse table (the contract is on Optimizer::UpdateRows).
// Header-only, no state; thread-safe.
//
// Each rule splits its Update in two: Prepare(step), the scalars of a step
// (learning rate, bias corrections), and a kernel over one row with them.
// Update is kernel(Prepare(step)); ForEachRow calls the same two functions,
// so the batch is bit for bit the per-row calls. What it saves: the virtual
// call per row, Prepare for a step count it has just seen (a small cache;
// Adam's is two expm1 in double, more than its kernel on a 16-float row), and
// the cache misses, which are most of the time: a row is a few cache lines
// at a random place in a table of many megabytes, and its state and step
// count are two more. The rows kPrefetchRows ahead are prefetched so those
// misses overlap.
#ifndef DISTOPT_OPTIM_ROWS_H_
#define DISTOPT_OPTIM_ROWS_H_

#include <cstddef>
#include <cstdint>
#include <limits>

namespace distopt::optim_internal {

// About a memory latency's worth of row updates (10-20 ns each at dim 16).
inline constexpr size_t kPrefetchRows = 8;

// Prefetches, for writing, the cache lines of [p, p + bytes), at most the
// first four (past that the hardware prefetcher follows the row) and the last.
inline void PrefetchForWrite(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  const size_t head = bytes < 256 ? bytes : 256;
  for (size_t off = 0; off < head; off += 64) __builtin_prefetch(c + off, 1);
  if (bytes > 0) __builtin_prefetch(c + bytes - 1, 1);
}

// prepare(step) -> Scalars; kernel(w, g, state, n, const Scalars&) updates
// one row. Both must be what Update calls.
template <typename Prepare, typename Kernel>
inline void ForEachRow(float* params, float* state, int64_t* steps, const uint32_t* rows,
                       size_t num_rows, const float* grads, size_t dim, int slots,
                       const Prepare& prepare, const Kernel& kernel) {
  using Scalars = decltype(prepare(int64_t{1}));
  // Direct-mapped by step: a batch holds a few distinct step counts (new
  // rows all at 1, hot rows spread over a range), each prepared once or so.
  constexpr size_t kCache = 16;
  int64_t cached_step[kCache];
  Scalars cached[kCache];
  for (int64_t& s : cached_step) s = std::numeric_limits<int64_t>::min();

  const size_t state_floats = dim * static_cast<size_t>(slots);
  for (size_t i = 0; i < num_rows; ++i) {
    if (i + kPrefetchRows < num_rows) {
      const size_t ahead = rows[i + kPrefetchRows];
      PrefetchForWrite(params + ahead * dim, dim * sizeof(float));
      if (state_floats > 0) PrefetchForWrite(state + ahead * state_floats, state_floats * 4);
      __builtin_prefetch(steps + ahead, 1);
    }
    const size_t r = rows[i];
    const int64_t step = ++steps[r];
    const size_t c = static_cast<size_t>(step) % kCache;
    if (cached_step[c] != step) {
      cached[c] = prepare(step);
      cached_step[c] = step;
    }
    float* row_state = state_floats > 0 ? state + r * state_floats : nullptr;
    kernel(params + r * dim, grads + i * dim, row_state, dim, cached[c]);
  }
}

}  // namespace distopt::optim_internal

#endif  // DISTOPT_OPTIM_ROWS_H_
