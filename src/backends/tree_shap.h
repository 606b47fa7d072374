#pragma once

// Exact TreeSHAP (Lundberg et al., "Consistent individualized feature
// attribution for tree ensembles", the path-dependent algorithm that
// xgboost's predict(pred_contribs=True) and lightgbm's
// predict(pred_contrib=True) implement) for any forest of binary trees whose
// nodes carry a cover (xgboost: the hessian sum; lightgbm: the data count).
// Framework-neutral: a backend describes its trees once (children, feature,
// cover, leaf value) and, per row, answers "does this row go left at node
// `id`?" with its own split semantics (missing values, categories); the
// contributions are the frameworks' to 1e-12 relative in exact arithmetic.
//
// How it is fast. A leaf's SHAP terms depend on the row only through which
// of the d distinct features on its root-to-leaf path the row "satisfies"
// (goes the path's way at every split on that feature): a set O of path
// features. With z_k the product of cover ratios along the path for feature
// k, and G(Q) = sum over S subset of Q of |S|!(d-|S|-1)!/d! * prod_{k not in
// S} z_k, the leaf adds (value v)
//   -v * G(O)                            to every path feature not in O,
//   v * (1 - z_j) / z_j * G(O \ {j})     to every path feature j in O.
// So, per leaf, v * G is tabulated once for all 2^d subsets (built from
// elementary symmetric polynomials of the z's, O(2^d * d)), and a row costs,
// per tree, one decision per split (a top-down pass that marks which path
// features each node's row fails) and d additions per leaf from a table of
// 2^d doubles: O(L * d) instead of the recursive algorithm's O(L * d^2) with
// a path copy per node, and no allocation at all. Leaves whose d exceeds
// Options::max_table_features, that no longer fit Options::table_bytes, or
// with a zero cover ratio on the path, run the O(d^2) EXTEND/UNWIND formula
// per row on the same precomputed path instead.
//
// Immutable after Build: Explain* are safe from any number of threads, each
// with its own Scratch.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/status.h"

namespace osprey {

class TreeShap {
 public:
  // One node of a tree as its framework has it. Trees are given as node
  // lists with the root at index 0.
  struct Node {
    int32_t left = -1;    // index of the left child in the same list; -1: a leaf
    int32_t right = -1;   // the right child; -1 for a leaf
    int32_t feature = 0;  // split feature (splits only), in [0, num_features)
    double cover = 0;     // hessian sum or data count reaching the node
    double value = 0;     // leaf value (leaves only)
    uint32_t id = 0;      // the backend's handle for the node, handed back to Decide
  };
  struct Tree {
    std::vector<Node> nodes;
    int32_t group = 0;  // output group (class) the tree adds to
  };
  struct Options {
    size_t table_bytes = size_t{128} << 20;  // tables beyond this use the per-row formula
    int max_table_features = 14;             // 2^d doubles per leaf
  };
  // Per-call working memory, sized by the forest: make one per thread (or per
  // call) and reuse it for every row.
  struct Scratch {
    std::vector<uint64_t> miss;   // per node: the path features the row fails
    std::vector<double> pweight;  // the per-row formula's path weights
    std::vector<double> terms;    // its terms, one per path feature
  };

  // `bias` holds one value per group added to every row's bias term (the
  // base margin); each tree's expected value (its leaves weighted by cover,
  // as the frameworks compute it bottom-up) is added on top. InvalidArgument
  // for a malformed tree (child out of range, a node reached twice, a
  // feature out of range, a group out of range); Unimplemented for a path
  // with more than 64 distinct features.
  static absl::StatusOr<std::unique_ptr<TreeShap>> Build(std::span<const Tree> trees,
                                                         int64_t num_features,
                                                         std::vector<double> bias,
                                                         const Options& options);

  int64_t num_features() const { return num_features_; }
  int64_t num_groups() const { return static_cast<int64_t>(bias_.size()); }
  // Values per row: num_groups * (num_features + 1).
  int64_t row_width() const { return num_groups() * (num_features_ + 1); }
  size_t table_bytes() const { return table_.size() * sizeof(double); }
  size_t num_leaves() const { return leaves_.size(); }
  size_t tabulated_leaves() const { return tabulated_; }

