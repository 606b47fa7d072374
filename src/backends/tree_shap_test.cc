#include "backends/tree_shap.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

namespace osprey {
namespace {

using Node = TreeShap::Node;
using Tree = TreeShap::Tree;

// Splits are `x[feature] < threshold` (go left); thresholds by node id.
struct TestForest {
  std::vector<Tree> trees;
  std::vector<std::vector<double>> thresholds;  // per tree, per node
};

std::vector<double> Explain(const TreeShap& shap, const TestForest& f, const double* x) {
  TreeShap::Scratch scratch;
  shap.PrepareScratch(&scratch);
  std::vector<double> phi(static_cast<size_t>(shap.row_width()));
  // Node ids encode (tree, node): tree * 1000 + node.
  shap.ExplainRow(
      [&](uint32_t id) {
        const Tree& t = f.trees[id / 1000];
        const Node& n = t.nodes[id % 1000];
        return x[n.feature] < f.thresholds[id / 1000][id % 1000];
      },
      &scratch, phi.data());
  return phi;
}

// The value of a tree on x with only the features in `known` known: a split
// on a known feature follows x, an unknown one averages its children by
// cover (the path-dependent conditional expectation TreeSHAP explains).
double Conditional(const Tree& t, const std::vector<double>& thr, const double* x, uint32_t known,
                   int32_t i = 0) {
  const Node& n = t.nodes[static_cast<size_t>(i)];
  if (n.left < 0) return n.value;
  if ((known >> n.feature) & 1)
    return Conditional(t, thr, x, known,
                       x[n.feature] < thr[static_cast<size_t>(i)] ? n.left : n.right);
  const double cl = t.nodes[static_cast<size_t>(n.left)].cover;
  const double cr = t.nodes[static_cast<size_t>(n.right)].cover;
  return (cl * Conditional(t, thr, x, known, n.left) +
          cr * Conditional(t, thr, x, known, n.right)) /
         n.cover;
}

// Shapley values by enumerating every coalition (few features only).
std::vector<double> BruteForce(const TestForest& f, int nf, int groups, const double* x) {
  std::vector<double> phi(static_cast<size_t>(groups * (nf + 1)), 0.0);
  std::vector<double> fact(nf + 1, 1.0);
  for (int i = 1; i <= nf; ++i) fact[i] = fact[i - 1] * i;
  for (size_t t = 0; t < f.trees.size(); ++t) {
    const Tree& tree = f.trees[t];
    double* p = phi.data() + tree.group * (nf + 1);
    p[nf] += Conditional(tree, f.thresholds[t], x, 0);
    for (int j = 0; j < nf; ++j) {
      for (uint32_t s = 0; s < (1u << nf); ++s) {
        if ((s >> j) & 1) continue;
        const int size = __builtin_popcount(s);
        const double w = fact[size] * fact[nf - size - 1] / fact[nf];
        p[j] += w * (Conditional(tree, f.thresholds[t], x, s | (1u << j)) -
                     Conditional(tree, f.thresholds[t], x, s));
      }
    }
  }
  return phi;
}

double Predict(const TestForest& f, const double* x, int group) {
  double sum = 0;
  for (size_t t = 0; t < f.trees.size(); ++t)
    if (f.trees[t].group == group) sum += Conditional(f.trees[t], f.thresholds[t], x, ~0u);
  return sum;
}

// root: f0 < 0.5 (cover 10) -> [f1 < 0.5 (cover 4) -> a=1 (1), b=2 (3)], c=5 (6)
TestForest DepthTwo() {
  TestForest f;
  Tree t;
  t.nodes = {{1, 4, 0, 10, 0, 0},
             {2, 3, 1, 4, 0, 1},
             {-1, -1, 0, 1, 1.0, 2},
             {-1, -1, 0, 3, 2.0, 3},
             {-1, -1, 0, 6, 5.0, 4}};
  f.trees.push_back(t);
  f.thresholds = {{0.5, 0.5, 0, 0, 0}};
  return f;
}

TEST(TreeShapTest, DepthTwoTreeByHand) {
  TestForest f = DepthTwo();
  auto shap = TreeShap::Build(f.trees, 2, {0.0}, {});
  ASSERT_TRUE(shap.ok()) << shap.status();
  // x goes left, then to leaf a (value 1). v({}) = 3.7, v({0}) = 1.75,
  // v({1}) = 0.4 * 1 + 0.6 * 5 = 3.4, v({0,1}) = 1:
  // phi0 = (1.75 - 3.7) / 2 + (1 - 3.4) / 2 = -2.175
  // phi1 = (3.4 - 3.7) / 2 + (1 - 1.75) / 2 = -0.525
  const double x[2] = {0.0, 0.0};
  std::vector<double> phi = Explain(**shap, f, x);
  ASSERT_EQ(phi.size(), 3u);
  EXPECT_NEAR(phi[0], -2.175, 1e-12);
  EXPECT_NEAR(phi[1], -0.525, 1e-12);
  EXPECT_NEAR(phi[2], 3.7, 1e-12);
  // y goes right (leaf c = 5), but f1 alone still moves the expectation
  // (v({1}) = 3.4 as above, v({0}) = v({0,1}) = 5):
  // phi0 = (5 - 3.7) / 2 + (5 - 3.4) / 2 = 1.45, phi1 = (3.4 - 3.7) / 2 = -0.15
  const double y[2] = {1.0, 0.0};
  phi = Explain(**shap, f, y);
  EXPECT_NEAR(phi[0], 1.45, 1e-12);
  EXPECT_NEAR(phi[1], -0.15, 1e-12);
}

TEST(TreeShapTest, BiasAddsToTheTreesExpectedValue) {
  TestForest f = DepthTwo();
  auto shap = TreeShap::Build(f.trees, 2, {0.25}, {});
  ASSERT_TRUE(shap.ok());
  const double x[2] = {0.0, 1.0};
  EXPECT_NEAR(Explain(**shap, f, x)[2], 3.95, 1e-12);
}

// Random trees with repeated features, several groups, against brute force,
// through the tables and through the per-row formula; the contributions sum
// to the margin.
TEST(TreeShapTest, RandomForestsMatchBruteForceAndSumToTheMargin) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 30; ++trial) {
    const int nf = 2 + static_cast<int>(rng() % 5);
    const int groups = 1 + static_cast<int>(rng() % 3);
    TestForest f;
    const int num_trees = 1 + static_cast<int>(rng() % 6);
    for (int t = 0; t < num_trees; ++t) {
      Tree tree;
      tree.group = t % groups;
      std::vector<double> thr;
      // Grow by splitting random leaves; covers split random fractions.
      tree.nodes.push_back({-1, -1, 0, 100.0, 0, static_cast<uint32_t>(t * 1000)});
      thr.push_back(0);
      const int splits = static_cast<int>(rng() % 12);
      for (int s = 0; s < splits; ++s) {
        std::vector<int> leaves;
        for (size_t i = 0; i < tree.nodes.size(); ++i)
          if (tree.nodes[i].left < 0) leaves.push_back(static_cast<int>(i));
        const int leaf = leaves[rng() % leaves.size()];
        const double cover = tree.nodes[static_cast<size_t>(leaf)].cover;
        const double frac = 0.1 + 0.8 * (rng() % 1000) / 1000.0;
        const int32_t l = static_cast<int32_t>(tree.nodes.size());
        tree.nodes.push_back({-1, -1, 0, cover * frac, 0, static_cast<uint32_t>(t * 1000 + l)});
        tree.nodes.push_back(
            {-1, -1, 0, cover * (1 - frac), 0, static_cast<uint32_t>(t * 1000 + l + 1)});
        thr.push_back(0);
        thr.push_back(0);
        Node& n = tree.nodes[static_cast<size_t>(leaf)];
        n.left = l;
        n.right = l + 1;
        n.feature = static_cast<int32_t>(rng() % nf);
        thr[static_cast<size_t>(leaf)] = (rng() % 100) / 100.0;
      }
      for (Node& n : tree.nodes)
        if (n.left < 0) n.value = (static_cast<int>(rng() % 2001) - 1000) / 100.0;
      f.trees.push_back(tree);
      f.thresholds.push_back(thr);
    }
    std::vector<double> bias(static_cast<size_t>(groups), 0.5);
    auto tabled = TreeShap::Build(f.trees, nf, bias, {});
    auto slow = TreeShap::Build(f.trees, nf, bias, {.max_table_features = 0});
    ASSERT_TRUE(tabled.ok()) << tabled.status();
    ASSERT_TRUE(slow.ok());
    EXPECT_EQ((*slow)->tabulated_leaves(), 0u);
    EXPECT_EQ((*tabled)->tabulated_leaves(), (*tabled)->num_leaves());
    for (int r = 0; r < 10; ++r) {
      std::vector<double> x(static_cast<size_t>(nf));
      for (double& v : x) v = (rng() % 100) / 100.0;
      std::vector<double> want = BruteForce(f, nf, groups, x.data());
      std::vector<double> a = Explain(**tabled, f, x.data());
      std::vector<double> b = Explain(**slow, f, x.data());
      for (size_t i = 0; i < want.size(); ++i) {
        double expected = want[i] + (i % (nf + 1) == static_cast<size_t>(nf) ? 0.5 : 0.0);
        EXPECT_NEAR(a[i], expected, 1e-9) << "trial " << trial << " value " << i;
        EXPECT_NEAR(b[i], expected, 1e-9) << "trial " << trial << " value " << i;
      }
      for (int g = 0; g < groups; ++g) {
        double sum = 0;
        for (int j = 0; j <= nf; ++j) sum += a[static_cast<size_t>(g * (nf + 1) + j)];
        EXPECT_NEAR(sum, 0.5 + Predict(f, x.data(), g), 1e-9);
      }
    }
  }
}

