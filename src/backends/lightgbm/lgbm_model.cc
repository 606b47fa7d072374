#include "backends/lightgbm/lgbm_model.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

#include "common/strings.h"

namespace osprey {
namespace {

using KeyValues = std::vector<std::pair<std::string_view, std::string_view>>;

// LightGBM's zero band for zero-as-missing: a double holding the float 1e-35f.
constexpr double kZeroThreshold = static_cast<double>(1e-35f);
constexpr int kDecisionCategorical = 1;
constexpr int kDecisionDefaultLeft = 2;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

std::string_view Find(const KeyValues& kv, std::string_view key) {
  for (const auto& [k, v] : kv)
    if (k == key) return v;
  return {};
}

bool Has(const KeyValues& kv, std::string_view key) {
  return std::any_of(kv.begin(), kv.end(), [&](const auto& p) { return p.first == key; });
}

template <typename T>
bool ParseNumber(std::string_view s, T* out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// Space-separated numbers; false on anything unparsable.
template <typename T>
bool ParseList(std::string_view s, std::vector<T>* out) {
  out->clear();
  while (!s.empty()) {
    size_t space = s.find(' ');
    std::string_view item = s.substr(0, space);
    if (!item.empty()) {
      T v;
      if (!ParseNumber(item, &v)) return false;
      out->push_back(v);
    }
    if (space == std::string_view::npos) break;
    s.remove_prefix(space + 1);
  }
  return true;
}

double Sigmoid(double x, double scale) { return 1.0f / (1.0f + std::exp(-scale * x)); }

}  // namespace

absl::StatusOr<std::unique_ptr<LgbmModel>> LgbmModel::Parse(std::string_view text) {
  std::unique_ptr<LgbmModel> m(new LgbmModel());
  KeyValues header, tree;
  int tree_index = -1;
  bool in_trees = false, ended = false;
  auto flush_tree = [&]() -> absl::Status {
    if (tree_index < 0) return absl::OkStatus();
    absl::Status s = m->AddTree(tree, tree_index);
    tree.clear();
    tree_index = -1;
    return s;
  };
  size_t line_no = 0;
  while (!text.empty() && !ended) {
    size_t nl = text.find('\n');
    std::string_view line = Trim(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    if (line_no == 1) {
      if (line != "tree")
        return absl::InvalidArgumentError(
            "not a LightGBM text model (the first line must be 'tree')");
      continue;
    }
    if (line.starts_with("Tree=")) {
      OSPREY_RETURN_IF_ERROR(flush_tree());
      if (!in_trees) OSPREY_RETURN_IF_ERROR(m->ParseHeader(header));
      in_trees = true;
      if (!ParseNumber(line.substr(5), &tree_index) || tree_index < 0)
        return absl::InvalidArgumentError(
            StrCat("line ", line_no, ": bad tree header '", line, "'"));
      continue;
    }
    if (line == "end of trees") {
      OSPREY_RETURN_IF_ERROR(flush_tree());
      ended = true;
      continue;
    }
    if (line.empty()) continue;
    size_t eq = line.find('=');
    std::string_view key = eq == std::string_view::npos ? line : line.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : line.substr(eq + 1);
    if (!in_trees)
      header.emplace_back(key, value);
    else if (tree_index >= 0)
      tree.emplace_back(key, value);
  }
  if (!ended) return absl::InvalidArgumentError("LightGBM model is truncated (no 'end of trees')");
  if (m->trees_.empty()) return absl::InvalidArgumentError("LightGBM model has no trees");
  if (static_cast<int64_t>(m->trees_.size()) % m->trees_per_iteration_ != 0)
    return absl::InvalidArgumentError(
        StrCat("LightGBM model has ", m->trees_.size(),
               " trees, not a multiple of num_tree_per_iteration=", m->trees_per_iteration_));
  return m;
}

absl::Status LgbmModel::ParseHeader(const KeyValues& kv) {
  int64_t max_feature = -1;
  if (!ParseNumber(Find(kv, "max_feature_idx"), &max_feature) || max_feature < 0)
    return absl::InvalidArgumentError("LightGBM model header: max_feature_idx missing or invalid");
  num_features_ = max_feature + 1;
  std::string_view v = Find(kv, "num_class");
  if (!v.empty() && (!ParseNumber(v, &num_classes_) || num_classes_ < 1))
    return absl::InvalidArgumentError(StrCat("LightGBM model header: bad num_class '", v, "'"));
  trees_per_iteration_ = num_classes_;
  v = Find(kv, "num_tree_per_iteration");
  if (!v.empty() && (!ParseNumber(v, &trees_per_iteration_) || trees_per_iteration_ < 1))
    return absl::InvalidArgumentError(
        StrCat("LightGBM model header: bad num_tree_per_iteration '", v, "'"));
  if (trees_per_iteration_ != num_classes_)
    return absl::UnimplementedError(StrCat("LightGBM models with num_tree_per_iteration (",
                                           trees_per_iteration_, ") != num_class (", num_classes_,
                                           ") are not supported"));
  average_output_ = Has(kv, "average_output");
  if (Has(kv, "linear_tree") || Find(kv, "is_linear") == "1")
    return absl::UnimplementedError("LightGBM linear trees are not supported");
  std::string_view names = Find(kv, "feature_names");
  while (!names.empty()) {
    size_t space = names.find(' ');
    feature_names_.emplace_back(names.substr(0, space));
    if (space == std::string_view::npos) break;
    names.remove_prefix(space + 1);
  }
  if (!feature_names_.empty() && static_cast<int64_t>(feature_names_.size()) != num_features_)
    feature_names_.clear();  // inconsistent: better none than wrong columns
  return ParseObjective(Find(kv, "objective"));
}

// "binary sigmoid:1", "multiclass num_class:3", "regression sqrt", ...
absl::Status LgbmModel::ParseObjective(std::string_view line) {
  std::vector<std::string_view> tokens;
  while (!line.empty()) {
    size_t space = line.find(' ');
    if (space != 0) tokens.push_back(line.substr(0, space));
    if (space == std::string_view::npos) break;
    line.remove_prefix(space + 1);
  }
  if (tokens.empty()) {  // a custom objective: raw scores
    objective_ = "custom";
    return absl::OkStatus();
  }
  objective_ = std::string(tokens[0]);
  bool sqrt = false;
  for (size_t i = 1; i < tokens.size(); ++i) {
    if (tokens[i] == "sqrt") sqrt = true;
    if (tokens[i].starts_with("sigmoid:") && !ParseNumber(tokens[i].substr(8), &sigmoid_))
      return absl::InvalidArgumentError(StrCat("LightGBM objective: bad '", tokens[i], "'"));
  }
  const std::string& o = objective_;
  if (o == "regression" || o == "regression_l1" || o == "huber" || o == "fair" || o == "quantile" ||
      o == "mape") {
    transform_ = sqrt ? Transform::kSignedSquare : Transform::kIdentity;
  } else if (o == "binary") {
    transform_ = Transform::kSigmoid;
  } else if (o == "cross_entropy") {
    transform_ = Transform::kSigmoid;
    sigmoid_ = 1.0;
  } else if (o == "cross_entropy_lambda") {
    transform_ = Transform::kLog1pExp;
  } else if (o == "multiclass") {
    transform_ = Transform::kSoftmax;
  } else if (o == "multiclassova") {
    transform_ = Transform::kOvaSigmoid;
  } else if (o == "poisson" || o == "gamma" || o == "tweedie") {
    transform_ = Transform::kExp;
  } else if (o == "lambdarank" || o == "rank_xendcg" || o == "custom") {
    transform_ = Transform::kIdentity;
  } else {
    return absl::UnimplementedError(StrCat("LightGBM objective '", o, "' is not supported"));
  }
  if ((transform_ == Transform::kSoftmax || transform_ == Transform::kOvaSigmoid) !=
      (num_classes_ > 1))
    return absl::InvalidArgumentError(
        StrCat("LightGBM objective '", o, "' does not fit num_class=", num_classes_));
  return absl::OkStatus();
}

absl::Status LgbmModel::AddTree(const KeyValues& kv, int index) {
  auto bad = [index](std::string_view what) {
    return absl::InvalidArgumentError(StrCat("LightGBM tree ", index, ": ", what));
  };
  if (index != static_cast<int>(trees_.size())) return bad("trees out of order");
  if (Find(kv, "is_linear") == "1")
    return absl::UnimplementedError(
        StrCat("LightGBM tree ", index, " is a linear tree; linear trees are not supported"));
  int64_t num_leaves = 0;
  if (!ParseNumber(Find(kv, "num_leaves"), &num_leaves) || num_leaves < 1)
    return bad("num_leaves missing or invalid");
  std::vector<double> leaf_value;
  if (!ParseList(Find(kv, "leaf_value"), &leaf_value) ||
      static_cast<int64_t>(leaf_value.size()) != num_leaves)
    return bad(StrCat("leaf_value must hold num_leaves=", num_leaves, " numbers"));
  Tree tree{static_cast<uint32_t>(nodes_.size()), static_cast<uint32_t>(leaves_.size()),
            num_leaves == 1};
  // Data counts (explanations only): a file without them still predicts.
  std::vector<double> leaf_count, internal_count;
  if (!ParseList(Find(kv, "leaf_count"), &leaf_count) ||
      static_cast<int64_t>(leaf_count.size()) != num_leaves) {
    if (num_leaves > 1) has_counts_ = false;  // a lone leaf needs no count
    leaf_count.assign(static_cast<size_t>(num_leaves), 0.0);
  }
  if (num_leaves == 1) {
    leaves_.push_back(leaf_value[0]);
    leaf_count_.push_back(leaf_count[0]);
    trees_.push_back(tree);
    return absl::OkStatus();
  }
  const size_t splits = static_cast<size_t>(num_leaves - 1);
  std::vector<int64_t> feature, decision, left, right, cat_boundaries;
  std::vector<double> threshold;
  std::vector<uint32_t> cat_threshold;
  if (!ParseList(Find(kv, "split_feature"), &feature) || feature.size() != splits)
    return bad("split_feature must hold num_leaves-1 integers");
  if (!ParseList(Find(kv, "threshold"), &threshold) || threshold.size() != splits)
    return bad("threshold must hold num_leaves-1 numbers");
  if (!ParseList(Find(kv, "decision_type"), &decision) || decision.size() != splits)
    return bad("decision_type must hold num_leaves-1 integers");
  if (!ParseList(Find(kv, "left_child"), &left) || left.size() != splits ||
      !ParseList(Find(kv, "right_child"), &right) || right.size() != splits)
    return bad("left_child and right_child must hold num_leaves-1 integers");
  int64_t num_cat = 0;
  std::string_view nc = Find(kv, "num_cat");
  if (!nc.empty() && (!ParseNumber(nc, &num_cat) || num_cat < 0)) return bad("bad num_cat");
  if (num_cat > 0) {
    if (!ParseList(Find(kv, "cat_boundaries"), &cat_boundaries) ||
        static_cast<int64_t>(cat_boundaries.size()) != num_cat + 1)
      return bad("cat_boundaries must hold num_cat+1 integers");
    if (!ParseList(Find(kv, "cat_threshold"), &cat_threshold) || cat_boundaries.front() != 0 ||
        cat_boundaries.back() != static_cast<int64_t>(cat_threshold.size()) ||
        !std::is_sorted(cat_boundaries.begin(), cat_boundaries.end()))
      return bad("cat_threshold does not match cat_boundaries");
  }
  if (!ParseList(Find(kv, "internal_count"), &internal_count) || internal_count.size() != splits)
    has_counts_ = false;
  const uint32_t cat_base = static_cast<uint32_t>(cat_bits_.size());
  cat_bits_.insert(cat_bits_.end(), cat_threshold.begin(), cat_threshold.end());
  for (size_t i = 0; i < splits; ++i) {
    Node n{};
    n.threshold = threshold[i];
    if (feature[i] < 0 || feature[i] >= num_features_)
      return bad(StrCat("split on feature ", feature[i], " beyond max_feature_idx"));
    n.feature = static_cast<int32_t>(feature[i]);
    for (int64_t child : {left[i], right[i]})
      if (child >= static_cast<int64_t>(splits) || child < -num_leaves || child == 0)
        return bad(StrCat("child ", child, " out of range"));
    n.child[0] = static_cast<int32_t>(left[i]);
    n.child[1] = static_cast<int32_t>(right[i]);
    n.default_left = (decision[i] & kDecisionDefaultLeft) != 0;
    if (decision[i] & kDecisionCategorical) {
      n.kind = Kind::kCategorical;
      const double c = threshold[i];
      if (!(c >= 0 && c < static_cast<double>(num_cat)))
        return bad(StrCat("categorical split refers to category set ", c, " of ", num_cat));
      const size_t set = static_cast<size_t>(c);
      n.cat_begin = cat_base + static_cast<uint32_t>(cat_boundaries[set]);
      n.cat_words = static_cast<uint32_t>(cat_boundaries[set + 1] - cat_boundaries[set]);
    } else {
      switch ((decision[i] >> 2) & 3) {
        case 0:  // None: NaN counts as 0.0
          n.kind = Kind::kNumeric;
          n.nan_left = 0.0 <= n.threshold;
          break;
        case 1:  // Zero: NaN counts as 0.0, which is missing
          n.kind = Kind::kNumericZeroMissing;
          n.nan_left = n.default_left;
          break;
        case 2:  // NaN: missing
          n.kind = Kind::kNumeric;
          n.nan_left = n.default_left;
          break;
        default:
          return bad(StrCat("unknown missing type in decision_type ", decision[i]));
      }
    }
    nodes_.push_back(n);
  }
  // Every split and leaf reached exactly once from the root: no cycles, no
  // shared subtrees, so a walk always ends.
  std::vector<int> seen_split(splits, 0), seen_leaf(static_cast<size_t>(num_leaves), 0);
  std::vector<int32_t> stack = {0};
  seen_split[0] = 1;
  while (!stack.empty()) {
    const Node& n = nodes_[tree.node_offset + static_cast<size_t>(stack.back())];
    stack.pop_back();
    for (int32_t child : n.child) {
      int& seen = child >= 0 ? seen_split[static_cast<size_t>(child)]
                             : seen_leaf[static_cast<size_t>(~child)];
      if (seen++) return bad("a node is reached twice (shared or cyclic children)");
      if (child >= 0) stack.push_back(child);
    }
  }
  if (std::count(seen_leaf.begin(), seen_leaf.end(), 1) != num_leaves)
    return bad("some leaves are unreachable");
  leaves_.insert(leaves_.end(), leaf_value.begin(), leaf_value.end());
  if (has_counts_) {
    leaf_count_.insert(leaf_count_.end(), leaf_count.begin(), leaf_count.end());
    internal_count_.insert(internal_count_.end(), internal_count.begin(), internal_count.end());
  }
  trees_.push_back(tree);
  return absl::OkStatus();
}

int LgbmModel::SlowDecision(const Node& n, double x) const {
  switch (n.kind) {
    case Kind::kNumeric:
      break;
    case Kind::kNumericZeroMissing:
      if (std::isnan(x)) x = 0.0;
      if (x >= -kZeroThreshold && x <= kZeroThreshold)
        return n.default_left ? n.child[0] : n.child[1];
      break;
    case Kind::kCategorical: {
      // NaN, negatives (after truncation toward zero) and values past int
      // range go right, as LightGBM's int conversion sends them.
      if (std::isnan(x) || x <= -1.0 || x >= 2147483648.0) return n.child[1];
      const uint32_t category = static_cast<uint32_t>(static_cast<int32_t>(x));
      const uint32_t word = category / 32;
      const bool in =
          word < n.cat_words && ((cat_bits_[n.cat_begin + word] >> (category % 32)) & 1);
      return in ? n.child[0] : n.child[1];
    }
  }
  return x <= n.threshold || (std::isnan(x) && n.nan_left) ? n.child[0] : n.child[1];
}

inline int32_t LgbmModel::Step(const Node* nodes, int32_t i, const double* row) const {
  const Node& n = nodes[i];
  const double x = row[n.feature];
  if (n.kind == Kind::kNumeric) [[likely]] {
    // Branch-free: NaN compares false, then takes the side precomputed for
    // it (the default side, or where 0.0 goes when NaN counts as zero).
    const bool left = (x <= n.threshold) | ((x != x) & n.nan_left);
    return n.child[!left];  // an indexed load, not a branch
  }
  return SlowDecision(n, x);
}

// Walks kLanes (tree, row) pairs at once: the walks are independent, so
// their loads overlap instead of each waiting on its own chain. Leaves are
// returned in out[k] (indices into each tree's leaves).
template <int kLanes>
inline void LgbmModel::Walk(const Tree* const* trees, const double* const* rows,
                            int32_t* out) const {
  const Node* nodes[kLanes];
  int32_t i[kLanes];
  for (int k = 0; k < kLanes; ++k) {
    nodes[k] = nodes_.data() + trees[k]->node_offset;
    i[k] = trees[k]->single_leaf ? -1 : 0;  // a one-leaf tree is at leaf 0 (~-1)
  }
  while (true) {
    int32_t all = -1;
    for (int k = 0; k < kLanes; ++k) all &= i[k];
    if (all < 0) break;  // every lane at a leaf
    for (int k = 0; k < kLanes; ++k)
      if (i[k] >= 0) i[k] = Step(nodes[k], i[k], rows[k]);
  }
  for (int k = 0; k < kLanes; ++k) out[k] = ~i[k];
}

void LgbmModel::Predict(const double* rows, int64_t n, double* out, bool raw) const {
  constexpr int kLanes = 4;
  const int64_t k = num_classes_;
  const size_t num_trees = trees_.size();
  std::fill(out, out + n * k, 0.0);
  if (n == 1) {
    // One row: several trees walk at once; leaves are added in tree order.
    size_t t = 0;
    const double* row[kLanes] = {rows, rows, rows, rows};
    for (; t + kLanes <= num_trees; t += kLanes) {
      const Tree* trees[kLanes] = {&trees_[t], &trees_[t + 1], &trees_[t + 2], &trees_[t + 3]};
      int32_t leaf[kLanes];
      Walk<kLanes>(trees, row, leaf);
      for (int j = 0; j < kLanes; ++j)
        out[static_cast<int64_t>(t + j) % k] += leaves_[trees[j]->leaf_offset + leaf[j]];
    }
    for (; t < num_trees; ++t) {
      const Tree* tree = &trees_[t];
      int32_t leaf;
      Walk<1>(&tree, row, &leaf);
      out[static_cast<int64_t>(t) % k] += leaves_[tree->leaf_offset + leaf];
    }
  } else {
    // Trees outer, rows inner, by blocks: a tree stays in cache while a block
    // of rows walks it, several rows at once; each row adds its trees in order.
    constexpr int64_t kBlock = 64;
    for (int64_t r0 = 0; r0 < n; r0 += kBlock) {
      const int64_t r1 = std::min(n, r0 + kBlock);
      for (size_t t = 0; t < num_trees; ++t) {
        const Tree* tree = &trees_[t];
        const double* leaves = leaves_.data() + tree->leaf_offset;
        const int64_t cls = static_cast<int64_t>(t) % k;
        int64_t r = r0;
        const Tree* trees[kLanes] = {tree, tree, tree, tree};
        for (; r + kLanes <= r1; r += kLanes) {
          const double* row[kLanes];
          for (int j = 0; j < kLanes; ++j) row[j] = rows + (r + j) * num_features_;
          int32_t leaf[kLanes];
          Walk<kLanes>(trees, row, leaf);
          for (int j = 0; j < kLanes; ++j) out[(r + j) * k + cls] += leaves[leaf[j]];
        }
        for (; r < r1; ++r) {
          const double* row = rows + r * num_features_;
          int32_t leaf;
          Walk<1>(&tree, &row, &leaf);
          out[r * k + cls] += leaves[leaf];
        }
      }
    }
  }
  // As LightGBM: raw scores are the plain sums, even for a random forest;
  // averaging belongs to the transformed prediction.
  if (raw) return;
  const double iterations = static_cast<double>(num_trees) / static_cast<double>(k);
  for (int64_t r = 0; r < n; ++r) {
    double* scores = out + r * k;
    if (average_output_)
      for (int64_t c = 0; c < k; ++c) scores[c] /= iterations;
    Finish(scores);
  }
}

const TreeShap* LgbmModel::Tables() const {
  std::call_once(shap_once_, [this] {
    std::vector<TreeShap::Tree> trees(trees_.size());
    for (size_t t = 0; t < trees_.size(); ++t) {
      const Tree& tree = trees_[t];
      TreeShap::Tree& out = trees[t];
      out.group = static_cast<int32_t>(static_cast<int64_t>(t) % num_classes_);
      // Splits keep LightGBM's indices; leaf i follows them at splits + i.
      const size_t num_leaves =
          (t + 1 < trees_.size() ? trees_[t + 1].leaf_offset : leaves_.size()) - tree.leaf_offset;
      const size_t splits = tree.single_leaf ? 0 : num_leaves - 1;
      out.nodes.resize(splits + num_leaves);
      for (size_t i = 0; i < splits; ++i) {
        const Node& n = nodes_[tree.node_offset + i];
        TreeShap::Node& o = out.nodes[i];
        auto index = [&](int32_t child) {
          return static_cast<int32_t>(child >= 0 ? child : static_cast<int32_t>(splits) + ~child);
        };
        o.left = index(n.child[0]);
        o.right = index(n.child[1]);
        o.feature = n.feature;
        o.cover = internal_count_[tree.node_offset + i];
        o.id = tree.node_offset + static_cast<uint32_t>(i);
      }
      for (size_t i = 0; i < num_leaves; ++i) {
        TreeShap::Node& o = out.nodes[splits + i];
        o.value = leaves_[tree.leaf_offset + i];
        o.cover = leaf_count_[tree.leaf_offset + i];
      }
    }
    shap_ = TreeShap::Build(trees, num_features_, std::vector<double>(num_classes_, 0.0),
                            TreeShap::Options());
  });
  return shap_.ok() ? shap_->get() : nullptr;
}

absl::Status LgbmModel::Explain(const double* rows, int64_t n, double* out) const {
  if (!has_counts_)
    return absl::UnimplementedError(
        "explanations: the LightGBM model file has no leaf_count/internal_count");
  const TreeShap* shap = Tables();
  if (shap == nullptr) return shap_.status();
  TreeShap::Scratch scratch;
  shap->PrepareScratch(&scratch);
  const int64_t width = shap->row_width();
  for (int64_t r = 0; r < n; ++r) {
    const double* row = rows + r * num_features_;
    shap->ExplainRow(
        [&](uint32_t id) {
          const Node& node = nodes_[id];
          if (node.kind == Kind::kNumeric) [[likely]] {
            const double x = row[node.feature];
            return static_cast<bool>((x <= node.threshold) | ((x != x) & node.nan_left));
          }
          return SlowDecision(node, row[node.feature]) == node.child[0];
        },
        &scratch, out + r * width);
  }
  return absl::OkStatus();
}

void LgbmModel::Finish(double* s) const {
  switch (transform_) {
    case Transform::kIdentity:
      break;
    case Transform::kSigmoid:
      s[0] = Sigmoid(s[0], sigmoid_);
      break;
    case Transform::kOvaSigmoid:
      for (int64_t c = 0; c < num_classes_; ++c) s[c] = Sigmoid(s[c], sigmoid_);
      break;
    case Transform::kSoftmax: {
      double wmax = s[0];
      for (int64_t c = 1; c < num_classes_; ++c) wmax = std::max(s[c], wmax);
      double wsum = 0.0;
      for (int64_t c = 0; c < num_classes_; ++c) {
        s[c] = std::exp(s[c] - wmax);
        wsum += s[c];
      }
      for (int64_t c = 0; c < num_classes_; ++c) s[c] /= wsum;
      break;
    }
    case Transform::kExp:
      s[0] = std::exp(s[0]);
      break;
    case Transform::kSignedSquare:
      s[0] = (s[0] > 0 ? 1.0 : s[0] < 0 ? -1.0 : 0.0) * s[0] * s[0];
      break;
    case Transform::kLog1pExp:
      s[0] = std::log1p(std::exp(s[0]));
      break;
  }
}

}  // namespace osprey
