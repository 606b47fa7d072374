#include "controlplane/local/placement.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "controlplane/model_server.h"
#include "controlplane/views.h"

namespace osprey::controlplane {
namespace {

using resources::InferenceService;

InferenceService ModelIsvc(const std::string& format) {
  InferenceService isvc;
  isvc.meta.name = "iris";
  isvc.meta.namespace_ = "default";
  resources::ModelSpec model;
  model.format.name = format;
  model.storage_uri = "/models/iris";
  isvc.predictor.model = model;
  return isvc;
}

LocalConfig Local() {
  LocalConfig c;
  c.osprey_binary = "/bin/osprey";
  return c;
}

RevisionSpec Resolve(const InferenceService& isvc) {
  return ResolveRevision(isvc, "{}", 1, "t", {}, resources::BuiltinClusterRuntimes(),
                         PlatformConfig{});
}

bool Contains(const std::vector<std::string>& v, const std::string& a, const std::string& b) {
  for (size_t i = 0; i + 1 < v.size(); ++i)
    if (v[i] == a && v[i + 1] == b) return true;
  return false;
}

TEST(PlaceLocally, BuiltinRuntimesRunOnOspreyServe) {
  struct Case {
    std::string format, backend;
  } cases[] = {{"sklearn", "sklearn"}, {"xgboost", "xgboost"}, {"lightgbm", "lightgbm"},
               {"pmml", "pmml"},       {"pytorch", "pytorch"}, {"tensorflow", "tensorflow"},
               {"paddle", "paddle"}};
  for (const auto& c : cases) {
    LocalCommand local = PlaceLocally(Resolve(ModelIsvc(c.format)), Local());
    EXPECT_EQ(local.failure_reason, "") << c.format << ": " << local.failure_message;
    ASSERT_FALSE(local.argv.empty()) << c.format;
    EXPECT_EQ(local.argv[0], "/bin/osprey");
    EXPECT_TRUE(Contains(local.argv, "--model-format", c.backend)) << c.format;
    EXPECT_TRUE(Contains(local.argv, "--model-dir", "{{.ModelDir}}"));
    EXPECT_TRUE(Contains(local.argv, "--http-port", "{{.Port}}"));
    EXPECT_TRUE(Contains(local.argv, "--model-name", "iris"));
    EXPECT_TRUE(Contains(local.argv, "--link-socket", "{{.LinkSocket}}"));
    // KServe's pytorch runtime is TorchServe's (its store names its models).
    EXPECT_EQ(local.health_path,
              c.format == "pytorch" ? "/v2/health/ready" : "/v2/models/iris/ready");
  }
}

// Triton's runtime serves its storage as a model repository: every model in
// it under its own name, ready once all are. The triton format speaks v2
// without being told (KServe's default), as do the formats Triton serves when
// asked for v2, or when Triton's runtime is named.
TEST(PlaceLocally, TritonsRuntimeServesTheRepository) {
  struct Case {
    std::string format, protocol, runtime;
  } cases[] = {{"triton", "", ""},        {"triton", "v2", ""},
               {"triton", "grpc-v2", ""}, {"onnx", "v2", ""},
               {"tensorflow", "v2", ""},  {"pytorch", "", "kserve-tritonserver"}};
  for (const Case& c : cases) {
    InferenceService isvc = ModelIsvc(c.format);
    isvc.predictor.model->protocol_version = c.protocol;
    isvc.predictor.model->runtime = c.runtime;
    RevisionSpec rev = Resolve(isvc);
    EXPECT_EQ(rev.runtime, "kserve-tritonserver") << c.format << ": " << rev.failure_message;
    EXPECT_EQ(rev.protocol, c.protocol.empty() ? "v2" : c.protocol) << c.format;
    EXPECT_TRUE(ServesTritonRepository(rev)) << c.format;
    LocalCommand local = PlaceLocally(rev, Local());
    EXPECT_EQ(local.failure_reason, "") << c.format << ": " << local.failure_message;
    EXPECT_TRUE(Contains(local.argv, "--model-repository", "{{.ModelDir}}")) << c.format;
    for (const char* flag : {"--model-dir", "--model-name", "--model-format"})
      EXPECT_EQ(std::count(local.argv.begin(), local.argv.end(), flag), 0) << flag;
    EXPECT_TRUE(Contains(local.argv, "--http-port", "{{.Port}}"));
    EXPECT_EQ(std::count(local.argv.begin(), local.argv.end(), "--exit-on-load-failure"), 1);
    EXPECT_EQ(local.health_path, "/v2/health/ready") << c.format;
  }
  // The legacy triton key speaks v2 too; TensorRT is refused with the reason.
  InferenceService legacy = ModelIsvc("triton");
  legacy.predictor.legacy_key = "triton";
  EXPECT_EQ(Resolve(legacy).protocol, "v2");
  InferenceService trt = ModelIsvc("tensorrt");
  trt.predictor.model->protocol_version = "v2";
  LocalCommand refused = PlaceLocally(Resolve(trt), Local());
  EXPECT_EQ(refused.failure_reason, "NoSupportingRuntime");
  EXPECT_NE(refused.failure_message.find("GPU"), std::string::npos) << refused.failure_message;
  // TorchServe also has --model-store: its store serves its models under the
  // names its config.properties gives them, ready once all of them are.
  RevisionSpec torchserve = Resolve(ModelIsvc("pytorch"));
  EXPECT_FALSE(ServesTritonRepository(torchserve));
  EXPECT_TRUE(ServesTorchServeStore(torchserve)) << torchserve.container.image;
  LocalCommand ts = PlaceLocally(torchserve, Local());
  EXPECT_TRUE(Contains(ts.argv, "--model-format", "pytorch"));
  EXPECT_EQ(ts.health_path, "/v2/health/ready");
  RevisionSpec by_command;
  by_command.container.command = {"/usr/bin/torchserve", "--start"};
  EXPECT_TRUE(ServesTorchServeStore(by_command));
  EXPECT_FALSE(ServesTorchServeStore(Resolve(ModelIsvc("sklearn"))));
}

// --model_name in the model's args (after the runtime's own --model_name
// {{.Name}}) names the served model, as KServe's servers read their flags:
// the last one wins; MLServer's runtime names it in its env.
TEST(PlaceLocally, TheModelIsServedUnderItsModelName) {
  InferenceService isvc = ModelIsvc("sklearn");
  isvc.predictor.model->args = {"--model_name=flowers"};
  LocalCommand local = PlaceLocally(Resolve(isvc), Local());
  EXPECT_TRUE(Contains(local.argv, "--model-name", "flowers"));
  EXPECT_EQ(local.health_path, "/v2/models/flowers/ready");
  isvc.predictor.model->args = {"--model_name", "petals", "--workers", "2"};
  EXPECT_EQ(ServedModelName(Resolve(isvc)), "petals");
  isvc.predictor.model->args.clear();
  EXPECT_EQ(ServedModelName(Resolve(isvc)), "iris");
  RevisionSpec mlserver;
  mlserver.isvc = "iris";
  mlserver.container.env = {{"MLSERVER_MODEL_NAME", "ml"}};
  EXPECT_EQ(ServedModelName(mlserver), "ml");
  // A custom container is probed at its model's own path.
  RevisionSpec custom;
  custom.isvc = "iris";
  custom.container.command = {"python3", "model.py"};
  custom.container.args = {"--model_name=custom-name"};
  EXPECT_EQ(PlaceLocally(custom, Local()).health_path, "/v1/models/custom-name");
}

// KServe v0.17's one server for sklearn, xgboost and lightgbm runs each on
// its native backend when named; it is never picked unasked (autoSelect
// false).
TEST(PlaceLocally, PredictiveServerWhenNamed) {
  for (const std::string format : {"sklearn", "xgboost", "lightgbm"}) {
    InferenceService isvc = ModelIsvc(format);
    EXPECT_NE(Resolve(isvc).runtime, "kserve-predictiveserver") << format;
    isvc.predictor.model->runtime = "kserve-predictiveserver";
    RevisionSpec rev = Resolve(isvc);
    EXPECT_EQ(rev.runtime, "kserve-predictiveserver") << format;
    LocalCommand local = PlaceLocally(rev, Local());
    EXPECT_EQ(local.failure_reason, "") << format << ": " << local.failure_message;
    EXPECT_TRUE(Contains(local.argv, "--model-format", format)) << format;
  }
}

TEST(PlaceLocally, BatcherBecomesServeFlags) {
  InferenceService isvc = ModelIsvc("xgboost");
  isvc.predictor.batcher = resources::Batcher{16, 5};
  LocalCommand local = PlaceLocally(Resolve(isvc), Local());
  EXPECT_TRUE(Contains(local.argv, "--max-batch-size", "16"));
  EXPECT_TRUE(Contains(local.argv, "--max-queue-delay-us", "5000"));
}

// KServe's --workers (processes of the model) becomes the Python workers of
// the model; a value that is not a count is left alone.
TEST(PlaceLocally, WorkersBecomePythonWorkers) {
  struct Case {
    std::vector<std::string> args;
    std::string want;  // "" : no --python-workers
  } cases[] = {
      {{"--workers=4"}, "4"}, {{"--workers", "3"}, "3"}, {{"--workers=2", "--workers=5"}, "5"},
      {{"--workers=0"}, ""},  {{"--workers=many"}, ""},  {{}, ""},
  };
  for (const Case& c : cases) {
    InferenceService isvc = ModelIsvc("sklearn");
    isvc.predictor.model->args = c.args;
    LocalCommand local = PlaceLocally(Resolve(isvc), Local());
    auto at = std::find(local.argv.begin(), local.argv.end(), "--python-workers");
    std::string got = at == local.argv.end() ? "" : *(at + 1);
    EXPECT_EQ(got, c.want) << (c.args.empty() ? "" : c.args.back());
  }
}

// A format a runtime lists but no Osprey backend serves cannot run here: a
// failure of this machine, not of the spec.
TEST(PlaceLocally, FormatsWithoutBackendCannotRunHere) {
  RevisionSpec rev = Resolve(ModelIsvc("xgboost"));
  rev.model_format = "huggingface";
  LocalCommand local = PlaceLocally(rev, Local());
  EXPECT_EQ(local.failure_reason, "NoSupportingRuntime");
  EXPECT_TRUE(local.argv.empty());
  rev.model_format = "unheard-of";
  EXPECT_NE(PlaceLocally(rev, Local()).failure_message.find("no Osprey backend"),
            std::string::npos);
  EXPECT_NE(LocalFormatNotes().at("tensorrt").find("GPU"), std::string::npos);
}

// A container's readinessProbe replaces the model route as the readiness
// check when it can run here (httpGet over HTTP, tcpSocket).
TEST(PlaceLocally, ReadinessProbeOfTheContainer) {
  using Probe = resources::Container::Probe;
  struct Case {
    Probe probe;
    std::string path;
    std::string protocol;
    std::string want;
  } cases[] = {
      {Probe::kNone, "", "v1", "/v1/models/custom"},
      {Probe::kNone, "", "v2", "/v2/models/custom/ready"},
      {Probe::kHttpGet, "/healthz", "v1", "/healthz"},
      {Probe::kHttpGet, "/", "v1", "/"},
      {Probe::kTcpSocket, "", "v1", ""},  // empty: a TCP connect
      {Probe::kOther, "", "v1", "/v1/models/custom"},
  };
  for (const auto& c : cases) {
    RevisionSpec rev;
    rev.isvc = "custom";
    rev.protocol = c.protocol;
    rev.container.name = "kserve-container";
    rev.container.command = {"./serve"};
    rev.container.probe = c.probe;
    rev.container.probe_path = c.path;
    LocalCommand local = PlaceLocally(rev, Local());
    EXPECT_EQ(local.failure_reason, "");
    EXPECT_EQ(local.health_path, c.want) << static_cast<int>(c.probe);
  }
}

TEST(PlaceLocally, CustomContainerRunsItsCommandWithModelDirAndPort) {
  InferenceService isvc;
  isvc.meta.name = "custom";
  isvc.meta.namespace_ = "team";
  resources::Container c;
  c.name = "kserve-container";
  c.image = "example/custom:1";
  c.command = {"python3", "model.py"};
  c.args = {"--model_name={{.Name}}", "--http_port=8080", "--port", "9000",
            "--dir=/mnt/models/sub"};
  c.env = {{"STORAGE_URI", "file:///models/custom"}, {"MODEL_DIR", "/mnt/models"}};
  isvc.predictor.containers = {c};
  LocalCommand local = PlaceLocally(Resolve(isvc), Local());
  EXPECT_EQ(local.failure_reason, "");
  std::vector<std::string> want = {
      "python3", "model.py",  "--model_name=custom",     "--http_port={{.Port}}",
      "--port",  "{{.Port}}", "--dir={{.ModelDir}}/sub", "--grpc_port={{.GrpcPort}}"};
  EXPECT_EQ(local.argv, want);
  EXPECT_EQ(local.health_path, "/v1/models/custom");
  auto env = std::find(local.env.begin(), local.env.end(),
                       std::pair<std::string, std::string>("MODEL_DIR", "{{.ModelDir}}"));
  EXPECT_NE(env, local.env.end());
}

// env valueFrom as the kubelet resolves it, from what this machine has.
TEST(PlaceLocally, EnvValueFromResolvesLocally) {
  auto parsed = resources::ParseYaml(R"(apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: custom, namespace: team}
spec:
  predictor:
    labels: {tier: gold}
    annotations: {owner: ml}
    containers:
    - name: kserve-container
      image: example/custom:1
      command: [python3, model.py]
      resources: {limits: {cpu: 1500m, memory: 2Gi}, requests: {memory: 1Gi}}
      env:
      - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
      - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
      - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
      - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
      - {name: TIER, valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}}
      - {name: OWNER, valueFrom: {fieldRef: {fieldPath: "metadata.annotations['owner']"}}}
      - {name: SERVICE, valueFrom: {fieldRef: {fieldPath: "metadata.labels['serving.kserve.io/inferenceservice']"}}}
      - {name: CPUS, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}
      - {name: MILLICPUS, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}
      - {name: MEM_MI, valueFrom: {resourceFieldRef: {resource: requests.memory, divisor: 1Mi}}}
      - {name: EPHEMERAL, valueFrom: {resourceFieldRef: {resource: limits.ephemeral-storage, divisor: 1Gi}}}
      - {name: TOKEN, valueFrom: {secretKeyRef: {name: creds, key: token, optional: true}}}
      - {name: CPU_REQ, valueFrom: {resourceFieldRef: {resource: requests.cpu}}}
      - {name: EPH_REQ, valueFrom: {resourceFieldRef: {resource: requests.ephemeral-storage}}}
)");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const auto& isvc = std::get<InferenceService>((*parsed)[0]);
  LocalConfig config = Local();
  config.node_cpus = 8;
  config.node_memory_bytes = uint64_t{16} << 30;
  config.node_ephemeral_bytes = uint64_t{100} << 30;
  config.node_name = "box";
  // The revision as the controller makes it: with its predictor's spec.
  auto resolve = [](const InferenceService& s) {
    return ResolveRevision(s, ComponentSpecJson(resources::ToJson(s), "predictor"), 1, "t", {},
                           resources::BuiltinClusterRuntimes(), PlatformConfig{});
  };
  LocalCommand local = PlaceLocally(resolve(isvc), config);
  ASSERT_EQ(local.failure_reason, "") << local.failure_message;
  std::map<std::string, std::string> env(local.env.begin(), local.env.end());
  EXPECT_EQ(env["POD_NAME"], "custom-predictor-00001-deployment-{{.Port}}");
  EXPECT_EQ(env["POD_NAMESPACE"], "team");
  EXPECT_EQ(env["POD_IP"], "127.0.0.1");
  EXPECT_EQ(env["NODE"], "box");
  EXPECT_EQ(env["TIER"], "gold");
  EXPECT_EQ(env["OWNER"], "ml");
  EXPECT_EQ(env["SERVICE"], "custom");
  EXPECT_EQ(env["CPUS"], "2");  // 1.5 cores, rounded up
  EXPECT_EQ(env["MILLICPUS"], "1500");
  EXPECT_EQ(env["MEM_MI"], "1024");
  EXPECT_EQ(env["EPHEMERAL"], "100");   // no limit: the machine's disk
  EXPECT_FALSE(env.contains("TOKEN"));  // optional and absent: unset
  EXPECT_EQ(env["CPU_REQ"], "2");       // no request: the limit (1.5 cores, rounded up)
  EXPECT_EQ(env["EPH_REQ"], "0");       // neither: 0

