#include "resources/resources.h"

#include <gtest/gtest.h>

#include <set>

namespace osprey::resources {
namespace {

std::string Msg(const absl::Status& s) { return std::string(StatusMessage(s)); }

InferenceService ParseIsvc(std::string_view yaml) {
  absl::StatusOr<std::vector<Resource>> r = ParseYaml(yaml);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok() || r->size() != 1 || !std::holds_alternative<InferenceService>(r->front())) {
    ADD_FAILURE() << "expected one InferenceService";
    return {};
  }
  return std::get<InferenceService>(r->front());
}

// ---------------------------------------------------------------------------
// Valid manifests (KServe's own documentation examples).

constexpr std::string_view kSklearnIris = R"(
apiVersion: "serving.kserve.io/v1beta1"
kind: "InferenceService"
metadata:
  name: "sklearn-iris"
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      storageUri: "gs://kfserving-examples/models/sklearn/1.0/model"
)";

constexpr std::string_view kSklearnLegacy = R"(
apiVersion: "serving.kserve.io/v1beta1"
kind: "InferenceService"
metadata:
  name: "sklearn-iris"
spec:
  predictor:
    sklearn:
      storageUri: "gs://kfserving-examples/models/sklearn/1.0/model"
      runtimeVersion: v0.13.0
)";

constexpr std::string_view kXgboostV2 = R"(
apiVersion: "serving.kserve.io/v1beta1"
kind: "InferenceService"
metadata:
  name: "xgboost-iris"
  namespace: kserve-test
spec:
  predictor:
    model:
      modelFormat:
        name: xgboost
      protocolVersion: v2
      runtime: kserve-xgbserver
      storageUri: "gs://kfserving-examples/models/xgboost/iris"
)";

constexpr std::string_view kCustomContainer = R"(
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: custom-model
spec:
  predictor:
    serviceAccountName: sa
    nodeSelector: {disktype: ssd}
    tolerations:
    - {key: gpu, operator: Exists, effect: NoSchedule}
    containers:
    - name: kserve-container
      image: kserve/custom-model-grpc:latest
      command: ["python", "-m", "model"]
      args: [--model_name, custom-model]
      env:
      - name: STORAGE_URI
        value: gs://kfserving-examples/models/custom
      ports:
      - containerPort: 8080
        protocol: TCP
      resources:
        requests: {cpu: 100m, memory: 1Gi}
        limits: {cpu: 1.0, memory: 2Gi, nvidia.com/gpu: 1}
)";

constexpr std::string_view kRuntimeAndIsvc = R"(
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata:
  name: kserve-sklearnserver
  namespace: team-a
spec:
  annotations:
    prometheus.kserve.io/port: '8080'
  supportedModelFormats:
    - name: sklearn
      version: "1"
      autoSelect: true
      priority: 2
  protocolVersions: [v1, v2]
  builtInAdapter:
    serverType: mlserver
  containers:
    - name: kserve-container
      image: kserve/sklearnserver:v0.13.0
      args:
        - --model_name={{.Name}}
        - --model_dir=/mnt/models
        - --http_port=8080
      securityContext:
        runAsNonRoot: true
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: sklearn-iris
  namespace: team-a
  annotations:
    serving.kserve.io/enable-tag-routing: "true"
spec:
  predictor:
    model:
      modelFormat: {name: sklearn, version: "1"}
      storageUri: gs://kfserving-examples/models/sklearn/1.0/model
)";

constexpr std::string_view kTransformerExplainer = R"(
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: torch-transformer
  labels: {team: vision}
spec:
  predictor:
    minReplicas: 0
    maxReplicas: 3
    scaleTarget: 10
    scaleMetric: concurrency
    containerConcurrency: 4
    timeout: 60
    canaryTrafficPercent: 20
    logger:
      url: http://message-dumper.default/
      mode: request
      metadataHeaders: [x-request-id, x-b3-traceid]
      metadataAnnotations: [team]
    batcher:
      maxBatchSize: 16
      maxLatency: 100
    labels: {tier: gold}
    annotations: {autoscaling.knative.dev/target: "5"}
    pytorch:
      storageUri: gs://kfserving-examples/models/torchserve/image_classifier/v1
      protocolVersion: v2
  transformer:
    containers:
      - image: kserve/image-transformer:latest
        command: [python, -m, model]
        args: [--model_name, mnist, --protocol, v2]
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 5
  explainer:
    minReplicas: 1
    art:
      type: SquareAttack
      config:
        nb_classes: "10"
)";

TEST(ParseYaml, SklearnIrisModelForm) {
  InferenceService isvc = ParseIsvc(kSklearnIris);
  EXPECT_EQ(isvc.meta.name, "sklearn-iris");
  EXPECT_EQ(isvc.meta.namespace_, "default");
  ASSERT_TRUE(isvc.predictor.model.has_value());
  EXPECT_EQ(isvc.predictor.model->format.name, "sklearn");
  EXPECT_EQ(isvc.predictor.model->format.version, "");
  EXPECT_EQ(isvc.predictor.model->storage_uri, "gs://kfserving-examples/models/sklearn/1.0/model");
  EXPECT_EQ(isvc.predictor.model->protocol_version, "");
  EXPECT_EQ(ProtocolOf(*isvc.predictor.model), "v1");
  EXPECT_EQ(isvc.predictor.model->resources_json, "{}");
  EXPECT_EQ(isvc.predictor.legacy_key, "");
  EXPECT_EQ(isvc.predictor.min_replicas, 1);
  EXPECT_EQ(isvc.predictor.max_replicas, 0);
  EXPECT_TRUE(isvc.predictor.containers.empty());
  EXPECT_FALSE(isvc.transformer.has_value());
  EXPECT_FALSE(isvc.explainer.has_value());
}

TEST(ParseYaml, LegacyFrameworkKeyIsRewrittenToModel) {
  InferenceService legacy = ParseIsvc(kSklearnLegacy);
  EXPECT_EQ(legacy.predictor.legacy_key, "sklearn");
  ASSERT_TRUE(legacy.predictor.model.has_value());
  EXPECT_EQ(legacy.predictor.model->format.name, "sklearn");
  EXPECT_EQ(legacy.predictor.model->storage_uri,
            "gs://kfserving-examples/models/sklearn/1.0/model");
  // The same model as the `model:` form, apart from remembering the key.
  InferenceService model_form = ParseIsvc(kSklearnIris);
  legacy.predictor.legacy_key.clear();
  EXPECT_EQ(legacy, model_form);
}

TEST(ParseYaml, EveryFrameworkKey) {
  for (std::string_view key : {"sklearn", "xgboost", "lightgbm", "pytorch", "tensorflow", "onnx",
                               "pmml", "triton", "paddle", "huggingface"}) {
    std::string yaml = StrCat(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: m}\n"
        "spec:\n  predictor:\n    ",
        key, ":\n      storageUri: gs://bucket/model\n      args: [--x]\n");
    InferenceService isvc = ParseIsvc(yaml);
    ASSERT_TRUE(isvc.predictor.model.has_value()) << key;
    EXPECT_EQ(isvc.predictor.legacy_key, key);
    EXPECT_EQ(isvc.predictor.model->format.name, key);
    EXPECT_EQ(isvc.predictor.model->args, std::vector<std::string>{"--x"});
  }
}

TEST(ParseYaml, XgboostExplicitRuntimeV2) {
  InferenceService isvc = ParseIsvc(kXgboostV2);
  EXPECT_EQ(isvc.meta.namespace_, "kserve-test");
  ASSERT_TRUE(isvc.predictor.model.has_value());
  EXPECT_EQ(isvc.predictor.model->format.name, "xgboost");
  EXPECT_EQ(isvc.predictor.model->runtime, "kserve-xgbserver");
  EXPECT_EQ(isvc.predictor.model->protocol_version, "v2");
}

TEST(ParseYaml, CustomContainerWithCommandAndPodSpecFields) {
  InferenceService isvc = ParseIsvc(kCustomContainer);
  EXPECT_FALSE(isvc.predictor.model.has_value());
  ASSERT_EQ(isvc.predictor.containers.size(), 1u);
  const Container& c = isvc.predictor.containers[0];
  EXPECT_EQ(c.name, "kserve-container");
  EXPECT_EQ(c.image, "kserve/custom-model-grpc:latest");
  EXPECT_EQ(c.command, (std::vector<std::string>{"python", "-m", "model"}));
  EXPECT_EQ(c.args, (std::vector<std::string>{"--model_name", "custom-model"}));
  ASSERT_EQ(c.env.size(), 1u);
  EXPECT_EQ(c.env[0].name, "STORAGE_URI");
  EXPECT_EQ(c.env[0].value, "gs://kfserving-examples/models/custom");
  EXPECT_EQ(
      c.resources_json,
      R"({"requests":{"cpu":"100m","memory":"1Gi"},"limits":{"cpu":1.0,"memory":"2Gi","nvidia.com/gpu":1}})");
}

TEST(ParseYaml, MultiDocumentRuntimeAndService) {
  absl::StatusOr<std::vector<Resource>> r = ParseYaml(kRuntimeAndIsvc);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ(KindOf((*r)[0]), "ServingRuntime");
  EXPECT_EQ(KindOf((*r)[1]), "InferenceService");
  const auto& rt = std::get<ServingRuntime>((*r)[0]);
  EXPECT_FALSE(rt.cluster);
  EXPECT_EQ(rt.meta.name, "kserve-sklearnserver");
  EXPECT_EQ(rt.meta.namespace_, "team-a");
  ASSERT_EQ(rt.formats.size(), 1u);
  EXPECT_EQ(rt.formats[0].name, "sklearn");
  EXPECT_EQ(rt.formats[0].version, "1");
  EXPECT_TRUE(rt.formats[0].auto_select);
  EXPECT_EQ(rt.formats[0].priority, 2);
  EXPECT_EQ(rt.protocol_versions, (std::vector<std::string>{"v1", "v2"}));
  EXPECT_FALSE(rt.multi_model);
  EXPECT_FALSE(rt.disabled);
  ASSERT_EQ(rt.containers.size(), 1u);
  EXPECT_EQ(rt.containers[0].args[0], "--model_name={{.Name}}");
  const auto& isvc = std::get<InferenceService>((*r)[1]);
  EXPECT_EQ(isvc.meta.annotations.at("serving.kserve.io/enable-tag-routing"), "true");
  EXPECT_EQ(isvc.predictor.model->format.version, "1");
}

TEST(ParseYaml, TransformerExplainerAndComponentFields) {
  InferenceService isvc = ParseIsvc(kTransformerExplainer);
  const Component& p = isvc.predictor;
  EXPECT_EQ(isvc.meta.labels.at("team"), "vision");
  EXPECT_EQ(p.min_replicas, 0);
  EXPECT_EQ(p.max_replicas, 3);
  EXPECT_EQ(p.scale_target, 10);
  EXPECT_EQ(p.scale_metric, "concurrency");
  EXPECT_EQ(p.container_concurrency, 4);
  EXPECT_EQ(p.timeout_seconds, 60);
  EXPECT_EQ(p.canary_traffic_percent, 20);
  ASSERT_TRUE(p.logger.has_value());
  EXPECT_EQ(p.logger->url, "http://message-dumper.default/");
  EXPECT_EQ(p.logger->mode, "request");
  EXPECT_EQ(p.logger->metadata_headers, (std::vector<std::string>{"x-request-id", "x-b3-traceid"}));
  EXPECT_EQ(p.logger->metadata_annotations, (std::vector<std::string>{"team"}));
  ASSERT_TRUE(p.batcher.has_value());
  EXPECT_EQ(p.batcher->max_batch_size, 16);
  EXPECT_EQ(p.batcher->max_latency_ms, 100);
  EXPECT_EQ(p.labels.at("tier"), "gold");
  EXPECT_EQ(p.annotations.at("autoscaling.knative.dev/target"), "5");
  EXPECT_EQ(p.legacy_key, "pytorch");
  EXPECT_EQ(p.model->protocol_version, "v2");

  ASSERT_TRUE(isvc.transformer.has_value());
  ASSERT_EQ(isvc.transformer->containers.size(), 1u);
  // A lone unnamed container is KServe's kserve-container.
  EXPECT_EQ(isvc.transformer->containers[0].name, "kserve-container");
  EXPECT_EQ(isvc.transformer->containers[0].image, "kserve/image-transformer:latest");

  ASSERT_TRUE(isvc.explainer.has_value());
  EXPECT_EQ(isvc.explainer->explainer_type, "art");
  EXPECT_EQ(isvc.explainer->explainer_json,
            R"({"type":"SquareAttack","config":{"nb_classes":"10"}})");
  ASSERT_TRUE(isvc.explainer->explainer_container.has_value());
  EXPECT_EQ(isvc.explainer->explainer_container->image, "kserve/art-explainer:latest");
  EXPECT_EQ(isvc.explainer->explainer_container->args,
            (std::vector<std::string>{"--adversary_type", "SquareAttack", "--nb_classes", "10"}));
}

