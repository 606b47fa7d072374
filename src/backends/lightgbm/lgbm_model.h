#pragma once

// A native evaluator for LightGBM models in LightGBM's text format (what
// Booster.save_model writes; KServe's lgbserver loads it as model.bst). It
// reproduces LightGBM's CPU prediction: features as double, numerical splits
// `x <= threshold` with the three missing-value types (None: NaN counts as 0;
// Zero: |x| <= 1e-35 and NaN take the default side; NaN: NaN takes the default
// side), categorical splits as bitsets (NaN and negatives go right), leaf
// values summed in double per class in tree order, random-forest averaging,
// and each objective's output transform (sigmoid, softmax, one-vs-all sigmoid,
// exp, sqrt-regression's signed square, cross-entropy-lambda's log1p(exp)).
//
// Explanations: exact TreeSHAP contributions as lightgbm's
// predict(pred_contrib=True), weighted by the data counts the file records
// per node (tree_shap.h), from the same decisions Predict makes. The
// TreeSHAP tables are built on the first Explain (once; most models are never
// explained and should not pay their memory), in structures Predict never
// reads.
//
// Immutable after Parse but for that one-time build: Predict and Explain are
// safe from any number of threads.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backends/tree_shap.h"
#include "common/status.h"

namespace osprey {

class LgbmModel {
 public:
  // InvalidArgument naming the line or tree for a malformed file;
  // Unimplemented for what the evaluator does not reproduce (linear trees).
  static absl::StatusOr<std::unique_ptr<LgbmModel>> Parse(std::string_view text);

  int64_t num_features() const { return num_features_; }
  int64_t num_classes() const { return num_classes_; }
  size_t num_trees() const { return trees_.size(); }
  const std::string& objective() const { return objective_; }
  const std::vector<std::string>& feature_names() const { return feature_names_; }

  // rows: row-major [n, num_features]. out: [n, num_classes]. raw: the summed
  // scores before averaging and the objective's transform (LightGBM's raw_score).
  void Predict(const double* rows, int64_t n, double* out, bool raw) const;

  // Whether the file holds the per-node data counts explanations need.
  bool explains() const { return has_counts_; }
  // rows: row-major [n, num_features]. out: [n, num_classes, num_features + 1],
  // per class the contributions then the bias (the trees' expected values),
  // summing to the raw score: pred_contrib's values and layout (lightgbm
  // flattens the last two dimensions). Unimplemented without counts.
  absl::Status Explain(const double* rows, int64_t n, double* out) const;

 private:
  // kNumeric covers LightGBM's missing types None and NaN: both reduce to
  // `x <= threshold`, with NaN going to the side in nan_left.
  enum class Kind : uint8_t { kNumeric, kNumericZeroMissing, kCategorical };
  struct Node {
    double threshold;  // numerical splits
    int32_t feature;
    int32_t child[2];    // left, right; >= 0: node in this tree; < 0: ~leaf
    uint32_t cat_begin;  // categorical: bitset words in cat_bits_
    uint32_t cat_words;
    Kind kind;
    bool default_left;
    bool nan_left;  // numeric: where NaN goes
  };
  struct Tree {
    uint32_t node_offset;
    uint32_t leaf_offset;
    bool single_leaf;
  };
  enum class Transform {
    kIdentity,
    kSigmoid,
    kSoftmax,
    kOvaSigmoid,
    kExp,
    kSignedSquare,
    kLog1pExp
  };

  LgbmModel() = default;
  int32_t Step(const Node* nodes, int32_t i, const double* row) const;
  template <int kLanes>
  void Walk(const Tree* const* trees, const double* const* rows, int32_t* out) const;
  int SlowDecision(const Node& n, double x) const;  // zero-missing and categorical splits
  void Finish(double* scores) const;
  using KeyValues = std::vector<std::pair<std::string_view, std::string_view>>;
  absl::Status ParseHeader(const KeyValues& kv);
  absl::Status ParseObjective(std::string_view line);
  absl::Status AddTree(const KeyValues& kv, int index);

  std::vector<Node> nodes_;
  std::vector<double> leaves_;
  std::vector<uint32_t> cat_bits_;
  std::vector<Tree> trees_;
  std::vector<std::string> feature_names_;
  int64_t num_features_ = 0;
  int64_t num_classes_ = 1;
  int64_t trees_per_iteration_ = 1;
  bool average_output_ = false;
  std::string objective_;
  Transform transform_ = Transform::kIdentity;
  double sigmoid_ = 1.0;

  // Explanations: data counts by node (nodes_ order) and by leaf (leaves_).
  const TreeShap* Tables() const;
  std::vector<double> internal_count_;
  std::vector<double> leaf_count_;
  bool has_counts_ = true;
  mutable std::once_flag shap_once_;
  mutable absl::StatusOr<std::unique_ptr<TreeShap>> shap_ = nullptr;
};

}  // namespace osprey
