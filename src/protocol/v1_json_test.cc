#include "protocol/v1_json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace osprey {
namespace {

ModelMetadata IrisMetadata() {
  ModelMetadata md;
  md.name = "iris";
  md.inputs = {{"input-0", DataType::kFp32, {-1, 4}}};
  md.outputs = {{"output-0", DataType::kFp32, {-1}}};
  md.feature_names = {"sl", "sw", "pl", "pw"};
  return md;
}

std::vector<float> Floats(const Tensor& t) {
  std::vector<float> v(t.data().size() / 4);
  std::memcpy(v.data(), t.data().data(), t.data().size());
  return v;
}

TEST(V1DecodeTest, ListRows) {
  auto req = DecodeV1PredictRequest(R"({"instances":[[6.8,2.8,4.8,1.4],[6.0,3.4,4.5,1.6]]})",
                                    IrisMetadata());
  ASSERT_TRUE(req.ok()) << req.status();
  ASSERT_EQ(req->inputs.size(), 1u);
  EXPECT_EQ(req->inputs[0].name(), "input-0");
  EXPECT_EQ(req->inputs[0].shape(), (Shape{2, 4}));
  EXPECT_EQ(Floats(req->inputs[0])[4], 6.0f);
  EXPECT_TRUE(req->inputs[0].Validate().ok());
}

// Instances of a model with [batch, c, h, w] inputs keep their nesting; a
// flat instance of the same count stays [batch, width].
// A number far below the smallest double is the zero it denotes; RapidJSON's
// full-precision parser crashed on it (a fuzzer's find: one request could
// take a server down) or read garbage (common/json_numbers.h).
TEST(V1DecodeTest, NumbersBelowEveryDoubleAreZero) {
  const std::string tiny = "0." + std::string(600, '0') + "12007528410411896";
  auto req = DecodeV1PredictRequest("{\"instances\":[[" + tiny + ",1.2345678901234567e-330,-0." +
                                        std::string(340, '0') + ",6.8]]}",
                                    IrisMetadata());
  ASSERT_TRUE(req.ok()) << req.status();
  const auto v = Floats(req->inputs[0]);
  EXPECT_EQ(v[0], 0.0f);
  EXPECT_EQ(v[1], 0.0f);
  EXPECT_EQ(v[2], 0.0f);
  EXPECT_EQ(v[3], 6.8f);
}

TEST(V1DecodeTest, NestedInstancesKeepTheirShape) {
  ModelMetadata md;
  md.name = "img";
  md.inputs = {{"INPUT__0", DataType::kFp32, {-1, 1, 2, 3}}};
  auto req =
      DecodeV1PredictRequest(R"({"instances":[[[[1,2,3],[4,5,6]]],[[[7,8,9],[10,11,12]]]]})", md);
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->inputs[0].shape(), (Shape{2, 1, 2, 3}));
  EXPECT_EQ(Floats(req->inputs[0])[7], 8.0f);
  req = DecodeV1PredictRequest(R"({"instances":[[1,2,3,4,5,6]]})", md);
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->inputs[0].shape(), (Shape{1, 6}));
}

TEST(V1DecodeTest, NoInstancesIsAnEmptyBatch) {
  auto req = DecodeV1PredictRequest(R"({"instances":[]})", IrisMetadata());
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->inputs[0].shape(), (Shape{0, 4}));
  EXPECT_TRUE(req->inputs[0].Validate().ok());
}

TEST(V1DecodeTest, InputsAliasAndDictRows) {
  auto req = DecodeV1PredictRequest(R"({"inputs":[{"pw":1.4,"sl":6.8,"sw":2.8,"pl":4.8},
                                                  {"sl":1}]})",
                                    IrisMetadata());
  ASSERT_TRUE(req.ok()) << req.status();
  auto v = Floats(req->inputs[0]);
  EXPECT_EQ(v[0], 6.8f);
  EXPECT_EQ(v[3], 1.4f);
  EXPECT_EQ(v[4], 1.0f);
  EXPECT_TRUE(std::isnan(v[5]));  // missing feature
}

