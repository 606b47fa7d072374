#include "controlplane/local/field_manager.h"

#include <gtest/gtest.h>

#include "common/json_dom.h"
#include "common/strings.h"

namespace osprey::controlplane::fields {
namespace {

constexpr std::string_view kV1 = "serving.kserve.io/v1beta1";

// The object with its JSON keys compared as values (member order aside).
void ExpectJson(std::string_view got, std::string_view want) {
  rapidjson::Document g, w;
  g.Parse(got.data(), got.size());
  w.Parse(want.data(), want.size());
  ASSERT_FALSE(g.HasParseError()) << got;
  ASSERT_FALSE(w.HasParseError()) << want;
  EXPECT_TRUE(g == w) << "got  " << got << "\nwant " << want;
}

TEST(FieldManagerTest, FieldsAreLeavesOfSpecAndMetadataLabelsAnnotationsFinalizers) {
  auto set = FieldsOf(R"({"apiVersion":"v","kind":"K","metadata":{"name":"a","uid":"u",
      "labels":{"x":"1"},"annotations":{},"finalizers":["f"]},
      "spec":{"p":{"m":{"uri":"s3://b"},"list":[1,2]},"n":null},"status":{"ready":true}})");
  ASSERT_TRUE(set.ok()) << set.status();
  Set want = {{"metadata", "labels", "x"}, {"metadata", "annotations"}, {"metadata", "finalizers"},
              {"spec", "p", "m", "uri"},   {"spec", "p", "list"},       {"spec", "n"}};
  EXPECT_EQ(*set, want);
  EXPECT_FALSE(FieldsOf("[1]").ok());
  // A field named twice names no one value (a fuzzer's find: it was read as
  // both a leaf and an object).
  EXPECT_FALSE(FieldsOf(R"({"spec":{"a":1,"a":{"b":2}}})").ok());
  EXPECT_FALSE(
      Apply(R"({"spec":{}})", R"({"spec":{"a":1,"a":{"b":2}}})", {}, "m", false, "v", "t").ok());
  // A field name with a NUL byte is a name like any other (another find).
  auto nul = Apply(R"({"spec":{"a":1}})", R"({"spec":{"x\u0000y":2}})", {}, "m", false, "v", "t");
  ASSERT_TRUE(nul.ok()) << nul.status();
  EXPECT_NE(nul->object.find(R"("x\u0000y":2)"), std::string::npos) << nul->object;
  EXPECT_EQ(PathString({"spec", "predictor", "minReplicas"}), ".spec.predictor.minReplicas");
}

TEST(FieldManagerTest, ManagedFieldsRoundTripAsFieldsV1) {
  Managed m = {{"kubectl",
                "Apply",
                std::string(kV1),
                "2026-12-04T10:00:00Z",
                {{"spec", "a"}, {"spec", "b", "c"}, {"metadata", "labels", "app"}}},
               {"edit", "Update", std::string(kV1), "2026-12-04T10:01:00Z", {{"spec", "b"}}}};
  std::string json = ManagedJson(m);
  ExpectJson(json, R"([{"manager":"kubectl","operation":"Apply",
      "apiVersion":"serving.kserve.io/v1beta1","time":"2026-12-04T10:00:00Z",
      "fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{"f:app":{}}},
      "f:spec":{"f:a":{},"f:b":{"f:c":{}}}}},
      {"manager":"edit","operation":"Update","apiVersion":"serving.kserve.io/v1beta1",
      "time":"2026-12-04T10:01:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:b":{}}}}])");
  auto back = ParseManaged(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, m);
  // A field owned itself and through a child: "." marks the field.
  Managed both = {{"m", "Update", "v1", "t", {{"spec", "b"}, {"spec", "b", "c"}}}};
  EXPECT_NE(ManagedJson(both).find(R"("f:b":{".":{},"f:c":{}})"), std::string::npos);
  EXPECT_EQ(ParseManaged(ManagedJson(both))->front().fields, both.front().fields);
  EXPECT_FALSE(ParseManaged("{}").ok());
}

struct ApplyCase {
  std::string name;
  std::string current;  // "" when the object is new
  Managed managed;
  std::string config;
  bool force;
  std::string want_object;  // "" when conflicts are expected
  std::vector<std::string> want_conflicts;
  Set want_own;  // the applier's fields after
};

