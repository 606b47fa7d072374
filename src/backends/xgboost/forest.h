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

  // The thresholds of every split, by feature (for probing the evaluator).
  std::vector<std::vector<float>> SplitThresholds() const;

  // rows: row-major [n, num_features], NaN = missing. out: [n, output_width].
  void Predict(const float* rows, int64_t n, float* out) const;

 private:
  // Each tree is stored as a perfect binary tree of its depth D, in heap
  // order: node i's children are 2i+1 and 2i+2, the 2^D leaves follow the
  // 2^D - 1 splits. A leaf above the bottom level is copied into every leaf
  // below it (the splits on the way are then irrelevant), so a walk is exactly
  // D branch-free steps, and several rows walk one tree in lockstep.
  struct Tree {
    uint32_t offset;  // first split in the split arrays; leaves at leaf_offset
    uint32_t leaf_offset;
    uint32_t depth;
    uint32_t group;  // output group
  };
  enum class Transform { kIdentity, kSigmoid, kSoftmax, kArgmax, kExp, kHinge };
  static constexpr uint32_t kMaxDepth = 12;
  static constexpr size_t kMaxNodes = size_t{1} << 23;  // ~70 MB of padded trees

  Forest() = default;
  template <bool kMissing>
  void PredictBlock(const float* rows, int64_t nb, float* margins) const;
  void Finish(float* margins, float* out) const;

  std::vector<float> thresholds_;       // per split
  std::vector<uint32_t> features_;      // per split
  std::vector<uint8_t> missing_right_;  // per split: a missing value goes right
  std::vector<float> leaves_;
  std::vector<Tree> trees_;
  int64_t num_features_ = 0;
  int64_t num_groups_ = 1;
  int64_t output_width_ = 1;
  float base_margin_ = 0;
  Transform transform_ = Transform::kIdentity;
  std::string objective_;
};

}  // namespace osprey
