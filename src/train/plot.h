// WritePlots: turns a run folder's metrics.jsonl into standalone SVG charts a
// user opens in a browser (loss, and each test metric, against wall time and
// against epochs). The SVG is written by hand, with no plotting library, and
// each file is replaced atomically so a browser that reloads while a run is
// still going never sees half a chart. Stateless; safe from any thread (two
// threads must not write plots into the same folder at once).
//
//   std::vector<std::string> written;
//   RETURN_IF_ERROR(WritePlots(run_dir + "/metrics.jsonl", run_dir + "/plots", &written,
//                              "fashion_mnist"));
//   for (const std::string& path : written) log.Info("plot: ", path);
#ifndef DISTOPT_TRAIN_PLOT_H_
#define DISTOPT_TRAIN_PLOT_H_

#include <string>
#include <vector>

#include "distopt/status.h"

namespace distopt {

// Reads `metrics_jsonl_path` and writes into `out_dir` (created if missing):
//   loss_vs_time.svg, loss_vs_epoch.svg      train loss, test loss overlaid
//   <m>_vs_time.svg, <m>_vs_epoch.svg        for each test metric m the evals
//                                            carry: accuracy, auc, rmse
// A chart with no points is not written. Lines that are not JSON objects
// (garbage, a truncated last line of a file still being written) and unknown
// record types or fields are skipped. `title` (the run's name) heads every
// chart when not empty. The paths written are appended to `written` (may be
// null). Errors: NotFound when the metrics file is missing, or the I/O error
// of reading it or of writing a chart.
Status WritePlots(const std::string& metrics_jsonl_path, const std::string& out_dir,
                  std::vector<std::string>* written, const std::string& title = {});

// Axis ticks at "nice" values: multiples of 1, 2 or 5 times a power of ten,
// all inside [lo, hi], as close to `target` of them as those steps allow
// (ties go to the larger step). E.g. [0, 0.83] -> 0, 0.2, 0.4, 0.6, 0.8.
// Exposed for tests. A degenerate range (lo == hi) is widened around lo.
struct Ticks {
  double step = 1;
  std::vector<double> values;
};
Ticks NiceTicks(double lo, double hi, int target = 6);

}  // namespace distopt

#endif  // DISTOPT_TRAIN_PLOT_H_
