// Parsing throughput of the text readers, without the file system: LibSVM
// text of 200k rows x 20 features (the shape of a click log), as
// bytes/s. The test of the same input (libsvm_reader_test.cc) checks what
// is parsed; this measures how fast. Single-threaded; run by hand:
//   build/<dir>/bench/bench_text_parse --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <string>

#include "data/data_test_util.h"
#include "data/libsvm_reader.h"

namespace distopt {
namespace {

void BM_ParseLibSvm(benchmark::State& state) {
  const std::string text = testing::SyntheticLibSvm(static_cast<size_t>(state.range(0)));
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
