#include "data/dataset.h"

namespace distopt {

Batch RangeBatch(const Dataset& data, size_t begin, size_t end, std::vector<uint32_t>* storage) {
  if (end > data.num_rows) end = data.num_rows;
  if (begin > end) begin = end;
  storage->resize(end - begin);
  for (size_t i = begin; i < end; ++i) (*storage)[i - begin] = static_cast<uint32_t>(i);
  return Batch{&data, std::span<const uint32_t>(storage->data(), storage->size())};
}

}  // namespace distopt
