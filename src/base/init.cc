#include "base/init.h"

#include <cmath>

namespace distopt {
namespace {

// SplitMix64 finalizer: a bijective mix with full avalanche, so consecutive
// indices give independent-looking bits.
inline uint64_t Mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in (0, 1), never exactly 0 (safe for log).
inline double Unit(uint64_t bits) {
  return (static_cast<double>(bits >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

}  // namespace

Result<InitKind> ParseInitKind(const std::string& name) {
  if (name == "zeros") return InitKind::kZeros;
  if (name == "constant") return InitKind::kConstant;
  if (name == "uniform") return InitKind::kUniform;
  if (name == "normal") return InitKind::kNormal;
  return InvalidArgumentError("unknown initializer '" + name +
                              "' (expected zeros, constant, uniform or normal)");
}

const char* InitKindName(InitKind kind) {
  switch (kind) {
    case InitKind::kZeros:
      return "zeros";
    case InitKind::kConstant:
      return "constant";
    case InitKind::kUniform:
      return "uniform";
    case InitKind::kNormal:
      return "normal";
  }
  return "?";
}

float InitValue(const InitSpec& spec, uint32_t table_id, uint64_t index) {
  switch (spec.kind) {
    case InitKind::kZeros:
      return 0.0f;
    case InitKind::kConstant:
      return spec.scale;
    case InitKind::kUniform: {
      uint64_t h = Mix(spec.seed ^ Mix(table_id ^ Mix(index)));
      return static_cast<float>((2.0 * Unit(h) - 1.0) * spec.scale);
    }
    case InitKind::kNormal: {
      uint64_t h1 = Mix(spec.seed ^ Mix(table_id ^ Mix(index)));
      uint64_t h2 = Mix(h1);
      double r = std::sqrt(-2.0 * std::log(Unit(h1)));
      return static_cast<float>(r * std::cos(6.283185307179586 * Unit(h2)) * spec.scale);
    }
  }
  return 0.0f;
}

void InitFill(const InitSpec& spec, uint32_t table_id, uint64_t first, float* out, uint64_t n) {
  if (spec.kind == InitKind::kZeros) {
    for (uint64_t i = 0; i < n; ++i) out[i] = 0.0f;
    return;
  }
  for (uint64_t i = 0; i < n; ++i) out[i] = InitValue(spec, table_id, first + i);
}

}  // namespace distopt
