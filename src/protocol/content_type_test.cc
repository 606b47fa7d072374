#include "protocol/content_type.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace osprey {
namespace {

ModelMetadata Iris(DataType type = DataType::kFp32, bool named = true) {
  ModelMetadata md;
  md.name = "iris";
  md.inputs = {{"input-0", type, {-1, 4}}};
  md.outputs = {{"output-0", DataType::kFp32, {-1}}};
  if (named) md.feature_names = {"sl", "sw", "pl", "pw"};
  return md;
}

template <typename T>
Tensor Column(std::string name, DataType type, std::vector<T> values, Shape shape = {}) {
  Tensor t(std::move(name), type,
           shape.empty() ? Shape{static_cast<int64_t>(values.size())} : shape);
  t.SetData(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T)));
  return t;
}

Tensor Text(std::string name, std::vector<std::string> values) {
  Tensor t(std::move(name), DataType::kBytes, {static_cast<int64_t>(values.size())});
  std::string raw;
  for (const auto& v : values) AppendBytesElement(v, &raw);
  t.SetData(raw);
  return t;
}

std::vector<std::string> Cells(const Tensor& t) {
  std::vector<std::string> out;
  BytesReader reader(t.data());
  std::string_view e;
  while (reader.Next(&e)) out.emplace_back(e);
  return out;
}

std::vector<float> Floats(const Tensor& t) {
  std::vector<float> v(t.data().size() / 4);
  std::memcpy(v.data(), t.data().data(), t.data().size());
  return v;
}

InferRequest Frame(std::vector<Tensor> columns) {
  InferRequest r;
  r.model_name = "iris";
  r.parameters = {{"content_type", std::string("pd")}};
  r.inputs = std::move(columns);
  return r;
}

// Columns of any datatype, in any order, become the model's one input in the
// order of its feature names; a feature no column gives is missing.
TEST(ContentTypeTest, FrameByFeatureNames) {
  InferRequest r =
      Frame({Column<double>("pw", DataType::kFp64, {1.4, 1.6}), Text("sl", {"6.8", " 6 "}),
             Column<int64_t>("sw", DataType::kInt64, {2, 3}, {2, 1})});
  ASSERT_TRUE(HasContentTypes(r));
  ASSERT_TRUE(DecodeContentTypes(Iris(), &r).ok());
  ASSERT_EQ(r.inputs.size(), 1u);
  EXPECT_EQ(r.inputs[0].name(), "input-0");
  EXPECT_EQ(r.inputs[0].datatype(), DataType::kFp32);
  EXPECT_EQ(r.inputs[0].shape(), (Shape{2, 4}));
  auto v = Floats(r.inputs[0]);
  EXPECT_EQ(v[0], 6.8f);
  EXPECT_EQ(v[1], 2.0f);
  EXPECT_TRUE(std::isnan(v[2]));
  EXPECT_EQ(v[3], 1.4f);
  EXPECT_EQ(v[4], 6.0f);
  EXPECT_EQ(v[7], 1.6f);
}

TEST(ContentTypeTest, FrameInOrderSentWithoutNamesAndAsTextForBytesModels) {
  InferRequest r = Frame({Column<float>("a", DataType::kFp32, {1, 2}),
                          Column<uint8_t>("b", DataType::kBool, {1, 0}), Text("c", {"", "x"}),
                          Column<int32_t>("d", DataType::kInt32, {7, 8})});
  ASSERT_TRUE(DecodeContentTypes(Iris(DataType::kBytes, false), &r).ok());
  EXPECT_EQ(r.inputs[0].datatype(), DataType::kBytes);
  EXPECT_EQ(Cells(r.inputs[0]),
            (std::vector<std::string>{"1", "true", "", "7", "2", "false", "x", "8"}));
}