// KServe's ART explainer container: config entries in key order, storage,
// then the spec's own args; image and env as given.
TEST(ParseYaml, ArtExplainerContainer) {
  InferenceService isvc = ParseIsvc(R"(
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: m}
spec:
  predictor:
    model: {modelFormat: {name: sklearn}}
  explainer:
    art:
      type: SquareAttack
      config: {nb_classes: "10", max_iter: "20"}
      storageUri: file:///data/ref
      runtimeVersion: v0.14.1
      args: ["--workers", "2"]
      env: [{name: A, value: b}]
)");
  const Container& c = *isvc.explainer->explainer_container;
  EXPECT_EQ(c.name, "kserve-container");
  EXPECT_EQ(c.image, "kserve/art-explainer:v0.14.1");
  EXPECT_EQ(c.args, (std::vector<std::string>{"--adversary_type", "SquareAttack", "--max_iter",
                                              "20", "--nb_classes", "10", "--storage_uri",
                                              "/mnt/models", "--workers", "2"}));
  ASSERT_EQ(c.env.size(), 2u);
  EXPECT_EQ(c.env[0].name, "A");
  EXPECT_EQ(c.env[1].name, "STORAGE_URI");
  EXPECT_EQ(c.env[1].value, "file:///data/ref");
}

TEST(ParseYaml, DefaultsForLoggerAndBatcher) {
  InferenceService isvc = ParseIsvc(R"(
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: m}
spec:
  predictor:
    logger: {url: "http://sink"}
    batcher: {}
    model: {modelFormat: {name: SKLearn}}
)");
  EXPECT_EQ(isvc.predictor.logger->mode, "all");
  EXPECT_EQ(isvc.predictor.batcher->max_batch_size, 32);
  EXPECT_EQ(isvc.predictor.batcher->max_latency_ms, 500);
  EXPECT_EQ(isvc.predictor.model->format.name, "sklearn");
}

TEST(ParseYaml, ClusterServingRuntimeHasNoNamespace) {
  absl::StatusOr<std::vector<Resource>> r = ParseYaml(R"(
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata: {name: my-runtime, namespace: ignored}
spec:
  supportedModelFormats: [{name: onnx}]
  containers: [{name: kserve-container, image: example/onnx:1}]
)");
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& rt = std::get<ServingRuntime>(r->front());
  EXPECT_TRUE(rt.cluster);
  EXPECT_EQ(rt.meta.namespace_, "");
  EXPECT_TRUE(rt.protocol_versions.empty());  // KServe sets no default
  EXPECT_FALSE(rt.formats[0].auto_select);
  EXPECT_FALSE(rt.formats[0].priority.has_value());
  EXPECT_EQ(KindOf(r->front()), "ClusterServingRuntime");
}

TEST(ParseYaml, EmptyDocumentsAreSkipped) {
  absl::StatusOr<std::vector<Resource>> r =
      ParseYaml(StrCat("---\n# nothing\n---\n", kSklearnIris, "---\n"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->size(), 1u);
  r = ParseYaml("");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->empty());
}

// ---------------------------------------------------------------------------
// Validation errors: one case per rule, asserting the field path.

constexpr std::string_view kIsvcHead =
    "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: m\n";

// An InferenceService whose spec.predictor is `predictor` (indented 4).
std::string Predictor(std::string_view predictor) {
  return StrCat(kIsvcHead, "spec:\n  predictor:\n", predictor);
}
std::string SklearnPredictorWith(std::string_view fields) {
  return Predictor(StrCat(fields, "    model:\n      modelFormat: {name: sklearn}\n"));
}
std::string Runtime(std::string_view spec) {
  return StrCat(
      "apiVersion: serving.kserve.io/v1alpha1\nkind: ServingRuntime\nmetadata: {name: rt}\n"
      "spec:\n",
      spec);
}

TEST(ParseYaml, EnvValueFromIsKept) {
  auto r = ParseYaml(
      Predictor("    model:\n      modelFormat: {name: sklearn}\n      storageUri: s3://b/m\n"
                "      env:\n      - {name: A, value: x}\n"
                "      - {name: KEY, valueFrom: {secretKeyRef: {name: creds, key: token}}}\n"));
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& env = std::get<InferenceService>((*r)[0]).predictor.model->env;
  ASSERT_EQ(env.size(), 2u);
  EXPECT_EQ(env[1].value_from, R"({"secretKeyRef":{"name":"creds","key":"token"}})");
  auto back = FromJson(ToJson((*r)[0]));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, (*r)[0]);
}

TEST(ParseYaml, ReadinessProbesOfContainers) {
  struct Case {
    const char* probe;
    Container::Probe kind;
    const char* path;
  } cases[] = {
      {"{httpGet: {path: /healthz, port: 8080}}", Container::Probe::kHttpGet, "/healthz"},
      {"{httpGet: {port: http}, periodSeconds: 3}", Container::Probe::kHttpGet, "/"},
      {"{httpGet: {path: \"ready?full=1\", port: 1}}", Container::Probe::kHttpGet, "/ready?full=1"},
      {"{httpGet: {path: /h, port: 1, scheme: HTTPS}}", Container::Probe::kOther, "/h"},
      {"{tcpSocket: {port: 8080}, initialDelaySeconds: 2}", Container::Probe::kTcpSocket, ""},
      {"{exec: {command: [cat, /tmp/ready]}}", Container::Probe::kOther, ""},
      {"{grpc: {port: 9000}}", Container::Probe::kOther, ""},
  };
  for (const auto& c : cases) {
    InferenceService isvc = ParseIsvc(Predictor(StrCat(
        "    containers:\n      - image: x\n        command: [run]\n        readinessProbe: ",
        c.probe, "\n")));
    const Container& container = isvc.predictor.containers.at(0);
    EXPECT_EQ(container.probe, c.kind) << c.probe;
    EXPECT_EQ(container.probe_path, c.path) << c.probe;
    EXPECT_FALSE(container.readiness_probe_json.empty()) << c.probe;
  }
  InferenceService none = ParseIsvc(kCustomContainer);
  EXPECT_EQ(none.predictor.containers.at(0).probe, Container::Probe::kNone);
  EXPECT_EQ(none.predictor.containers.at(0).readiness_probe_json, "");
}

TEST(ParseYaml, ContainerPorts) {
  InferenceService isvc = ParseIsvc(
      Predictor("    containers:\n      - image: x\n        command: [run]\n        ports:\n"
                "          - {name: h2c, containerPort: 8081, protocol: TCP}\n"
                "          - {containerPort: 9000}\n"));
  const Container& c = isvc.predictor.containers.at(0);
  ASSERT_EQ(c.ports.size(), 2u);
  EXPECT_EQ(c.ports[0], (ContainerPort{"h2c", 8081, "TCP"}));
  EXPECT_EQ(c.ports[1], (ContainerPort{"", 9000, "TCP"}));
  EXPECT_EQ(GrpcContainerPort(c), 8081);
  EXPECT_EQ(GrpcContainerPort(ParseIsvc(kCustomContainer).predictor.containers.at(0)), 0);
}

struct ErrorCase {
  std::string name;
  std::string yaml;
  std::string error;  // the message starts with this
};

