// Float array kernels shared by the layers that aggregate gradients. Written
// in the block shape GCC vectorizes at -O2 (see optim/vectorize.h for why a
// plain loop is not: the "very cheap" cost model refuses loops that need a
// scalar epilogue). Pure functions; thread-safe.
#ifndef DISTOPT_BASE_VECTOR_OPS_H_
#define DISTOPT_BASE_VECTOR_OPS_H_

#include <cstddef>
#include <span>

namespace distopt {

// out[i] = scale * (in[0][i] + in[1][i] + ... ) for i in [0, n), summed in
// the order of `in` (so the result does not depend on anything else). `out`
// may be one of the inputs only if it is in[0]. At least one input.
void SumScaled(std::span<const float* const> in, size_t n, float scale, float* out);

}  // namespace distopt

#endif  // DISTOPT_BASE_VECTOR_OPS_H_