TEST(ContentTypeTest, Errors) {
  struct Case {
    const char* what;
    InferRequest request;
    const char* message;
  } cases[] = {
      {"2-D column", Frame({Column<float>("sl", DataType::kFp32, {1, 2, 3, 4}, {2, 2})}),
       "input 'sl': a column of a 'pd' request has shape [N] or [N,1], got [2,2]"},
      {"rows differ",
       Frame({Column<float>("sl", DataType::kFp32, {1, 2}),
              Column<float>("sw", DataType::kFp32, {1})}),
       "input 'sw' has 1 rows, but input 'sl' has 2"},
      {"unknown", Frame({Column<float>("petal", DataType::kFp32, {1})}),
       "input 'petal' is not a feature of model 'iris' (features: sl, sw, pl, pw)"},
      {"twice",
       Frame(
           {Column<float>("sl", DataType::kFp32, {1}), Column<float>("sl", DataType::kFp32, {2})}),
       "input 'sl' is given twice"},
      {"not a number", Frame({Text("sl", {"1", "setosa"})}),
       "input 'sl' row 1: 'setosa' is not a number, and model 'iris' takes numbers"},
  };
  for (auto& c : cases) {
    absl::Status s = DecodeContentTypes(Iris(), &c.request);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_NE(s.message().find(c.message), std::string::npos) << c.what << ": " << s.message();
  }
}

TEST(ContentTypeTest, Base64AndStrInputs) {
  InferRequest r;
  Tensor b = Text("x", {"aGVsbG8=", ""});
  b.mutable_parameters()->push_back({"content_type", std::string("base64")});
  r.inputs.push_back(b);
  ASSERT_TRUE(HasContentTypes(r));
  ModelMetadata md;
  md.name = "m";
  md.inputs = {{"x", DataType::kBytes, {-1}}};
  ASSERT_TRUE(DecodeContentTypes(md, &r).ok());
  EXPECT_EQ(Cells(r.inputs[0]), (std::vector<std::string>{"hello", ""}));

  struct Case {
    std::vector<std::string> values;
    const char* type;
    DataType datatype;
    const char* message;  // empty: accepted
  } cases[] = {
      {{"not base64!"}, "base64", DataType::kBytes, "input 'x' element 0: not Base64"},
      {{"caf\xc3\xa9", "\xe2\x82\xac"}, "str", DataType::kBytes, ""},
      {{"ok", "\xc3"},
       "str",
       DataType::kBytes,
       "input 'x' element 1: content_type 'str' needs UTF-8"},
      {{"\xc0\xaf"}, "str", DataType::kBytes, "needs UTF-8"},      // overlong
      {{"\xed\xa0\x80"}, "str", DataType::kBytes, "needs UTF-8"},  // surrogate
      {{"a"}, "base64", DataType::kFp32, "content_type 'base64' needs datatype BYTES, got FP32"},
      {{"a"}, "np", DataType::kBytes, ""},
  };
  for (const auto& c : cases) {
    InferRequest q;
    Tensor t = Text("x", c.values);
    t.set_datatype(c.datatype);
    t.mutable_parameters()->push_back({"content_type", std::string(c.type)});
    q.inputs.push_back(t);
    absl::Status s = DecodeContentTypes(md, &q);
    if (*c.message == '\0') {
      EXPECT_TRUE(s.ok()) << c.type << ": " << s;
    } else {
      EXPECT_NE(s.message().find(c.message), std::string::npos) << c.type << ": " << s.message();
    }
  }
}

TEST(ContentTypeTest, LeftAlone) {
  // No content type, "np", several-input models and models that decode
  // their own requests: the inputs stay as sent.
  InferRequest plain;
  plain.inputs.push_back(Column<float>("input-0", DataType::kFp32, {1, 2, 3, 4}, {1, 4}));
  EXPECT_FALSE(HasContentTypes(plain));
  InferRequest np = plain;
  np.parameters = {{"content_type", std::string("np")}};
  EXPECT_FALSE(HasContentTypes(np));
  InferRequest frame = Frame({Column<float>("a", DataType::kFp32, {1})});
  ModelMetadata raw = Iris();
  raw.raw_requests = true;
  ASSERT_TRUE(DecodeContentTypes(raw, &frame).ok());
  EXPECT_EQ(frame.inputs[0].name(), "a");
  ModelMetadata two = Iris();
  two.inputs.push_back({"input-1", DataType::kFp32, {-1}});
  ASSERT_TRUE(DecodeContentTypes(two, &frame).ok());
  EXPECT_EQ(frame.inputs[0].name(), "a");
}

}  // namespace
}  // namespace osprey
