// ReadIdx: reads the IDX format of MNIST and Fashion-MNIST (a u8 image file,
// magic 0x00000803, and a u8 label file, magic 0x00000801; plain or gzip)
// into a dense Dataset with one row of rows*cols pixels per image. Every
// header field and the exact file length are checked before anything is
// allocated. Stateless functions; safe to call from any thread.
//
//   ASSIGN_OR_RETURN(Dataset train,
//                    ReadIdx(dir + "/train-images-idx3-ubyte.gz",
//                            dir + "/train-labels-idx1-ubyte.gz", {}));
//   // train.num_rows == 60000, train.num_features == 784, labels 0..9,
//   // pixels scaled to [0, 1].
#ifndef DISTOPT_DATA_IDX_READER_H_
#define DISTOPT_DATA_IDX_READER_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "data/dataset.h"
#include "distopt/status.h"

namespace distopt {

struct IdxOptions {
  // Each pixel (0..255) is multiplied by this.
  float scale = 1.0f / 255.0f;
  // Upper bound on a file's (decompressed) size and on the pixel bytes a
  // header may promise; checked before any buffer is sized from it.
  size_t max_bytes = size_t{1} << 31;
};

// Reads and validates both files; error messages name the offending path.
Result<Dataset> ReadIdx(const std::string& images_path, const std::string& labels_path,
                        const IdxOptions& options = {});

// The same from bytes already in memory (uncompressed). The file reader and
// the fuzz target both go through here; the names are used in messages.
Result<Dataset> ParseIdx(std::string_view images, std::string_view labels,
                         std::string_view images_name, std::string_view labels_name,
                         const IdxOptions& options = {});

}  // namespace distopt

#endif  // DISTOPT_DATA_IDX_READER_H_
