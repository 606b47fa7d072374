#include "gateway/graph_gjson.h"

#include <gtest/gtest.h>

namespace osprey::gateway {
namespace {

// GJSON's own README document.
constexpr char kDoc[] = R"json({
  "name": {"first": "Tom", "last": "Anderson"},
  "age": 37,
  "children": ["Sara", "Alex", "Jack"],
  "fav.movie": "Deer Hunter",
  "friends": [
    {"first": "Dale", "last": "Murphy", "age": 44, "nets": ["ig", "fb", "tw"]},
    {"first": "Roger", "last": "Craig", "age": 68, "nets": ["fb", "tw"]},
    {"first": "Jane", "last": "Murphy", "age": 47, "nets": ["ig", "tw"]}
  ],
  "flag": true,
  "nothing": null
})json";

struct Case {
  const char* path;
  const char* want;  // compact JSON, "" for "does not exist"
};

class GjsonGetTest : public testing::TestWithParam<Case> {};

TEST_P(GjsonGetTest, AsGjson) {
  EXPECT_EQ(GjsonGet(kDoc, GetParam().path), GetParam().want) << GetParam().path;
  EXPECT_EQ(GjsonExists(kDoc, GetParam().path), *GetParam().want != '\0') << GetParam().path;
}

INSTANTIATE_TEST_SUITE_P(
    Readme, GjsonGetTest,
    testing::Values(
        Case{"name.last", R"("Anderson")"}, Case{"age", "37"},
        Case{"children", R"(["Sara","Alex","Jack"])"}, Case{"children.#", "3"},
        Case{"children.1", R"("Alex")"}, Case{"children.3", ""}, Case{"child*.2", R"("Jack")"},
        Case{"c?ildren.0", R"("Sara")"}, Case{R"(fav\.movie)", R"("Deer Hunter")"},
        Case{"fav.movie", ""}, Case{"friends.#.first", R"(["Dale","Roger","Jane"])"},
        Case{"friends.1.last", R"("Craig")"},
        Case{R"(friends.#(last=="Murphy").first)", R"("Dale")"},
        Case{R"(friends.#(last=="Murphy")#.first)", R"(["Dale","Jane"])"},
        Case{"friends.#(age>45)#.last", R"(["Craig","Murphy"])"},
        Case{R"(friends.#(first%"D*").last)", R"("Murphy")"},
        Case{R"(friends.#(first!%"D*").last)", R"("Craig")"},
        Case{R"(friends.#(nets.#(=="fb"))#.first)", R"(["Dale","Roger"])"},
        Case{"friends.#(age>100)", ""}, Case{"friends.#(age>100)#", "[]"},
        Case{"friends.#(nets)#.first", R"(["Dale","Roger","Jane"])"},
        Case{"friends.#.nets.#", "[3,2,2]"}, Case{"friends.#(last==Murphy)#|#", "2"},
        Case{"children|@reverse|0", R"("Jack")"},
        Case{"children.@reverse", R"(["Jack","Alex","Sara"])"},
        Case{"name.@keys", R"(["first","last"])"}, Case{"name|@values", R"(["Tom","Anderson"])"},
        Case{"friends.#.nets|@flatten|#", "7"}, Case{"@this.age", "37"},
        Case{"[age,name.first]", R"([37,"Tom"])"},
        Case{"{age,name.first}", R"({"age":37,"first":"Tom"})"},
        Case{R"({"years":age})", R"({"years":37})"}, Case{"[nope]", "[]"}, Case{"nothing", "null"},
        Case{"flag", "true"}, Case{"age.x", ""}, Case{"missing", ""},
        Case{"children.#(==\"Alex\")", R"("Alex")"}, Case{"friends.#(age>=47)#.age", "[68,47]"},
        Case{"friends.#(age<=44).first", R"("Dale")"}, Case{"friends.#(age!=44)#.age", "[68,47]"},
        Case{"friends.#(age<45).first", R"("Dale")"}, Case{"@unknownmodifier", ""},
        Case{"children.@reverse:arg", ""}));

// KServe's e2e conditions ([@this].#(...) on the node's input) and the
// shapes its docs use.
struct Condition {
  const char* json;
  const char* condition;
  bool exists;
};

class GjsonConditionTest : public testing::TestWithParam<Condition> {};

TEST_P(GjsonConditionTest, Exists) {
  EXPECT_EQ(GjsonExists(GetParam().json, GetParam().condition), GetParam().exists)
      << GetParam().condition << " on " << GetParam().json;
}

INSTANTIATE_TEST_SUITE_P(
    KServe, GjsonConditionTest,
    testing::Values(
        Condition{R"({"decision_picker":"ERROR","key1":{"name":"abc"}})",
                  "[@this].#(decision_picker==ERROR)", true},
        Condition{R"({"decision_picker":"SUCCESS","key1":{"name":"abc"}})",
                  "[@this].#(decision_picker==ERROR)", false},
        Condition{R"({"decision_picker":"SUCCESS"})", "[@this].#(decision_picker==SUCCESS)", true},
        Condition{R"({"decision_picker":"NO_MATCH"})", "[@this].#(decision_picker==SUCCESS)",
                  false},
        Condition{R"({"predictions":[{"class":"dog"}]})", R"(predictions.#(class=="dog"))", true},
        Condition{R"({"predictions":[{"class":"cat"}]})", R"(predictions.#(class=="dog"))", false},
        Condition{R"({"predictions":[1,0]})", "predictions.#(==1)", true},
        Condition{R"({"predictions":[0,0]})", "predictions.#(==1)", false},
        Condition{R"({"predictions":[0.2]})", "predictions.#(>0.5)", false},
        Condition{R"({"predictions":[0.7]})", "predictions.#(>0.5)", true},
        Condition{R"({"instances":[[1,2]]})", "instances", true},
        Condition{R"({"user":{"id":7}})", "[@this].#(user.id>5)", true},
        Condition{R"({"user":{"id":3}})", "[@this].#(user.id>5)", false},
        Condition{R"({"ok":true})", "[@this].#(ok==true)", true},
        Condition{R"({"ok":"yes"})", "[@this].#(ok=~true)", false},
        Condition{R"({"ok":"true"})", "[@this].#(ok==~true)", true},
        Condition{R"({"ok":1})", "[@this].#(ok==~true)", true},
        Condition{R"({"ok":null})", "[@this].#(ok==~null)", true},
        Condition{R"({"a":1})", "[@this].#(b==~*)", false}, Condition{"not json", "a", false},
        Condition{R"({"a":1} x)", "a", false}, Condition{R"({"a":1})", "", false},
        Condition{R"({"":1})", "", true}));

}  // namespace
}  // namespace osprey::gateway
