#include "tensor/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace osprey {
namespace {

TEST(DataTypeTest, NamesRoundTripAndSizes) {
  struct Case {
    const char* name;
    size_t size;
  } cases[] = {{"BOOL", 1}, {"UINT8", 1}, {"UINT16", 2}, {"UINT32", 4}, {"UINT64", 8},
               {"INT8", 1}, {"INT16", 2}, {"INT32", 4},  {"INT64", 8},  {"FP16", 2},
               {"FP32", 4}, {"FP64", 8},  {"BF16", 2},   {"BYTES", 0}};
  for (const auto& c : cases) {
    DataType t = ParseDataType(c.name);
    ASSERT_NE(t, DataType::kInvalid) << c.name;
    EXPECT_EQ(DataTypeName(t), c.name);
    EXPECT_EQ(ElementSize(t), c.size) << c.name;
  }
  EXPECT_EQ(ParseDataType("fp32"), DataType::kInvalid);
  EXPECT_EQ(ParseDataType("FLOAT"), DataType::kInvalid);
}

TEST(ShapeTest, CountsAndMatches) {
  EXPECT_EQ(*ElementCount({2, 3, 4}), 24);
  EXPECT_EQ(*ElementCount({}), 1);
  EXPECT_EQ(*ElementCount({5, 0}), 0);
  EXPECT_FALSE(ElementCount({-1, 3}).ok());
  EXPECT_FALSE(ElementCount({1ll << 40, 1ll << 40}).ok());
  EXPECT_TRUE(ShapeMatches({-1, 4}, {2, 4}));
  EXPECT_FALSE(ShapeMatches({-1, 4}, {2, 3}));
  EXPECT_FALSE(ShapeMatches({-1, 4}, {8}));
  EXPECT_EQ(ShapeToString({-1, 4}), "[-1,4]");
}

TEST(TensorTest, ValidateFixedSize) {
  Tensor t("x", DataType::kFp32, {2, 2});
  t.SetData(std::string(16, '\0'));
  EXPECT_TRUE(t.Validate().ok());
  t.SetData(std::string(12, '\0'));
  absl::Status s = t.Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'x'"), std::string::npos);
  EXPECT_NE(s.message().find("16 bytes"), std::string::npos);
  EXPECT_NE(s.message().find("got 12"), std::string::npos);
}

TEST(TensorTest, ValidateBytes) {
  Tensor t("s", DataType::kBytes, {2});
  std::string raw;
  AppendBytesElement("ab", &raw);
  AppendBytesElement("", &raw);
  t.SetData(raw);
  EXPECT_TRUE(t.Validate().ok());
  BytesReader reader(t.data());
  std::string_view e;
  ASSERT_TRUE(reader.Next(&e));
  EXPECT_EQ(e, "ab");
  ASSERT_TRUE(reader.Next(&e));
  EXPECT_EQ(e, "");
  EXPECT_FALSE(reader.Next(&e));

  t.SetData(raw.substr(0, raw.size() - 1));  // truncated prefix
  EXPECT_FALSE(t.Validate().ok());
  std::string lying = raw;
  lying[0] = 100;  // first element claims 100 bytes
  t.SetData(lying);
  EXPECT_NE(t.Validate().message().find("declares 100 bytes"), std::string::npos);
  *t.mutable_shape() = {3};
  t.SetData(raw);
  EXPECT_NE(t.Validate().message().find("expects 3 BYTES elements, got 2"), std::string::npos);
}

TEST(TensorTest, BorrowedDataSurvivesMove) {
  std::string backing = "abcdefgh";
  Tensor t("x", DataType::kUint8, {8});
  t.BorrowData(backing);
  Tensor moved = std::move(t);
  EXPECT_EQ(moved.data(), "abcdefgh");
  moved.mutable_owned_data()->at(0) = 'z';
  EXPECT_EQ(moved.data(), "zbcdefgh");
  EXPECT_EQ(backing, "abcdefgh");
}

TEST(TensorTest, ConvertsEveryNumericTypeToFloat) {
  auto make = [](DataType type, const void* bytes, size_t n) {
    Tensor t("in", type, {static_cast<int64_t>(n / ElementSize(type))});
    t.SetData(std::string(static_cast<const char*>(bytes), n));
    return t;
  };
  int8_t i8[] = {-3, 4};
  uint16_t u16[] = {65535, 2};
  int64_t i64[] = {-(1ll << 40), 7};
  double f64[] = {1.5, -2.25};
  bool b[] = {true, false};
  uint16_t f16[] = {FloatToHalf(1.5f), FloatToHalf(-0.25f)};
  uint16_t bf16[] = {FloatToBfloat16(3.0f), FloatToBfloat16(-1.0f)};
  std::vector<float> out;
  ASSERT_TRUE(ConvertToFloat32(make(DataType::kInt8, i8, 2), &out).ok());
  EXPECT_EQ(out, (std::vector<float>{-3, 4}));
  ASSERT_TRUE(ConvertToFloat32(make(DataType::kUint16, u16, 4), &out).ok());
  EXPECT_EQ(out, (std::vector<float>{65535, 2}));
  ASSERT_TRUE(ConvertToFloat32(make(DataType::kInt64, i64, 16), &out).ok());
  EXPECT_EQ(out[0], static_cast<float>(-(1ll << 40)));
  ASSERT_TRUE(ConvertToFloat32(make(DataType::kFp64, f64, 16), &out).ok());
  EXPECT_EQ(out, (std::vector<float>{1.5f, -2.25f}));
  ASSERT_TRUE(ConvertToFloat32(make(DataType::kBool, b, 2), &out).ok());
  EXPECT_EQ(out, (std::vector<float>{1, 0}));
  ASSERT_TRUE(ConvertToFloat32(make(DataType::kFp16, f16, 4), &out).ok());
  EXPECT_EQ(out, (std::vector<float>{1.5f, -0.25f}));
  ASSERT_TRUE(ConvertToFloat32(make(DataType::kBf16, bf16, 4), &out).ok());
  EXPECT_EQ(out, (std::vector<float>{3.0f, -1.0f}));
  Tensor empty("e", DataType::kFp32, {0, 4});
  ASSERT_TRUE(ConvertToFloat32(empty, &out).ok());
  EXPECT_TRUE(out.empty());
  Tensor bytes("words", DataType::kBytes, {0});
  absl::Status s = ConvertToFloat32(bytes, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'words' has datatype BYTES"), std::string::npos);
}

TEST(HalfTest, RoundTripsSpecialValues) {
  for (float f : {0.0f, -0.0f, 1.0f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, -2.5f})
    EXPECT_EQ(HalfToFloat(FloatToHalf(f)), f) << f;
  EXPECT_TRUE(std::isinf(HalfToFloat(FloatToHalf(1e6f))));
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(std::nanf("")))));
  EXPECT_EQ(Bfloat16ToFloat(FloatToBfloat16(1.0f)), 1.0f);
}

TEST(ParametersTest, TypedLookup) {
  Parameters p = {{"a", true}, {"n", int64_t{5}}, {"s", std::string("x")}};
  EXPECT_EQ(GetBoolParameter(p, "a"), true);
  EXPECT_EQ(GetBoolParameter(p, "n"), std::nullopt);
  EXPECT_EQ(GetIntParameter(p, "n"), 5);
  EXPECT_EQ(FindParameter(p, "missing"), nullptr);
}

}  // namespace
}  // namespace osprey
