#include "gateway/grpc_ingress.h"

#include <gtest/gtest.h>

#include <string>

namespace osprey::gateway {
namespace {

TEST(ProtoField1String, FindsTheModelNameWherever) {
  // field 1 "iris" (0x0a 04), after it field 2 "3"
  std::string infer = std::string("\x0a\x04iris\x12\x01\x33", 9);
  EXPECT_EQ(ProtoField1String(infer), "iris");
  // field 2 first, then a varint field 5, then field 1
  std::string later = std::string(
      "\x12\x02v1\x28\x96\x01\x0a\x05"
      "fruit",
      14);
  EXPECT_EQ(ProtoField1String(later), "fruit");
  // a fixed64 and a fixed32 skipped
  std::string fixed = std::string(
      "\x19"
      "12345678"
      "\x25"
      "abcd"
      "\x0a\x01x",
      17);
  EXPECT_EQ(ProtoField1String(fixed), "x");
  // absent, truncated, or garbage: empty, never past the end
  EXPECT_EQ(ProtoField1String(std::string("\x12\x02v1", 4)), "");
  EXPECT_EQ(ProtoField1String(std::string("\x0a\x09iris", 6)), "");
  EXPECT_EQ(ProtoField1String(std::string("\xff\xff", 2)), "");
  EXPECT_EQ(ProtoField1String(""), "");
}

}  // namespace
}  // namespace osprey::gateway
