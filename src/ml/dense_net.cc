#include "ml/dense_net.h"

#include <cmath>
#include <cstring>
#include <utility>

namespace distopt {
namespace {

using ml_internal::ConstRowMap;
using ml_internal::RowMap;
using ml_internal::RowMatrix;
using RowVectorMap = Eigen::Map<Eigen::RowVectorXf>;
using ConstRowVectorMap = Eigen::Map<const Eigen::RowVectorXf>;

// d * relu'(a) given the relu output a >= 0: d where a > 0, else 0. Eigen's
// select() is scalar-only in 3.4 (it cost 15% of a 784-128-10 step); this
// functor gives it a packet path: compare, then mask with a bitwise and.
struct ReluBackwardOp {
  float operator()(float d, float a) const { return a > 0.0f ? d : 0.0f; }
  template <typename Packet>
  Packet packetOp(const Packet& d, const Packet& a) const {
    namespace ei = Eigen::internal;
    return ei::pand(ei::pcmp_lt(ei::pzero(a), a), d);
  }
};

using ConstColMap = Eigen::Map<const Eigen::MatrixXf>;
using ColMap = Eigen::Map<Eigen::MatrixXf>;

// Calls fn(W) with W the (fan_in x fan_out) matrix stored at p in `layout`:
// one code path for both storage orders, Eigen picks the kernels.
template <typename Fn>
void WithMatrix(WeightLayout layout, const float* p, int64_t fan_in, int64_t fan_out, Fn&& fn) {
  if (layout == WeightLayout::kOutMajor) {
    fn(ConstColMap(p, fan_in, fan_out));
  } else {
    fn(ConstRowMap(p, fan_in, fan_out));
  }
}
template <typename Fn>
void WithMatrix(WeightLayout layout, float* p, int64_t fan_in, int64_t fan_out, Fn&& fn) {
  if (layout == WeightLayout::kOutMajor) {
    ColMap m(p, fan_in, fan_out);
    fn(m);
  } else {
    RowMap m(p, fan_in, fan_out);
    fn(m);
  }
}

// out = X_batch W for sparse (CSR) input: O(nnz * fan_out).
template <typename W>
void SparseTimes(const Batch& batch, const W& w, RowMatrix* out) {
  const Dataset& d = *batch.data;
  out->setZero();
  for (size_t i = 0; i < batch.size(); ++i) {
    const uint32_t r = batch.rows[i];
    auto row = out->row(static_cast<Eigen::Index>(i));
    for (uint64_t p = d.row_ptr[r]; p < d.row_ptr[r + 1]; ++p) {
      row.noalias() += d.col_val[p] * w.row(static_cast<Eigen::Index>(d.col_idx[p]));
    }
  }
}

// gw = X_batch^T delta for sparse input.
template <typename G>
void SparseTransposeTimes(const Batch& batch, const RowMatrix& delta, G* gw) {
  const Dataset& d = *batch.data;
  gw->setZero();
  for (size_t i = 0; i < batch.size(); ++i) {
    const uint32_t r = batch.rows[i];
    auto drow = delta.row(static_cast<Eigen::Index>(i));
    for (uint64_t p = d.row_ptr[r]; p < d.row_ptr[r + 1]; ++p) {
      gw->row(static_cast<Eigen::Index>(d.col_idx[p])).noalias() += d.col_val[p] * drow;
    }
  }
}

}  // namespace
}  // namespace distopt

template <>
struct Eigen::internal::functor_traits<distopt::ReluBackwardOp> {
  enum { Cost = 2, PacketAccess = true };
};

