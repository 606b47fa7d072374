#include <gtest/gtest.h>

#include "resources/kinds.h"
#include "resources/resources.h"

namespace osprey::resources {
namespace {

absl::StatusOr<InferenceGraph> Parse(std::string_view yaml) {
  OSPREY_ASSIGN_OR_RETURN(std::vector<Resource> r, ParseYaml(yaml));
  if (r.size() != 1 || !std::holds_alternative<InferenceGraph>(r[0]))
    return absl::InternalError("not one InferenceGraph");
  return std::get<InferenceGraph>(r[0]);
}

constexpr char kChainer[] = R"yaml(
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: model-chainer
  namespace: team
spec:
  timeout: 30
  routerTimeouts: {serviceClient: 5}
  nodes:
    root:
      routerType: Sequence
      steps:
      - serviceName: transform
        name: t
      - nodeName: pick
        data: $response
        dependency: Hard
    pick:
      routerType: Switch
      steps:
      - serviceUrl: http://a-team.example.com/v1/models/a:predict
        condition: "[@this].#(decision_picker==ERROR)"
      - serviceName: b
        condition: instances.#(0>1)
    split:
      routerType: Splitter
      steps:
      - {serviceName: a, weight: 30}
      - {serviceName: b, weight: 70, mapPredictionsToInstances: true}
)yaml";

TEST(InferenceGraph, ParsesKServesFields) {
  auto g = Parse(kChainer);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->meta.name, "model-chainer");
  EXPECT_EQ(g->meta.namespace_, "team");
  EXPECT_EQ(g->timeout_seconds, 30);
  ASSERT_TRUE(g->router_timeouts.has_value());
  EXPECT_EQ(g->router_timeouts->service_client, 5);
  ASSERT_EQ(g->nodes.size(), 3u);
  const InferenceRouter& root = g->nodes.at("root");
  EXPECT_EQ(root.router_type, "Sequence");
  ASSERT_EQ(root.steps.size(), 2u);
  EXPECT_EQ(root.steps[0].service_name, "transform");
  EXPECT_EQ(root.steps[0].name, "t");
  EXPECT_EQ(root.steps[1].node_name, "pick");
  EXPECT_EQ(root.steps[1].data, "$response");
  EXPECT_EQ(root.steps[1].dependency, "Hard");
  EXPECT_EQ(g->nodes.at("pick").steps[0].condition, "[@this].#(decision_picker==ERROR)");
  EXPECT_EQ(g->nodes.at("split").steps[1].weight, 70);
  EXPECT_TRUE(g->nodes.at("split").steps[1].map_predictions_to_instances);
}

TEST(InferenceGraph, CanonicalJsonRoundTrips) {
  auto g = Parse(kChainer);
  ASSERT_TRUE(g.ok()) << g.status();
  std::string json = ToJson(Resource(*g));
  EXPECT_NE(json.find(R"("apiVersion":"serving.kserve.io/v1alpha1","kind":"InferenceGraph")"),
            std::string::npos)
      << json;
  auto back = FromJson(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(std::get<InferenceGraph>(*back), *g);
  EXPECT_EQ(KindOf(*back), "InferenceGraph");
  auto yaml = JsonToYaml(json);
  ASSERT_TRUE(yaml.ok());
  auto again = Parse(*yaml);
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << *yaml;
  EXPECT_EQ(*again, *g);
}

TEST(InferenceGraph, KindTable) {
  const KindInfo* k = FindKind("ig");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->plural, "inferencegraphs");
  EXPECT_EQ(k->version, "v1alpha1");
  EXPECT_TRUE(k->applied);
  EXPECT_EQ(FindKind("inferencegraph.serving.kserve.io"), k);
}

struct Invalid {
  const char* spec;  // under spec:
  const char* error;
};

class InvalidGraph : public testing::TestWithParam<Invalid> {};

