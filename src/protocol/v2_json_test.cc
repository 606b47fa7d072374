#include "protocol/v2_json.h"

#include <gtest/gtest.h>

#include <cstring>

namespace osprey {
namespace {

absl::StatusOr<InferRequest> Decode(std::string body,
                                    std::optional<uint64_t> header_length = std::nullopt) {
  return DecodeV2InferRequest(std::make_shared<const std::string>(std::move(body)), header_length);
}

std::string OneInput(const std::string& datatype, const std::string& shape,
                     const std::string& data) {
  return R"({"inputs":[{"name":"x","datatype":")" + datatype + R"(","shape":)" + shape +
         R"(,"data":)" + data + "}]}";
}

// Every JSON-capable datatype decodes and re-encodes to the same JSON data.
TEST(V2JsonTest, EveryDatatypeRoundTripsThroughJson) {
  struct Case {
    const char* type;
    const char* data;
    size_t bytes;
  } cases[] = {
      {"BOOL", "[true,false]", 2},
      {"UINT8", "[0,255]", 2},
      {"UINT16", "[0,65535]", 4},
      {"UINT32", "[0,4294967295]", 8},
      {"UINT64", "[0,18446744073709551615]", 16},
      {"INT8", "[-128,127]", 2},
      {"INT16", "[-32768,32767]", 4},
      {"INT32", "[-2147483648,2147483647]", 8},
      {"INT64", "[-9223372036854775808,9223372036854775807]", 16},
      {"FP32", "[1.5,-0.1]", 8},
      {"FP64", "[1.5,-0.1]", 16},
      {"BYTES", R"(["ab","\u00e9\n"])", 4 + 2 + 4 + 3},
  };
  for (const auto& c : cases) {
    auto req = Decode(OneInput(c.type, "[2]", c.data));
    ASSERT_TRUE(req.ok()) << c.type << ": " << req.status();
    const Tensor& t = req->inputs[0];
    EXPECT_EQ(DataTypeName(t.datatype()), c.type);
    EXPECT_EQ(t.data().size(), c.bytes) << c.type;
    EXPECT_TRUE(t.Validate().ok()) << c.type;

    InferResponse resp;
    resp.model_name = "m";
    resp.outputs.push_back(t);
    InferRequest plain;
    EncodedBody enc = EncodeV2InferResponse(resp, plain);
    EXPECT_FALSE(enc.json_length.has_value());
    std::string expect_data =
        std::string(R"("data":)") + (std::string(c.type) == "BYTES" ? R"(["ab","é\n"])" : c.data);
    EXPECT_NE(enc.body.find(expect_data), std::string::npos) << c.type << ": " << enc.body;
  }
}

TEST(V2JsonTest, NestedAndFlatDataAgree) {
  auto flat = Decode(OneInput("FP32", "[2,2]", "[1,2,3,4]"));
  auto nested = Decode(OneInput("FP32", "[2,2]", "[[1,2],[3,4]]"));
  ASSERT_TRUE(flat.ok() && nested.ok());
  EXPECT_EQ(flat->inputs[0].data(), nested->inputs[0].data());
}

TEST(V2JsonTest, DecodesIdParametersAndRequestedOutputs) {
  auto req = Decode(R"({"id":"r-1","parameters":{"binary_data_output":true,"n":3,"f":0.5,"s":"v"},
    "inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[7],"parameters":{"p":"q"}}],
    "outputs":[{"name":"y","parameters":{"binary_data":false}}]})");
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->id, "r-1");
  EXPECT_EQ(GetBoolParameter(req->parameters, "binary_data_output"), true);
  EXPECT_EQ(GetIntParameter(req->parameters, "n"), 3);
  EXPECT_EQ(std::get<double>(*FindParameter(req->parameters, "f")), 0.5);
  ASSERT_EQ(req->outputs.size(), 1u);
  EXPECT_EQ(req->outputs[0].name, "y");
  EXPECT_FALSE(WantsBinaryOutput(*req, "y"));  // per-output setting wins
  EXPECT_TRUE(WantsBinaryOutput(*req, "z"));   // request-wide default
}