std::vector<ErrorCase> ErrorCases() {
  return {
      {"IsvcWrongApiVersion",
       "apiVersion: serving.kserve.io/v1alpha1\nkind: InferenceService\nmetadata: {name: m}\n",
       "apiVersion: \"serving.kserve.io/v1alpha1\" is invalid for kind InferenceService: must be "
       "serving.kserve.io/v1beta1"},
      {"IsvcMissingApiVersion", "kind: InferenceService\nmetadata: {name: m}\n",
       "apiVersion: required (serving.kserve.io/v1beta1)"},
      {"RuntimeWrongApiVersion",
       "apiVersion: serving.kserve.io/v1beta1\nkind: ServingRuntime\nmetadata: {name: m}\n",
       "apiVersion: \"serving.kserve.io/v1beta1\" is invalid for kind ServingRuntime: must be "
       "serving.kserve.io/v1alpha1"},
      {"ClusterRuntimeWrongApiVersion",
       "apiVersion: v1\nkind: ClusterServingRuntime\nmetadata: {name: m}\n",
       "apiVersion: \"v1\" is invalid for kind ClusterServingRuntime"},
      {"UnknownKind", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: m}\n",
       "kind: unknown kind \"Deployment\""},
      {"MissingKind", "apiVersion: serving.kserve.io/v1beta1\nmetadata: {name: m}\n",
       "kind: required"},
      {"UnknownTopLevelField", StrCat(kIsvcHead, "specs: {}\n"), "specs: unknown field"},
      {"NotAnObject", "- a\n- b\n", "expected an object with apiVersion and kind, got a list"},
      {"MissingName",
       "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {}\n",
       "metadata.name: required"},
      {"NameNotDns1035",
       "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: Iris_1}\n",
       "metadata.name: \"Iris_1\" is invalid: must be a DNS-1035 label"},
      {"NameStartsWithDigit",
       "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: 1iris}\n",
       "metadata.name: \"1iris\" is invalid: must be a DNS-1035 label"},
      {"NameTooLong",
       StrCat("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: ",
              std::string(64, 'a'), "}\n"),
       "metadata.name: \"aaaa"},
      {"NamespaceInvalid",
       "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
       "metadata: {name: m, namespace: Prod}\n",
       "metadata.namespace: \"Prod\" is invalid: must be a DNS-1123 label"},
      {"UnknownMetadataField", StrCat(kIsvcHead, "  nmae: x\n"), "metadata.nmae: unknown field"},
      {"LabelsNotAMap", StrCat(kIsvcHead, "  labels: [a]\n"),
       "metadata.labels: expected a map of strings, got a list"},
      {"MissingSpec", std::string(kIsvcHead), "spec.predictor: required"},
      {"MissingPredictor", StrCat(kIsvcHead, "spec:\n  transformer: {containers: [{image: x}]}\n"),
       "spec.predictor: required"},
      {"UnknownSpecField", StrCat(kIsvcHead, "spec:\n  predictors: {}\n"),
       "spec.predictors: unknown field"},
      {"MissingModelFormatName", Predictor("    model:\n      storageUri: gs://b/m\n"),
       "spec.predictor.model.modelFormat.name: required"},
      {"EmptyModelFormatName", Predictor("    model:\n      modelFormat: {version: \"1\"}\n"),
       "spec.predictor.model.modelFormat.name: required"},
      {"ModelAndFrameworkKey",
       Predictor("    model:\n      modelFormat: {name: sklearn}\n"
                 "    sklearn:\n      storageUri: gs://b/m\n"),
       "spec.predictor: exactly one of model, containers or a framework key (sklearn, xgboost, "
       "...) may be given, found model and sklearn"},
      {"TwoFrameworkKeys",
       Predictor("    sklearn: {storageUri: gs://b/m}\n    xgboost: {storageUri: gs://b/m}\n"),
       "spec.predictor: exactly one of model, containers or a framework key (sklearn, xgboost, "
       "...) may be given, found sklearn and xgboost"},
      {"ModelAndContainers",
       Predictor("    model: {modelFormat: {name: sklearn}}\n    containers: [{image: x}]\n"),
       "spec.predictor: exactly one of model, containers or a framework key (sklearn, xgboost, "
       "...) may be given, found model and containers"},
      {"NoPredictorForm", Predictor("    minReplicas: 1\n"),
       "spec.predictor: exactly one of model, containers or a framework key (sklearn, xgboost, "
       "...) must be given, found none"},
      {"BadProtocolVersion",
       Predictor("    model:\n      modelFormat: {name: sklearn}\n      protocolVersion: v3\n"),
       "spec.predictor.model.protocolVersion: \"v3\" is invalid: must be one of v1, v2, grpc-v1, "
       "grpc-v2"},
      {"BadLegacyProtocolVersion", Predictor("    sklearn: {protocolVersion: V2}\n"),
       "spec.predictor.sklearn.protocolVersion: \"V2\" is invalid"},
      {"UnknownModelField",
       Predictor("    model:\n      modelFormat: {name: sklearn}\n      storageuri: gs://b/m\n"),
       "spec.predictor.model.storageuri: unknown field"},
      {"UnknownModelFormatField",
       Predictor("    model:\n      modelFormat: {name: sklearn, versions: \"1\"}\n"),
       "spec.predictor.model.modelFormat.versions: unknown field"},
      {"RuntimeFieldOnLegacyKey", Predictor("    sklearn: {runtime: x}\n"),
       "spec.predictor.sklearn.runtime: unknown field"},
      {"UnknownPredictorField", SklearnPredictorWith("    storageUri: gs://b/m\n"),
       "spec.predictor.storageUri: unknown field"},
      {"EnvValueAndValueFrom",
       Predictor("    model:\n      modelFormat: {name: sklearn}\n      env: [{name: A, value: x, "
                 "valueFrom: {fieldRef: {fieldPath: metadata.name}}}]\n"),
       "spec.predictor.model.env[0].valueFrom: may not be given when value is not empty"},
      {"EnvValueFromTwoSources",
       Predictor("    model:\n      modelFormat: {name: sklearn}\n      env: [{name: A, valueFrom: "
                 "{fieldRef: {fieldPath: a}, secretKeyRef: {name: s, key: k}}}]\n"),
       "spec.predictor.model.env[0].valueFrom: must have exactly one of fieldRef"},
      {"EnvValueFromWithoutKey",
       Predictor("    model:\n      modelFormat: {name: sklearn}\n      env: [{name: A, valueFrom: "
                 "{secretKeyRef: {name: s}}}]\n"),
       "spec.predictor.model.env[0].valueFrom.secretKeyRef.key: required"},
      {"MinReplicasNotAnInteger", SklearnPredictorWith("    minReplicas: two\n"),
       "spec.predictor.minReplicas: expected an integer, got \"two\""},
      {"MinReplicasQuotedNumber", SklearnPredictorWith("    minReplicas: \"2\"\n"),
       "spec.predictor.minReplicas: expected an integer, got \"2\""},
      {"MinReplicasFloat", SklearnPredictorWith("    minReplicas: 1.5\n"),
       "spec.predictor.minReplicas: expected an integer, got 1.5"},
      {"MinReplicasNegative", SklearnPredictorWith("    minReplicas: -1\n"),
       "spec.predictor.minReplicas: must be >= 0, got -1"},
      {"MaxReplicasNegative", SklearnPredictorWith("    maxReplicas: -2\n"),
       "spec.predictor.maxReplicas: must be >= 0, got -2"},
      {"MaxReplicasBelowMin", SklearnPredictorWith("    minReplicas: 3\n    maxReplicas: 2\n"),
       "spec.predictor.maxReplicas: must be >= minReplicas (3) or 0 (unbounded), got 2"},
      {"ScaleTargetZero", SklearnPredictorWith("    scaleTarget: 0\n"),
       "spec.predictor.scaleTarget: must be >= 1, got 0"},
      {"ScaleMetricUnknown", SklearnPredictorWith("    scaleMetric: gpu\n"),
       "spec.predictor.scaleMetric: \"gpu\" is invalid: must be one of concurrency, rps, cpu, "
       "memory"},
      {"ContainerConcurrencyNegative", SklearnPredictorWith("    containerConcurrency: -1\n"),
       "spec.predictor.containerConcurrency: must be >= 0, got -1"},
      {"TimeoutWithUnit", SklearnPredictorWith("    timeout: 30s\n"),
       "spec.predictor.timeout: expected an integer, got \"30s\""},
      {"TimeoutZero", SklearnPredictorWith("    timeout: 0\n"),
       "spec.predictor.timeout: must be >= 1 (seconds), got 0"},
      {"CanaryOver100", SklearnPredictorWith("    canaryTrafficPercent: 120\n"),
       "spec.predictor.canaryTrafficPercent: must be between 0 and 100, got 120"},
      {"CanaryNegative", SklearnPredictorWith("    canaryTrafficPercent: -5\n"),
       "spec.predictor.canaryTrafficPercent: must be between 0 and 100, got -5"},
      {"LoggerModeUnknown", SklearnPredictorWith("    logger: {url: http://x, mode: everything}\n"),
       "spec.predictor.logger.mode: \"everything\" is invalid: must be one of all, request, "
       "response"},
      {"LoggerNotAMap", SklearnPredictorWith("    logger: http://x\n"),
       "spec.predictor.logger: expected a map, got \"http://x\""},
      {"LoggerUnknownField", SklearnPredictorWith("    logger: {uri: http://x}\n"),
       "spec.predictor.logger.uri: unknown field"},
      {"LoggerUrlMissing", SklearnPredictorWith("    logger: {mode: all}\n"),
       "spec.predictor.logger.url: required: the CloudEvents sink the exchanges are POSTed to "
       "(http://...)"},
      {"LoggerUrlScheme", SklearnPredictorWith("    logger: {url: kafka://broker/topic}\n"),
       "spec.predictor.logger.url: \"kafka://broker/topic\" is invalid: must be an http:// or "
       "https:// URL with a host"},
      {"LoggerUrlNoHost", SklearnPredictorWith("    logger: {url: \"http://\"}\n"),
       "spec.predictor.logger.url: \"http://\" is invalid: must be an http:// or https:// URL "
       "with a host"},
      {"LoggerMetadataHeadersNotAList",
       SklearnPredictorWith("    logger: {url: http://x, metadataHeaders: x-a}\n"),
       "spec.predictor.logger.metadataHeaders: expected a list of strings, got \"x-a\""},
      {"BatcherSizeZero", SklearnPredictorWith("    batcher: {maxBatchSize: 0}\n"),
       "spec.predictor.batcher.maxBatchSize: must be >= 1, got 0"},
      {"BatcherLatencyNotAnInteger", SklearnPredictorWith("    batcher: {maxLatency: fast}\n"),
       "spec.predictor.batcher.maxLatency: expected an integer, got \"fast\""},
      {"ComponentLabelsNotAMap", SklearnPredictorWith("    labels: [a, b]\n"),
       "spec.predictor.labels: expected a map of strings, got a list"},
      {"ComponentAnnotationValueNotAString", SklearnPredictorWith("    annotations: {a: {b: c}}\n"),
       "spec.predictor.annotations.a: expected a string, got a map"},
      {"ArgsNotAList",
       Predictor("    model:\n      modelFormat: {name: sklearn}\n      args: --workers=2\n"),
       "spec.predictor.model.args: expected a list of strings, got \"--workers=2\""},
      {"EnvWithoutName",
       Predictor("    model:\n      modelFormat: {name: sklearn}\n      env: [{value: x}]\n"),
       "spec.predictor.model.env[0].name: required"},
      {"ResourcesNotAMap",
       Predictor("    model:\n      modelFormat: {name: sklearn}\n      resources: 2Gi\n"),
       "spec.predictor.model.resources: expected a map, got \"2Gi\""},
      {"ContainersNotAList", Predictor("    containers: {image: x}\n"),
       "spec.predictor.containers: expected a list of containers, got a map"},
      {"SecondContainerWithoutName",
       Predictor("    containers:\n    - {name: a, image: x}\n    - {image: y}\n"),
       "spec.predictor.containers[1].name: required"},
      {"ContainerWithoutImageOrCommand", Predictor("    containers:\n    - {name: a}\n"),
       "spec.predictor.containers[0]: image or command required"},
      {"ContainerUnknownField", Predictor("    containers:\n    - {name: a, imag: x}\n"),
       "spec.predictor.containers[0].imag: unknown field"},
      {"TransformerWithoutContainers",
       StrCat(SklearnPredictorWith(""), "  transformer:\n    minReplicas: 1\n"),
       "spec.transformer.containers: required"},
      {"TransformerModelForm",
       StrCat(SklearnPredictorWith(""), "  transformer:\n    model: {modelFormat: {name: x}}\n"),
       "spec.transformer.model: unknown field"},
      {"TransformerMinReplicasNotAnInteger",
       StrCat(SklearnPredictorWith(""),
              "  transformer:\n    minReplicas: one\n    containers: [{image: x}]\n"),
       "spec.transformer.minReplicas: expected an integer, got \"one\""},
      {"ExplainerTypeAndContainers",
       StrCat(SklearnPredictorWith(""),
              "  explainer:\n    art: {type: SquareAttack}\n    containers: [{image: x}]\n"),
       "spec.explainer: exactly one of containers or an explainer type (art, ...) may be given, "
       "found art and containers"},
      {"ExplainerNone", StrCat(SklearnPredictorWith(""), "  explainer:\n    minReplicas: 1\n"),
       "spec.explainer: exactly one of containers or an explainer type (art, ...) must be given, "
       "found none"},
      {"ExplainerTypeNotAMap", StrCat(SklearnPredictorWith(""), "  explainer:\n    art: yes\n"),
       "spec.explainer.art: expected a map, got \"yes\""},
      {"ArtWithoutType", StrCat(SklearnPredictorWith(""), "  explainer:\n    art: {config: {}}\n"),
       "spec.explainer.art.type: required (SquareAttack)"},
      {"ArtOtherAdversary",
       StrCat(SklearnPredictorWith(""), "  explainer:\n    art: {type: HopSkipJump}\n"),
       "spec.explainer.art.type: unsupported ART explainer type 'HopSkipJump': the ART explainer "
       "runs SquareAttack"},
      {"ArtUnknownField",
       StrCat(SklearnPredictorWith(""), "  explainer:\n    art: {type: SquareAttack, cfg: {}}\n"),
       "spec.explainer.art.cfg: unknown field"},
      {"ArtConfigNotStrings",
       StrCat(SklearnPredictorWith(""),
              "  explainer:\n    art: {type: SquareAttack, config: {a: [1]}}\n"),
       "spec.explainer.art.config.a: expected a string"},
      {"RuntimeFormatWithoutName",
       Runtime(
           "  supportedModelFormats: [{version: \"1\"}]\n  containers: [{name: c, image: x}]\n"),
       "spec.supportedModelFormats[0].name: required"},
      {"RuntimePriorityZero",
       Runtime("  supportedModelFormats: [{name: a, autoSelect: true, priority: 0}]\n"
               "  containers: [{name: c, image: x}]\n"),
       "spec.supportedModelFormats[0].priority: must be >= 1, got 0"},
      {"RuntimePrioritiesDiffer",
       Runtime("  supportedModelFormats:\n  - {name: a, version: \"1\", priority: 1}\n"
               "  - {name: a, version: \"2\", priority: 2}\n  containers: [{name: c, image: x}]\n"),
       "spec.supportedModelFormats[1].priority: model format \"a\" is listed with different "
       "priorities (1 and 2)"},
      {"RuntimeAutoSelectNotABool",
       Runtime("  supportedModelFormats: [{name: a, autoSelect: \"true\"}]\n"
               "  containers: [{name: c, image: x}]\n"),
       "spec.supportedModelFormats[0].autoSelect: expected true or false, got \"true\""},
      {"RuntimeBadProtocol",
       Runtime("  protocolVersions: [v1, v3]\n  containers: [{name: c, image: x}]\n"),
       "spec.protocolVersions[1]: \"v3\" is invalid: must be one of v1, v2, grpc-v1, grpc-v2"},
      {"RuntimeDisabledNotABool", Runtime("  disabled: 1\n  containers: [{name: c, image: x}]\n"),
       "spec.disabled: expected true or false, got 1"},
      {"RuntimeWithoutContainers", Runtime("  supportedModelFormats: [{name: a}]\n"),
       "spec.containers: required"},
      {"RuntimeEmptyContainers", Runtime("  containers: []\n"), "spec.containers: required"},
      {"RuntimeContainerWithoutName", Runtime("  containers: [{image: x}]\n"),
       "spec.containers[0].name: required"},
      {"RuntimeContainerWithoutImage", Runtime("  containers: [{name: c}]\n"),
       "spec.containers[0]: image or command required"},
      {"RuntimeUnknownSpecField",
       Runtime("  supportedModelFormat: []\n  containers: [{name: c, image: x}]\n"),
       "spec.supportedModelFormat: unknown field"},
      {"RuntimeNameInvalid",
       "apiVersion: serving.kserve.io/v1alpha1\nkind: ServingRuntime\nmetadata: {name: My_RT}\n"
       "spec: {containers: [{name: c, image: x}]}\n",
       "metadata.name: \"My_RT\" is invalid: must be a DNS-1123 subdomain"},
      {"SecondDocumentNamed", StrCat(kSklearnIris, "---\n", kIsvcHead, "spec: {}\n"),
       "document 2: spec.predictor: required"},
      {"YamlSyntax", "apiVersion: v1\nkind: [InferenceService\nmetadata: x\n",
       "invalid YAML at line"},
      {"DuplicateKey", StrCat(kIsvcHead, "  name: n\n"), "duplicate key \"name\""},
      {"PortWithoutNumber", Predictor("    containers: [{image: x, ports: [{name: h2c}]}]\n"),
       "spec.predictor.containers[0].ports[0].containerPort: required"},
      {"PortOutOfRange",
       Predictor("    containers: [{image: x, ports: [{containerPort: 70000}]}]\n"),
       "spec.predictor.containers[0].ports[0].containerPort: must be a port number (1-65535), "
       "got 70000"},
      {"PortBadProtocol",
       Predictor("    containers: [{image: x, ports: [{containerPort: 1, protocol: QUIC}]}]\n"),
       "spec.predictor.containers[0].ports[0].protocol: must be TCP, UDP or SCTP, got QUIC"},
      {"ProbeWithoutHandler",
       Predictor("    containers: [{image: x, readinessProbe: {periodSeconds: 1}}]\n"),
       "spec.predictor.containers[0].readinessProbe: needs one handler"},
      {"ProbeWithTwoHandlers",
       Predictor("    containers: [{image: x, readinessProbe: {httpGet: {port: 1}, "
                 "tcpSocket: {port: 1}}}]\n"),
       "spec.predictor.containers[0].readinessProbe: must have exactly one handler"},
      {"ProbeBadScheme",
       Predictor(
           "    containers: [{image: x, readinessProbe: {httpGet: {port: 1, scheme: FTP}}}]\n"),
       "spec.predictor.containers[0].readinessProbe.httpGet.scheme: \"FTP\" is invalid"},
      {"ProbeNegativePeriod",
       Predictor("    containers: [{image: x, readinessProbe: {exec: {command: [a]}, "
                 "periodSeconds: -1}}]\n"),
       "spec.predictor.containers[0].readinessProbe.periodSeconds: must not be negative"},
      {"ProbePortOutOfRange",
       Predictor("    containers: [{image: x, readinessProbe: {tcpSocket: {port: 70000}}}]\n"),
       "spec.predictor.containers[0].readinessProbe.tcpSocket.port: 70000 is invalid"},
      {"ProbePathWithSpace",
       Predictor(
           "    containers: [{image: x, readinessProbe: {httpGet: {port: 1, path: \"/a b\"}}}]\n"),
       "spec.predictor.containers[0].readinessProbe.httpGet.path: must not contain spaces"},
      {"ProbeUnknownField",
       Predictor("    containers: [{image: x, readinessProbe: {httpGet: {port: 1}, period: 1}}]\n"),
       "spec.predictor.containers[0].readinessProbe.period: unknown field"},
  };
}

