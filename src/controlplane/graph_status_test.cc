#include "controlplane/graph_status.h"

#include <gtest/gtest.h>

namespace osprey::controlplane {
namespace {

resources::InferenceGraph Graph(std::string yaml) {
  auto r = resources::ParseYaml(yaml);
  EXPECT_TRUE(r.ok()) << r.status();
  return std::get<resources::InferenceGraph>(r->front());
}

resources::InferenceService Isvc(std::string yaml) {
  auto r = resources::ParseYaml(yaml);
  EXPECT_TRUE(r.ok()) << r.status();
  return std::get<resources::InferenceService>(r->front());
}

constexpr char kGraph[] = R"(
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata: {name: chain, namespace: team}
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
      - serviceName: first
      - serviceUrl: http://elsewhere:9000/x
        data: $response
)";

PlatformConfig Config() {
  PlatformConfig c;
  c.gateway_port = 8080;
  return c;
}

TEST(GraphStatus, MissingServiceIsNotReadyAndUnrouted) {
  GraphPlan p = PlanGraph(Graph(kGraph), {}, Config());
  EXPECT_FALSE(p.status.ready);
  EXPECT_FALSE(p.route.has_value());
  EXPECT_TRUE(p.status.url.empty());
  ASSERT_EQ(p.status.conditions.size(), 4u);
  EXPECT_EQ(p.status.conditions[1].type, "Ready");
  EXPECT_EQ(p.status.conditions[1].status, "False");
  EXPECT_EQ(p.status.conditions[1].reason, "ServiceNotFound");
  EXPECT_EQ(p.status.conditions[1].message, "Failed to find graph service first");
}

TEST(GraphStatus, ServiceNeverReadyKeepsItNotReady) {
  GraphPlan p = PlanGraph(Graph(kGraph), {{"first", GraphServiceView{}}}, Config());
  EXPECT_FALSE(p.status.ready);
  EXPECT_EQ(p.status.conditions[1].reason, "ServiceNotReady");
}

TEST(GraphStatus, ResolvedStepsRouteTheGraphOnItsHost) {
  GraphPlan p = PlanGraph(
      Graph(kGraph),
      {{"first", {"http://first-team.example.com:8080", "/v1/models/first:predict"}}}, Config());
  ASSERT_TRUE(p.status.ready);
  EXPECT_EQ(p.status.url, "http://chain-team.example.com:8080");
  for (const auto& c : p.status.conditions)
    EXPECT_EQ(c.status, c.type == "Stopped" ? "False" : "True") << c.type;
  ASSERT_TRUE(p.route.has_value());
  EXPECT_EQ(p.route->hosts, std::vector<std::string>{"chain-team.example.com"});
  EXPECT_NE(p.route->spec_json.find(
                R"("serviceUrl":"http://first-team.example.com:8080/v1/models/first:predict")"),
            std::string::npos)
      << p.route->spec_json;
  EXPECT_NE(p.route->spec_json.find(R"("serviceUrl":"http://elsewhere:9000/x")"),
            std::string::npos);
  EXPECT_FALSE(p.route->trace_sampling.has_value());
}

TEST(GraphStatus, TheGraphsTraceSamplingAnnotationIsOnItsRoute) {
  std::string yaml = kGraph;
  yaml.replace(yaml.find("namespace: team}"), 16,
               "namespace: team, annotations: {serving.osprey.dev/trace-sampling: '0.5'}}");
  GraphPlan p = PlanGraph(
      Graph(yaml), {{"first", {"http://first-team.example.com:8080", "/v1/models/first:predict"}}},
      Config());
  ASSERT_TRUE(p.route.has_value());
  EXPECT_EQ(p.route->trace_sampling, 0.5);
}

TEST(GraphStatus, ServiceViewFollowsKServesEndpoint) {
  IsvcStatus ready;
  ready.latest_ready = "x-predictor-00001";
  auto v1 = GraphServiceViewOf(Isvc(R"(
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: iris}
spec: {predictor: {model: {modelFormat: {name: xgboost}, storageUri: /m}}})"),
                               ready, {}, {}, Config());
  EXPECT_EQ(v1.url, "http://iris-default.example.com:8080");
  EXPECT_EQ(v1.predict_path, "/v1/models/iris:predict");
  auto v2 = GraphServiceViewOf(Isvc(R"(
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: iris}
spec: {predictor: {model: {modelFormat: {name: xgboost}, protocolVersion: v2, storageUri: /m,
                           args: [--model_name=flower]}}})"),
                               ready, {}, {}, Config());
  EXPECT_EQ(v2.predict_path, "/v2/models/flower/infer");
  auto custom = GraphServiceViewOf(Isvc(R"(
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: echo}
spec: {predictor: {containers: [{image: x, args: [--model_name, custom]}]}})"),
                                   ready, {}, {}, Config());
  EXPECT_EQ(custom.predict_path, "/v1/models/custom:predict");
  auto never = GraphServiceViewOf(Isvc(R"(
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: echo}
spec: {predictor: {containers: [{image: x}]}})"),
                                  IsvcStatus{}, {}, {}, Config());
  EXPECT_TRUE(never.url.empty());
}

TEST(GraphStatus, ApiViewHasStatusAndMetadata) {
  GraphStatus s;
  s.url = "http://g-default.example.com";
  s.conditions = {{"Ready", "True", "", ""}};
  std::string json = GraphJson(
      R"({"apiVersion":"serving.kserve.io/v1alpha1","kind":"InferenceGraph","metadata":{"name":"g","namespace":"default"},"spec":{}})",
      "2024-01-01T00:00:00Z", 2, 2, s, {{"Ready", "2024-01-01T00:00:01Z"}});
  EXPECT_NE(json.find(R"("creationTimestamp":"2024-01-01T00:00:00Z","generation":2)"),
            std::string::npos)
      << json;
  EXPECT_NE(
      json.find(
          R"("status":{"url":"http://g-default.example.com","conditions":[{"lastTransitionTime":"2024-01-01T00:00:01Z","status":"True","type":"Ready"}],"observedGeneration":2})"),
      std::string::npos)
      << json;
}

}  // namespace
}  // namespace osprey::controlplane