TEST(V2JsonTest, BinaryInputsBorrowTheBody) {
  std::string json =
      R"({"inputs":[{"name":"a","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}},)"
      R"({"name":"b","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":7}},)"
      R"({"name":"c","datatype":"FP16","shape":[1],"parameters":{"binary_data_size":2}}]})";
  float a[] = {1.25f, -3.0f};
  std::string body = json;
  body.append(reinterpret_cast<char*>(a), 8);
  AppendBytesElement("abc", &body);
  uint16_t h = FloatToHalf(0.5f);
  body.append(reinterpret_cast<char*>(&h), 2);
  auto req = Decode(body, json.size());
  ASSERT_TRUE(req.ok()) << req.status();
  ASSERT_EQ(req->inputs.size(), 3u);
  float got[2];
  std::memcpy(got, req->inputs[0].data().data(), 8);
  EXPECT_EQ(got[1], -3.0f);
  EXPECT_EQ(FindParameter(req->inputs[0].parameters(), "binary_data_size"), nullptr);
  EXPECT_EQ(req->inputs[2].data().size(), 2u);
  // Borrowed bytes point into the body kept alive by the request.
  EXPECT_GE(req->inputs[0].data().data(),
            static_cast<const std::string*>(req->backing.get())->data());
}

TEST(V2JsonTest, BinaryOutputsFollowTheJson) {
  InferRequest req;
  req.parameters.emplace_back("binary_data_output", true);
  req.outputs.push_back({"keep_json", {{"binary_data", false}}});
  InferResponse resp;
  resp.model_name = "m";
  resp.id = "7";
  Tensor y("y", DataType::kFp32, {2});
  float v[] = {0.5f, 2.0f};
  y.SetData(std::string(reinterpret_cast<char*>(v), 8));
  Tensor j("keep_json", DataType::kInt64, {1});
  int64_t one = 1;
  j.SetData(std::string(reinterpret_cast<char*>(&one), 8));
  resp.outputs = {y, j};
  EncodedBody enc = EncodeV2InferResponse(resp, req);
  ASSERT_TRUE(enc.json_length.has_value());
  std::string json = enc.body.substr(0, *enc.json_length);
  EXPECT_NE(json.find(R"("parameters":{"binary_data_size":8})"), std::string::npos) << json;
  EXPECT_EQ(
      json.find(
          R"("name":"y","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8},"data")"),
      std::string::npos);
  EXPECT_NE(json.find(R"("data":[1])"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("id":"7")"), std::string::npos);
  ASSERT_EQ(enc.body.size(), *enc.json_length + 8);
  EXPECT_EQ(enc.body.substr(*enc.json_length), std::string(reinterpret_cast<char*>(v), 8));
}

TEST(V2JsonTest, ErrorsNameTheProblem) {
  struct Case {
    std::string body;
    std::optional<uint64_t> header_length;
    const char* message;
  } cases[] = {
      {"{\"inputs\":", std::nullopt, "invalid JSON at offset"},
      {"[1]", std::nullopt, "must be a JSON object"},
      {"{}", std::nullopt, "'inputs' is missing"},
      {R"({"inputs":[]})", std::nullopt, "'inputs' is empty"},
      {R"({"id":5,"inputs":[]})", std::nullopt, "'id' must be a string"},
      {R"({"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]})", std::nullopt,
       "'name' is missing"},
      {OneInput("FLOAT", "[1]", "[1]"), std::nullopt, "unknown datatype 'FLOAT'"},
      {OneInput("FP32", "[-1]", "[1]"), std::nullopt, "non-negative integers"},
      {OneInput("FP32", "[2,2]", "[1,2,3]"), std::nullopt,
       "input 'x': shape [2,2] expects 4 elements, but 'data' holds 3"},
      {OneInput("FP32", "[2]", "[1,2,3]"), std::nullopt, "expects 2 elements, but 'data' holds 3"},
      {OneInput("FP32", "[2]", R"([1,"a"])"), std::nullopt,
       "element 1 is a string, expected a number for FP32"},
      {OneInput("INT8", "[1]", "[300]"), std::nullopt, "out of range for INT8"},
      {OneInput("UINT8", "[1]", "[-1]"), std::nullopt, "negative, not allowed for UINT8"},
      {OneInput("INT32", "[1]", "[1.5]"), std::nullopt, "expected an integer for INT32"},
      {OneInput("BOOL", "[1]", "[1]"), std::nullopt, "expected true or false for BOOL"},
      {OneInput("BYTES", "[1]", "[1]"), std::nullopt, "expected a string for BYTES"},
      {OneInput("FP16", "[1]", "[1]"), std::nullopt, "FP16 data travels only in binary form"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1]}]})", std::nullopt,
       "'data' is missing"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}}]})",
       std::nullopt, "binary_data_size 4 exceeds the 0 binary bytes left"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":4}}]})"
       "abcd",
       91, "tensor 'x': shape [2] of FP32 needs 2 elements (8 bytes), got 4 bytes"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}}]})"
       "abcdEXTRA",
       91, "add up to 4 bytes, but the body carries 9 bytes"},
      {"{}", 100, "Inference-Header-Content-Length is 100 but the body holds only 2 bytes"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"outputs":[{}]})",
       std::nullopt, "'outputs' entry: 'name' is missing"},
      {R"({"parameters":{"a":[1]},"inputs":[]})", std::nullopt,
       "parameter 'a' must be a string, number or boolean"},
  };
  for (const auto& c : cases) {
    auto req = Decode(c.body, c.header_length);
    ASSERT_FALSE(req.ok()) << c.body;
    EXPECT_EQ(req.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(req.status().message().find(c.message), std::string::npos)
        << c.body << "\n  -> " << req.status().message();
  }
}

