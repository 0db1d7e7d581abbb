#include "ml/mlp.h"

#include <cmath>
#include <string>
#include <utility>

namespace distopt {

Result<std::unique_ptr<Mlp>> Mlp::Create(uint64_t num_features, const std::vector<int>& hidden,
                                         Activation activation, int classes, uint64_t seed) {
  for (size_t i = 0; i < hidden.size(); ++i) {
    if (hidden[i] <= 0) {
      return InvalidArgumentError("model.hidden[" + std::to_string(i) + "] is " +
                                  std::to_string(hidden[i]) + ", widths must be >= 1");
    }
  }
  if (classes < 2) {
    return InvalidArgumentError("model.num_classes must be >= 2 for mlp, got " +
                                std::to_string(classes));
  }
  std::vector<int64_t> widths;
  widths.push_back(static_cast<int64_t>(num_features));
  for (int h : hidden) widths.push_back(h);
  widths.push_back(classes);

  std::vector<TableDecl> tables;
  for (size_t l = 0; l + 1 < widths.size(); ++l) {
    const std::string prefix = "l" + std::to_string(l);
    const auto fan_in = static_cast<uint64_t>(widths[l]);
    const auto fan_out = static_cast<uint64_t>(widths[l + 1]);
    RETURN_IF_ERROR(ml_internal::CheckDenseTableSize(prefix + ".w", fan_in, fan_out));
    TableDecl w;
    w.name = prefix + ".w";
    w.size = fan_in * fan_out;
    w.init.kind = InitKind::kUniform;
    w.init.scale = static_cast<float>(std::sqrt(6.0 / static_cast<double>(fan_in + fan_out)));
    w.init.seed = seed;
    TableDecl b;
    b.name = prefix + ".b";
    b.size = fan_out;  // zeros
    tables.push_back(std::move(w));
    tables.push_back(std::move(b));
  }
  return std::unique_ptr<Mlp>(new Mlp(std::move(widths), activation, std::move(tables)));
}

Mlp::Mlp(std::vector<int64_t> widths, Activation activation, std::vector<TableDecl> tables)
    : DenseNet(std::move(widths), activation, WeightLayout::kOutMajor, std::move(tables)) {}

}  // namespace distopt