namespace distopt {

Result<Activation> ParseActivation(const std::string& name) {
  if (name == "relu") return Activation::kRelu;
  if (name == "tanh") return Activation::kTanh;
  if (name == "sigmoid") return Activation::kSigmoid;
  return InvalidArgumentError("model.activation '" + name +
                              "' is unknown (expected relu, tanh or sigmoid)");
}

const char* ActivationName(Activation a) {
  switch (a) {
    case Activation::kRelu:
      return "relu";
    case Activation::kTanh:
      return "tanh";
    case Activation::kSigmoid:
      return "sigmoid";
  }
  return "?";
}

DenseNet::DenseNet(std::vector<int64_t> widths, Activation activation, WeightLayout layout,
                   std::vector<TableDecl> tables)
    : widths_(std::move(widths)),
      activation_(activation),
      layout_(layout),
      tables_(std::move(tables)),
      acts_(widths_.size() - 1),
      deltas_(widths_.size() - 1) {}

void DenseNet::CollectKeys(const Batch&, std::vector<std::vector<uint64_t>>* keys) const {
  keys->assign(tables_.size(), {});
}

ConstRowMap DenseNet::DenseInput(const Batch& batch) {
  const Dataset& d = *batch.data;
  const auto b = static_cast<Eigen::Index>(batch.size());
  const auto f = static_cast<Eigen::Index>(d.num_features);
  bool contiguous = true;
  for (size_t i = 1; i < batch.size() && contiguous; ++i) {
    contiguous = batch.rows[i] == batch.rows[0] + i;
  }
  if (contiguous && b > 0) return ConstRowMap(d.DenseRow(batch.rows[0]), b, f);
  x_.resize(b, f);
  const size_t row_bytes = d.num_features * sizeof(float);
  for (Eigen::Index i = 0; i < b; ++i) {
    std::memcpy(x_.row(i).data(), d.DenseRow(batch.rows[static_cast<size_t>(i)]), row_bytes);
  }
  return ConstRowMap(x_.data(), b, f);
}

// One pass over the layer output: bias broadcast and activation fused, in
// place, vectorized by Eigen (tanh and logistic have packet versions).
void DenseNet::BiasActivation(const float* bias, RowMatrix* a) const {
  ConstRowVectorMap b(bias, a->cols());
  auto z = a->array().rowwise() + b.array();
  switch (activation_) {
    case Activation::kRelu:
      a->array() = z.max(0.0f);
      break;
    case Activation::kTanh:
      a->array() = z.tanh();
      break;
    case Activation::kSigmoid:
      a->array() = z.logistic();
      break;
  }
}

Result<float> DenseNet::Forward(const Batch& batch, const ParamSet& params, bool with_labels) {
  RETURN_IF_ERROR(ml_internal::CheckBatch(batch, /*allow_empty=*/!with_labels));
  RETURN_IF_ERROR(ml_internal::CheckParams(tables_, params));
  RETURN_IF_ERROR(ml_internal::CheckFeaturesFit(batch, static_cast<uint64_t>(widths_[0])));
  const int classes = num_outputs();
  if (with_labels) RETURN_IF_ERROR(ml_internal::CheckClassLabels(batch, classes));
  const Dataset& d = *batch.data;
  const auto nb = static_cast<Eigen::Index>(batch.size());
  const int layers = num_layers();
  for (int l = 0; l < layers; ++l) {
    const float* bias = params.values[2 * l + 1].data();
    RowMatrix& a = acts_[l];
    a.resize(nb, widths_[l + 1]);
    if (l == 0 && !d.sparse) input_ = DenseInput(batch).data();
    WithMatrix(layout_, params.values[2 * l].data(), widths_[l], widths_[l + 1],
               [&](const auto& w) {
                 if (l > 0) {
                   a.noalias() = acts_[l - 1] * w;
                 } else if (d.sparse) {
                   SparseTimes(batch, w, &a);
                 } else {
                   a.noalias() = ConstRowMap(input_, nb, widths_[0]) * w;
                 }
               });
    if (l + 1 < layers) {
      BiasActivation(bias, &a);
      continue;
    }
    // Output layer: bias, then a row-wise softmax computed from shifted
    // logits (max subtracted) so exp never overflows; the cross-entropy is
    // log(sum exp) - shifted logit of the label, exact even when P underflows.
    a.array().rowwise() += ConstRowVectorMap(bias, classes).array();
    row_max_ = a.rowwise().maxCoeff();
    a.colwise() -= row_max_;
    double loss = 0.0;
    if (with_labels) {
      for (Eigen::Index i = 0; i < nb; ++i) {
        loss -= a(i, static_cast<Eigen::Index>(d.labels[batch.rows[static_cast<size_t>(i)]]));
      }
    }
    a.array() = a.array().exp();
    row_max_ = a.rowwise().sum();  // reused: the softmax denominators
    if (with_labels) {
      for (Eigen::Index i = 0; i < nb; ++i) loss += std::log(static_cast<double>(row_max_[i]));
    }
    a.array().colwise() /= row_max_.array();
    return nb > 0 ? static_cast<float>(loss / static_cast<double>(nb)) : 0.0f;
  }
  return 0.0f;  // unreachable: there is always an output layer
}

Result<float> DenseNet::ForwardBackward(const Batch& batch, const ParamSet& params,
                                        GradSet* grads) {
  ASSIGN_OR_RETURN(float loss, Forward(batch, params, /*with_labels=*/true));
  ml_internal::ResizeGrads(params, grads);
  const Dataset& d = *batch.data;
  const auto nb = static_cast<Eigen::Index>(batch.size());
  const int layers = num_layers();

  // dLoss/dlogits of the mean cross-entropy: (P - onehot(y)) / batch.
  const float inv_b = 1.0f / static_cast<float>(nb);
  deltas_[layers - 1] = acts_.back() * inv_b;
  for (Eigen::Index i = 0; i < nb; ++i) {
    deltas_[layers - 1](
        i, static_cast<Eigen::Index>(d.labels[batch.rows[static_cast<size_t>(i)]])) -= inv_b;
  }

  for (int l = layers - 1; l >= 0; --l) {
    const RowMatrix& delta = deltas_[l];
    RowVectorMap gb(grads->values[2 * l + 1].data(), widths_[l + 1]);
    gb.noalias() = delta.colwise().sum();
    WithMatrix(layout_, grads->values[2 * l].data(), widths_[l], widths_[l + 1], [&](auto& gw) {
      if (l > 0) {
        gw.noalias() = acts_[l - 1].transpose() * delta;
      } else if (d.sparse) {
        SparseTransposeTimes(batch, delta, &gw);
      } else {
        gw.noalias() = ConstRowMap(input_, nb, widths_[0]).transpose() * delta;
      }
    });
    if (grads->ready) {  // layer l is done with: its push may start
      grads->ready(2 * static_cast<size_t>(l) + 1);
      grads->ready(2 * static_cast<size_t>(l));
    }
    if (l == 0) break;  // no gradient for the input itself

    RowMatrix& prev = deltas_[l - 1];
    prev.resize(nb, widths_[l]);
    WithMatrix(layout_, params.values[2 * l].data(), widths_[l], widths_[l + 1],
               [&](const auto& w) { prev.noalias() = delta * w.transpose(); });
    // Through the activation, written in terms of its output a.
    const auto a = acts_[l - 1].array();
    switch (activation_) {
      case Activation::kRelu:
        prev.array() = prev.array().binaryExpr(a, ReluBackwardOp());
        break;
      case Activation::kTanh:
        prev.array() *= 1.0f - a.square();
        break;
      case Activation::kSigmoid:
        prev.array() *= a * (1.0f - a);
        break;
    }
  }
  return loss;
}

Status DenseNet::Predict(const Batch& batch, const ParamSet& params, Eigen::MatrixXf* out) {
  RETURN_IF_ERROR(Forward(batch, params, /*with_labels=*/false).status());
  *out = acts_.back();
  return Status::Ok();
}

}  // namespace distopt
