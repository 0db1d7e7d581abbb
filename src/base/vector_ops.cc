#include "base/vector_ops.h"

#include <algorithm>

#include "base/simd.h"

namespace distopt {
namespace {

constexpr size_t kLanes = 16;    // one AVX-512 register of floats
constexpr size_t kBlock = 4096;  // an output block stays in L1 across the inputs

}  // namespace

DISTOPT_SIMD_CLONES
void SumScaled(std::span<const float* const> in, size_t n, float scale, float* out) {
  for (size_t b = 0; b < n; b += kBlock) {
    const size_t e = std::min(n, b + kBlock);
    const size_t vec_end = b + (e - b) / kLanes * kLanes;
    const float* first = in[0];
    if (out != first) std::copy(first + b, first + e, out + b);
    for (size_t k = 1; k < in.size(); ++k) {
      const float* x = in[k];
      size_t i = b;
      for (; i < vec_end; i += kLanes) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC ivdep
#endif
        for (size_t j = 0; j < kLanes; ++j) out[i + j] += x[i + j];
      }
      for (; i < e; ++i) out[i] += x[i];
    }
    if (scale != 1.0f) {
      size_t i = b;
      for (; i < vec_end; i += kLanes) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC ivdep
#endif
        for (size_t j = 0; j < kLanes; ++j) out[i + j] *= scale;
      }
      for (; i < e; ++i) out[i] *= scale;
    }
  }
}

}  // namespace distopt