TEST(V2JsonTest, MetadataAndIndex) {
  ModelMetadata md;
  md.name = "iris";
  md.versions = {"1"};
  md.platform = "xgboost";
  md.inputs = {{"input-0", DataType::kFp32, {-1, 4}}};
  md.outputs = {{"output-0", DataType::kFp32, {-1}}};
  EXPECT_EQ(EncodeV2ModelMetadata(md),
            R"({"name":"iris","versions":["1"],"platform":"xgboost",)"
            R"("inputs":[{"name":"input-0","datatype":"FP32","shape":[-1,4]}],)"
            R"("outputs":[{"name":"output-0","datatype":"FP32","shape":[-1]}]})");
  // Content types of the tensors and the model, when a backend declares them.
  md.inputs[0].parameters = {{"content_type", std::string("np")}};
  md.parameters = {{"content_type", std::string("pd")}};
  EXPECT_EQ(EncodeV2ModelMetadata(md),
            R"({"name":"iris","versions":["1"],"platform":"xgboost",)"
            R"("inputs":[{"name":"input-0","datatype":"FP32","shape":[-1,4],)"
            R"("parameters":{"content_type":"np"}}],)"
            R"("outputs":[{"name":"output-0","datatype":"FP32","shape":[-1]}],)"
            R"("parameters":{"content_type":"pd"}})");
  EXPECT_EQ(EncodeV2RepositoryIndex({{"a", "1", "READY", ""}, {"b", "", "UNAVAILABLE", "bad"}}),
            R"([{"name":"a","version":"1","state":"READY","reason":""},)"
            R"({"name":"b","state":"UNAVAILABLE","reason":"bad"}])");
  EXPECT_EQ(*DecodeV2RepositoryIndexRequest(""), false);
  EXPECT_EQ(*DecodeV2RepositoryIndexRequest(R"({"ready":true})"), true);
  EXPECT_FALSE(DecodeV2RepositoryIndexRequest(R"({"ready":1})").ok());
}

}  // namespace
}  // namespace osprey

namespace osprey {
namespace {
TEST(V2JsonTest, TritonModelConfig) {
  ModelMetadata md;
  md.name = "m";
  md.platform = "xgboost";
  md.inputs = {{"in", DataType::kBytes, {-1}}};
  md.outputs = {{"out", DataType::kFp32, {-1, 3}}};
  EXPECT_EQ(EncodeTritonModelConfig(md),
            R"({"name":"m","platform":"xgboost","backend":"xgboost","max_batch_size":0,)"
            R"("input":[{"name":"in","data_type":"TYPE_STRING","dims":[-1]}],)"
            R"("output":[{"name":"out","data_type":"TYPE_FP32","dims":[-1,3]}]})");
}
}  // namespace
}  // namespace osprey