TEST_P(InvalidGraph, NamesTheField) {
  std::string yaml = StrCat(
      "apiVersion: serving.kserve.io/v1alpha1\nkind: InferenceGraph\nmetadata: {name: g}\n"
      "spec:\n",
      GetParam().spec);
  auto g = Parse(yaml);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(g.status().message().find(GetParam().error), std::string_view::npos)
      << g.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Rules, InvalidGraph,
    testing::Values(
        Invalid{"  nodes: {other: {routerType: Sequence}}", "spec.nodes.root: required"},
        Invalid{"  nodes: {root: {routerType: Chain}}",
                "spec.nodes.root.routerType: \"Chain\" is invalid"},
        Invalid{"  nodes: {root: {steps: []}}", "spec.nodes.root.routerType: required"},
        Invalid{"  nodes: {root: {routerType: Sequence, steps: [{name: a}]}}",
                "spec.nodes.root.steps[0]: one of nodeName, serviceName or serviceUrl"},
        Invalid{"  nodes: {root: {routerType: Sequence, steps: [{serviceName: a, nodeName: b}]}}",
                "spec.nodes.root.steps[0]: only one of"},
        Invalid{"  nodes: {root: {routerType: Sequence, steps: [{serviceName: a, name: x}, "
                "{serviceName: b, name: x}]}}",
                "spec.nodes.root.steps[1].name: \"x\" is the name of an earlier step"},
        Invalid{"  nodes: {root: {routerType: Splitter, steps: [{serviceName: a, weight: 50}, "
                "{serviceName: b}]}}",
                "spec.nodes.root.steps[1].weight: required for a Splitter"},
        Invalid{"  nodes: {root: {routerType: Splitter, steps: [{serviceName: a, weight: 50}, "
                "{serviceName: b, weight: 40}]}}",
                "must sum to 100, got 90"},
        Invalid{"  nodes: {root: {routerType: Sequence, steps: [{nodeName: missing}]}}",
                "spec.nodes.root.steps[0].nodeName: no node is named \"missing\""},
        Invalid{"  nodes: {root: {routerType: Sequence, steps: [{serviceName: a, "
                "dependency: Strong}]}}",
                "spec.nodes.root.steps[0].dependency: \"Strong\" is invalid"},
        Invalid{"  nodes: {root: {routerType: Sequence, steps: [{serviceName: a, colour: red}]}}",
                "spec.nodes.root.steps[0].colour: unknown field"},
        Invalid{"  nodes: {root: {routerType: Sequence}}\n  replicas: 2",
                "spec.replicas: unknown field"},
        Invalid{"  nodes: {root: {routerType: Sequence}}\n  timeout: soon",
                "spec.timeout: expected an integer"},
        Invalid{"  nodes: {root: {routerType: Sequence}}\n  routerTimeouts: {serviceClient: 0}",
                "spec.routerTimeouts.serviceClient: must be between 1 and 31536000 seconds"},
        Invalid{"  nodes: {root: {routerType: Sequence}}\n  timeout: 9223372036854775807",
                "spec.timeout: must be between 1 and 31536000 seconds"},
        Invalid{"  nodes: {root: {routerType: Splitter, steps: [{serviceName: a, weight: -100}, "
                "{serviceName: b, weight: 200}]}}",
                "spec.nodes.root.steps[0].weight: must be between 0 and 100, got -100"}));

TEST(InferenceGraph, NameIsADns1035Label) {
  auto g = Parse(
      "apiVersion: serving.kserve.io/v1alpha1\nkind: InferenceGraph\nmetadata: {name: 1graph}\n"
      "spec: {nodes: {root: {routerType: Sequence}}}");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("metadata.name"), std::string_view::npos);
}

TEST(InferenceGraph, WrongApiVersion) {
  auto g = Parse(
      "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceGraph\nmetadata: {name: g}\n"
      "spec: {nodes: {root: {routerType: Sequence}}}");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("must be serving.kserve.io/v1alpha1"),
            std::string_view::npos);
}

}  // namespace
}  // namespace osprey::resources
