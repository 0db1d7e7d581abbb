// The saved model: every table's parameters after training (dense tables
// whole, sparse tables as the rows of the keys the data touches), in one
// versioned little-endian file ending with a CRC32C of everything before it.
// Written atomically (temp file, fsync, rename). `distopt eval` reloads it.
// Values; the functions are thread-safe.
//
//   SavedModel m;  m.tables.push_back({.name = "l0.w", .size = n, .values = w});
//   RETURN_IF_ERROR(SaveModel(run_dir + "/model.bin", m));
//   ASSIGN_OR_RETURN(SavedModel back, LoadModel(run_dir + "/model.bin"));
#ifndef DISTOPT_TRAIN_MODEL_FILE_H_
#define DISTOPT_TRAIN_MODEL_FILE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "base/env.h"
#include "distopt/status.h"

namespace distopt {

struct SavedTable {
  std::string name;
  bool sparse = false;
  uint64_t size = 0;           // dense floats
  uint32_t dim = 0;            // sparse row width
  std::vector<uint64_t> keys;  // sparse: ascending
  std::vector<float> values;   // dense: size; sparse: keys.size() * dim
};

struct SavedModel {
  int64_t step = 0;
  std::vector<SavedTable> tables;
};

// The file is written atomically through `env` (base/env.h).
Status SaveModel(const std::string& path, const SavedModel& model, Env* env = Env::Default());
Result<SavedModel> LoadModel(const std::string& path, uint64_t max_bytes = 1ull << 34);

}  // namespace distopt

#endif  // DISTOPT_TRAIN_MODEL_FILE_H_
