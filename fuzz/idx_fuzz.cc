// libFuzzer target for the IDX reader: the input is cut into an images and a
// labels file (the first two bytes choose where); any bytes must give either
// an error naming one of them or a dataset of exactly the promised shape.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "data/idx_reader.h"

namespace {

void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace distopt;
  if (size < 2) return 0;
  const size_t rest = size - 2;
  const size_t split = (static_cast<size_t>(data[0]) << 8 | data[1]) % (rest + 1);
  const char* p = reinterpret_cast<const char*>(data + 2);
  std::string_view images(p, split);
  std::string_view labels(p + split, rest - split);

  // A small cap keeps the fuzzer's memory use bounded, and exercises the check.
  IdxOptions options{.scale = 1.0f, .max_bytes = 1 << 16};
  Result<Dataset> result = ParseIdx(images, labels, "img", "lbl", options);
  if (!result.ok()) {
    const std::string m = result.status().message();  // status() returns a copy
    Require(m.rfind("img: ", 0) == 0 || m.rfind("lbl: ", 0) == 0, "message names the file");
    return 0;
  }
  const Dataset& d = *result;
  Require(!d.sparse && d.num_rows > 0 && d.num_features > 0, "nonempty dense");
  Require(d.labels.size() == d.num_rows, "one label per image");
  Require(d.dense.size() == d.num_rows * d.num_features, "dense shape");
  Require(images.size() == 16 + d.dense.size() && labels.size() == 8 + d.num_rows, "exact sizes");
  for (size_t i = 0; i < d.dense.size(); ++i) {
    Require(d.dense[i] == static_cast<float>(static_cast<uint8_t>(images[16 + i])), "pixel value");
  }
  for (size_t i = 0; i < d.num_rows; ++i) {
    Require(d.labels[i] == static_cast<float>(static_cast<uint8_t>(labels[8 + i])), "label value");
  }
  return 0;
}
