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
  // allow_simd = false keeps the portable walk even where the vector kernel
  // could run (tests compare the two).
  static absl::StatusOr<std::unique_ptr<Forest>> Compile(std::string_view model_json,
                                                         bool allow_simd = true);

  int64_t num_features() const { return num_features_; }
  // Values per row in the output: num_class for multi:softprob, else 1.
  int64_t output_width() const { return output_width_; }
  size_t num_trees() const { return trees_.size(); }
  // Whether Predict runs the AVX-512 kernel (see below) rather than the walk.
  bool simd() const { return simd_; }
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
  //
  // The AVX-512 kernel, used when the CPU has it and no tree is deeper than
  // kSimdMaxDepth, turns this around: 16 rows at a time (features as columns),
  // every split of a tree is one vector compare giving a 16-bit mask of the
  // rows that go right; masks of the rows reaching each node follow top-down
  // with bit operations, and each row picks up the one leaf its mask holds.
  // A tree costs 2^D compares for 16 rows instead of D dependent loads per
  // row. The leaf is added to the row's margin in the same tree order, so the
  // sums stay exactly libxgboost's.
  struct Tree {
    uint32_t offset;  // first split in the split arrays; leaves at leaf_offset
    uint32_t leaf_offset;
    uint32_t depth;
    uint32_t group;  // output group
  };
  enum class Transform { kIdentity, kSigmoid, kSoftmax, kArgmax, kExp, kHinge };
  static constexpr uint32_t kMaxDepth = 12;
  static constexpr uint32_t kSimdMaxDepth = 6;
  static constexpr size_t kMaxNodes = size_t{1} << 23;  // ~70 MB of padded trees

  Forest() = default;
  template <bool kMissing>
  void PredictBlock(const float* rows, int64_t nb, float* margins) const;
  void PredictBlockSimd(const float* rows, int64_t nb, float* margins) const;
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
  bool simd_ = false;
};

}  // namespace osprey