constexpr char kHelloworld[] = R"(apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: helloworld-go, namespace: default}
spec:
  template:
    spec:
      containers:
        - image: gcr.io/knative-samples/helloworld-go
          env: [{name: TARGET, value: "Go Sample v1"}]
)";

KnativeService ParseKsvc(const std::string& yaml) {
  auto r = ParseYaml(yaml);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok() || r->size() != 1 || !std::holds_alternative<KnativeService>((*r)[0])) return {};
  return std::get<KnativeService>((*r)[0]);
}

TEST(ParseYaml, KnativeServiceDefaults) {
  KnativeService ks = ParseKsvc(kHelloworld);
  EXPECT_EQ(ks.meta.name, "helloworld-go");
  EXPECT_EQ(ks.revision_name, "");
  ASSERT_EQ(ks.revision.containers.size(), 1u);
  EXPECT_EQ(ks.revision.containers[0].name, "user-container");
  EXPECT_EQ(ks.revision.containers[0].env, (std::vector<EnvVar>{{"TARGET", "Go Sample v1"}}));
  EXPECT_EQ(ks.revision.min_replicas, 0);  // scale to zero unless told
  EXPECT_EQ(ks.revision.timeout_seconds, 300);
  ASSERT_EQ(ks.traffic.size(), 1u);
  EXPECT_TRUE(ks.traffic[0].latest_revision);
  EXPECT_EQ(ks.traffic[0].percent, 100);
  // Canonical JSON reads back as the same object.
  auto back = FromJson(ToJson(ks));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(std::get<KnativeService>(*back), ks);
  EXPECT_EQ(KindOf(ks), "Service");
}

TEST(ParseYaml, KnativeServiceTrafficTagsAndScale) {
  KnativeService ks = ParseKsvc(R"(apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: web}
spec:
  template:
    metadata:
      name: web-v2
      annotations: {autoscaling.knative.dev/min-scale: "1", autoscaling.knative.dev/max-scale: "3"}
    spec:
      containerConcurrency: 10
      timeoutSeconds: 30
      containers:
        - {name: proxy, image: envoy, command: [envoy]}
        - {name: app, image: app, command: [app], ports: [{containerPort: 9000}]}
  traffic:
    - {revisionName: web-v1, percent: 90}
    - {revisionName: web-v2, percent: 10, tag: candidate}
    - {latestRevision: true, percent: 0, tag: latest}
)");
  EXPECT_EQ(ks.revision_name, "web-v2");
  EXPECT_EQ(ks.serving_container, 1u);
  EXPECT_EQ(ks.revision.min_replicas, 1);
  EXPECT_EQ(ks.revision.container_concurrency, 10);
  EXPECT_EQ(ks.revision.timeout_seconds, 30);
  ASSERT_EQ(ks.traffic.size(), 3u);
  EXPECT_EQ(ks.traffic[0], (KnativeTrafficTarget{"web-v1", false, 90, ""}));
  EXPECT_EQ(ks.traffic[1], (KnativeTrafficTarget{"web-v2", false, 10, "candidate"}));
  EXPECT_EQ(ks.traffic[2], (KnativeTrafficTarget{"", true, 0, "latest"}));
  auto back = FromJson(ToJson(ks));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(std::get<KnativeService>(*back), ks);
}

std::string Ksvc(const std::string& template_spec, const std::string& rest = "") {
  return "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: web}\nspec:\n"
         "  template:\n" +
         template_spec + rest;
}
constexpr char kKsvcContainers[] = "    spec: {containers: [{image: x}]}\n";

TEST(ParseYaml, KnativeServiceErrorsNameTheField) {
  const std::pair<std::string, std::string> cases[] = {
      {"apiVersion: serving.knative.dev/v2\nkind: Service\nmetadata: {name: web}\n",
       "apiVersion: \"serving.knative.dev/v2\" is invalid for kind Service"},
      {Ksvc("    metadata: {name: other-v1}\n" + std::string(kKsvcContainers)),
       "spec.template.metadata.name: \"other-v1\" is invalid: must have prefix \"web-\""},
      {Ksvc("    spec: {}\n"), "spec.template.spec.containers: required"},
      {Ksvc("    spec: {containerConcurrency: 1001, containers: [{image: x}]}\n"),
       "spec.template.spec.containerConcurrency: must be between 0 and 1000, got 1001"},
      {Ksvc("    spec: {timeoutSeconds: 601, containers: [{image: x}]}\n"),
       "spec.template.spec.timeoutSeconds: must be between 0 (the default, 300) and 600, got 601"},
      {Ksvc("    spec: {containers: [{image: x, env: [{name: PORT, value: \"9\"}]}]}\n"),
       "spec.template.spec.containers[0].env: \"PORT\" is reserved"},
      {Ksvc("    metadata: {annotations: {autoscaling.knative.dev/initial-scale: \"0\"}}\n" +
            std::string(kKsvcContainers)),
       "spec.template.metadata.annotations.autoscaling.knative.dev/initial-scale: \"0\" is "
       "invalid"},
      {Ksvc(kKsvcContainers, "  traffic: [{url: http://x, percent: 100}]\n"),
       "spec.traffic[0].url: may not be set"},
      {Ksvc("    spec: {containers: [{name: a, image: x}, {name: b, image: y}]}\n"),
       "spec.template.spec.containers: exactly one container must declare a port"},
      {Ksvc("    metadata: {annotations: {autoscaling.knative.dev/min-scale: two}}\n" +
            std::string(kKsvcContainers)),
       "spec.template.metadata.annotations.autoscaling.knative.dev/min-scale: \"two\" is invalid"},
      {Ksvc(kKsvcContainers, "  traffic: [{percent: 90}]\n"),
       "spec.traffic: the percents sum to 90, want 100"},
      {Ksvc(kKsvcContainers,
            "  traffic: [{revisionName: web-1, latestRevision: true, "
            "percent: 100}]\n"),
       "spec.traffic[0].revisionName: may not be set when latestRevision is true"},
      {Ksvc(kKsvcContainers, "  traffic: [{latestRevision: false, percent: 100}]\n"),
       "spec.traffic[0].revisionName: required when latestRevision is false"},
      {Ksvc(kKsvcContainers, "  traffic: [{percent: 50, tag: a}, {percent: 50, tag: a}]\n"),
       "spec.traffic[1].tag: \"a\" is used by more than one traffic entry"},
      {Ksvc(kKsvcContainers, "  traffic: [{percent: 101}]\n"),
       "spec.traffic[0].percent: must be between 0 and 100, got 101"},
      {Ksvc(kKsvcContainers, "  traffic: [{configurationName: web, percent: 100}]\n"),
       "spec.traffic[0].configurationName: not allowed in a Service"},
  };
  for (const auto& [yaml, error] : cases) {
    auto r = ParseYaml(yaml);
    ASSERT_FALSE(r.ok()) << yaml;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Msg(r.status()).substr(0, error.size()), error) << Msg(r.status());
  }
}

constexpr char kBookinfo[] = R"(apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: bookinfo-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - "*"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bookinfo
spec:
  hosts:
  - "*"
  gateways:
  - bookinfo-gateway
  http:
  - match:
    - uri:
        exact: /productpage
    - uri:
        prefix: /static
    - uri:
        exact: /login
    route:
    - destination:
        host: productpage
        port:
          number: 9080
)";

TEST(ParseYaml, IstioBookinfoGatewayAndVirtualService) {
  auto r = ParseYaml(kBookinfo);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 2u);
  const auto& g = std::get<IstioGateway>((*r)[0]);
  EXPECT_EQ(g.selector, (std::map<std::string, std::string>{{"istio", "ingressgateway"}}));
  ASSERT_EQ(g.servers.size(), 1u);
  EXPECT_EQ(g.servers[0].port, 80);
  EXPECT_EQ(g.servers[0].hosts, std::vector<std::string>{"*"});
  const auto& vs = std::get<VirtualService>((*r)[1]);
  EXPECT_EQ(vs.api_version, "networking.istio.io/v1");
  EXPECT_EQ(vs.gateways, std::vector<std::string>{"bookinfo-gateway"});
  ASSERT_EQ(vs.http.size(), 1u);
  ASSERT_EQ(vs.http[0].match.size(), 3u);
  EXPECT_EQ(vs.http[0].match[1].uri,
            (IstioStringMatch{IstioStringMatch::Kind::kPrefix, "/static"}));
  ASSERT_EQ(vs.http[0].route.size(), 1u);
  EXPECT_EQ(static_cast<const IstioDestination&>(vs.http[0].route[0]),
            (IstioDestination{"productpage", 9080, 100}));
  for (const Resource& res : *r) {
    auto back = FromJson(ToJson(res));
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << ToJson(res);
    EXPECT_EQ(*back, res) << ToJson(res);
  }
}

