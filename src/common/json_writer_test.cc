#include "common/json_writer.h"

#include <gtest/gtest.h>

#include <cmath>

namespace osprey {
namespace {

TEST(JsonWriterTest, NestsAndSeparates) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("a").BeginArray().Int(1).Int(-2).EndArray().Key("b").Bool(true);
  w.Key("c").Null().Key("d").BeginObject().EndObject().EndObject();
  EXPECT_EQ(out, R"({"a":[1,-2],"b":true,"c":null,"d":{}})");
}

TEST(JsonWriterTest, FloatsLookLikeFloats) {
  std::string out;
  JsonWriter w(&out);
  w.BeginArray().Float(1.0f).Float(0.1f).Double(2.5).Double(1e300).Float(std::nanf(""));
  w.EndArray();
  EXPECT_EQ(out, "[1.0,0.1,2.5,1e+300,null]");
}

TEST(JsonWriterTest, EscapesStrings) {
  std::string out;
  AppendJsonString("a\"b\\c\n\x01", &out);
  EXPECT_EQ(out, R"("a\"b\\c\n\u0001")");
  EXPECT_EQ(JsonError("bad \"x\""), R"({"error":"bad \"x\""})");
}

}  // namespace
}  // namespace osprey
