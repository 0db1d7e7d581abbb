// Internal to the optim layer: the loop shape every update kernel uses so that
// GCC vectorizes it at -O2. Header-only, no state; thread-safe.
//
// Why not a plain `for (i = 0; i < n; ++i)`: since GCC 12, -O2 vectorizes with
// the "very cheap" cost model, which refuses any loop that would need a scalar
// epilogue, i.e. every loop whose trip count is not a known multiple of the
// vector width. Splitting the range into fixed blocks of kVectorBlock gives
// GCC an inner loop it does accept (16 floats: one AVX-512 register, two AVX
// or four SSE ones); the remainder, under one block, runs scalar. The model
// also refuses runtime alias checks, and GCC drops the kernels' __restrict
// once they are inlined into Update, hence `ivdep` on the inner loop. The
// layer is built with -fno-math-errno (else sqrt is a call per element).
#ifndef DISTOPT_OPTIM_VECTORIZE_H_
#define DISTOPT_OPTIM_VECTORIZE_H_

#include <cstddef>

namespace distopt::optim_internal {

inline constexpr size_t kVectorBlock = 16;

// Calls body(i) for every i in [0, n). body(i) must touch only element i of
// its arrays and the arrays must not overlap: the block runs in any order.
template <typename Body>
inline void ForEachIndex(size_t n, const Body& body) {
  size_t i = 0;
  for (; i + kVectorBlock <= n; i += kVectorBlock) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC ivdep
#endif
    for (size_t j = 0; j < kVectorBlock; ++j) body(i + j);
  }
  for (; i < n; ++i) body(i);
}

}  // namespace distopt::optim_internal

#endif  // DISTOPT_OPTIM_VECTORIZE_H_
