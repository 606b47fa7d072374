#pragma once

// Exact TreeSHAP contributions for XGBoost gbtree models, as libxgboost 1.7's
// predict(pred_contribs=True) computes them (path-dependent, weighted by each
// node's hessian sum), from the JSON model libxgboost writes. Separate from
// the prediction evaluator (forest.h): it reads what prediction does not need
// (covers, categorical splits), so it also explains the models Forest leaves
// to libxgboost (categorical splits, deep trees, objectives such as
// survival:cox), and building it never touches Predict's structures.
//
// Lifetime: Parse reads the trees at load (a compact copy of the splits,
// covers and leaves; no JSON kept). The TreeSHAP tables (tree_shap.h, up to
// TreeShap::Options::table_bytes) are built on the first Explain, once:
// most served models are never explained, and they should not pay the
// memory or the load time. Thread-safe: Explain may run from any number of
// threads (the first ones wait for the one building the tables).

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "backends/tree_shap.h"
#include "common/status.h"

namespace osprey {

class XgbExplainer {
 public:
  // Unimplemented (with the reason) for models it cannot explain: boosters
  // other than gbtree, vector leaves, multi-target models, objectives whose
  // base margin it does not know.
  static absl::StatusOr<std::unique_ptr<XgbExplainer>> Parse(
      std::string_view model_json, TreeShap::Options options = TreeShap::Options());

  int64_t num_features() const { return num_features_; }
  // Output groups: num_class for multi-class objectives, else 1.
  int64_t num_groups() const { return num_groups_; }

  // rows: row-major [n, num_features] (NaN = missing). out: [n, num_groups,
  // num_features + 1], each group's contributions then its bias (the base
  // margin plus every tree's expected value), as xgboost lays out
  // pred_contribs. An error only if the tables could not be built.
  absl::Status Explain(const float* rows, int64_t n, float* out) const;

 private:
  struct Split {
    float threshold;
    uint32_t feature;
    uint32_t cat_begin;  // categorical: bitset words in cat_bits_
    uint32_t cat_words;
    bool default_left;
    bool categorical;
  };

  XgbExplainer() = default;
  bool GoesLeft(const Split& s, const float* row) const;
  const TreeShap* Tables() const;

  std::vector<Split> splits_;  // every node of every tree, by TreeShap::Node::id
  std::vector<uint32_t> cat_bits_;
  int64_t num_features_ = 0;
  int64_t num_groups_ = 1;
  TreeShap::Options options_;

  mutable std::once_flag once_;
  mutable std::vector<TreeShap::Tree> trees_;  // until the tables are built
  mutable std::vector<double> bias_;
  mutable absl::StatusOr<std::unique_ptr<TreeShap>> shap_ = nullptr;
};

}  // namespace osprey