TEST(FieldManagerTest, ApplyTable) {
  const Entry edit_b = {"kubectl-edit", "Update", std::string(kV1), "t0", {{"spec", "b"}}};
  const Entry apply_ab = {
      "kubectl", "Apply", std::string(kV1), "t0", {{"spec", "a"}, {"spec", "b"}}};
  const Entry other_apply_c = {"ci", "Apply", std::string(kV1), "t0", {{"spec", "c"}}};
  const std::vector<ApplyCase> cases = {
      {"create: the config is the object, all its fields the applier's",
       "",
       {},
       R"({"metadata":{"name":"x","labels":{"l":"1"}},"spec":{"a":1}})",
       false,
       R"({"metadata":{"name":"x","labels":{"l":"1"}},"spec":{"a":1}})",
       {},
       {{"metadata", "labels", "l"}, {"spec", "a"}}},
      {"fields the config leaves out and nobody owns stay",
       R"({"spec":{"a":1,"z":9}})",
       {},
       R"({"spec":{"a":2}})",
       false,
       R"({"spec":{"a":2,"z":9}})",
       {},
       {{"spec", "a"}}},
      {"a field the applier set before and drops now is removed",
       R"({"spec":{"a":1,"b":2}})",
       {apply_ab},
       R"({"spec":{"a":1}})",
       false,
       R"({"spec":{"a":1}})",
       {},
       {{"spec", "a"}}},
      {"... unless another manager owns it too",
       R"({"spec":{"a":1,"b":2}})",
       {apply_ab, edit_b},
       R"({"spec":{"a":1}})",
       false,
       R"({"spec":{"a":1,"b":2}})",
       {},
       {{"spec", "a"}}},
      {"changing another manager's field is a conflict, and nothing changes",
       R"({"spec":{"a":1,"b":2}})",
       {edit_b},
       R"({"spec":{"a":1,"b":3}})",
       false,
       "",
       {"kubectl-edit .spec.b"},
       {}},
      {"setting it to the value it has is not: the field is shared",
       R"({"spec":{"a":1,"b":2}})",
       {edit_b},
       R"({"spec":{"b":2}})",
       false,
       R"({"spec":{"a":1,"b":2}})",
       {},
       {{"spec", "b"}}},
      {"forced, the field changes and becomes the applier's alone",
       R"({"spec":{"a":1,"b":2}})",
       {edit_b},
       R"({"spec":{"b":3}})",
       true,
       R"({"spec":{"a":1,"b":3}})",
       {},
       {{"spec", "b"}}},
      {"a list is one field",
       R"({"spec":{"l":[1,2]}})",
       {{"ci", "Apply", std::string(kV1), "t0", {{"spec", "l"}}}},
       R"({"spec":{"l":[1]}})",
       false,
       "",
       {"ci .spec.l"},
       {}},
      {"an object replacing another's field under it conflicts with that field",
       R"({"spec":{"m":{"u":"s3://a"}}})",
       {{"ci", "Update", std::string(kV1), "t0", {{"spec", "m", "u"}}}},
       R"({"spec":{"m":"flat"}})",
       false,
       "",
       {"ci .spec.m.u"},
       {}},
      {"an empty map names the map: others' entries stay, no conflict",
       R"({"metadata":{"labels":{"team":"x"}},"spec":{"c":1}})",
       {{"ci", "Update", std::string(kV1), "t0", {{"metadata", "labels", "team"}}}},
       R"({"metadata":{"labels":{}}})",
       false,
       R"({"metadata":{"labels":{"team":"x"}},"spec":{"c":1}})",
       {},
       {{"metadata", "labels"}}},
      {"removing the last field of an object the applier made removes the object",
       R"({"spec":{"a":1,"p":{"q":1}}})",
       {{"kubectl", "Apply", std::string(kV1), "t0", {{"spec", "a"}, {"spec", "p", "q"}}}},
       R"({"spec":{"a":1}})",
       false,
       R"({"spec":{"a":1}})",
       {},
       {{"spec", "a"}}},
      {"an object the applier named as a whole and drops stays while it holds others' fields",
       R"({"metadata":{"labels":{"team":"x"}},"spec":{"a":1}})",
       {{"kubectl", "Apply", std::string(kV1), "t0", {{"metadata", "labels"}, {"spec", "a"}}}},
       R"({"spec":{"a":1}})",
       false,
       R"({"metadata":{"labels":{"team":"x"}},"spec":{"a":1}})",
       {},
       {{"spec", "a"}}},
      {"other appliers are other managers",
       R"({"spec":{"a":1,"c":5}})",
       {other_apply_c},
       R"({"spec":{"a":1,"c":6}})",
       false,
       "",
       {"ci .spec.c"},
       {}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto got = Apply(c.current, c.config, c.managed, "kubectl", c.force, kV1, "t1");
    ASSERT_TRUE(got.ok()) << got.status();
    std::vector<std::string> conflicts;
    for (const auto& x : got->conflicts)
      conflicts.push_back(StrCat(x.manager, " ", PathString(x.path)));
    EXPECT_EQ(conflicts, c.want_conflicts);
    if (!c.want_conflicts.empty()) {
      EXPECT_TRUE(got->object.empty());
      EXPECT_EQ(got->managed, c.managed);
      continue;
    }
    ExpectJson(got->object, c.want_object);
    Set own;
    for (const auto& e : got->managed)
      if (e.manager == "kubectl" && e.operation == "Apply") {
        own = e.fields;
        EXPECT_EQ(e.time, "t1");
      }
    EXPECT_EQ(own, c.want_own);
    for (const auto& e : got->managed) EXPECT_FALSE(e.fields.empty()) << e.manager;
  }
}

TEST(FieldManagerTest, ForcedApplyTakesTheFieldFromItsOwner) {
  Managed m = {{"kubectl-edit", "Update", std::string(kV1), "t0", {{"spec", "b"}, {"spec", "c"}}}};
  auto got =
      Apply(R"({"spec":{"b":1,"c":1}})", R"({"spec":{"b":2}})", m, "kubectl", true, kV1, "t1");
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->managed.size(), 2u);
  EXPECT_EQ(got->managed[0].fields, (Set{{"spec", "c"}}));
  EXPECT_EQ(got->managed[1].fields, (Set{{"spec", "b"}}));
}

