#include "backends/xgboost/forest.h"

#include <gtest/gtest.h>

#include <cmath>

namespace osprey {
namespace {

// Two trees over 2 features, in XGBoost 1.7's JSON layout (numbers as written
// by libxgboost). Tree 0: x0 < 1.5 ? (leaf 0.25) : (leaf -0.5), missing -> left.
// Tree 1: x1 < 0 ? (leaf 1) : (leaf 2), missing -> right.
std::string Model(const std::string& objective, const std::string& num_class,
                  const std::string& tree_info = "[0,0]", const std::string& booster = "gbtree",
                  const std::string& split_type = "[0,0,0]") {
  std::string tree0 = R"({"left_children":[1,-1,-1],"right_children":[2,-1,-1],)"
                      R"("split_indices":[0,0,0],"split_conditions":[1.5,0.25,-0.5],)"
                      R"("default_left":[1,0,0],"split_type":)" +
                      split_type + R"(,"tree_param":{"num_nodes":"3","size_leaf_vector":"0"}})";
  std::string tree1 = R"({"left_children":[1,-1,-1],"right_children":[2,-1,-1],)"
                      R"("split_indices":[1,0,0],"split_conditions":[0,1,2],)"
                      R"("default_left":[0,0,0],"split_type":[0,0,0],)"
                      R"("tree_param":{"num_nodes":"3","size_leaf_vector":"0"}})";
  return R"({"learner":{"learner_model_param":{"base_score":"5E-1","num_class":")" + num_class +
         R"(","num_feature":"2","num_target":"1"},"objective":{"name":")" + objective +
         R"("},"gradient_booster":{"name":")" + booster + R"(","model":{"tree_info":)" + tree_info +
         R"(,"trees":[)" + tree0 + "," + tree1 + "]}}},\"version\":[1,7,4]}";
}

TEST(ForestTest, RegressionWalksSplitsAndMissingValues) {
  auto f = Forest::Compile(Model("reg:squarederror", "0"));
  ASSERT_TRUE(f.ok()) << f.status();
  struct Case {
    float x0, x1, want;
  } cases[] = {
      {1.0f, -1.0f, 0.5f + 0.25f + 1.0f},
      {1.5f, -1.0f, 0.5f - 0.5f + 1.0f},  // equal to the threshold goes right
      {NAN, 0.0f, 0.5f + 0.25f + 2.0f},   // tree 0 missing -> left; x1 == 0 -> right
      {2.0f, NAN, 0.5f - 0.5f + 2.0f},    // tree 1 missing -> right
  };
  for (const auto& c : cases) {
    float row[2] = {c.x0, c.x1};
    float out = 0;
    (*f)->Predict(row, 1, &out);
    EXPECT_EQ(out, c.want) << c.x0 << "," << c.x1;
  }
}

TEST(ForestTest, ObjectivesTransform) {
  float row[2] = {1.0f, -1.0f};  // margin 0 (+ base) + 0.25 + 1
  float out[2];
  auto logistic = Forest::Compile(Model("binary:logistic", "0"));
  ASSERT_TRUE(logistic.ok());
  (*logistic)->Predict(row, 1, out);
  EXPECT_FLOAT_EQ(out[0], 1.0f / (1.0f + std::exp(-1.25f)));  // base 0.5 -> margin 0
  auto poisson = Forest::Compile(Model("count:poisson", "0"));
  (*poisson)->Predict(row, 1, out);
  EXPECT_FLOAT_EQ(out[0], std::exp(std::log(0.5f) + 1.25f));

  // Two classes, one tree each: margins 0.5+0.25 and 0.5+1.
  auto softprob = Forest::Compile(Model("multi:softprob", "2", "[0,1]"));
  ASSERT_TRUE(softprob.ok());
  EXPECT_EQ((*softprob)->output_width(), 2);
  (*softprob)->Predict(row, 1, out);
  EXPECT_FLOAT_EQ(out[0] + out[1], 1.0f);
  EXPECT_GT(out[1], out[0]);
  auto softmax = Forest::Compile(Model("multi:softmax", "2", "[0,1]"));
  (*softmax)->Predict(row, 1, out);
  EXPECT_EQ(out[0], 1.0f);
}

TEST(ForestTest, RejectsWhatItCannotReproduce) {
  struct Case {
    std::string json;
    const char* why;
  } cases[] = {
      {Model("reg:squarederror", "0", "[0,0]", "dart"), "not gbtree"},
      {Model("reg:squarederror", "0", "[0,0]", "gbtree", "[1,0,0]"), "categorical"},
      {Model("survival:aft", "0"), "objective 'survival:aft'"},
      {Model("multi:softmax", "2", "[0,5]"), "tree_info out of range"},
      {"{", "does not parse"},
  };
  for (const auto& c : cases) {
    auto f = Forest::Compile(c.json);
    ASSERT_FALSE(f.ok()) << c.why;
    EXPECT_EQ(f.status().code(), absl::StatusCode::kUnimplemented);
    EXPECT_NE(f.status().message().find(c.why), absl::string_view::npos) << f.status();
  }
}

}  // namespace
}  // namespace osprey