TEST(ParseYaml, IstioRouteFeatures) {
  auto r = ParseYaml(R"(apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews.example.com]
  http:
  - name: canary
    match:
    - headers: {End-User: {exact: jason}}
      method: {regex: "GET|HEAD"}
      queryParams: {v: {prefix: "2"}}
    route:
    - {destination: {host: reviews-v1}, weight: 75}
    - {destination: {host: reviews-v2}, weight: 25}
    rewrite: {uri: /v1, authority: internal}
    timeout: 0.5s
    retries: {attempts: 3, perTryTimeout: 100ms, retryOn: "5xx,connect-failure"}
    fault:
      delay: {fixedDelay: 2s, percentage: {value: 10}}
      abort: {httpStatus: 503, percentage: {value: 5.5}}
    mirror: {host: shadow}
    mirrorPercentage: {value: 50}
    headers:
      request: {set: {X-Env: test}, remove: [X-Secret]}
      response: {add: {X-Served-By: osprey}}
  - redirect: {uri: /new, redirectCode: 302}
)");
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& vs = std::get<VirtualService>((*r)[0]);
  const IstioHttpRoute& h = vs.http[0];
  EXPECT_EQ(h.match[0].headers[0].first, "end-user");
  EXPECT_EQ(h.match[0].method, (IstioStringMatch{IstioStringMatch::Kind::kRegex, "GET|HEAD"}));
  EXPECT_EQ(h.route[1], (IstioDestination{"reviews-v2", 0, 25}));
  EXPECT_EQ(h.rewrite_uri, "/v1");
  EXPECT_EQ(h.timeout_ms, 500);
  EXPECT_EQ(h.retry_attempts, 3);
  EXPECT_EQ(h.retry_per_try_timeout_ms, 100);
  EXPECT_EQ(h.delay_ms, 2000);
  EXPECT_EQ(h.delay_percent, 10);
  EXPECT_EQ(h.abort_http_status, 503);
  EXPECT_EQ(h.abort_percent, 5.5);
  EXPECT_EQ(h.mirror_percent, 50);
  EXPECT_EQ(h.request_headers.set,
            (std::vector<std::pair<std::string, std::string>>{{"x-env", "test"}}));
  EXPECT_TRUE(vs.http[1].redirect);
  EXPECT_EQ(vs.http[1].redirect_code, 302);
  auto back = FromJson(ToJson((*r)[0]));
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << ToJson((*r)[0]);
  EXPECT_EQ(*back, (*r)[0]) << ToJson((*r)[0]);
}

TEST(ParseYaml, IstioDestinationRule) {
  auto r = ParseYaml(R"(apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: Reviews
  exportTo: [".", prod]
  trafficPolicy:
    loadBalancer: {simple: LEAST_CONN}
    connectionPool:
      tcp: {maxConnections: 100}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 50, maxRequestsPerConnection: 1}
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 3m}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: X-User}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 9001}, labels: {version: v1}}]
)");
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& dr = std::get<DestinationRule>((*r)[0]);
  EXPECT_EQ(KindOf((*r)[0]), "DestinationRule");
  EXPECT_TRUE(IsIstio((*r)[0]));
  EXPECT_EQ(dr.host, "reviews");
  EXPECT_EQ(dr.export_to, (std::vector<std::string>{".", "prod"}));
  ASSERT_TRUE(dr.traffic_policy.load_balancer.has_value());
  EXPECT_EQ(dr.traffic_policy.load_balancer->simple, "LEAST_REQUEST");
  EXPECT_EQ(dr.traffic_policy.connection_pool,
            (IstioConnectionPool{.max_connections = 100,
                                 .http1_max_pending_requests = 10,
                                 .http2_max_requests = 50,
                                 .max_requests_per_connection = 1}));
  // Istio's defaults for what is not written.
  EXPECT_EQ(dr.traffic_policy.outlier_detection,
            (IstioOutlierDetection{.consecutive_5xx_errors = 2,
                                   .consecutive_gateway_errors = 0,
                                   .interval_ms = 1000,
                                   .base_ejection_time_ms = 180000,
                                   .max_ejection_percent = 10,
                                   .min_health_percent = 0}));
  ASSERT_EQ(dr.subsets.size(), 2u);
  EXPECT_EQ(dr.subsets[0].labels, (std::map<std::string, std::string>{{"version", "v1"}}));
  EXPECT_EQ(dr.subsets[1].traffic_policy.load_balancer->hash_header, "x-user");
  const auto& se = std::get<ServiceEntry>((*r)[1]);
  EXPECT_EQ(se.endpoints[0].labels, (std::map<std::string, std::string>{{"version", "v1"}}));
  for (const Resource& res : *r) {
    auto back = FromJson(ToJson(res));
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << ToJson(res);
    EXPECT_EQ(*back, res) << ToJson(res);
  }
}

TEST(ParseYaml, PodAndContainerFieldsAreKeptAsGiven) {
  auto r = ParseYaml(R"(apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: private}
spec:
  template:
    spec:
      serviceAccountName: reader
      volumes: [{name: conf, configMap: {name: app-conf}}]
      containers:
        - image: app
          envFrom: [{secretRef: {name: app-secrets}}]
          volumeMounts: [{name: conf, mountPath: /etc/app}]
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: iris}
spec:
  predictor:
    serviceAccountName: s3-reader
    nodeSelector: {gpu: "true"}
    containers:
      - name: kserve-container
        image: custom
        workingDir: /srv
)");
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& ks = std::get<KnativeService>((*r)[0]);
  EXPECT_EQ(
      ks.revision.pod_json,
      R"({"serviceAccountName":"reader","volumes":[{"name":"conf","configMap":{"name":"app-conf"}}]})");
  EXPECT_EQ(
      ks.revision.containers[0].extra_json,
      R"({"envFrom":[{"secretRef":{"name":"app-secrets"}}],"volumeMounts":[{"name":"conf","mountPath":"/etc/app"}]})");
  const auto& isvc = std::get<InferenceService>((*r)[1]);
  EXPECT_EQ(isvc.predictor.pod_json,
            R"({"serviceAccountName":"s3-reader","nodeSelector":{"gpu":"true"}})");
  EXPECT_EQ(isvc.predictor.containers[0].extra_json, R"({"workingDir":"/srv"})");
  for (const Resource& res : *r) {
    auto back = FromJson(ToJson(res));
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << ToJson(res);
    EXPECT_EQ(*back, res) << ToJson(res);
  }
}

TEST(ParseYaml, IstioHttpsServersAndRedirects) {
  auto r = ParseYaml(R"(apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop}
spec:
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [shop.example.com]
    tls: {httpsRedirect: true}
  - port: {number: 443, name: https, protocol: https}
    hosts: [shop.example.com]
    tls:
      mode: SIMPLE
      serverCertificate: /etc/certs/shop.pem
      privateKey: /etc/certs/shop.key
      minProtocolVersion: TLSV1_3
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop.example.com]
  http:
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, scheme: https, port: 8443, redirectCode: 308}
  - route: [{destination: {host: shop}}]
)");
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& g = std::get<IstioGateway>((*r)[0]);
  ASSERT_EQ(g.servers.size(), 2u);
  ASSERT_TRUE(g.servers[0].tls.has_value());
  EXPECT_TRUE(g.servers[0].tls->https_redirect);
  EXPECT_EQ(g.servers[1].protocol, "HTTPS");
  EXPECT_EQ(g.servers[1].tls, (IstioServerTls{.https_redirect = false,
                                              .mode = "SIMPLE",
                                              .server_certificate = "/etc/certs/shop.pem",
                                              .private_key = "/etc/certs/shop.key",
                                              .min_protocol_version = "TLSV1_3"}));
  const auto& h = std::get<VirtualService>((*r)[1]).http[0];
  EXPECT_EQ(h.redirect_scheme, "https");
  EXPECT_EQ(h.redirect_port, 8443);
  EXPECT_EQ(h.redirect_code, 308);
  for (const Resource& res : *r) {
    auto back = FromJson(ToJson(res));
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << ToJson(res);
    EXPECT_EQ(*back, res) << ToJson(res);
  }
}

TEST(ParseYaml, IstioCorsPolicy) {
  auto r = ParseYaml(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings.prod.svc.cluster.local]
  http:
  - route: [{destination: {host: ratings.prod.svc.cluster.local}}]
    corsPolicy:
      allowOrigins: [{exact: "https://example.com"}, {regex: "https://.*[.]example[.]org"}]
      allowOrigin: ["https://old.example.com"]
      allowMethods: [POST, GET]
      allowCredentials: false
      allowHeaders: [X-Foo-Bar]
      exposeHeaders: [X-Trace]
      maxAge: 24h
      unmatchedPreflights: IGNORE
)");
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& c = std::get<VirtualService>((*r)[0]).http[0].cors;
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->allow_origins.size(), 2u);  // allowOrigin only counts without allowOrigins
  EXPECT_EQ(c->allow_origins[1].kind, IstioStringMatch::Kind::kRegex);
  EXPECT_EQ(c->allow_methods, (std::vector<std::string>{"POST", "GET"}));
  EXPECT_EQ(c->max_age_ms, 86400000);
  EXPECT_EQ(c->allow_credentials, false);
  EXPECT_FALSE(c->forward_unmatched_preflights);
  auto back = FromJson(ToJson((*r)[0]));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, (*r)[0]) << ToJson((*r)[0]);
}

