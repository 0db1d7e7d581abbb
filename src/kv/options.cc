#include "kv/options.h"

namespace distopt {

const char* ConsistencyName(Consistency c) {
  switch (c) {
    case Consistency::kBsp:
      return "bsp";
    case Consistency::kSsp:
      return "ssp";
    case Consistency::kAsp:
      return "asp";
  }
  return "?";
}

Result<Consistency> ParseConsistency(const std::string& s) {
  if (s == "bsp") return Consistency::kBsp;
  if (s == "ssp") return Consistency::kSsp;
  if (s == "asp") return Consistency::kAsp;
  return InvalidArgumentError("unknown consistency '" + s + "' (expected bsp, ssp or asp)");
}

}  // namespace distopt