  // A Secret that must be there cannot be read here: the revision fails, saying so.
  auto with_secret = isvc;
  with_secret.predictor.containers[0].env.push_back(
      {"KEY", "", R"({"secretKeyRef":{"name":"creds","key":"token"}})"});
  local = PlaceLocally(resolve(with_secret), config);
  EXPECT_EQ(local.failure_reason, "CreateContainerConfigError");
  EXPECT_EQ(local.failure_message,
            "env KEY: secret \"creds\" (key token) cannot be read here: `osprey up` has no "
            "Secrets; give the value, or mark the reference optional");
  auto with_field = isvc;
  with_field.predictor.containers[0].env = {
      {"X", "", R"({"fieldRef":{"fieldPath":"metadata.generation"}})"}};
  local = PlaceLocally(resolve(with_field), config);
  EXPECT_EQ(local.failure_reason, "CreateContainerConfigError");
  EXPECT_TRUE(local.failure_message.starts_with(
      "env X: valueFrom.fieldRef.fieldPath \"metadata.generation\" is not one a local replica has"))
      << local.failure_message;
}

// KServe's model server in a predictor's own container (its args name the
// model) is told the replica's HTTP and gRPC ports; a container declaring an
// h2c port is told its gRPC port; other programs keep their args.
TEST(PlaceLocally, CustomContainerPorts) {
  struct Case {
    const char* what;
    std::vector<std::string> args;
    std::vector<resources::ContainerPort> ports;
    std::string component;
    std::vector<std::string> want;  // after "python3", "model.py"
  } cases[] = {
      {"model server",
       {"--model_name", "m"},
       {},
       "predictor",
       {"--model_name", "m", "--http_port={{.Port}}", "--grpc_port={{.GrpcPort}}"}},
      {"its own grpc port",
       {"--model_name=m", "--grpc_port", "9001"},
       {},
       "predictor",
       {"--model_name=m", "--grpc_port", "{{.GrpcPort}}", "--http_port={{.Port}}"}},
      {"grpc-port form", {"--grpc-port=9001"}, {}, "predictor", {"--grpc-port={{.GrpcPort}}"}},
      {"h2c declared", {}, {{"h2c", 8081, "TCP"}}, "predictor", {"--grpc_port={{.GrpcPort}}"}},
      {"h2c and its flag",
       {"--grpc_port=8081"},
       {{"h2c", 8081, "TCP"}},
       "predictor",
       {"--grpc_port={{.GrpcPort}}"}},
      {"other program",
       {"--listen", "x"},
       {{"http1", 8080, "TCP"}},
       "predictor",
       {"--listen", "x"}},
  };
  for (const Case& c : cases) {
    RevisionSpec rev;
    rev.isvc = "m";
    rev.namespace_ = "default";
    rev.component = c.component;
    rev.container.command = {"python3", "model.py"};
    rev.container.args = c.args;
    rev.container.ports = c.ports;
    LocalCommand local = PlaceLocally(rev, Local());
    std::vector<std::string> want = {"python3", "model.py"};
    want.insert(want.end(), c.want.begin(), c.want.end());
    EXPECT_EQ(local.argv, want) << c.what;
  }
}

TEST(ReplicaTraceEnv, Table) {
  RevisionSpec model = Resolve(ModelIsvc("xgboost"));
  RevisionSpec custom = model;
  custom.model_format.clear();
  custom.component = "transformer";
  custom.name = "iris-transformer-00002";
  struct Case {
    const RevisionSpec* rev;
    std::string platform, service, resource;
  };
  const Case cases[] = {
      {&model, "", "iris-predictor",
       "service.namespace=default,k8s.namespace.name=default,osprey.inferenceservice=iris,"
       "osprey.component=predictor,osprey.revision=iris-predictor-00001,osprey.model=iris,"
       "osprey.model.format=xgboost"},
      {&custom, "deployment.environment=test,", "iris-transformer",
       "deployment.environment=test,service.namespace=default,k8s.namespace.name=default,"
       "osprey.inferenceservice=iris,osprey.component=transformer,"
       "osprey.revision=iris-transformer-00002,osprey.model=iris"},
  };
  for (const Case& c : cases) {
    auto env = ReplicaTraceEnv(*c.rev, c.platform);
    ASSERT_EQ(env.size(), 2u);
    EXPECT_EQ(env[0], std::make_pair(std::string("OTEL_SERVICE_NAME"), c.service));
    EXPECT_EQ(env[1], std::make_pair(std::string("OTEL_RESOURCE_ATTRIBUTES"), c.resource));
  }
  // The container's own env comes after: a later key wins at spawn.
  InferenceService isvc = ModelIsvc("xgboost");
  isvc.predictor.model->env = {{"OTEL_SERVICE_NAME", "mine"}};
  LocalCommand local = PlaceLocally(Resolve(isvc), Local());
  ASSERT_GE(local.env.size(), 3u);
  EXPECT_EQ(local.env[0].first, "OTEL_SERVICE_NAME");
  EXPECT_EQ(local.env.back(),
            std::make_pair(std::string("OTEL_SERVICE_NAME"), std::string("mine")));
}

TEST(PlaceLocally, ImageWithoutCommandNeedsTheImageTable) {
  RevisionSpec rev;
  rev.isvc = "custom";
  rev.container.name = "kserve-container";
  rev.container.image = "registry.example.com/team/model:2";
  LocalConfig config = Local();
  LocalCommand local = PlaceLocally(rev, config);
  EXPECT_EQ(local.failure_reason, "RuntimeNotRecognized");
  EXPECT_NE(local.failure_message.find("registry.example.com/team/model:2"), std::string::npos);

  config.images.insert(config.images.begin(),
                       ImageMapping{"registry.example.com/team/model", false, {"/opt/model/run"}});
  local = PlaceLocally(rev, config);
  EXPECT_EQ(local.failure_reason, "");
  EXPECT_EQ(local.argv, std::vector<std::string>{"/opt/model/run"});

  // A model server image needs the model's format.
  rev.container.image = "docker.io/kserve/sklearnserver:v0.14";
  LocalCommand serve = PlaceLocally(rev, config);
  EXPECT_EQ(serve.failure_reason, "RuntimeNotRecognized");
  EXPECT_NE(serve.failure_message.find("modelFormat"), std::string::npos) << serve.failure_message;
}

// A revision stored before revisions were kept in KServe's terms holds its
// local command already: placing it again leaves it as it was.
TEST(PlaceLocally, PlacedCommandsArePlacedAlike) {
  LocalCommand first = PlaceLocally(Resolve(ModelIsvc("xgboost")), Local());
  RevisionSpec legacy;
  legacy.isvc = "iris";
  legacy.container.command = first.argv;
  legacy.container.probe = resources::Container::Probe::kHttpGet;
  legacy.container.probe_path = first.health_path;
  LocalCommand again = PlaceLocally(legacy, Local());
  EXPECT_EQ(again.argv, first.argv);
  EXPECT_EQ(again.health_path, first.health_path);
}

TEST(LoadImageMap, AddsEntriesFirstAndRefusesBadMaps) {
  const std::string dir =
      std::filesystem::temp_directory_path() / ("osprey-image-map-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir + "/" + name) << text;
    return dir + "/" + name;
  };
  LocalConfig config = Local();
  const size_t builtin = config.images.size();
  ASSERT_TRUE(LoadImageMap(write("ok.json", R"({"team/model": ["/opt/run", "--fast"],
                                                "team/server": ["osprey-serve"]})"),
                           &config)
                  .ok());
  ASSERT_EQ(config.images.size(), builtin + 2);
  EXPECT_EQ(config.images[0].image, "team/model");
  EXPECT_EQ(config.images[0].command, (std::vector<std::string>{"/opt/run", "--fast"}));
  EXPECT_TRUE(config.images[1].osprey_serve);
  EXPECT_EQ(LoadImageMap(dir + "/missing.json", &config).code(), absl::StatusCode::kNotFound);
  absl::Status bad = LoadImageMap(write("bad.json", R"({"team/x": [1]})"), &config);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("team/x"), std::string::npos) << bad.message();
  EXPECT_FALSE(LoadImageMap(write("empty.json", R"({"team/x": []})"), &config).ok());
  EXPECT_FALSE(LoadImageMap(write("list.json", R"(["x"])"), &config).ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace osprey::controlplane

namespace osprey::controlplane {
namespace {

// A transformer reaches its predictor through the gateway: a path route for
// REST, the predictors' gRPC ingress for grpc-v2; its own gRPC server off.
TEST(PlaceLocally, TransformerReachesItsPredictorThroughTheGateway) {
  LocalConfig config;
  config.gateway_port = 18080;
  config.predictor_grpc_port = 18082;
  RevisionSpec rev;
  rev.name = "iris-transformer-00001";
  rev.namespace_ = "team";
  rev.isvc = "iris";
  rev.component = "transformer";
  rev.container.image = "example.com/t:1";
  rev.container.command = {"python3", "t.py"};
  rev.container.args = {"--model_name",        "iris",        "--predictor_host",
                        "iris-predictor.team", "--http_port", "8080"};
  LocalCommand local = PlaceLocally(rev, config);
  EXPECT_EQ(local.argv,
            (std::vector<std::string>{"python3", "t.py", "--model_name", "iris", "--predictor_host",
                                      "127.0.0.1:18080/serving/team/iris-predictor", "--http_port",
                                      "{{.Port}}", "--enable_grpc=false"}));
  EXPECT_EQ(local.health_path, "/v1/models/iris");
  rev.container.args.push_back("--protocol=grpc-v2");
  rev.container.args.push_back("--grpc_port=9001");
  local = PlaceLocally(rev, config);
  EXPECT_EQ(local.argv[5], "127.0.0.1:18082");
  // Its own gRPC port becomes the replica's second port; no --enable_grpc=false.
  EXPECT_EQ(local.argv.back(), "--grpc_port={{.GrpcPort}}");
  // A predictor host the user set is theirs.
  rev.container.args = {"--predictor_host=elsewhere:80"};
  local = PlaceLocally(rev, config);
  EXPECT_EQ(local.argv[2], "--predictor_host=elsewhere:80");
}

// KServe's ART explainer runs as `osprey serve --model-format art`: its own
// flags (the predictor localized) as --model-args, its --workers as Python
// workers, the server's ports the replica's.
TEST(PlaceLocally, ArtExplainerRunsOnOspreyServe) {
  LocalConfig config = Local();
  config.gateway_port = 18080;
  InferenceService isvc = ModelIsvc("sklearn");
  isvc.explainer = resources::Component{};
  isvc.explainer->explainer_type = "art";
  isvc.explainer->container_concurrency = 2;
  isvc.explainer->explainer_container = resources::Container{
      "kserve-container",
      "kserve/art-explainer:v0.14.1",
      {},
      {"--adversary_type", "SquareAttack", "--max_iter", "20", "--nb_classes", "10"}};
  RevisionSpec rev = ResolveComponentRevision(isvc, "explainer", "{}", 1, "t");
  ASSERT_TRUE(ServesArtExplainer(rev));
  LocalCommand local = PlaceLocally(rev, config);
  EXPECT_EQ(local.failure_reason, "") << local.failure_message;
  EXPECT_EQ(std::vector<std::string>(local.argv.begin(), local.argv.begin() + 6),
            (std::vector<std::string>{"/bin/osprey", "serve", "--model-format", "art",
                                      "--model-name", "iris"}));
  EXPECT_TRUE(Contains(local.argv, "--http-port", "{{.Port}}"));
  EXPECT_TRUE(Contains(local.argv, "--python-workers", "2"));
  EXPECT_FALSE(std::find(local.argv.begin(), local.argv.end(), "--model-dir") != local.argv.end());
  EXPECT_TRUE(
      Contains(local.argv, "--model-args",
               R"(["--adversary_type","SquareAttack","--max_iter","20","--nb_classes","10",)"
               R"("--predictor_host","127.0.0.1:18080/serving/default/iris-predictor"])"));
  EXPECT_EQ(local.health_path, "/v2/models/iris/ready");
  // Its own command runs as written.
  rev.container.command = {"python3", "-m", "artserver"};
  EXPECT_EQ(PlaceLocally(rev, config).argv[0], "python3");
}

}  // namespace
}  // namespace osprey::controlplane
