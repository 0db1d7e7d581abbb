// Parsing throughput of the text readers, without the file system: LibSVM
// text of 200k rows x 20 features (the shape of a click log), as
// bytes/s. The test of the same input (libsvm_reader_test.cc) checks what
// is parsed; this measures how fast. Single-threaded; run by hand:
//   build/<dir>/bench/bench_text_parse --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "data/libsvm_reader.h"

namespace distopt {
namespace {

// Rows of "label id:value ..." with 20 increasing feature ids each (a fixed
// LCG, so every run parses the same bytes).
std::string LibSvmText(size_t rows) {
  std::string text;
  text.reserve(rows * 200);
  char buf[32];
  uint64_t x = 12345;
  for (size_t r = 0; r < rows; ++r) {
    text += (r % 3 == 0) ? "1" : "0";
    uint64_t id = 0;
    for (int k = 0; k < 20; ++k) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      id += 1 + (x >> 45);
      const int n =
          std::snprintf(buf, sizeof(buf), " %llu:%.3f", static_cast<unsigned long long>(id),
                        static_cast<double>(x >> 54) / 1024.0);
      text.append(buf, static_cast<size_t>(n));
    }
    text += '\n';
  }
  return text;
}

void BM_ParseLibSvm(benchmark::State& state) {
  const std::string text = LibSvmText(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    Result<Dataset> d = ParseLibSvm(text, "bench.svm");
    if (!d.ok()) {
      state.SkipWithError(d.status().message().c_str());
      break;
    }
    benchmark::DoNotOptimize(d->col_idx.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(text.size()));
}
BENCHMARK(BM_ParseLibSvm)->Arg(200000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace distopt
