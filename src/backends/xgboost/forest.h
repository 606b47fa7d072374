#pragma once

// A native evaluator for XGBoost tree ensembles (gbtree), compiled from the
// JSON model libxgboost itself writes. It reproduces libxgboost 1.7's CPU
// prediction bit for bit: per row, margins start at the objective's base margin,
// each tree's leaf is added in float in tree order to its output group, and the
// objective's transform (sigmoid, softmax, argmax, exp, ...) follows in float.
//
// Why: a libxgboost predict call costs several microseconds of fixed overhead
// (JSON config parsing, proxy DMatrix, dispatch) even for two rows, which is
// most of an iris request. The XGBoost backend verifies at load that this
// evaluator agrees exactly with libxgboost on probe rows and otherwise keeps
// libxgboost's predictor, so answers never change, only their cost.
//
// Immutable after Compile: Predict is safe from any number of threads.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace osprey {

class Forest {
 public:
  // Builds the evaluator from a model in XGBoost's JSON format. Unimplemented
  // (with the reason) for models outside what it reproduces: boosters other
  // than gbtree, categorical splits, vector leaves, objectives it does not know.
  static absl::StatusOr<std::unique_ptr<Forest>> Compile(std::string_view model_json);

  int64_t num_features() const { return num_features_; }
  // Values per row in the output: num_class for multi:softprob, else 1.
  int64_t output_width() const { return output_width_; }
  size_t num_trees() const { return trees_.size(); }
  const std::string& objective() const { return objective_; }

  // rows: row-major [n, num_features], NaN = missing. out: [n, output_width].
  void Predict(const float* rows, int64_t n, float* out) const;

 private:
  struct Node {
    float value;      // split threshold, or the leaf value
    int32_t feature;  // -1 for a leaf
    int32_t left;
    int32_t right;
    int32_t missing;  // child taken for a missing value
  };
  enum class Transform { kIdentity, kSigmoid, kSoftmax, kArgmax, kExp, kHinge };

  Forest() = default;
  float TreeValue(size_t tree, const float* row) const;

  std::vector<Node> nodes_;          // all trees, each a contiguous range
  std::vector<uint32_t> trees_;      // root index of each tree in nodes_
  std::vector<uint32_t> groups_;     // output group of each tree
  int64_t num_features_ = 0;
  int64_t num_groups_ = 1;
  int64_t output_width_ = 1;
  float base_margin_ = 0;
  Transform transform_ = Transform::kIdentity;
  std::string objective_;
};

}  // namespace osprey
