#include "common/json_numbers.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>

namespace osprey {
namespace {

std::string Zeros(int n) { return std::string(static_cast<size_t>(n), '0'); }

double ParseFull(const std::string& text) {
  rapidjson::Document d;
  d.Parse<rapidjson::kParseFullPrecisionFlag>(text.c_str());
  EXPECT_FALSE(d.HasParseError()) << text;
  return d.IsNumber() ? d.GetDouble() : -1;
}

TEST(SafeJsonNumbers, OrdinaryTextIsLeftAlone) {
  for (const char* text : {R"({"instances":[[6.8,2.8,4.8,1.4]],"x":-1e-300,"y":0.000001})",
                           R"(["0.000000000000000000000000000001", 1e307, -0])", "", "[]"})
    EXPECT_FALSE(SafeJsonNumbers(text).has_value()) << text;
}

TEST(SafeJsonNumbers, NumbersBelowEveryDoubleBecomeWhatTheyDenote) {
  struct Case {
    std::string in, want;
  };
  const Case cases[] = {
      {"[0." + Zeros(600) + "]", "[0.0]"},
      {"[-0." + Zeros(400) + "1]", "[-0.0]"},
      {"[1.2345678901234567e-330]", "[0.0]"},
      {"[0." + Zeros(320) + "1,2]", "[1e-321,2]"},
      {"{\"a\":\"0." + Zeros(400) + "1\",\"b\":0." + Zeros(400) + "1}",
       "{\"a\":\"0." + Zeros(400) + "1\",\"b\":0.0}"},
      {"[1" + Zeros(300) + "]", "[1e+300]"},
      {"[1" + Zeros(400) + "]", "[1e999]"},  // too big: the parser refuses it
      {"[5e308,-10e308,1.5e308]", "[1e999,-1e999,1.5e+308]"},
      {"[1.0000000000e-2147483639]", "[0.0]"},  // its exponent overflowed the parser's int
      {"[01e-400,1.e-400,1e-]", "[01e-400,1.e-400,1e-]"},  // not JSON: left to be refused
  };
  for (const Case& c : cases) {
    auto got = SafeJsonNumbers(c.in);
    const std::string text = got.value_or(c.in);
    EXPECT_EQ(text, c.want) << c.in.substr(0, 40);
  }
  // What they become, RapidJSON's full-precision parser reads right (it read
  // 0.000...0 with 340 zeros as 1.7e-285 and crashed on 600).
  EXPECT_EQ(ParseFull(*SafeJsonNumbers("0." + Zeros(340))), 0.0);
  EXPECT_EQ(ParseFull(*SafeJsonNumbers("1.2345678901234567e-330")), 0.0);
  EXPECT_EQ(ParseFull(*SafeJsonNumbers("0." + Zeros(320) + "1")), 1e-321);
  EXPECT_EQ(ParseFull(*SafeJsonNumbers("0.0000000001" + Zeros(300))), 1e-10);
  rapidjson::Document d;
  d.Parse(SafeJsonNumbers("[5e308]")->c_str());
  EXPECT_TRUE(d.HasParseError());  // refused as too big, not misread
}

}  // namespace
}  // namespace osprey
