#include "backends/lightgbm/lgbm_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace osprey {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

// One tree, three features:
//   node 0: a <= 0.5, NaN missing, default left   -> node 1 | node 2
//   node 1: b <= 1.0, zero missing, default right -> leaf 0 (0.1) | leaf 1 (0.2)
//   node 2: c in {1, 3} (categorical)             -> leaf 2 (0.3) | leaf 3 (0.4)
std::string Model(std::string objective = "binary sigmoid:1", std::string extra_tree = "") {
  return "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n"
         "max_feature_idx=2\nobjective=" +
         objective +
         "\nfeature_names=a b c\nfeature_infos=none none none\n\n"
         "Tree=0\nnum_leaves=4\nnum_cat=1\nsplit_feature=0 1 2\nsplit_gain=1 1 1\n"
         "threshold=0.5 1 0\ndecision_type=10 4 1\nleft_child=1 -1 -3\nright_child=2 -2 -4\n"
         "leaf_value=0.1 0.2 0.30000000000000004 0.4\ncat_boundaries=0 1\ncat_threshold=10\n"
         "is_linear=0\nshrinkage=1\n" +
         extra_tree + "\n\nend of trees\n\nfeature_importances:\na=1\n";
}

double Raw(const LgbmModel& m, double a, double b, double c) {
  double row[3] = {a, b, c}, out = 0;
  m.Predict(row, 1, &out, /*raw=*/true);
  return out;
}

TEST(LgbmModelTest, DecisionsFollowLightgbm) {
  auto m = LgbmModel::Parse(Model());
  ASSERT_TRUE(m.ok()) << m.status();
  const LgbmModel& model = **m;
  EXPECT_EQ(model.num_features(), 3);
  EXPECT_EQ(model.feature_names(), (std::vector<std::string>{"a", "b", "c"}));
  struct Case {
    const char* what;
    double a, b, c, want;
  } cases[] = {
      {"a <= threshold goes left, b over its threshold right", 0.2, 5, 0, 0.2},
      {"a equal to its threshold goes left", 0.5, 0.5, 0, 0.1},
      {"a NaN (NaN missing) takes the default (left)", kNan, 0.5, 0, 0.1},
      {"b zero (zero missing) takes the default (right)", 0.2, 0, 0, 0.2},
      {"b within 1e-35 of zero counts as zero", 0.2, 1e-36, 0, 0.2},
      {"b NaN becomes 0, then the zero default", 0.2, kNan, 0, 0.2},
      {"b negative, not zero, compares", 0.2, -3, 0, 0.1},
      {"c in the category set goes left", 0.7, 0, 3, 0.30000000000000004},
      {"c truncated to a category in the set", 0.7, 0, 1.9, 0.30000000000000004},
      {"c not in the set goes right", 0.7, 0, 2, 0.4},
      {"c NaN goes right", 0.7, 0, kNan, 0.4},
      {"c in (-1, 0) truncates to category 0", 0.7, 0, -0.5, 0.4},
      {"c negative goes right", 0.7, 0, -1, 0.4},
      {"c beyond the bitset goes right", 0.7, 0, 100, 0.4},
      {"c beyond int range goes right", 0.7, 0, 1e12, 0.4},
  };
  for (const Case& c : cases) EXPECT_EQ(Raw(model, c.a, c.b, c.c), c.want) << c.what;
  double row[3] = {0.7, 0, 3}, prob = 0;
  model.Predict(row, 1, &prob, /*raw=*/false);
  EXPECT_EQ(prob, 1.0f / (1.0f + std::exp(-0.30000000000000004)));
}

TEST(LgbmModelTest, ObjectiveTransforms) {
  const double raw = 0.4;  // the leaf for a=0.7, c=2
  struct Case {
    std::string objective;
    double want;
  } cases[] = {
      {"regression", raw},
      {"regression sqrt", raw * raw},
      {"huber", raw},
      {"quantile", raw},
      {"poisson", std::exp(raw)},
      {"tweedie", std::exp(raw)},
      {"binary sigmoid:2", 1.0 / (1.0 + std::exp(-2 * raw))},
      {"cross_entropy", 1.0 / (1.0 + std::exp(-raw))},
      {"cross_entropy_lambda", std::log1p(std::exp(raw))},
      {"lambdarank", raw},
  };
  for (const Case& c : cases) {
    auto m = LgbmModel::Parse(Model(c.objective));
    ASSERT_TRUE(m.ok()) << c.objective << ": " << m.status();
    double row[3] = {0.7, 0, 2}, out = 0;
    (*m)->Predict(row, 1, &out, false);
    EXPECT_DOUBLE_EQ(out, c.want) << c.objective;
  }
}

TEST(LgbmModelTest, MulticlassSoftmaxAndAveraging) {
  // Two iterations of two classes: trees 0,2 are class 0; 1,3 class 1. Single leaves.
  std::string text =
      "tree\nversion=v4\nnum_class=2\nnum_tree_per_iteration=2\nmax_feature_idx=0\n"
      "objective=multiclass num_class:2\naverage_output\n\n";
  const double leaf[4] = {1.0, 2.0, 3.0, 6.0};
  for (int t = 0; t < 4; ++t)
    text += "Tree=" + std::to_string(t) + "\nnum_leaves=1\nleaf_value=" + std::to_string(leaf[t]) +
            "\n\n";
  text += "end of trees\n";
  auto m = LgbmModel::Parse(text);
  ASSERT_TRUE(m.ok()) << m.status();
  double row[1] = {0}, out[2];
  (*m)->Predict(row, 1, out, true);
  EXPECT_EQ(out[0], 4.0);  // raw scores are sums, not averaged (as LightGBM)
  EXPECT_EQ(out[1], 8.0);
  (*m)->Predict(row, 1, out, false);  // softmax of the averages (2, 4)
  EXPECT_DOUBLE_EQ(out[0], 1.0 / (1.0 + std::exp(2.0)));
  EXPECT_DOUBLE_EQ(out[0] + out[1], 1.0);
}

TEST(LgbmModelTest, RejectsBrokenModelsWithTheReason) {
  struct Case {
    std::string text;
    const char* fragment;
  } cases[] = {
      {"{\"learner\": 1}", "first line must be 'tree'"},
      {Model().substr(0, Model().find("end of trees")), "truncated"},
      {std::string(Model()).replace(Model().find("left_child=1 -1 -3"), 18, "left_child=1 -1 -9"),
       "child -9 out of range"},
      {std::string(Model()).replace(Model().find("left_child=1 -1 -3"), 18, "left_child=1 -1  2"),
       "reached twice"},
      {std::string(Model()).replace(Model().find("split_feature=0 1 2"), 19, "split_feature=0 1 7"),
       "feature 7"},
      {std::string(Model()).replace(Model().find("is_linear=0"), 11, "is_linear=1"),
       "linear trees are not supported"},
      {Model("softmax_of_doom"), "objective 'softmax_of_doom'"},
      {std::string(Model()).replace(Model().find("leaf_value="), 11, "leaf_value=x "),
       "leaf_value"},
  };
  for (const Case& c : cases) {
    auto m = LgbmModel::Parse(c.text);
    ASSERT_FALSE(m.ok()) << c.fragment;
    EXPECT_NE(m.status().message().find(c.fragment), std::string_view::npos) << m.status();
  }
}

}  // namespace
}  // namespace osprey
