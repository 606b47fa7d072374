#include "backends/tree_shap.h"

#include <algorithm>

#include "common/strings.h"

namespace osprey {
namespace {

// The SHAP terms of one leaf for one pattern of satisfied path features (the
// leaves without a table):
// out[j] = value * (one_j - zero_j) * (the permutation weight of the path
// with element j unwound), as Lundberg's EXTEND and UNWOUND-SUM compute it
// (element 0 is the empty root element). pw holds d + 1 doubles.
void LeafTerms(const double* zero, uint32_t d, uint64_t satisfied, double value, double* pw,
               double* out) {
  pw[0] = 1.0;
  for (uint32_t k = 1; k <= d; ++k) {
    const double z = zero[k - 1];
    const double o = (satisfied >> (k - 1)) & 1 ? 1.0 : 0.0;
    pw[k] = 0.0;
    for (int i = static_cast<int>(k) - 1; i >= 0; --i) {
      pw[i + 1] += o * pw[i] * (i + 1) / static_cast<double>(k + 1);
      pw[i] = z * pw[i] * (k - i) / static_cast<double>(k + 1);
    }
  }
  for (uint32_t j = 0; j < d; ++j) {
    const double z = zero[j];
    const bool one = (satisfied >> j) & 1;
    double total = 0.0;
    if (one) {
      double next = pw[d];
      for (int i = static_cast<int>(d) - 1; i >= 0; --i) {
        const double tmp = next * (d + 1) / static_cast<double>(i + 1);
        total += tmp;
        next = pw[i] - tmp * z * ((d - i) / static_cast<double>(d + 1));
      }
    } else if (z != 0.0) {
      for (int i = static_cast<int>(d) - 1; i >= 0; --i)
        total += (pw[i] / z) / ((d - i) / static_cast<double>(d + 1));
    }
    out[j] = total * ((one ? 1.0 : 0.0) - z) * value;
  }
}

// v * G(Q) for every subset Q of the d path features (see tree_shap.h):
// G(Q) = prod_{k not in Q} z_k * sum_s w(s) e_{|Q|-s}(z_Q), w(s) =
// s!(d-s-1)!/d!, e_m the elementary symmetric polynomials of Q's z's, built
// subset by subset from the subset without its highest member. G(all) is
// never read (no feature is outside O then) and left 0. poly: 2^d * (d + 1).
void LeafTable(const double* zero, uint32_t d, double value, std::vector<double>& poly,
               double* out) {
  std::vector<double> w(d);
  for (uint32_t s = 0; s < d; ++s) {
    double x = 1.0 / d;  // s!(d-s-1)!/d! = 1 / (d * C(d-1, s))
    for (uint32_t i = 1; i <= s; ++i) x *= static_cast<double>(i) / (d - i);
    w[s] = x;
  }
  const uint64_t n = uint64_t{1} << d;
  poly.assign(n * (d + 1), 0.0);
  poly[0] = 1.0;  // e(empty) = 1
  for (uint64_t q = 1; q < n; ++q) {
    const uint32_t k = 63 - static_cast<uint32_t>(__builtin_clzll(q));
    const double* prev = poly.data() + (q ^ (uint64_t{1} << k)) * (d + 1);
    double* e = poly.data() + q * (d + 1);
    e[0] = 1.0;
    for (uint32_t m = 1; m <= d; ++m) e[m] = prev[m] + zero[k] * prev[m - 1];
  }
  for (uint64_t q = 0; q + 1 < n; ++q) {
    const uint32_t size = static_cast<uint32_t>(__builtin_popcountll(q));
    const double* e = poly.data() + q * (d + 1);
    double sum = 0.0;
    for (uint32_t s = 0; s <= size; ++s) sum += w[s] * e[size - s];
    double outside = 1.0;
    for (uint32_t k = 0; k < d; ++k)
      if (!((q >> k) & 1)) outside *= zero[k];
    out[q] = value * outside * sum;
  }
  out[n - 1] = 0.0;
}

// Walks one tree top-down in preorder, recording splits and leaves with the
// distinct features on their paths and the product of cover ratios for each.
struct TreeBuilder {
  TreeBuilder(const TreeShap::Tree& t, int64_t nf, int i)
      : tree(t), num_features(nf), index(i), seen(t.nodes.size(), 0) {}
  const TreeShap::Tree& tree;
  int64_t num_features;
  int index;
  std::vector<uint8_t> seen;
  uint32_t next_position = 0;
  // Outputs, appended to.
  std::vector<uint32_t> split_ids, split_bits, split_self, split_left, split_right;
  struct LeafOut {
    uint32_t node;
    std::vector<uint32_t> features;
    std::vector<double> zero;
    double value;
  };
  std::vector<LeafOut> leaves;