TEST(ParseYaml, IstioErrorsNameTheField) {
  const std::string vs =
      "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
      "metadata: {name: a}\nspec:\n";
  const std::string dr =
      "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
      "metadata: {name: d}\nspec:\n  host: reviews\n";
  const std::string gw =
      "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n";
  const std::pair<std::string, std::string> cases[] = {
      {"apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: a}\n",
       "apiVersion: \"networking.istio.io/v2\" is invalid for kind VirtualService"},
      {vs + "  http: [{route: [{destination: {host: x}}]}]\n", "spec.hosts: required"},
      {vs + "  hosts: [\"bad host\"]\n  http: [{route: [{destination: {host: x}}]}]\n",
       "spec.hosts[0]: \"bad host\" is invalid"},
      {vs + "  hosts: [a]\n  http: [{route: [{destination: {host: x}, weight: 60}, "
            "{destination: {host: y}, weight: 30}]}]\n",
       "spec.http[0].route: the weights sum to 90, want 100"},
      {vs + "  hosts: [a]\n  http: [{match: [{uri: {exact: /a, prefix: /b}}], "
            "route: [{destination: {host: x}}]}]\n",
       "spec.http[0].match[0].uri: must have exactly one of exact, prefix, regex"},
      {vs + "  hosts: [a]\n  http: [{match: [{uri: {regex: \"(\"}}], "
            "route: [{destination: {host: x}}]}]\n",
       "spec.http[0].match[0].uri.regex: \"(\" is not a valid RE2 expression"},
      {vs + "  hosts: [a]\n  http: [{route: [{destination: {host: x}}], timeout: soon}]\n",
       "spec.http[0].timeout: \"soon\" is invalid"},
      {vs + "  hosts: [a]\n  http: [{route: [{destination: {host: x, subset: V1}}]}]\n",
       "spec.http[0].route[0].destination.subset: \"V1\" is invalid"},
      {vs + "  hosts: [a]\n  http: [{route: [{destination: {host: x}}], "
            "corsPolicy: {allowOrigins: [{regex: \"[\"}]}}]\n",
       "spec.http[0].corsPolicy.allowOrigins[0].regex: \"[\" is not a valid RE2 expression"},
      {vs + "  hosts: [a]\n  http: [{route: [{destination: {host: x}}], "
            "corsPolicy: {unmatchedPreflights: DROP}}]\n",
       "spec.http[0].corsPolicy.unmatchedPreflights: \"DROP\" is invalid"},
      {dr + "  trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}\n",
       "spec.trafficPolicy.loadBalancer.simple: PASSTHROUGH is not served by Osprey"},
      {dr + "  trafficPolicy: {loadBalancer: {simple: FASTEST}}\n",
       "spec.trafficPolicy.loadBalancer.simple: \"FASTEST\" is invalid"},
      {dr + "  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}\n",
       "spec.trafficPolicy.loadBalancer.consistentHash.useSourceIp: not supported by Osprey yet"},
      {dr + "  trafficPolicy: {connectionPool: {http: {maxRequestsPerConnection: 10}}}\n",
       "spec.trafficPolicy.connectionPool.http.maxRequestsPerConnection: only 1"},
      {dr + "  trafficPolicy: {connectionPool: {tcp: {maxConnections: 0}}}\n",
       "spec.trafficPolicy.connectionPool.tcp.maxConnections: must be at least 1"},
      {dr + "  trafficPolicy: {outlierDetection: {maxEjectionPercent: 120}}\n",
       "spec.trafficPolicy.outlierDetection.maxEjectionPercent: must be between 0 and 100"},
      {dr + "  trafficPolicy: {outlierDetection: {baseEjectionTime: later}}\n",
       "spec.trafficPolicy.outlierDetection.baseEjectionTime: \"later\" is invalid"},
      {dr + "  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n",
       "spec.trafficPolicy.tls: not supported by Osprey yet"},
      {dr + "  exportTo: [\"~\"]\n", "spec.exportTo[0]: \"~\" is invalid"},
      {dr + "  trafficPolicy: {outlierDetection: {interval: 99999999h}}\n",
       "spec.trafficPolicy.outlierDetection.interval: is too long"},
      {dr + "  subsets: [{name: v1, labels: {version: v1}}, {name: v1}]\n",
       "spec.subsets[1].name: \"v1\" is not unique"},
      {dr + "  subsets: [{name: v1, trafficPolicy: {loadBalancer: {simple: X}}}]\n",
       "spec.subsets[0].trafficPolicy.loadBalancer.simple: \"X\" is invalid"},
      {"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
       "spec: {trafficPolicy: {}}\n",
       "spec.host: required"},
      {vs + "  hosts: [a]\n  http: [{route: [{destination: {host: x}}], "
            "fault: {abort: {percentage: {value: 150}, httpStatus: 500}}}]\n",
       "spec.http[0].fault.abort.percentage.value: must be between 0 and 100"},
      {vs + "  hosts: [a]\n  http: [{route: [{destination: {host: x}}], "
            "retries: {attempts: 2, retryOn: sometimes}}]\n",
       "spec.http[0].retries.retryOn: \"sometimes\" is not a condition"},
      {vs + "  hosts: [a]\n  http: [{redirect: {uri: /x}, route: [{destination: {host: x}}]}]\n",
       "spec.http[0]: must have exactly one of route, redirect"},
      {gw + "  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [\"*\"]}]\n",
       "spec.servers[0].tls: required on an HTTPS server"},
      {gw + "  servers: [{port: {number: 443, name: t, protocol: TCP}, hosts: [\"*\"]}]\n",
       "spec.servers[0].port.protocol: \"TCP\" is not served by Osprey yet"},
      {gw + "  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [\"*\"],"
            " tls: {mode: MUTUAL, serverCertificate: /c, privateKey: /k}}]\n",
       "spec.servers[0].tls.mode: \"MUTUAL\" is not supported by Osprey yet"},
      {gw + "  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [\"*\"],"
            " tls: {mode: SIMPLE, privateKey: /k}}]\n",
       "spec.servers[0].tls.serverCertificate: required"},
      {gw + "  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [\"*\"],"
            " tls: {mode: SIMPLE, credentialName: shop-cert}}]\n",
       "spec.servers[0].tls.credentialName: not supported by Osprey yet: give the certificate"},
      {gw + "  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*\"],"
            " tls: {serverCertificate: /c}}]\n",
       "spec.servers[0].tls: an HTTP server takes httpsRedirect only"},
      {gw + "  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [\"*\"],"
            " tls: {serverCertificate: /c, privateKey: /k, minProtocolVersion: TLSV1_0}}]\n",
       "spec.servers[0].tls.minProtocolVersion: \"TLSV1_0\" is not supported"},
      {vs + "  hosts: [a]\n  http: [{redirect: {scheme: ftp}}]\n",
       "spec.http[0].redirect.scheme: \"ftp\" is invalid: must be http or https"},
      {vs + "  hosts: [a]\n  http: [{redirect: {port: 70000}}]\n",
       "spec.http[0].redirect.port: must be a port from 1 to 65535"},
      {"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\nspec:\n"
       "  hosts: [a.b]\n  ports: [{number: 80, name: http}]\n  resolution: DNS\n",
       "spec.resolution: \"DNS\" is not served by Osprey yet"},
      {"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\nspec:\n"
       "  hosts: [a.b]\n  ports: [{number: 80, name: http}]\n  resolution: STATIC\n"
       "  endpoints: [{address: 127.0.0.1, ports: {grpc: 9000}}]\n",
       "spec.endpoints[0].ports.grpc: names no port of spec.ports"},
  };
  for (const auto& [yaml, error] : cases) {
    auto r = ParseYaml(yaml);
    ASSERT_FALSE(r.ok()) << yaml;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Msg(r.status()).substr(0, error.size()), error) << Msg(r.status());
  }
}

class ErrorTest : public testing::TestWithParam<ErrorCase> {};

TEST_P(ErrorTest, NamesTheField) {
  const ErrorCase& c = GetParam();
  absl::StatusOr<std::vector<Resource>> r = ParseYaml(c.yaml);
  ASSERT_FALSE(r.ok()) << c.yaml;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Msg(r.status()).substr(0, c.error.size()), c.error) << Msg(r.status());
}

INSTANTIATE_TEST_SUITE_P(Validation, ErrorTest, testing::ValuesIn(ErrorCases()),
                         [](const testing::TestParamInfo<ErrorCase>& info) {
                           return info.param.name;
                         });

TEST(ParseYaml, ErrorsNameTheLine) {
  absl::StatusOr<std::vector<Resource>> r =
      ParseYaml(SklearnPredictorWith("    minReplicas: two\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Msg(r.status()),
            "spec.predictor.minReplicas: expected an integer, got \"two\" (line 7)");
}

// Every string is written as valid JSON, control characters escaped (the
// SSE2 writer of RapidJSON 1.1 left 0x1A-0x1F raw), and reads back the same.
TEST(ToJson, ControlCharactersRoundTrip) {
  std::string text = "annotated";
  for (char c = 1; c < 0x20; ++c) text.push_back(c);
  auto r = ParseYaml(SklearnPredictorWith(""));
  ASSERT_TRUE(r.ok()) << r.status();
  auto& isvc = std::get<InferenceService>(r->front());
  isvc.meta.annotations["example.com/note"] = text;
  const std::string json = ToJson(r->front());
  for (char c = 1; c < 0x20; ++c) EXPECT_EQ(json.find(c), std::string::npos) << int(c);
  auto back = FromJson(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == r->front());
}

TEST(ParseYaml, HostileInputIsAnErrorNotACrash) {
  std::string deep = StrCat(std::string(5000, '['), std::string(5000, ']'));
  absl::StatusOr<std::vector<Resource>> r = ParseYaml(deep);
  EXPECT_FALSE(r.ok());
  std::string nested = "a: 1\n";
  for (int i = 0; i < 200; ++i) nested = StrCat("- ", nested);
  EXPECT_FALSE(ParseYaml(nested).ok());
  // Aliases that expand to 10^9 values.
  std::string bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 9; ++i) {
    bomb += StrCat("a", i, ": &a", i, " [");
    for (int j = 0; j < 10; ++j) bomb += StrCat(j ? ", " : "", "*a", i - 1);
    bomb += "]\n";
  }
  r = ParseYaml(bomb);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Msg(r.status()).find("too large"), std::string::npos) << Msg(r.status());
  EXPECT_FALSE(FromJson(deep).ok());
  EXPECT_FALSE(JsonToYaml(deep).ok());
  // A stray ',' (a flow entry outside [ ] or { }): the YAML library reads it
  // as endless empty documents; refused, naming the line (a fuzzer's find:
  // `osprey apply` of "," never returned, its memory growing).
  for (const char* stray : {",", ",a: b", "- a\n,b", "[a, b]\n,c", "a: 1\n---\n,"}) {
    r = ParseYaml(stray);
    ASSERT_FALSE(r.ok()) << stray;
    EXPECT_NE(Msg(r.status()).find("a ',' outside [ ] or { }"), std::string::npos)
        << Msg(r.status());
  }
  EXPECT_NE(Msg(ParseYaml("- a\n,b").status()).find("line 2"), std::string::npos);
  EXPECT_FALSE(YamlToJson(",").ok());
}

// ---------------------------------------------------------------------------
// Runtime selection.

ServingRuntime Rt(std::string name, std::vector<SupportedModelFormat> formats,
                  std::vector<std::string> protocols = {}, bool cluster = false) {
  ServingRuntime rt;
  rt.meta.name = std::move(name);
  rt.meta.namespace_ = cluster ? "" : "default";
  rt.cluster = cluster;
  rt.formats = std::move(formats);
  rt.protocol_versions = std::move(protocols);
  rt.containers.push_back(Container{"kserve-container", "example/server:1", {}, {}, {}, "{}"});
  return rt;
}
ServingRuntime Disabled(ServingRuntime rt) {
  rt.disabled = true;
  return rt;
}
ServingRuntime MultiModel(ServingRuntime rt) {
  rt.multi_model = true;
  return rt;
}
ServingRuntime NoContainers(ServingRuntime rt) {
  rt.containers.clear();
  return rt;
}
SupportedModelFormat Auto(std::string name, std::optional<int> priority = std::nullopt,
                          std::string version = "") {
  return SupportedModelFormat{std::move(name), std::move(version), true, priority};
}
SupportedModelFormat Manual(std::string name, std::string version = "") {
  return SupportedModelFormat{std::move(name), std::move(version), false, std::nullopt};
}
ModelSpec Model(std::string format, std::string protocol = "", std::string runtime = "",
                std::string version = "") {
  ModelSpec m;
  m.format = {std::move(format), std::move(version)};
  m.protocol_version = std::move(protocol);
  m.runtime = std::move(runtime);
  return m;
}

struct SelectCase {
  std::string name;
  ModelSpec model;
  std::vector<ServingRuntime> ns;
  std::vector<ServingRuntime> cluster;
  std::string want;  // the runtime's name, "cluster/" + name, or "!" + failure reason
};