namespace osprey {
namespace {

// One unbalanced tree: x0 < 0 ? leaf 1 : (x1 < 5 ? leaf 2 : leaf 3); missing
// x1 goes left (default_left), missing x0 goes right.
TEST(ForestTest, UnbalancedTreeAndMissingValuesInBlocks) {
  std::string json =
      R"({"learner":{"learner_model_param":{"base_score":"0","num_class":"0",)"
      R"("num_feature":"2","num_target":"1"},"objective":{"name":"reg:squarederror"},)"
      R"("gradient_booster":{"name":"gbtree","model":{"tree_info":["0"],"trees":[)"
      R"({"left_children":["1","-1","3","-1","-1"],"right_children":["2","-1","4","-1","-1"],)"
      R"("split_indices":["0","0","1","0","0"],"split_conditions":["0","1","5","2","3"],)"
      R"("default_left":["0","0","1","0","0"],"split_type":["0","0","0","0","0"],)"
      R"("tree_param":{"num_nodes":"5","size_leaf_vector":"0"}}]}}}})";
  auto f = Forest::Compile(json);
  ASSERT_TRUE(f.ok()) << f.status();
  // 20 rows: more than one 8-row lane group plus a tail, with and without NaN.
  std::vector<float> rows, want;
  for (int i = 0; i < 20; ++i) {
    float x0 = (i % 3 == 0) ? -1.0f : (i % 3 == 1 ? 1.0f : NAN);
    float x1 = (i % 4 == 0) ? 4.0f : (i % 4 == 1 ? 6.0f : (i % 4 == 2 ? NAN : 5.0f));
    rows.push_back(x0);
    rows.push_back(x1);
    float v = x0 < 0 ? 1 : (std::isnan(x1) || x1 < 5 ? 2 : 3);
    want.push_back(v);
  }
  std::vector<float> out(20);
  (*f)->Predict(rows.data(), 20, out.data());
  EXPECT_EQ(out, want);
}

// Blocks without missing values take the path without NaN checks (8-row
// lanes and a tail): 41 rows, values on, below and above every threshold,
// two trees summed.
TEST(ForestTest, BlocksWithoutMissingValuesAgreeWithTheTree) {
  std::string json =
      R"({"learner":{"learner_model_param":{"base_score":"0","num_class":"0",)"
      R"("num_feature":"2","num_target":"1"},"objective":{"name":"reg:squarederror"},)"
      R"("gradient_booster":{"name":"gbtree","model":{"tree_info":["0","0"],"trees":[)"
      R"({"left_children":["1","-1","3","-1","-1"],"right_children":["2","-1","4","-1","-1"],)"
      R"("split_indices":["0","0","1","0","0"],"split_conditions":["0","1","5","2","3"],)"
      R"("default_left":["0","0","1","0","0"],"split_type":["0","0","0","0","0"],)"
      R"("tree_param":{"num_nodes":"5","size_leaf_vector":"0"}},)"
      R"({"left_children":["1","-1","-1"],"right_children":["2","-1","-1"],)"
      R"("split_indices":["1","0","0"],"split_conditions":["2.5","0.25","0.5"],)"
      R"("default_left":["1","0","0"],"split_type":["0","0","0"],)"
      R"("tree_param":{"num_nodes":"3","size_leaf_vector":"0"}}]}}}})";
  auto f = Forest::Compile(json);
  ASSERT_TRUE(f.ok()) << f.status();
  const float xs0[] = {-1.0f, 0.0f, 1.0f, -0.0f, 1e30f};
  const float xs1[] = {2.0f, 2.5f, 4.0f, 5.0f, 6.0f, -1e30f, 1e30f};
  std::vector<float> rows, want;
  for (int i = 0; i < 41; ++i) {
    float x0 = xs0[i % 5], x1 = xs1[(i * 3) % 7];
    rows.push_back(x0);
    rows.push_back(x1);
    float first = x0 < 0 ? 1 : (x1 < 5 ? 2 : 3);
    float second = x1 < 2.5f ? 0.25f : 0.5f;
    want.push_back(first + second);
  }
  std::vector<float> out(41);
  (*f)->Predict(rows.data(), 41, out.data());
  EXPECT_EQ(out, want);
}

}  // namespace
}  // namespace osprey
