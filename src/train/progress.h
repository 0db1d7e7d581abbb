// The one-line progress display of `distopt train` and the reader behind it:
// MetricsTail follows a run's growing metrics.jsonl (the workers append, the
// launcher polls) and folds each new record into a ProgressState, which
// RenderProgress turns into a line that fits the terminal. Values only; a
// MetricsTail is owned by the one thread that polls it (not thread-safe).
//
//   MetricsTail tail(run_dir + "/metrics.jsonl");
//   ProgressState state;
//   ASSIGN_OR_RETURN(std::vector<EvalRecord> evals, tail.Poll(&state));
//   for (const EvalRecord& e : evals) std::cout << "\r" << RenderEval(e, state) << "\n";
//   std::cout << "\r" << RenderProgress(state, terminal_columns) << std::flush;
#ifndef DISTOPT_TRAIN_PROGRESS_H_
#define DISTOPT_TRAIN_PROGRESS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "distopt/status.h"

namespace distopt {

// An "eval" record: the test metrics after (part of) an epoch. A metric the
// model does not report is absent.
struct EvalRecord {
  int64_t epoch = 0;  // 1-based
  int64_t step = 0;   // global step count when evaluated
  std::optional<double> elapsed_s;
  std::optional<double> test_loss, test_accuracy, test_auc, test_rmse;
};

// What the latest records say about a run. Zero / absent means "not known
// yet" (no start record, no train record).
struct ProgressState {
  // From the start record.
  int64_t epochs = 0;
  int64_t steps_per_epoch = 0;
  // From the latest train record (eval and done records advance them too).
  int64_t epoch = 0;  // 1-based, the epoch in progress
  int64_t step = 0;   // global steps done
  std::optional<double> loss;
  std::optional<double> samples_per_s;
  double elapsed_s = 0;
  std::optional<EvalRecord> last_eval;
  bool done = false;  // a "done" record was seen

  int64_t total_steps() const { return epochs * steps_per_epoch; }
};

// Folds one metrics.jsonl line into `state`. Returns the record when the line
// is an eval. Lines that are not JSON objects, unknown types and unknown or
// mistyped fields are ignored (a metrics file is read while it is written).
std::optional<EvalRecord> ApplyMetricsLine(std::string_view line, ProgressState* state);

// One line of at most `width` columns (no limit when width <= 0), e.g.
//   epoch 3/10 [=========>          ] 47% step 1103/2350 loss 0.412 41.2k samples/s ETA 0:37 | test
//   acc 86.1%
// The ETA assumes the rest of the run goes at the average pace so far. When
// the width is short the bar shrinks, then the least useful fields go
// (samples/s, step, test metric, loss), then the bar.
std::string RenderProgress(const ProgressState& state, int width);

// The line printed once per eval, e.g.
//   epoch 3/10 test loss 0.4123 acc 86.1% auc 0.912 (at 1:05)
std::string RenderEval(const EvalRecord& eval, const ProgressState& state);

// Reads the lines appended to a metrics file since the last Poll. Only
// complete lines (ending in '\n') are applied; a half-written last line is
// kept until its newline arrives. The file need not exist yet (Poll then
// finds nothing). If it shrinks or is replaced (a new run in the same
// folder), reading starts again from its beginning. A line longer than
// `max_line_bytes` is skipped rather than buffered.
class MetricsTail {
 public:
  explicit MetricsTail(std::string path, size_t max_line_bytes = size_t{1} << 20);

  // Applies the new complete lines to `state`; returns their eval records in
  // file order. Errors are I/O errors other than "file does not exist".
  Result<std::vector<EvalRecord>> Poll(ProgressState* state);

  // Bytes of the file consumed so far (including a kept partial line).
  uint64_t offset() const { return offset_; }

 private:
  const std::string path_;
  const size_t max_line_bytes_;
  uint64_t offset_ = 0;
  std::string partial_;         // bytes after the last newline read
  bool skipping_ = false;       // inside an overlong line: drop until newline
  uint64_t dev_ = 0, ino_ = 0;  // identity of the file being followed
};

}  // namespace distopt

#endif  // DISTOPT_TRAIN_PROGRESS_H_