TEST(TreeShapTest, TableBudgetLeavesTheRestToTheFormula) {
  TestForest f = DepthTwo();
  f.trees.push_back(f.trees[0]);
  f.thresholds.push_back(f.thresholds[0]);
  for (Node& n : f.trees[1].nodes) n.id += 1000;
  // Each tree's leaves a and b have d = 2 (tables of 2^2 doubles), c d = 1 (2).
  auto shap = TreeShap::Build(f.trees, 2, {0.0}, {.table_bytes = 12 * sizeof(double)});
  ASSERT_TRUE(shap.ok());
  EXPECT_LT((*shap)->tabulated_leaves(), (*shap)->num_leaves());
  EXPECT_LE((*shap)->table_bytes(), 12 * sizeof(double));
  const double x[2] = {0.0, 0.0};
  std::vector<double> phi = Explain(**shap, f, x);
  EXPECT_NEAR(phi[0], -4.35, 1e-12);
  EXPECT_NEAR(phi[1], -1.05, 1e-12);
}

// A child that no training row reached (cover 0) has no table (its terms
// divide by its cover ratio) and takes the per-row formula.
TEST(TreeShapTest, ZeroCoverChildrenTakeTheFormula) {
  TestForest f = DepthTwo();
  f.trees[0].nodes[1].cover = 3;
  f.trees[0].nodes[2].cover = 0;  // leaf a
  f.trees[0].nodes[0].cover = 9;
  auto shap = TreeShap::Build(f.trees, 2, {0.0}, {});
  ASSERT_TRUE(shap.ok());
  EXPECT_EQ((*shap)->tabulated_leaves(), (*shap)->num_leaves() - 1);  // all but leaf a
  for (double x0 : {0.0, 1.0})
    for (double x1 : {0.0, 1.0}) {
      const double x[2] = {x0, x1};
      std::vector<double> want = BruteForce(f, 2, 1, x);
      std::vector<double> got = Explain(**shap, f, x);
      for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << i;
    }
}