  absl::Status Bad(std::string_view what) const {
    return absl::InvalidArgumentError(StrCat("tree ", index, ": ", what));
  }

  // Returns the node's expected value (its leaves weighted by cover, bottom-up
  // as xgboost's node mean values) in *mean.
  absl::Status Visit(int32_t i, std::vector<uint32_t>& features, std::vector<double>& zero,
                     double* mean) {
    if (i < 0 || static_cast<size_t>(i) >= tree.nodes.size())
      return Bad(StrCat("child ", i, " out of range"));
    if (seen[static_cast<size_t>(i)]++) return Bad("a node is reached twice");
    const TreeShap::Node& n = tree.nodes[static_cast<size_t>(i)];
    const uint32_t position = next_position++;
    if (n.left < 0 && n.right < 0) {
      leaves.push_back({position, features, zero, n.value});
      *mean = n.value;
      return absl::OkStatus();
    }
    if (n.left < 0 || n.right < 0) return Bad("a node with one child");
    if (n.feature < 0 || n.feature >= num_features)
      return Bad(StrCat("split on feature ", n.feature, " of ", num_features));
    for (int32_t child : {n.left, n.right})
      if (static_cast<size_t>(child) >= tree.nodes.size())
        return Bad(StrCat("child ", child, " out of range"));
    const uint32_t feature = static_cast<uint32_t>(n.feature);
    const size_t bit = std::find(features.begin(), features.end(), feature) - features.begin();
    const bool is_new = bit == features.size();
    if (is_new && bit >= 64)
      return absl::UnimplementedError(
          StrCat("tree ", index, ": a path with more than 64 distinct features"));
    const size_t split = split_ids.size();
    split_ids.push_back(n.id);
    split_bits.push_back(static_cast<uint32_t>(bit));
    split_self.push_back(position);
    split_left.push_back(0);
    split_right.push_back(0);
    const double w = n.cover;
    double means[2];
    for (int side = 0; side < 2; ++side) {
      const int32_t child = side == 0 ? n.left : n.right;
      const double child_cover = tree.nodes[static_cast<size_t>(child)].cover;
      const double fraction = w != 0.0 ? child_cover / w : 0.0;
      (side == 0 ? split_left : split_right)[split] = next_position;
      const double before = is_new ? 0.0 : zero[bit];
      if (is_new) {
        features.push_back(feature);
        zero.push_back(fraction);
      } else {
        zero[bit] = before * fraction;
      }
      OSPREY_RETURN_IF_ERROR(Visit(child, features, zero, &means[side]));
      if (is_new) {
        features.pop_back();
        zero.pop_back();
      } else {
        zero[bit] = before;
      }
    }
    const double cl = tree.nodes[static_cast<size_t>(n.left)].cover;
    const double cr = tree.nodes[static_cast<size_t>(n.right)].cover;
    *mean = w != 0.0 ? (means[0] * cl + means[1] * cr) / w : 0.0;
    return absl::OkStatus();
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<TreeShap>> TreeShap::Build(std::span<const Tree> trees,
                                                          int64_t num_features,
                                                          std::vector<double> bias,
                                                          const Options& options) {
  std::unique_ptr<TreeShap> s(new TreeShap());
  if (bias.empty()) return absl::InvalidArgumentError("TreeSHAP: no output group");
  if (num_features < 0) return absl::InvalidArgumentError("TreeSHAP: negative feature count");
  s->num_features_ = num_features;
  s->bias_ = std::move(bias);
  for (size_t t = 0; t < trees.size(); ++t) {
    const Tree& tree = trees[t];
    if (tree.nodes.empty()) return absl::InvalidArgumentError(StrCat("tree ", t, ": no nodes"));
    if (tree.nodes.size() >= (size_t{1} << 31))
      return absl::InvalidArgumentError(StrCat("tree ", t, ": too many nodes"));
    if (tree.group < 0 || tree.group >= s->num_groups())
      return absl::InvalidArgumentError(
          StrCat("tree ", t, ": group ", tree.group, " of ", s->num_groups()));
    TreeBuilder b(tree, num_features, static_cast<int>(t));
    std::vector<uint32_t> features;
    std::vector<double> zero;
    double mean = 0.0;
    OSPREY_RETURN_IF_ERROR(b.Visit(0, features, zero, &mean));
    s->bias_[static_cast<size_t>(tree.group)] += mean;
    TreeInfo info{};
    info.group = tree.group;
    info.num_nodes = b.next_position;
    info.split_begin = static_cast<uint32_t>(s->splits_.size());
    for (size_t i = 0; i < b.split_ids.size(); ++i)
      s->splits_.push_back(
          {b.split_ids[i], b.split_bits[i], b.split_self[i], b.split_left[i], b.split_right[i]});
    info.split_end = static_cast<uint32_t>(s->splits_.size());
    info.leaf_begin = static_cast<uint32_t>(s->leaves_.size());
    for (const auto& l : b.leaves) {
      const uint32_t d = static_cast<uint32_t>(l.features.size());
      if (d == 0 || l.value == 0.0) continue;  // adds to no feature
      s->leaves_.push_back(
          {l.node, d, kNoTable, static_cast<uint32_t>(s->path_features_.size()), l.value});
      s->path_features_.insert(s->path_features_.end(), l.features.begin(), l.features.end());
      s->path_zero_.insert(s->path_zero_.end(), l.zero.begin(), l.zero.end());
      for (double z : l.zero) s->path_coef_.push_back(z != 0.0 ? (1.0 - z) / z : 0.0);
      s->max_d_ = std::max(s->max_d_, d);
    }
    info.leaf_end = static_cast<uint32_t>(s->leaves_.size());
    s->max_nodes_ = std::max(s->max_nodes_, info.num_nodes);
    s->trees_.push_back(info);
  }
  // Tables, in tree order, while they fit.
  std::vector<double> poly;
  const size_t budget = options.table_bytes / sizeof(double);
  size_t total = 0;
  for (Leaf& leaf : s->leaves_) {
    const double* zero = s->path_zero_.data() + leaf.path;
    if (leaf.d > static_cast<uint32_t>(std::max(0, options.max_table_features)) ||
        std::find(zero, zero + leaf.d, 0.0) != zero + leaf.d)
      continue;
    const size_t size = size_t{1} << leaf.d;
    if (total + size > budget) continue;
    leaf.table = total;
    total += size;
  }
  s->table_.resize(total);
  for (Leaf& leaf : s->leaves_) {
    if (leaf.table == kNoTable) continue;
    LeafTable(s->path_zero_.data() + leaf.path, leaf.d, leaf.value, poly,
              s->table_.data() + leaf.table);
    ++s->tabulated_;
  }
  return s;
}

void TreeShap::PrepareScratch(Scratch* scratch) const {
  scratch->miss.assign(max_nodes_, 0);
  scratch->pweight.assign(max_d_ + 1, 0.0);
  scratch->terms.assign(max_d_, 0.0);
}

void TreeShap::AddLeafSlow(const Leaf& leaf, uint64_t satisfied, Scratch* s, double* phi) const {
  double* terms = s->terms.data();
  LeafTerms(path_zero_.data() + leaf.path, leaf.d, satisfied, leaf.value, s->pweight.data(), terms);
  const uint32_t* features = path_features_.data() + leaf.path;
  for (uint32_t j = 0; j < leaf.d; ++j) phi[features[j]] += terms[j];
}

}  // namespace osprey
