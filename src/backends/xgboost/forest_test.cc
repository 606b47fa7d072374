#include "backends/xgboost/forest.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include "common/strings.h"

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

// Every hand-written case runs on both kernels: the portable walk and, where
// the CPU has AVX-512, the vector kernel.
class ForestKernelTest : public ::testing::TestWithParam<bool> {
 protected:
  static absl::StatusOr<std::unique_ptr<Forest>> Compile(std::string_view json) {
    return Forest::Compile(json, GetParam());
  }
};

TEST_P(ForestKernelTest, RegressionWalksSplitsAndMissingValues) {
  auto f = Compile(Model("reg:squarederror", "0"));
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

TEST_P(ForestKernelTest, ObjectivesTransform) {
  float row[2] = {1.0f, -1.0f};  // margin 0 (+ base) + 0.25 + 1
  float out[2];
  auto logistic = Compile(Model("binary:logistic", "0"));
  ASSERT_TRUE(logistic.ok());
  (*logistic)->Predict(row, 1, out);
  EXPECT_FLOAT_EQ(out[0], 1.0f / (1.0f + std::exp(-1.25f)));  // base 0.5 -> margin 0
  auto poisson = Compile(Model("count:poisson", "0"));
  (*poisson)->Predict(row, 1, out);
  EXPECT_FLOAT_EQ(out[0], std::exp(std::log(0.5f) + 1.25f));

  // Two classes, one tree each: margins 0.5+0.25 and 0.5+1.
  auto softprob = Compile(Model("multi:softprob", "2", "[0,1]"));
  ASSERT_TRUE(softprob.ok());
  EXPECT_EQ((*softprob)->output_width(), 2);
  (*softprob)->Predict(row, 1, out);
  EXPECT_FLOAT_EQ(out[0] + out[1], 1.0f);
  EXPECT_GT(out[1], out[0]);
  auto softmax = Compile(Model("multi:softmax", "2", "[0,1]"));
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
TEST_P(ForestKernelTest, UnbalancedTreeAndMissingValuesInBlocks) {
  std::string json =
      R"({"learner":{"learner_model_param":{"base_score":"0","num_class":"0",)"
      R"("num_feature":"2","num_target":"1"},"objective":{"name":"reg:squarederror"},)"
      R"("gradient_booster":{"name":"gbtree","model":{"tree_info":["0"],"trees":[)"
      R"({"left_children":["1","-1","3","-1","-1"],"right_children":["2","-1","4","-1","-1"],)"
      R"("split_indices":["0","0","1","0","0"],"split_conditions":["0","1","5","2","3"],)"
      R"("default_left":["0","0","1","0","0"],"split_type":["0","0","0","0","0"],)"
      R"("tree_param":{"num_nodes":"5","size_leaf_vector":"0"}}]}}}})";
  auto f = Compile(json);
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
// lanes and a tail; 16-row chunks and a tail in the vector kernel): 41 rows, values on, below and
// above every threshold, two trees summed.
TEST_P(ForestKernelTest, BlocksWithoutMissingValuesAgreeWithTheTree) {
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
  auto f = Compile(json);
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

INSTANTIATE_TEST_SUITE_P(Kernels, ForestKernelTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Vector" : "Walk"; });

// A random forest in XGBoost's JSON layout: trees of random shape (leaves at
// any depth up to max_depth), features among num_features, thresholds drawn
// from a small set so rows hit them exactly, random default directions.
std::string RandomForestJson(std::mt19937& rng, int trees, int max_depth, int num_features,
                             int num_class) {
  std::string tree_json, info;
  for (int t = 0; t < trees; ++t) {
    std::vector<int> left, right, feature, dleft;
    std::vector<float> value;
    // Grows node `id` at `depth`; appends children depth-first.
    std::function<void(int, int)> grow = [&](int id, int depth) {
      bool leaf = depth == max_depth || (depth > 0 && rng() % 4 == 0);
      if (leaf) {
        value[id] = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) / 256.0f;
        return;
      }
      int l = static_cast<int>(left.size()), r = l + 1;
      for (int k = 0; k < 2; ++k) {
        left.push_back(-1), right.push_back(-1), feature.push_back(0), dleft.push_back(0);
        value.push_back(0);
      }
      left[id] = l, right[id] = r;
      feature[id] = static_cast<int>(rng() % num_features);
      dleft[id] = static_cast<int>(rng() % 2);
      value[id] = static_cast<float>(static_cast<int>(rng() % 9) - 4) / 2.0f;
      grow(l, depth + 1);
      grow(r, depth + 1);
    };
    left = {-1}, right = {-1}, feature = {0}, dleft = {0}, value = {0};
    grow(0, 0);
    auto list = [](const auto& v) {
      std::string out = "[";
      for (size_t i = 0; i < v.size(); ++i) out += (i ? ",\"" : "\"") + StrCat(v[i]) + "\"";
      return out + "]";
    };
    std::vector<int> split_type(left.size(), 0);
    if (t) tree_json += ",", info += ",";
    tree_json += "{\"left_children\":" + list(left) + ",\"right_children\":" + list(right) +
                 ",\"split_indices\":" + list(feature) + ",\"split_conditions\":" + list(value) +
                 ",\"default_left\":" + list(dleft) + ",\"split_type\":" + list(split_type) +
                 ",\"tree_param\":{\"num_nodes\":\"" + StrCat(left.size()) +
                 "\",\"size_leaf_vector\":\"0\"}}";
    info += "\"" + StrCat(num_class > 1 ? t % num_class : 0) + "\"";
  }
  std::string objective = num_class > 1 ? "multi:softprob" : "reg:squarederror";
  return "{\"learner\":{\"learner_model_param\":{\"base_score\":\"0.5\",\"num_class\":\"" +
         StrCat(num_class > 1 ? num_class : 0) + "\",\"num_feature\":\"" + StrCat(num_features) +
         "\",\"num_target\":\"1\"},\"objective\":{\"name\":\"" + objective +
         "\"},\"gradient_booster\":{\"name\":\"gbtree\",\"model\":{\"tree_info\":[" + info +
         "],\"trees\":[" + tree_json + "]}}}}";
}

// The vector kernel against the walk, bit for bit, on random forests of every
// depth it serves (and one beyond, which keeps the walk), row counts around
// its 16-row chunks and the 64-row blocks, with and without missing values,
// values on the thresholds, signed zeros and infinities, and wide models
// (features and classes past its on-stack buffers).
TEST(ForestTest, VectorKernelAgreesWithTheWalkBitForBit) {
  std::mt19937 rng(7);
  struct Shape {
    int trees, max_depth, features, classes;
  } shapes[] = {{1, 0, 1, 1},   {3, 1, 2, 1},   {20, 3, 4, 3},   {30, 4, 7, 1},
                {25, 5, 16, 4}, {40, 6, 30, 1}, {10, 6, 90, 70}, {5, 7, 5, 1}};
  for (const Shape& shape : shapes) {
    std::string json =
        RandomForestJson(rng, shape.trees, shape.max_depth, shape.features, shape.classes);
    auto walk = Forest::Compile(json, false);
    auto vector = Forest::Compile(json, true);
    ASSERT_TRUE(walk.ok()) << walk.status();
    ASSERT_TRUE(vector.ok()) << vector.status();
    EXPECT_FALSE((*walk)->simd());
    if (shape.max_depth > 6) {
      EXPECT_FALSE((*vector)->simd()) << "depth " << shape.max_depth;
    } else if (__builtin_cpu_supports("avx512f")) {
      EXPECT_TRUE((*vector)->simd()) << "depth " << shape.max_depth;
    }
    const float specials[] = {0.0f, -0.0f, 0.5f, -2.0f, INFINITY, -INFINITY, 1e-30f};
    for (int n : {1, 2, 15, 16, 17, 63, 64, 65, 200}) {
      for (bool missing : {false, true}) {
        std::vector<float> rows(static_cast<size_t>(n * shape.features));
        for (float& x : rows) {
          uint32_t pick = rng() % 10;
          if (missing && pick == 0)
            x = NAN;
          else if (pick < 4)
            x = specials[rng() % 7];
          else
            x = static_cast<float>(static_cast<int>(rng() % 9) - 4) / 2.0f;  // on thresholds
        }
        const size_t width = static_cast<size_t>((*walk)->output_width());
        std::vector<float> want(static_cast<size_t>(n) * width), got(want.size());
        (*walk)->Predict(rows.data(), n, want.data());
        (*vector)->Predict(rows.data(), n, got.data());
        ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
            << "depth " << shape.max_depth << ", " << shape.features << " features, "
            << shape.classes << " classes, " << n << " rows, missing " << missing;
      }
    }
  }
}

}  // namespace
}  // namespace osprey
