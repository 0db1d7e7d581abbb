// ReadLibSvm: reads LibSVM / SVMlight text ("label idx:val idx:val ...", an
// optional "qid:N" after the label is ignored, '#' starts a comment, blank
// lines are skipped) into a sparse CSR Dataset. Feature ids are stored
// zero-based whatever the file uses. Strict by default: the first bad line is
// an InvalidArgument "file:line: expected X, found 'token'". The file may be
// gzip. Stateless functions; safe to call from any thread.
//
//   ReadStats stats;
//   ASSIGN_OR_RETURN(Dataset train,
//                    ReadLibSvm("ctr.train.svm", {.skip_bad_lines = true}, &stats));
//   if (stats.bad_lines > 0) log.Warn(stats.bad_lines, " bad lines, first: ", stats.first_error);
#ifndef DISTOPT_DATA_LIBSVM_READER_H_
#define DISTOPT_DATA_LIBSVM_READER_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "data/dataset.h"
#include "data/file_reader.h"
#include "distopt/status.h"

namespace distopt {

struct LibSvmOptions {
  // Feature ids in the file start at 0. Default: at 1, as LIBSVM writes them
  // (an id of 0 is then out of range). Either way the Dataset is zero-based.
  bool zero_based = false;
  // 0: the dataset gets 1 + the largest (zero-based) id seen. Otherwise ids
  // must be below this many features, and num_features is set to it.
  size_t num_features = 0;
  // Skip malformed lines, counting them in ReadStats, instead of failing.
  bool skip_bad_lines = false;
  // Upper bound on the (decompressed) file size.
  size_t max_file_bytes = size_t{1} << 34;
  // The number of the text's first line in its file, for messages (a chunk
  // of a file read in pieces).
  size_t first_line = 1;
};

Result<Dataset> ReadLibSvm(const std::string& path, const LibSvmOptions& options = {},
                           ReadStats* stats = nullptr);

// The same from text in memory; `name` stands for the file in messages. The
// file reader and the fuzz target both go through here.
Result<Dataset> ParseLibSvm(std::string_view text, std::string_view name,
                            const LibSvmOptions& options = {}, ReadStats* stats = nullptr);

}  // namespace distopt

#endif  // DISTOPT_DATA_LIBSVM_READER_H_