TEST(V1DecodeTest, Errors) {
  struct Case {
    const char* body;
    const char* message;
  } cases[] = {
      {"{", "invalid JSON"},
      {"[]", "must be a JSON object"},
      {R"({"rows":[]})", "expected 'instances'"},
      {R"({"instances":5})", "must be an array"},
      {R"({"instances":[[1,2,3]]})",
       "instance 0 has 3 values; model 'iris' input 'input-0' expects 4"},
      {R"({"instances":[[1,2,3,4],[1,2,3,"x"]]})", "instance 1: values must be numbers"},
      {R"({"instances":[{"petal":1}]})", "unknown feature 'petal'"},
      {R"({"instances":[{"sl":"a"}]})", "feature 'sl' must be a number"},
  };
  for (const auto& c : cases) {
    auto req = DecodeV1PredictRequest(c.body, IrisMetadata());
    ASSERT_FALSE(req.ok()) << c.body;
    EXPECT_EQ(req.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(req.status().message().find(c.message), std::string::npos)
        << c.body << " -> " << req.status().message();
  }
}

// KServe's servers hand V1 instances to pandas: lists of records, column
// dictionaries and pandas' index-keyed to_dict() shape all give the same rows.
TEST(V1DecodeTest, PandasShapes) {
  const std::vector<float> want = {6.8f, 2.8f, 4.8f, 1.4f, 6.0f, 3.4f, 4.5f, 1.6f};
  const char* bodies[] = {
      R"({"instances":[[6.8,2.8,4.8,1.4],[6.0,3.4,4.5,1.6]]})",
      R"({"instances":[[{"sl":6.8,"sw":2.8,"pl":4.8,"pw":1.4},{"pw":1.6,"pl":4.5,"sw":3.4,"sl":6.0}]]})",
      R"({"instances":[{"sl":[6.8,6.0],"sw":[2.8,3.4],"pl":[4.8,4.5],"pw":[1.4,1.6]}]})",
      R"({"instances":[{"sl":{"0":6.8,"1":6.0},"sw":{"0":2.8,"1":3.4},)"
      R"("pl":{"0":4.8,"1":4.5},"pw":{"0":1.4,"1":1.6}}]})",
      // Two instances, one row each: column dictionaries concatenate.
      R"({"instances":[{"sl":[6.8],"sw":[2.8],"pl":[4.8],"pw":[1.4]},)"
      R"({"pw":[1.6],"pl":[4.5],"sw":[3.4],"sl":[6.0]}]})",
      R"({"inputs":[{"sl":6.8,"sw":2.8,"pl":4.8,"pw":1.4},{"sl":6.0,"sw":3.4,"pl":4.5,"pw":1.6}]})",
  };
  for (const char* body : bodies) {
    auto req = DecodeV1PredictRequest(body, IrisMetadata());
    ASSERT_TRUE(req.ok()) << body << " -> " << req.status();
    EXPECT_EQ(req->inputs[0].shape(), (Shape{2, 4})) << body;
    EXPECT_EQ(Floats(req->inputs[0]), want) << body;
  }
  // Index keys: rows in the order an index first appears; a cell a column
  // lacks is missing.
  auto req = DecodeV1PredictRequest(R"({"instances":[{"sl":{"b":1,"a":2},"pw":{"a":3}}]})",
                                    IrisMetadata());
  ASSERT_TRUE(req.ok()) << req.status();
  auto v = Floats(req->inputs[0]);
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_TRUE(std::isnan(v[3]));
  EXPECT_EQ(v[4], 2.0f);
  EXPECT_EQ(v[7], 3.0f);
  // A model without feature names: columns in the order their names first appear.
  ModelMetadata unnamed = IrisMetadata();
  unnamed.feature_names.clear();
  req = DecodeV1PredictRequest(R"({"instances":[[{"x":1,"y":2,"z":3,"w":4},{"y":6,"x":5,"w":8}]]})",
                               unnamed);
  ASSERT_TRUE(req.ok()) << req.status();
  v = Floats(req->inputs[0]);
  EXPECT_EQ(v[4], 5.0f);
  EXPECT_EQ(v[5], 6.0f);
  EXPECT_TRUE(std::isnan(v[6]));
  EXPECT_EQ(v[7], 8.0f);
  // A BYTES input takes the cells as text, in the model's feature order.
  ModelMetadata text = IrisMetadata();
  text.inputs[0].datatype = DataType::kBytes;
  req = DecodeV1PredictRequest(R"({"instances":[{"pw":["a",null],"sl":[1.5,true]}]})", text);
  ASSERT_TRUE(req.ok()) << req.status();
  std::vector<std::string> cells;
  BytesReader reader(req->inputs[0].data());
  std::string_view e;
  while (reader.Next(&e)) cells.emplace_back(e);
  EXPECT_EQ(cells, (std::vector<std::string>{"1.5", "", "", "a", "true", "", "", ""}));
}

TEST(V1DecodeTest, PandasShapeErrors) {
  struct Case {
    const char* body;
    const char* message;
  } cases[] = {
      {R"({"instances":[{"sl":[1,2],"sw":[3]}]})",
       "instance 0 is a column dictionary, but column 'sw' has 1 values, not 2"},
      {R"({"instances":[{"sl":[1,2],"sw":3}]})", "column 'sw' is not a list"},
      {R"({"instances":[{"sl":{"0":1},"sw":[3]}]})", "column 'sw' is not an object"},
      {R"({"instances":[[{"sl":1},5]]})", "its element 1 is not an object"},
      {R"({"instances":[[{"sl":1},{"petal":2}]]})", "instance 0 row 1: unknown feature 'petal'"},
      {R"({"instances":[{"sl":["x"]}]})", "instance 0 row 0: feature 'sl' must be a number"},
  };
  for (const auto& c : cases) {
    auto req = DecodeV1PredictRequest(c.body, IrisMetadata());
    ASSERT_FALSE(req.ok()) << c.body;
    EXPECT_EQ(req.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(req.status().message().find(c.message), std::string::npos)
        << c.body << " -> " << req.status().message();
  }
}

TEST(V1EncodeTest, ExplanationsPerRowAndPerGroup) {
  Tensor one("contributions", DataType::kFp32, {2, 3});
  float c[] = {0.5f, -0.25f, 1.0f, 0.0f, 2.0f, 1.0f};
  one.SetData(std::string(reinterpret_cast<char*>(c), sizeof(c)));
  auto body = EncodeV1ExplainResponse(one, {"a", "b"});
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(*body, R"({"explanations":[{"contributions":[0.5,-0.25],"bias":1.0},)"
                   R"({"contributions":[0.0,2.0],"bias":1.0}],"feature_names":["a","b"]})");

  Tensor groups("contributions", DataType::kFp64, {1, 2, 2});
  double g[] = {0.5, 1.5, -1.0, 2.0};
  groups.SetData(std::string(reinterpret_cast<char*>(g), sizeof(g)));
  body = EncodeV1ExplainResponse(groups, {});
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(*body, R"({"explanations":[{"contributions":[[0.5],[-1.0]],"bias":[1.5,2.0]}]})");

  Tensor flat("contributions", DataType::kFp32, {3});
  EXPECT_EQ(EncodeV1ExplainResponse(flat, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(V1EncodeTest, ScalarsAndRows) {
  InferResponse r;
  Tensor labels("output-0", DataType::kFp32, {2});
  float l[] = {1.0f, 2.0f};
  labels.SetData(std::string(reinterpret_cast<char*>(l), 8));
  r.outputs.push_back(labels);
  EXPECT_EQ(EncodeV1PredictResponse(r), R"({"predictions":[1.0,2.0]})");

  Tensor probs("output-0", DataType::kFp32, {2, 2});
  float p[] = {0.5f, 0.5f, 0.25f, 0.75f};
  probs.SetData(std::string(reinterpret_cast<char*>(p), 16));
  r.outputs = {probs};
  EXPECT_EQ(EncodeV1PredictResponse(r), R"({"predictions":[[0.5,0.5],[0.25,0.75]]})");

  Tensor words("out", DataType::kBytes, {2});
  std::string raw;
  AppendBytesElement("setosa", &raw);
  AppendBytesElement("virginica", &raw);
  words.SetData(raw);
  r.outputs = {words};
  EXPECT_EQ(EncodeV1PredictResponse(r), R"({"predictions":["setosa","virginica"]})");
}

}  // namespace
}  // namespace osprey