  void PrepareScratch(Scratch* scratch) const;

  // One row's contributions into phi: [num_groups][num_features + 1], the
  // bias last in each group; overwritten. decide(id) -> true when the row
  // goes to the left child of the node the backend handed in as `id`.
  template <typename Decide>
  void ExplainRow(Decide&& decide, Scratch* scratch, double* phi) const;

 private:
  // Internal nodes in preorder: the row's decision at `id`, and which path
  // feature (bit) a wrong turn there fails. Children index the per-tree
  // miss array (nodes, splits and leaves, in preorder).
  struct Split {
    uint32_t id;
    uint32_t bit;
    uint32_t self, left, right;
  };
  struct Leaf {
    uint32_t node;   // position in the tree's miss array
    uint32_t d;      // distinct features on the path
    uint64_t table;  // offset in table_ (v * G, 2^d values), or kNoTable
    uint32_t path;   // offset in path_features_ / path_zero_ / path_coef_ (d each)
    double value;
  };
  struct TreeInfo {
    uint32_t split_begin, split_end;
    uint32_t leaf_begin, leaf_end;
    uint32_t num_nodes;
    int32_t group;
  };
  static constexpr uint64_t kNoTable = ~uint64_t{0};

  TreeShap() = default;
  void AddLeafSlow(const Leaf& leaf, uint64_t satisfied, Scratch* s, double* phi) const;

  std::vector<TreeInfo> trees_;
  std::vector<Split> splits_;
  std::vector<Leaf> leaves_;
  std::vector<uint32_t> path_features_;
  std::vector<double> path_zero_;
  std::vector<double> path_coef_;  // (1 - z) / z
  std::vector<double> table_;
  std::vector<double> bias_;  // per group: given bias + the trees' expected values
  int64_t num_features_ = 0;
  uint32_t max_nodes_ = 1;
  uint32_t max_d_ = 0;
  size_t tabulated_ = 0;
};

template <typename Decide>
void TreeShap::ExplainRow(Decide&& decide, Scratch* scratch, double* phi) const {
  const int64_t width = num_features_ + 1;
  for (int64_t g = 0; g < num_groups(); ++g) {
    double* p = phi + g * width;
    for (int64_t f = 0; f < num_features_; ++f) p[f] = 0.0;
    p[num_features_] = bias_[static_cast<size_t>(g)];
  }
  uint64_t* miss = scratch->miss.data();
  for (const TreeInfo& t : trees_) {
    miss[0] = 0;  // the root fails nothing
    for (uint32_t i = t.split_begin; i < t.split_end; ++i) {
      const Split& s = splits_[i];
      const uint64_t m = miss[s.self];
      const uint64_t bit = uint64_t{1} << s.bit;
      const bool left = decide(s.id);
      miss[s.left] = m | (left ? 0 : bit);
      miss[s.right] = m | (left ? bit : 0);
    }
    double* p = phi + t.group * width;
    for (uint32_t l = t.leaf_begin; l < t.leaf_end; ++l) {
      const Leaf& leaf = leaves_[l];
      const uint64_t mask = leaf.d == 64 ? ~uint64_t{0} : (uint64_t{1} << leaf.d) - 1;
      const uint64_t satisfied = ~miss[leaf.node] & mask;
      if (leaf.table != kNoTable) [[likely]] {
        const double* g = table_.data() + leaf.table;
        const double unsatisfied = -g[satisfied];
        const uint32_t* features = path_features_.data() + leaf.path;
        const double* coef = path_coef_.data() + leaf.path;
        // Branch-free: whether the row satisfies a path feature is a coin
        // toss to the branch predictor.
        for (uint32_t j = 0; j < leaf.d; ++j) {
          const double in = static_cast<double>((satisfied >> j) & 1);
          const double term = coef[j] * g[satisfied & ~(uint64_t{1} << j)];
          p[features[j]] += in * term + (1.0 - in) * unsatisfied;
        }
      } else {
        AddLeafSlow(leaf, satisfied, scratch, p);
      }
    }
  }
}

}  // namespace osprey