TEST(FieldManagerTest, UpdateOwnsWhatItChangedAndTakesItFromOthers) {
  Managed m = {{"kubectl", "Apply", std::string(kV1), "t0", {{"spec", "a"}, {"spec", "b"}}}};
  auto got = Update(R"({"spec":{"a":1,"b":2}})", R"({"spec":{"a":1,"b":3,"n":4}})", m,
                    "kubectl-edit", kV1, "t1");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].fields, (Set{{"spec", "a"}}));
  EXPECT_EQ((*got)[1].manager, "kubectl-edit");
  EXPECT_EQ((*got)[1].operation, "Update");
  EXPECT_EQ((*got)[1].fields, (Set{{"spec", "b"}, {"spec", "n"}}));
  // A field removed is nobody's; a manager left with nothing is dropped.
  got = Update(R"({"spec":{"a":1,"b":2}})", R"({"spec":{"b":2}})",
               {{"kubectl", "Apply", std::string(kV1), "t0", {{"spec", "a"}}}}, "x", kV1, "t1");
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->empty());
  // A create: every field the creator's.
  got = Update("", R"({"metadata":{"name":"n"},"spec":{"a":1}})", {}, "kubectl-create", kV1, "t1");
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(got->front().fields, (Set{{"spec", "a"}}));
  // Nothing changed: nothing recorded.
  got = Update(R"({"spec":{"a":1}})", R"({"spec":{"a":1}})", {}, "x", kV1, "t1");
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->empty());
}

TEST(FieldManagerTest, ConflictMessagesAsKubernetesWordsThem) {
  EXPECT_EQ(ConflictMessage({{"kubectl-edit", std::string(kV1), {"spec", "b"}}}),
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using "
            "serving.kserve.io/v1beta1: .spec.b");
  EXPECT_EQ(ConflictMessage({{"a", "v1", {"spec", "b"}}, {"a", "v1", {"spec", "c"}}}),
            "Apply failed with 2 conflicts: conflicts with \"a\" using v1:\n- .spec.b\n- .spec.c");
}

}  // namespace
}  // namespace osprey::controlplane::fields