std::vector<SelectCase> SelectCases() {
  const bool kCluster = true;
  return {
      {"ExplicitInNamespace",
       Model("sklearn", "", "my-rt"),
       {Rt("my-rt", {Manual("sklearn")})},
       {Rt("my-rt", {Auto("sklearn", 9)}, {}, kCluster)},
       "my-rt"},
      {"ExplicitInCluster",
       Model("sklearn", "", "my-rt"),
       {Rt("other", {Auto("sklearn", 1)})},
       {Rt("my-rt", {Manual("sklearn")}, {}, kCluster)},
       "cluster/my-rt"},
      {"ExplicitNotFound",
       Model("sklearn", "", "nope"),
       {Rt("my-rt", {Auto("sklearn")})},
       {},
       "!RuntimeNotRecognized"},
      {"ExplicitLacksFormat",
       Model("xgboost", "", "my-rt"),
       {Rt("my-rt", {Auto("sklearn", 1)})},
       {},
       "!NoSupportingRuntime"},
      {"ExplicitLacksVersion",
       Model("sklearn", "", "my-rt", "2"),
       {Rt("my-rt", {Auto("sklearn", 1, "1")})},
       {},
       "!NoSupportingRuntime"},
      {"ExplicitDisabled",
       Model("sklearn", "", "my-rt"),
       {Disabled(Rt("my-rt", {Auto("sklearn", 1)}))},
       {},
       "!RuntimeDisabled"},
      {"ExplicitProtocolUnsupported",
       Model("sklearn", "v2", "my-rt"),
       {Rt("my-rt", {Auto("sklearn", 1)}, {"v1"})},
       {},
       "!NoSupportingRuntime"},
      {"ExplicitWithoutProtocolIsNotChecked",
       Model("sklearn", "", "v2-only"),
       {Rt("v2-only", {Auto("sklearn", 1)}, {"v2"})},
       {},
       "v2-only"},
      {"ExplicitWithoutContainers",
       Model("sklearn", "", "my-rt"),
       {NoContainers(Rt("my-rt", {Auto("sklearn", 1)}))},
       {},
       "!InvalidPredictorSpec"},
      {"AutoSkipsDisabled",
       Model("sklearn"),
       {Disabled(Rt("a", {Auto("sklearn", 5)})), Rt("b", {Auto("sklearn", 1)})},
       {},
       "b"},
      {"AutoSkipsMultiModel",
       Model("sklearn"),
       {MultiModel(Rt("a", {Auto("sklearn", 5)})), Rt("b", {Auto("sklearn", 1)})},
       {},
       "b"},
      {"AutoNeedsAutoSelect",
       Model("sklearn"),
       {Rt("a", {Manual("sklearn")})},
       {},
       "!NoSupportingRuntime"},
      {"AutoHigherPriorityWins",
       Model("sklearn"),
       {Rt("a", {Auto("sklearn", 1)}), Rt("b", {Auto("sklearn", 2)})},
       {},
       "b"},
      {"AutoPriorityBeatsNoPriority",
       Model("sklearn"),
       {Rt("a", {Auto("sklearn")}), Rt("b", {Auto("sklearn", 1)})},
       {},
       "b"},
      {"AutoNamespaceBeatsCluster",
       Model("sklearn"),
       {Rt("ns-rt", {Auto("sklearn", 1)})},
       {Rt("cluster-rt", {Auto("sklearn", 10)}, {}, kCluster)},
       "ns-rt"},
      {"AutoFallsBackToCluster",
       Model("sklearn"),
       {Rt("ns-rt", {Auto("xgboost", 1)})},
       {Rt("cluster-rt", {Auto("sklearn", 1)}, {}, kCluster)},
       "cluster/cluster-rt"},
      {"AutoProtocolV2Filters",
       Model("sklearn", "v2"),
       {Rt("v1-rt", {Auto("sklearn", 9)}, {"v1"}), Rt("v2-rt", {Auto("sklearn", 1)}, {"v1", "v2"})},
       {},
       "v2-rt"},
      {"AutoDefaultProtocolIsV1",
       Model("sklearn"),
       {Rt("v2-rt", {Auto("sklearn", 9)}, {"v2"}), Rt("v1-rt", {Auto("sklearn", 1)}, {"v1"})},
       {},
       "v1-rt"},
      {"AutoNoProtocolsListedSupportsAny",
       Model("sklearn", "grpc-v2"),
       {Rt("any", {Auto("sklearn", 1)})},
       {},
       "any"},
      {"AutoVersionMatches",
       Model("sklearn", "", "", "2"),
       {Rt("a", {Auto("sklearn", 9, "1")}), Rt("b", {Auto("sklearn", 1, "2")})},
       {},
       "b"},
      {"AutoVersionMatchesExactly",
       Model("sklearn", "", "", "1.0"),
       {Rt("a", {Auto("sklearn", 1, "1")})},
       {},
       "!NoSupportingRuntime"},
      {"AutoNoVersionMatchesAnyVersion",
       Model("sklearn"),
       {Rt("a", {Auto("sklearn", 1, "7")})},
       {},
       "a"},
      {"AutoTieBrokenByLowestProtocol",
       Model("sklearn", "v2"),
       {Rt("a", {Auto("sklearn", 1)}, {"v2"}), Rt("b", {Auto("sklearn", 1)}, {"v1", "v2"})},
       {},
       "b"},
      {"AutoTieBrokenByName",
       Model("sklearn"),
       {Rt("zeta", {Auto("sklearn", 1)}, {"v1"}), Rt("alpha", {Auto("sklearn", 1)}, {"v1"})},
       {},
       "alpha"},
      {"AutoPriorityOfFirstEntryOfTheName",
       Model("sklearn", "", "", "2"),
       {Rt("a", {Auto("sklearn", 5, "1"), Auto("sklearn", 5, "2")}),
        Rt("b", {Auto("sklearn", 3, "2")})},
       {},
       "a"},
      {"NoRuntimeAtAll", Model("sklearn"), {}, {}, "!NoSupportingRuntime"},
  };
}

class SelectTest : public testing::TestWithParam<SelectCase> {};

TEST_P(SelectTest, ChoosesAsKServe) {
  const SelectCase& c = GetParam();
  RuntimeChoice choice = SelectRuntime(c.model, c.ns, c.cluster);
  if (c.want[0] == '!') {
    EXPECT_EQ(choice.runtime, nullptr);
    EXPECT_EQ(choice.reason, c.want.substr(1));
    EXPECT_FALSE(choice.message.empty());
    return;
  }
  ASSERT_NE(choice.runtime, nullptr) << choice.reason << ": " << choice.message;
  EXPECT_EQ(StrCat(choice.runtime->cluster ? "cluster/" : "", choice.runtime->meta.name), c.want);
  EXPECT_TRUE(choice.reason.empty());
}

INSTANTIATE_TEST_SUITE_P(Selection, SelectTest, testing::ValuesIn(SelectCases()),
                         [](const testing::TestParamInfo<SelectCase>& info) {
                           return info.param.name;
                         });

TEST(SelectRuntime, MessagesNameFormatProtocolAndRuntime) {
  RuntimeChoice c = SelectRuntime(Model("onnx", "v1"), {}, BuiltinClusterRuntimes());
  EXPECT_EQ(c.reason, "NoSupportingRuntime");
  EXPECT_NE(c.message.find("\"onnx\""), std::string::npos) << c.message;
  EXPECT_NE(c.message.find("v1"), std::string::npos) << c.message;
  c = SelectRuntime(Model("onnx", "", "missing-rt"), {}, BuiltinClusterRuntimes());
  EXPECT_NE(c.message.find("missing-rt"), std::string::npos) << c.message;
}

// ---------------------------------------------------------------------------
// Built-in ClusterServingRuntimes.

TEST(BuiltinRuntimes, KServeNamesAndContainers) {
  const std::vector<ServingRuntime>& rts = BuiltinClusterRuntimes();
  std::set<std::string> names;
  for (const ServingRuntime& rt : rts) {
    names.insert(rt.meta.name);
    EXPECT_TRUE(rt.cluster);
    EXPECT_EQ(rt.meta.namespace_, "");
    EXPECT_FALSE(rt.disabled);
    EXPECT_FALSE(rt.multi_model);
    ASSERT_EQ(rt.containers.size(), 1u) << rt.meta.name;
    EXPECT_EQ(rt.containers[0].name, "kserve-container");
    EXPECT_EQ(rt.containers[0].resources_json,
              R"({"requests":{"cpu":"1","memory":"2Gi"},"limits":{"cpu":"1","memory":"2Gi"}})");
    EXPECT_FALSE(rt.protocol_versions.empty());
  }
  EXPECT_EQ(names,
            (std::set<std::string>{
                "kserve-huggingfaceserver", "kserve-huggingfaceserver-multinode",
                "kserve-lgbserver", "kserve-mlserver", "kserve-paddleserver", "kserve-pmmlserver",
                "kserve-predictiveserver", "kserve-sklearnserver", "kserve-tensorflow-serving",
                "kserve-torchserve", "kserve-tritonserver", "kserve-xgbserver"}));
  auto find = [&](std::string_view name) -> const ServingRuntime& {
    for (const ServingRuntime& rt : rts) {
      if (rt.meta.name == name) return rt;
    }
    return rts.front();
  };
  const ServingRuntime& sklearn = find("kserve-sklearnserver");
  EXPECT_EQ(sklearn.containers[0].image, "kserve/sklearnserver:v0.13.0");
  EXPECT_EQ(sklearn.containers[0].args,
            (std::vector<std::string>{"--model_name={{.Name}}", "--model_dir=/mnt/models",
                                      "--http_port=8080"}));
  ASSERT_EQ(sklearn.formats.size(), 1u);
  EXPECT_EQ(sklearn.formats[0], (SupportedModelFormat{"sklearn", "1", true, 1}));
  EXPECT_EQ(sklearn.protocol_versions, (std::vector<std::string>{"v1", "v2"}));

  const ServingRuntime& tf = find("kserve-tensorflow-serving");
  EXPECT_EQ(tf.containers[0].image, "tensorflow/serving:2.6.2");
  EXPECT_EQ(tf.containers[0].command, std::vector<std::string>{"/usr/bin/tensorflow_model_server"});
  EXPECT_EQ(tf.protocol_versions, (std::vector<std::string>{"v1", "grpc-v1"}));

  const ServingRuntime& triton = find("kserve-tritonserver");
  EXPECT_EQ(triton.containers[0].image, "nvcr.io/nvidia/tritonserver:23.05-py3");
  EXPECT_EQ(triton.containers[0].args[0], "tritonserver");
  bool pytorch_manual = false;
  for (const SupportedModelFormat& f : triton.formats) {
    if (f.name == "pytorch") pytorch_manual = !f.auto_select && !f.priority;
  }
  EXPECT_TRUE(pytorch_manual);

  const ServingRuntime& mlserver = find("kserve-mlserver");
  EXPECT_EQ(mlserver.containers[0].image, "docker.io/seldonio/mlserver:1.5.0");
  EXPECT_EQ(mlserver.protocol_versions, std::vector<std::string>{"v2"});
  EXPECT_EQ(mlserver.formats.size(), 8u);
  EXPECT_EQ(find("kserve-torchserve").containers[0].image, "pytorch/torchserve-kfs:0.9.0");
}

struct BuiltinCase {
  std::string format;
  std::string protocol;
  std::string version;
  std::string runtime;  // "" : NoSupportingRuntime
};

class BuiltinSelectTest : public testing::TestWithParam<BuiltinCase> {};

TEST_P(BuiltinSelectTest, SelectsWhatKServeSelects) {
  const BuiltinCase& c = GetParam();
  RuntimeChoice choice =
      SelectRuntime(Model(c.format, c.protocol, "", c.version), {}, BuiltinClusterRuntimes());
  if (c.runtime.empty()) {
    EXPECT_EQ(choice.runtime, nullptr) << choice.runtime->meta.name;
    EXPECT_EQ(choice.reason, "NoSupportingRuntime");
    return;
  }
  ASSERT_NE(choice.runtime, nullptr) << choice.message;
  EXPECT_EQ(choice.runtime->meta.name, c.runtime);
}

