#include "ml/softmax_regression.h"

#include <string>
#include <vector>

namespace distopt {
namespace {

std::vector<TableDecl> MakeTables(uint64_t num_features, int classes) {
  std::vector<TableDecl> t(2);
  t[0].name = "w";
  t[0].size = num_features * static_cast<uint64_t>(classes);
  t[1].name = "b";
  t[1].size = static_cast<uint64_t>(classes);
  return t;  // dense, zeros
}

}  // namespace

Result<std::unique_ptr<SoftmaxRegression>> SoftmaxRegression::Create(uint64_t num_features,
                                                                     int classes) {
  if (classes < 2) {
    return InvalidArgumentError("model.num_classes must be >= 2 for softmax_regression, got " +
                                std::to_string(classes));
  }
  RETURN_IF_ERROR(ml_internal::CheckDenseTableSize("w", num_features, classes));
  return std::unique_ptr<SoftmaxRegression>(new SoftmaxRegression(num_features, classes));
}

SoftmaxRegression::SoftmaxRegression(uint64_t num_features, int classes)
    : DenseNet({static_cast<int64_t>(num_features), classes}, Activation::kRelu,
               WeightLayout::kInMajor, MakeTables(num_features, classes)) {}

}  // namespace distopt