TEST(TreeShapTest, SingleLeafTreesAddTheirValueToTheBias) {
  TestForest f;
  f.trees.push_back({{{-1, -1, 0, 1, 0.75, 0}}, 0});
  f.thresholds = {{0}};
  auto shap = TreeShap::Build(f.trees, 3, {1.0}, {});
  ASSERT_TRUE(shap.ok());
  const double x[3] = {0, 0, 0};
  std::vector<double> phi = Explain(**shap, f, x);
  EXPECT_EQ(phi, (std::vector<double>{0, 0, 0, 1.75}));
}

TEST(TreeShapTest, MalformedTreesAreRefused) {
  auto build = [](std::vector<Node> nodes, int32_t group = 0) {
    std::vector<Tree> trees = {{std::move(nodes), group}};
    return TreeShap::Build(trees, 2, {0.0}, {}).status();
  };
  EXPECT_EQ(build({{1, 5, 0, 1, 0, 0}, {-1, -1, 0, 1, 0, 1}}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(build({{1, 1, 0, 1, 0, 0}, {-1, -1, 0, 1, 0, 1}}).code(),
            absl::StatusCode::kInvalidArgument);  // shared child
  EXPECT_EQ(build({{0, 1, 0, 1, 0, 0}, {-1, -1, 0, 1, 0, 1}}).code(),
            absl::StatusCode::kInvalidArgument);  // cycle
  EXPECT_EQ(build({{1, 2, 7, 1, 0, 0}, {-1, -1, 0, 1, 0, 1}, {-1, -1, 0, 1, 0, 2}}).code(),
            absl::StatusCode::kInvalidArgument);  // feature out of range
  EXPECT_EQ(build({{-1, -1, 0, 1, 0, 0}}, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(build({}).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace osprey
