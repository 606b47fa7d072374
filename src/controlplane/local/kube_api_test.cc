#include "controlplane/local/kube_api.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace osprey::controlplane::kube_api {
namespace {

// The last `n` lines of `text` (a final line without its newline counts):
// what TailOffset must find in a file, read forwards.
std::string LastLines(std::string_view text, int n) {
  if (n <= 0) return "";
  size_t end = text.size();
  if (end > 0 && text[end - 1] == '\n') --end;  // the last line's own newline
  size_t at = end;
  for (int i = 0; i < n; ++i) {
    size_t nl = at == 0 ? std::string_view::npos : text.rfind('\n', at - 1);
    if (nl == std::string_view::npos) return std::string(text);
    at = nl;
  }
  return std::string(text.substr(at + 1));
}

bool Has(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

TEST(KubeApi, DiscoveryListsEveryGroupAndResource) {
  std::string groups = GroupListJson();
  for (auto g : {"serving.kserve.io", "serving.knative.dev", "networking.istio.io", "apps",
                 "autoscaling.internal.knative.dev"})
    EXPECT_TRUE(Has(groups, StrCat("\"name\":\"", g, "\""))) << g;
  EXPECT_FALSE(Has(groups, "\"osprey\""));  // Osprey's own kinds are not under /apis
  // serving.kserve.io serves two versions; the preferred one is the first listed.
  auto kserve = GroupJson("serving.kserve.io");
  ASSERT_TRUE(kserve.ok());
  EXPECT_TRUE(Has(*kserve, "\"groupVersion\":\"serving.kserve.io/v1beta1\""));
  EXPECT_TRUE(Has(*kserve, "\"groupVersion\":\"serving.kserve.io/v1alpha1\""));
  EXPECT_EQ(GroupJson("nobody.example.com").status().code(), absl::StatusCode::kNotFound);

  auto v1beta1 = ResourceListJson("serving.kserve.io", "v1beta1");
  ASSERT_TRUE(v1beta1.ok());
  EXPECT_TRUE(Has(*v1beta1, "\"name\":\"inferenceservices\""));
  EXPECT_TRUE(Has(*v1beta1, "\"shortNames\":[\"isvc\"]"));
  EXPECT_TRUE(Has(*v1beta1, "\"namespaced\":true"));
  EXPECT_TRUE(
      Has(*v1beta1,
          "\"verbs\":[\"create\",\"delete\",\"get\",\"list\",\"patch\",\"update\",\"watch\"]"));
  EXPECT_FALSE(Has(*v1beta1, "servingruntimes"));  // v1alpha1's
  auto v1alpha1 = ResourceListJson("serving.kserve.io", "v1alpha1");
  ASSERT_TRUE(v1alpha1.ok());
  EXPECT_TRUE(Has(*v1alpha1,
                  "\"name\":\"clusterservingruntimes\",\"singularName\":\"clusterservingruntime\","
                  "\"namespaced\":false"));
  // What the platform makes is read-only.
  auto apps = ResourceListJson("apps", "v1");
  ASSERT_TRUE(apps.ok());
  EXPECT_TRUE(Has(*apps, "\"verbs\":[\"get\",\"list\",\"watch\"]"));
  auto knative = ResourceListJson("serving.knative.dev", "v1");
  ASSERT_TRUE(knative.ok());
  EXPECT_TRUE(Has(*knative, "\"categories\":[\"all\",\"knative\",\"serving\"]"));
  EXPECT_EQ(ResourceListJson("serving.kserve.io", "v9").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(KubeApi, StatusObjectsCarryKubernetesReasonsAndCodes) {
  struct Case {
    absl::Status status;
    int code;
    std::string_view reason;
  } cases[] = {{absl::NotFoundError("x"), 404, "NotFound"},
               {absl::AlreadyExistsError("x"), 409, "AlreadyExists"},
               {absl::AbortedError("x"), 409, "Conflict"},
               {absl::InvalidArgumentError("x"), 422, "Invalid"},
               {absl::UnauthenticatedError("x"), 401, "Unauthorized"},
               {absl::PermissionDeniedError("x"), 403, "Forbidden"},
               {absl::UnimplementedError("x"), 405, "MethodNotAllowed"},
               {absl::InternalError("x"), 500, "InternalError"}};
  for (const auto& c : cases) {
    EXPECT_EQ(ReasonOf(c.status).code, c.code);
    EXPECT_EQ(ReasonOf(c.status).reason, c.reason);
    std::string json = StatusJson(c.status);
    EXPECT_TRUE(Has(json, StrCat("\"reason\":\"", c.reason, "\""))) << json;
    EXPECT_TRUE(Has(json, StrCat("\"code\":", c.code))) << json;
  }
  const resources::KindInfo* isvc = resources::FindKind("isvc");
  std::string json = StatusJson(absl::NotFoundError("anything"), isvc, "iris");
  EXPECT_TRUE(Has(json, R"("message":"inferenceservices.serving.kserve.io \"iris\" not found")"))
      << json;
  EXPECT_TRUE(Has(
      json, R"("details":{"name":"iris","group":"serving.kserve.io","kind":"inferenceservices"})"))
      << json;
  EXPECT_TRUE(Has(DeletedJson(*isvc, "iris", ""), "\"status\":\"Success\""));
  // A validation failure names the object and each cause's field, as kubectl prints them.
  json = StatusJson(absl::InvalidArgumentError("spec.predictor.minReplicas: must be >= 0"), isvc,
                    "iris");
  EXPECT_TRUE(Has(
      json,
      R"("message":"InferenceService.serving.kserve.io \"iris\" is invalid: spec.predictor.minReplicas: must be >= 0")"))
      << json;
  EXPECT_TRUE(Has(
      json,
      R"("causes":[{"reason":"FieldValueInvalid","message":"must be >= 0","field":"spec.predictor.minReplicas"}])"))
      << json;
  EXPECT_TRUE(Has(json, "\"code\":422"));
}

TEST(KubeApi, TableNegotiation) {
  EXPECT_TRUE(
      WantsTable("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
                 "g=meta.k8s.io,application/json"));
  EXPECT_TRUE(WantsTable("application/json; as=Table; g=meta.k8s.io; v=v1"));
  EXPECT_FALSE(WantsTable("application/json;as=Table;v=v1beta1;g=meta.k8s.io"));
  EXPECT_FALSE(WantsTable("application/json"));
  EXPECT_FALSE(WantsTable(""));
}

TEST(KubeApi, TableRowsCarryTheirObjectAsAsked) {
  const char* list =
      R"({"items":[{"metadata":{"name":"iris","namespace":"default","creationTimestamp":"2026-01-01T00:00:00Z"},
          "spec":{},"status":{"conditions":[{"type":"Ready","status":"True"}],
          "components":{"predictor":{"traffic":[{"latestRevision":true,"percent":100}]}}}}]})";
  auto now = std::chrono::system_clock::from_time_t(1767225600 + 60);
  auto table = TableJson("inferenceservices", list, "Metadata", now);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_TRUE(Has(*table, R"("kind":"Table","apiVersion":"meta.k8s.io/v1")"));
  EXPECT_TRUE(Has(*table, R"({"name":"NAME","type":"string","format":"name")"));
  EXPECT_TRUE(Has(*table, R"("cells":["iris","","True",null,100,"","","60s"])")) << *table;
  EXPECT_TRUE(Has(*table, R"("object":{"kind":"PartialObjectMetadata")"));
  EXPECT_FALSE(Has(*table, "\"spec\""));
  auto full = TableJson("inferenceservices", list, "Object", now);
  ASSERT_TRUE(full.ok());
  EXPECT_TRUE(Has(*full, "\"spec\":{}"));
  auto none = TableJson("inferenceservices", list, "None", now);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(Has(*none, "\"object\""));
  EXPECT_FALSE(TableJson("inferenceservices", "not json", "None", now).ok());
}

TEST(KubeApi, MergePatchAsRfc7386AndLeavesOutWhatTheServerOwns) {
  const char* stored =
      R"({"apiVersion":"serving.kserve.io/v1beta1","kind":"InferenceService",)"
      R"("metadata":{"name":"iris","uid":"u","generation":2,"creationTimestamp":"t",)"
      R"("annotations":{"a":"1","b":"2"}},)"
      R"("spec":{"predictor":{"minReplicas":1,"canaryTrafficPercent":10,)"
      R"("model":{"modelFormat":{"name":"xgboost"},"args":["--x"]}}},"status":{"url":"u"}})";
  auto merged = MergePatch(
      stored,
      R"({"metadata":{"annotations":{"a":null,"c":"3"}},"spec":{"predictor":{"canaryTrafficPercent":null,)"
      R"("maxReplicas":3,"model":{"args":["--y","--z"]}}}})");
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(*merged,
            R"({"apiVersion":"serving.kserve.io/v1beta1","kind":"InferenceService",)"
            R"("metadata":{"name":"iris","annotations":{"b":"2","c":"3"}},)"
            R"("spec":{"predictor":{"minReplicas":1,"model":{"modelFormat":{"name":"xgboost"},)"
            R"("args":["--y","--z"]},"maxReplicas":3}}})");
  EXPECT_EQ(MergePatch(stored, "[1]").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MergePatch(stored, "{").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(KubeApi, OpenApiTellsKubectlToValidateOnTheServer) {
  std::string root = OpenApiRootJson();
  EXPECT_TRUE(Has(
      root,
      R"("apis/serving.kserve.io/v1beta1":{"serverRelativeURL":"/openapi/v3/apis/serving.kserve.io/v1beta1"})"));
  auto doc = OpenApiGroupVersionJson("serving.kserve.io", "v1beta1");
  ASSERT_TRUE(doc.ok());
  EXPECT_TRUE(Has(
      *doc, "\"/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{name}\""));
  EXPECT_TRUE(Has(
      *doc,
      R"("patch":{"x-kubernetes-action":"patch","x-kubernetes-group-version-kind":{"group":"serving.kserve.io","version":"v1beta1","kind":"InferenceService"},"parameters":[{"name":"fieldValidation","in":"query")"));
  auto cluster = OpenApiGroupVersionJson("serving.kserve.io", "v1alpha1");
  ASSERT_TRUE(cluster.ok());
  EXPECT_TRUE(Has(*cluster, "\"/apis/serving.kserve.io/v1alpha1/clusterservingruntimes/{name}\""));
  EXPECT_FALSE(OpenApiGroupVersionJson("serving.kserve.io", "v2").ok());
}

TEST(KubeApi, DeleteOptionsAndSecrets) {
  EXPECT_TRUE(ReadDeleteOptions(R"({"kind":"DeleteOptions","dryRun":["All"]})").dry_run);
  auto options = ReadDeleteOptions(
      R"({"kind":"DeleteOptions","propagationPolicy":"Foreground","preconditions":{"uid":"u"}})");
  EXPECT_FALSE(options.dry_run);
  EXPECT_EQ(options.propagation_policy, "Foreground");
  EXPECT_EQ(options.uid, "u");
  EXPECT_FALSE(options.resource_version.has_value());
  EXPECT_FALSE(ReadDeleteOptions("").dry_run);
  EXPECT_TRUE(SameSecret("Bearer abc", "Bearer abc"));
  EXPECT_FALSE(SameSecret("Bearer abd", "Bearer abc"));
  EXPECT_FALSE(SameSecret("Bearer ab", "Bearer abc"));
  EXPECT_FALSE(SameSecret("Bearer abcd", "Bearer abc"));
  auto body = ReadBodyMeta(R"({"metadata":{"name":"x","namespace":"ns","resourceVersion":"7"}})");
  EXPECT_EQ(body.namespace_, "ns");
  EXPECT_EQ(body.resource_version, "7");
  EXPECT_FALSE(ReadBodyMeta("kind: X\nmetadata: {namespace: ns}\n").namespace_.has_value());
}

TEST(KubeApi, CoreEventsForKubectl) {
  auto events = CoreEvents(
      R"({"items":[{"time":"2026-12-04T14:50:26Z","kind":"InferenceService","object":"iris",)"
      R"("type":"Normal","reason":"Created","message":"generation 1","namespace":"default"},)"
      R"({"time":"2026-12-04T14:50:27Z","kind":"InferenceService","object":"iris",)"
      R"("type":"Warning","reason":"Failed","message":"no","namespace":"default"}]})");
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].name, "iris.0");
  EXPECT_EQ((*events)[1].name, "iris.1");
  EXPECT_TRUE(Has(
      (*events)[1].json,
      R"("involvedObject":{"apiVersion":"serving.kserve.io/v1beta1","kind":"InferenceService","name":"iris","namespace":"default"})"))
      << (*events)[1].json;
  auto warnings = Selector::Parse("", "involvedObject.name=iris,type=Warning", CoreEventFields());
  ASSERT_TRUE(warnings.ok());
  EXPECT_FALSE(warnings->Matches((*events)[0]));
  EXPECT_TRUE(warnings->Matches((*events)[1]));
  EXPECT_FALSE(Selector::Parse("", "involvedObject.name=iris").ok());  // not this kind's
  EXPECT_FALSE(CoreEvents("[]").ok());
}

TEST(KubeApi, PodsAreReplicasAndLogsTheirLastLines) {
  auto pods = CorePods(
      R"({"items":[{"metadata":{"name":"iris-predictor-00001","namespace":"default",)"
      R"("creationTimestamp":"2026-12-04T14:50:26Z","labels":{"serving.kserve.io/inferenceservice":"iris"}},)"
      R"("status":{"replicaStatuses":[{"id":"default/iris-predictor-00001/0","pid":7,"port":9,)"
      R"("state":"Ready","restarts":2},{"id":"default/iris-predictor-00001/1","pid":8,"port":10,)"
      R"("state":"Starting","restarts":0}]}}]})");
  ASSERT_TRUE(pods.ok()) << pods.status();
  ASSERT_EQ(pods->size(), 2u);
  EXPECT_EQ((*pods)[0].name, "iris-predictor-00001-deployment-0");
  EXPECT_EQ((*pods)[0].labels.at("serving.kserve.io/inferenceservice"), "iris");
  EXPECT_EQ((*pods)[0].labels.at("serving.knative.dev/revision"), "iris-predictor-00001");
  EXPECT_TRUE(Has((*pods)[0].json, R"("phase":"Running")"));
  EXPECT_TRUE(Has((*pods)[0].json, R"("ready":true,"restartCount":2)"));
  EXPECT_TRUE(Has((*pods)[1].json, R"("phase":"Pending")"));
  EXPECT_EQ(PodReplica("iris-predictor-00001-deployment-1"),
            std::make_pair(std::string("iris-predictor-00001"), 1));
  EXPECT_FALSE(PodReplica("iris").has_value());
  EXPECT_FALSE(PodReplica("x-deployment-a").has_value());
  EXPECT_EQ(LastLines("a\nb\nc\n", 2), "b\nc\n");
  EXPECT_EQ(LastLines("a\nb\nc", 2), "b\nc");
  EXPECT_EQ(LastLines("a\nb\n", 5), "a\nb\n");
  EXPECT_EQ(LastLines("a\nb\n", 0), "");
  // The same from a file, read back from its end across blocks.
  const std::string path = testing::TempDir() + "/tail-" + std::to_string(::getpid()) + ".log";
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "line " + std::to_string(i) + "\n";
  std::ofstream(path, std::ios::binary) << text;
  for (int n : {0, 1, 2, 100, 19999, 20000, 30000})
    EXPECT_EQ(text.substr(TailOffset(path, n)), LastLines(text, n)) << n;
  std::ofstream(path, std::ios::binary) << "a\nno newline";
  EXPECT_EQ(TailOffset(path, 1), 2u);
  std::remove(path.c_str());
}

TEST(KubeApi, KubeconfigNamesServerCaAndToken) {
  std::string y = KubeconfigYaml("https://127.0.0.1:8443", "ab", "t0k");
  EXPECT_TRUE(Has(y, "server: https://127.0.0.1:8443\n"));
  EXPECT_TRUE(Has(y, "certificate-authority-data: YWI=\n"));  // base64("ab")
  EXPECT_TRUE(Has(y, "token: \"t0k\"\n"));  // quoted: a token of digits stays a string
  EXPECT_TRUE(Has(y, "current-context: osprey\n"));
  EXPECT_TRUE(Has(KubeconfigYaml("s", "abc", "t"), "certificate-authority-data: YWJj\n"));
}

// Every $ref in `v` names a schema of `schemas`.
void ExpectRefsResolve(const rapidjson::Value& v, const rapidjson::Value& schemas,
                       std::string_view prefix) {
  if (v.IsObject()) {
    for (const auto& m : v.GetObject()) {
      if (std::string_view(m.name.GetString()) == "$ref") {
        std::string_view ref = m.value.GetString();
        ASSERT_TRUE(ref.starts_with(prefix)) << ref;
        EXPECT_TRUE(schemas.HasMember(std::string(ref.substr(prefix.size())).c_str())) << ref;
      }
      ExpectRefsResolve(m.value, schemas, prefix);
    }
  } else if (v.IsArray()) {
    for (const auto& e : v.GetArray()) ExpectRefsResolve(e, schemas, prefix);
  }
}

TEST(KubeApi, OpenApiSchemasDescribeEveryKind) {
  for (const auto& k : resources::Kinds()) {
    if (k.group == "osprey") continue;
    SCOPED_TRACE(k.kind);
    auto doc = OpenApiGroupVersionJson(k.group, k.version);
    ASSERT_TRUE(doc.ok());
    rapidjson::Document d;
    ASSERT_FALSE(d.Parse(doc->c_str()).HasParseError());
    const auto& schemas = d["components"]["schemas"];
    ASSERT_TRUE(schemas.HasMember("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
    int named = 0;
    for (const auto& m : schemas.GetObject())
      if (m.value.HasMember("x-kubernetes-group-version-kind"))
        for (const auto& g : m.value["x-kubernetes-group-version-kind"].GetArray())
          named += std::string_view(g["kind"].GetString()) == k.kind &&
                   std::string_view(g["group"].GetString()) == k.group;
    EXPECT_EQ(named, 1);
    ExpectRefsResolve(d, schemas, "#/components/schemas/");
  }
  // The InferenceService's predictor has the component fields it extends.
  rapidjson::Document d;
  d.Parse(OpenApiGroupVersionJson("serving.kserve.io", "v1beta1")->c_str());
  const auto& predictor =
      d["components"]["schemas"]["io.kserve.serving.v1beta1.PredictorSpec"]["properties"];
  for (const char* field :
       {"model", "minReplicas", "canaryTrafficPercent", "containers", "sklearn"})
    EXPECT_TRUE(predictor.HasMember(field)) << field;
  EXPECT_FALSE(d["components"]["schemas"]["io.kserve.serving.v1beta1.PredictorSpec"].HasMember(
      "x-osprey-extends"));
  // Version 2: every kind, references to its definitions.
  rapidjson::Document v2;
  ASSERT_FALSE(v2.Parse(OpenApiV2Json().c_str()).HasParseError());
  EXPECT_EQ(std::string_view(v2["swagger"].GetString()), "2.0");
  EXPECT_TRUE(v2["definitions"].HasMember("io.kserve.serving.v1beta1.InferenceService"));
  EXPECT_TRUE(v2["definitions"].HasMember("dev.knative.serving.v1.Service"));
  ExpectRefsResolve(v2, v2["definitions"], "#/definitions/");
}

TEST(KubeApi, JsonPatchAsRfc6902AllOrNothing) {
  const std::string stored = R"({"metadata":{"name":"a","uid":"u","labels":{"x/y":"1"}},)"
                             R"("spec":{"l":[1,2,3],"m":{"k":"v"}},"status":{"ready":true}})";
  struct Case {
    std::string patch, want;  // want "": an error
  };
  const std::vector<Case> cases = {
      {R"([{"op":"add","path":"/spec/n","value":5}])",
       R"({"metadata":{"name":"a","labels":{"x/y":"1"}},"spec":{"l":[1,2,3],"m":{"k":"v"},"n":5}})"},
      {R"([{"op":"add","path":"/spec/l/1","value":9},{"op":"add","path":"/spec/l/-","value":7}])",
       R"({"metadata":{"name":"a","labels":{"x/y":"1"}},"spec":{"l":[1,9,2,3,7],"m":{"k":"v"}}})"},
      {R"([{"op":"remove","path":"/metadata/labels/x~1y"},{"op":"remove","path":"/spec/l/0"}])",
       R"({"metadata":{"name":"a","labels":{}},"spec":{"l":[2,3],"m":{"k":"v"}}})"},
      {R"([{"op":"replace","path":"/spec/m/k","value":"w"}])",
       R"({"metadata":{"name":"a","labels":{"x/y":"1"}},"spec":{"l":[1,2,3],"m":{"k":"w"}}})"},
      {R"([{"op":"move","from":"/spec/m","path":"/spec/n"},{"op":"copy","from":"/spec/l/2","path":"/spec/c"}])",
       R"({"metadata":{"name":"a","labels":{"x/y":"1"}},"spec":{"l":[1,2,3],"n":{"k":"v"},"c":3}})"},
      {R"([{"op":"test","path":"/spec/l","value":[1,2,3]},{"op":"replace","path":"/spec/l","value":[]}])",
       R"({"metadata":{"name":"a","labels":{"x/y":"1"}},"spec":{"l":[],"m":{"k":"v"}}})"},
      {R"([{"op":"test","path":"/spec/l","value":[1]},{"op":"replace","path":"/spec/l","value":[]}])",
       ""},
      {R"([{"op":"replace","path":"/spec/missing","value":1}])", ""},
      {R"([{"op":"remove","path":"/spec/l/3"}])", ""},
      {R"([{"op":"add","path":"/spec/l/9","value":1}])", ""},
      {R"([{"op":"add","path":"/nope/deeper","value":1}])", ""},
      {R"([{"op":"move","from":"/spec","path":"/spec/inner"}])", ""},
      {R"([{"op":"frob","path":"/spec"}])", ""},
      {R"([{"op":"add","path":"/spec/x"}])", ""},
      {R"({"op":"add"})", ""},
      {R"([{"op":"add","path":"spec","value":1}])", ""},
      {R"([{"op":"add","path":"/spec/~2","value":1}])", ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.patch);
    auto got = JsonPatch(stored, c.patch);
    if (c.want.empty()) {
      EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
      continue;
    }
    ASSERT_TRUE(got.ok()) << got.status();
    rapidjson::Document g, w;
    g.Parse(got->c_str());
    w.Parse(c.want.c_str());
    EXPECT_TRUE(g == w) << *got;
  }
}

}  // namespace
}  // namespace osprey::controlplane::kube_api
