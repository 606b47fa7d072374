#include "resources/kinds.h"

#include <gtest/gtest.h>

#include <set>

namespace osprey::resources {
namespace {

TEST(FindKind, NamesAliasesAndGroups) {
  struct Case {
    const char* name;
    const char* want;  // plural; nullptr: unknown
  } cases[] = {
      {"inferenceservices", "inferenceservices"},
      {"inferenceservice", "inferenceservices"},
      {"isvc", "inferenceservices"},
      {"ISVC", "inferenceservices"},
      {"InferenceService", "inferenceservices"},
      {"isvc.serving.kserve.io", "inferenceservices"},
      {"inferenceservices.v1beta1.serving.kserve.io", "inferenceservices"},
      {"isvc.serving.knative.dev", nullptr},
      {"isvc.v1.serving.kserve.io", nullptr},
      {"sr", "servingruntimes"},
      {"csr", "clusterservingruntimes"},
      {"clusterservingruntime", "clusterservingruntimes"},
      {"rev", "revisions"},
      {"revision.serving.knative.dev", "revisions"},
      {"kpa", "podautoscalers"},
      {"pa", "podautoscalers"},
      {"ev", "events"},
      {"ksvc", "services"},
      {"service.serving.knative.dev", "services"},
      {"services.v1.serving.knative.dev", "services"},
      {"cfg", "configurations"},
      {"rt", "routes"},
      {"deploy", "deployments"},
      {"deployments.apps", "deployments"},
      {"vs", "virtualservices"},
      {"virtualservice.networking.istio.io", "virtualservices"},
      {"gw", "gateways"},
      {"se", "serviceentries"},
      {"pods", nullptr},
      {"", nullptr},
  };
  for (const auto& c : cases) {
    const KindInfo* k = FindKind(c.name);
    if (c.want == nullptr) {
      EXPECT_EQ(k, nullptr) << c.name;
    } else {
      ASSERT_NE(k, nullptr) << c.name;
      EXPECT_EQ(k->plural, c.want) << c.name;
    }
  }
}

TEST(Kinds, EveryNameIsUniqueAndUsersApplyOnlyKServeKindsAndKnativeServices) {
  std::set<std::string_view> names;
  for (const auto& k : Kinds()) {
    EXPECT_TRUE(names.insert(k.plural).second) << k.plural;
    EXPECT_TRUE(names.insert(k.singular).second) << k.singular;
    for (auto s : k.short_names) EXPECT_TRUE(names.insert(s).second) << s;
    EXPECT_EQ(FindKind(k.kind), &k) << k.kind;
    if (k.applied && k.plural != "services" && k.group != "networking.istio.io")
      EXPECT_EQ(k.group, "serving.kserve.io") << k.plural;
  }
  EXPECT_TRUE(FindKind("clusterservingruntimes")->cluster);
  EXPECT_FALSE(FindKind("servingruntimes")->cluster);
}

}  // namespace
}  // namespace osprey::resources
