// Initializers for parameters. A value is a pure function of (seed, table id,
// global index), counter-based rather than drawn from a stream, so a dense
// table cut into any number of server slices, a sparse row created on first
// touch on any server, and a single-process reference model all start from
// bit-identical parameters. Stateless and thread-safe.
#ifndef DISTOPT_BASE_INIT_H_
#define DISTOPT_BASE_INIT_H_

#include <cstdint>
#include <string>

#include "distopt/status.h"

namespace distopt {

enum class InitKind : uint8_t {
  kZeros = 0,
  kConstant = 1,  // every value = scale
  kUniform = 2,   // U(-scale, scale)
  kNormal = 3,    // N(0, scale^2)
};

struct InitSpec {
  InitKind kind = InitKind::kZeros;
  float scale = 0.0f;
  uint64_t seed = 0;
};

Result<InitKind> ParseInitKind(const std::string& name);
const char* InitKindName(InitKind kind);

// The initial value of element `index` of table `table_id`. For sparse tables
// index = key * dim + j.
float InitValue(const InitSpec& spec, uint32_t table_id, uint64_t index);

// Fills out[0..n) with InitValue(spec, table_id, first + i).
void InitFill(const InitSpec& spec, uint32_t table_id, uint64_t first, float* out, uint64_t n);

}  // namespace distopt

#endif  // DISTOPT_BASE_INIT_H_