INSTANTIATE_TEST_SUITE_P(
    Builtins, BuiltinSelectTest,
    testing::Values(
        BuiltinCase{"sklearn", "", "", "kserve-sklearnserver"},
        BuiltinCase{"sklearn", "v1", "", "kserve-sklearnserver"},
        BuiltinCase{"sklearn", "v2", "", "kserve-mlserver"},
        BuiltinCase{"sklearn", "v1", "1", "kserve-sklearnserver"},
        BuiltinCase{"sklearn", "v2", "0", "kserve-mlserver"}, BuiltinCase{"sklearn", "v1", "0", ""},
        BuiltinCase{"xgboost", "v1", "", "kserve-xgbserver"},
        BuiltinCase{"xgboost", "v2", "", "kserve-mlserver"},
        BuiltinCase{"lightgbm", "v1", "", "kserve-lgbserver"},
        BuiltinCase{"lightgbm", "v2", "", "kserve-mlserver"},
        BuiltinCase{"pmml", "v1", "", "kserve-pmmlserver"},
        BuiltinCase{"pmml", "v2", "", "kserve-pmmlserver"},
        BuiltinCase{"pytorch", "v1", "", "kserve-torchserve"},
        BuiltinCase{"pytorch", "v2", "", "kserve-torchserve"},
        BuiltinCase{"pytorch", "grpc-v2", "", "kserve-torchserve"},
        BuiltinCase{"tensorflow", "v1", "", "kserve-tensorflow-serving"},
        BuiltinCase{"tensorflow", "grpc-v1", "", "kserve-tensorflow-serving"},
        BuiltinCase{"tensorflow", "v2", "", "kserve-tritonserver"},
        BuiltinCase{"onnx", "v1", "", ""}, BuiltinCase{"onnx", "v2", "", "kserve-tritonserver"},
        BuiltinCase{"onnx", "grpc-v2", "", "kserve-tritonserver"},
        BuiltinCase{"triton", "v1", "", ""}, BuiltinCase{"triton", "v2", "", "kserve-tritonserver"},
        BuiltinCase{"tensorrt", "v2", "", "kserve-tritonserver"},
        BuiltinCase{"paddle", "v1", "", "kserve-paddleserver"},
        BuiltinCase{"paddle", "v2", "", "kserve-paddleserver"},
        BuiltinCase{"huggingface", "v1", "", "kserve-huggingfaceserver"},
        BuiltinCase{"huggingface", "v2", "", "kserve-huggingfaceserver"},
        BuiltinCase{"mlflow", "v2", "", "kserve-mlserver"}, BuiltinCase{"mlflow", "v1", "", ""}),
    [](const testing::TestParamInfo<BuiltinCase>& info) {
      std::string name = StrCat(info.param.format, "_",
                                info.param.protocol.empty() ? "default" : info.param.protocol,
                                info.param.version.empty() ? "" : "_version", info.param.version);
      for (char& ch : name) {
        if (ch == '-') ch = '_';
      }
      return name;
    });

// KServe's protocol defaults: the admission webhook's (triton format, legacy
// triton/onnx/huggingface keys: v2), then the chosen runtime's.
TEST(BuiltinRuntimes, ProtocolDefaults) {
  struct Case {
    std::string format, protocol, legacy_key, runtime;
    std::string defaulted, served;  // before selection ("" selects as v1), once chosen
  } cases[] = {
      {"triton", "", "", "", "v2", "v2"},
      {"triton", "grpc-v2", "", "", "grpc-v2", "grpc-v2"},
      {"onnx", "", "onnx", "", "v2", "v2"},
      {"triton", "", "triton", "", "v2", "v2"},
      {"huggingface", "", "huggingface", "", "v2", "v2"},
      {"sklearn", "", "", "", "", "v1"},
      {"sklearn", "", "sklearn", "", "", "v1"},
      {"onnx", "", "", "kserve-tritonserver", "", "v2"},              // Triton's runtime default
      {"sklearn", "", "", "kserve-mlserver", "", "v2"},               // MLServer's
      {"pytorch", "", "", "kserve-torchserve", "", "v1"},             // TorchServe's
      {"tensorflow", "", "", "kserve-tensorflow-serving", "", "v1"},  // its lowest
      {"sklearn", "v2", "", "kserve-sklearnserver", "v2", "v2"},
  };
  for (const Case& c : cases) {
    ModelSpec m = Model(c.format, c.protocol, c.runtime);
    const std::string defaulted = DefaultProtocol(m, c.legacy_key);
    EXPECT_EQ(defaulted, c.defaulted) << c.format << "/" << c.legacy_key;
    m.protocol_version = defaulted;
    RuntimeChoice choice = SelectRuntime(m, {}, BuiltinClusterRuntimes());
    ASSERT_NE(choice.runtime, nullptr) << c.format << ": " << choice.message;
    EXPECT_EQ(RuntimeProtocol(defaulted, *choice.runtime), c.served)
        << c.format << " on " << choice.runtime->meta.name;
  }
  // A runtime of Triton by its annotation, whatever its name; one that lists
  // no protocol serves v1.
  ServingRuntime mine;
  mine.meta.name = "my-triton";
  mine.meta.annotations["serving.kserve.io/server-type"] = "tritonserver";
  mine.protocol_versions = {"grpc-v2", "v2"};
  EXPECT_EQ(RuntimeProtocol("", mine), "v2");
  mine.meta.annotations.clear();
  EXPECT_EQ(RuntimeProtocol("", mine), "v2");  // its lowest
  mine.protocol_versions.clear();
  EXPECT_EQ(RuntimeProtocol("", mine), "v1");
}

TEST(BuiltinRuntimes, ExplicitTritonForPytorch) {
  // Triton lists pytorch without autoSelect: usable only when named.
  RuntimeChoice c =
      SelectRuntime(Model("pytorch", "v2", "kserve-tritonserver"), {}, BuiltinClusterRuntimes());
  ASSERT_NE(c.runtime, nullptr) << c.message;
  EXPECT_EQ(c.runtime->meta.name, "kserve-tritonserver");
}

// A predictor with a workerSpec is served only by a multi-node runtime, and a
// multi-node runtime serves only such predictors.
TEST(BuiltinRuntimes, MultiNodeOnlyForWorkerSpec) {
  struct Case {
    std::string format, runtime;
    bool multi_node;
    std::string want;  // the runtime, or a fragment of the failure
  } cases[] = {
      {"huggingface", "", false, "kserve-huggingfaceserver"},
      {"huggingface", "", true, "kserve-huggingfaceserver-multinode"},
      {"sklearn", "", true, "no multi-node runtime (workerSpec) supports model format \"sklearn\""},
      {"huggingface", "kserve-huggingfaceserver-multinode", false,
       "serves multi-node predictors only; give spec.predictor.workerSpec"},
      {"huggingface", "kserve-huggingfaceserver", true, "is not a multi-node runtime"},
  };
  for (const Case& c : cases) {
    RuntimeChoice choice =
        SelectRuntime(Model(c.format, "v2", c.runtime), {}, BuiltinClusterRuntimes(), c.multi_node);
    if (choice.runtime != nullptr) {
      EXPECT_EQ(choice.runtime->meta.name, c.want) << c.format << " " << c.multi_node;
    } else {
      EXPECT_NE(choice.message.find(c.want), std::string::npos) << choice.message;
    }
  }
  InferenceService isvc = ParseIsvc(
      Predictor("    workerSpec: {pipelineParallelSize: 2}\n"
                "    model: {modelFormat: {name: huggingface}, storageUri: \"hf://m\"}\n"));
  EXPECT_EQ(isvc.predictor.worker_spec_json, R"({"pipelineParallelSize":2})");
}

// ---------------------------------------------------------------------------
// JSON and YAML output.

std::vector<Resource> AllValidResources() {
  std::vector<Resource> out;
  for (std::string_view yaml : {kSklearnIris, kSklearnLegacy, kXgboostV2, kCustomContainer,
                                kRuntimeAndIsvc, kTransformerExplainer}) {
    absl::StatusOr<std::vector<Resource>> r = ParseYaml(yaml);
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok()) out.insert(out.end(), r->begin(), r->end());
  }
  for (const ServingRuntime& rt : BuiltinClusterRuntimes()) out.push_back(rt);
  return out;
}

TEST(Json, CanonicalFormOfSklearnIris) {
  absl::StatusOr<std::vector<Resource>> r = ParseYaml(kSklearnIris);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(ToJson(r->front()),
            R"({"apiVersion":"serving.kserve.io/v1beta1","kind":"InferenceService",)"
            R"("metadata":{"name":"sklearn-iris","namespace":"default"},)"
            R"("spec":{"predictor":{"minReplicas":1,"model":{"modelFormat":{"name":"sklearn"},)"
            R"("storageUri":"gs://kfserving-examples/models/sklearn/1.0/model"}}}})");
}

TEST(Json, CanonicalFormOfARuntime) {
  absl::StatusOr<std::vector<Resource>> r = ParseYaml(R"(
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata: {name: rt}
spec:
  supportedModelFormats: [{name: onnx, version: "1", autoSelect: true, priority: 1}]
  protocolVersions: [v2]
  containers: [{name: kserve-container, image: x:1, args: [--a]}]
)");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ToJson(r->front()),
            R"({"apiVersion":"serving.kserve.io/v1alpha1","kind":"ClusterServingRuntime",)"
            R"("metadata":{"name":"rt"},"spec":{"supportedModelFormats":[{"name":"onnx",)"
            R"("version":"1","autoSelect":true,"priority":1}],"protocolVersions":["v2"],)"
            R"("multiModel":false,"disabled":false,"containers":[{"name":"kserve-container",)"
            R"("image":"x:1","args":["--a"]}]}})");
}

TEST(Json, RoundTrip) {
  for (const Resource& r : AllValidResources()) {
    std::string json = ToJson(r);
    absl::StatusOr<Resource> back = FromJson(json);
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << json;
    EXPECT_TRUE(*back == r) << json;
    EXPECT_EQ(ToJson(*back), json);
  }
}

TEST(Json, FromJsonValidatesLikeYaml) {
  absl::StatusOr<Resource> r = FromJson(
      R"({"apiVersion":"serving.kserve.io/v1beta1","kind":"InferenceService",)"
      R"("metadata":{"name":"m"},"spec":{"predictor":{"minReplicas":"two","sklearn":{}}}})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Msg(r.status()), "spec.predictor.minReplicas: expected an integer, got \"two\"");
  r = FromJson("{\"apiVersion\":");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Msg(r.status()).rfind("invalid JSON", 0), 0u) << Msg(r.status());
}

TEST(Yaml, BlockStyleInJsonOrder) {
  absl::StatusOr<std::vector<Resource>> r = ParseYaml(kSklearnIris);
  ASSERT_TRUE(r.ok());
  absl::StatusOr<std::string> yaml = JsonToYaml(ToJson(r->front()));
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  EXPECT_EQ(*yaml,
            "apiVersion: serving.kserve.io/v1beta1\n"
            "kind: InferenceService\n"
            "metadata:\n"
            "  name: sklearn-iris\n"
            "  namespace: default\n"
            "spec:\n"
            "  predictor:\n"
            "    minReplicas: 1\n"
            "    model:\n"
            "      modelFormat:\n"
            "        name: sklearn\n"
            "      storageUri: gs://kfserving-examples/models/sklearn/1.0/model\n");
}

TEST(Yaml, QuotesStringsThatWouldReadAsOtherTypes) {
  absl::StatusOr<std::string> yaml = JsonToYaml(
      R"({"a":"1","b":"true","c":"","d":"yes","e":1,"f":null,"g":[],"h":{},"i":[1.5,"x"],)"
      R"("j":false,"k":"null","l":"1.0","m":"{{.Name}}","n":2.0,"y":"on"})");
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  EXPECT_EQ(*yaml,
            "a: \"1\"\n"
            "b: \"true\"\n"
            "c: \"\"\n"
            "d: \"yes\"\n"
            "e: 1\n"
            "f: null\n"
            "g: []\n"
            "h: {}\n"
            "i:\n"
            "  - 1.5\n"
            "  - x\n"
            "j: false\n"
            "k: \"null\"\n"
            "l: \"1.0\"\n"
            "m: \"{{.Name}}\"\n"
            "\"n\": 2.0\n"
            "\"y\": \"on\"\n");
}

TEST(Yaml, InvalidJson) {
  absl::StatusOr<std::string> yaml = JsonToYaml("[1,");
  ASSERT_FALSE(yaml.ok());
  EXPECT_EQ(yaml.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Yaml, RoundTripThroughYaml) {
  for (const Resource& r : AllValidResources()) {
    absl::StatusOr<std::string> yaml = JsonToYaml(ToJson(r));
    ASSERT_TRUE(yaml.ok()) << yaml.status();
    absl::StatusOr<std::vector<Resource>> back = ParseYaml(*yaml);
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << *yaml;
    ASSERT_EQ(back->size(), 1u);
    EXPECT_TRUE(back->front() == r) << *yaml;
  }
}

}  // namespace
}  // namespace osprey::resources
