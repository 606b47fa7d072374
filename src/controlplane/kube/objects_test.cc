#include "controlplane/kube/objects.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <map>

#include "common/json_dom.h"
#include "controlplane/model_server.h"
#include "controlplane/views.h"
#include "resources/resources.h"

namespace osprey::controlplane {
namespace {

using json::GetString;

RevisionSpec SklearnRevision() {
  RevisionSpec r;
  r.name = "iris-predictor-00002";
  r.namespace_ = "models";
  r.isvc = "iris";
  r.number = 2;
  r.spec_json = R"({"model":{"modelFormat":{"name":"sklearn"}}})";
  r.created = "2026-12-03T07:00:00Z";
  r.runtime = "kserve-sklearnserver";
  r.model_format = "sklearn";
  r.storage_uri = "gs://bucket/iris";
  r.protocol = "v1";
  r.container.name = "kserve-container";
  r.container.image = "kserve/sklearnserver:latest";
  r.container.args = {"--model_name=iris", "--model_dir=/mnt/models", "--http_port=8080"};
  r.container.env = {{"STORAGE_URI", "gs://bucket/iris"}};
  r.container.resources_json = R"({"limits":{"cpu":"1"}})";
  r.batcher = resources::Batcher{8, 5};
  return r;
}

rapidjson::Document Parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  EXPECT_FALSE(d.HasParseError()) << text;
  return d;
}

std::vector<std::string> Strings(const rapidjson::Value& v) {
  std::vector<std::string> out;
  for (const auto& s : v.GetArray()) out.emplace_back(s.GetString());
  return out;
}

TEST(KubePlacementTest, ModelServerRevisionRunsOspreyServeWithTheStorageInitializer) {
  RevisionSpec rev = SklearnRevision();
  KubePlacementConfig config;
  config.image = "registry.local/osprey:1.2";
  auto d = Parse(DeploymentJson(rev, {"iris", "uid-1"}, config, 3));
  const auto& meta = d["metadata"];
  EXPECT_EQ(GetString(meta, "name"), "iris-predictor-00002-deployment");
  EXPECT_EQ(GetString(meta, "namespace"), "models");
  EXPECT_EQ(GetString(meta["labels"], "serving.kserve.io/inferenceservice"), "iris");
  EXPECT_EQ(GetString(meta["labels"], "serving.knative.dev/revision"), "iris-predictor-00002");
  EXPECT_EQ(GetString(meta["labels"], "app.kubernetes.io/managed-by"), "osprey");
  EXPECT_EQ(GetString(meta["labels"], "component"), "predictor");
  const auto& owner = meta["ownerReferences"][0];
  EXPECT_EQ(GetString(owner, "kind"), "InferenceService");
  EXPECT_EQ(GetString(owner, "uid"), "uid-1");
  EXPECT_TRUE(owner["controller"].GetBool());
  EXPECT_EQ(d["spec"]["replicas"].GetInt(), 3);
  EXPECT_EQ(GetString(d["spec"]["selector"]["matchLabels"], "serving.knative.dev/revision"),
            "iris-predictor-00002");
  const auto& scrape = d["spec"]["template"]["metadata"]["annotations"];
  EXPECT_EQ(GetString(scrape, "prometheus.io/scrape"), "true");
  EXPECT_EQ(GetString(scrape, "prometheus.io/port"), "8080");
  EXPECT_EQ(GetString(scrape, "prometheus.io/path"), "/metrics");
  const auto& pod = d["spec"]["template"]["spec"];
  const auto& init = pod["initContainers"][0];
  EXPECT_EQ(GetString(init, "name"), "storage-initializer");
  EXPECT_EQ(GetString(init, "image"), "registry.local/osprey:1.2");
  EXPECT_EQ(Strings(init["args"]),
            (std::vector<std::string>{"storage", "pull", "gs://bucket/iris", "/mnt/models"}));
  EXPECT_EQ(GetString(init["volumeMounts"][0], "mountPath"), "/mnt/models");
  const auto& c = pod["containers"][0];
  EXPECT_EQ(GetString(c, "name"), "kserve-container");
  EXPECT_EQ(GetString(c, "image"), "registry.local/osprey:1.2");
  EXPECT_EQ(Strings(c["command"]), std::vector<std::string>{"osprey"});
  auto args = Strings(c["args"]);
  auto has = [&](const std::string& flag, const std::string& value) {
    for (size_t i = 0; i + 1 < args.size(); ++i)
      if (args[i] == flag && args[i + 1] == value) return true;
    return false;
  };
  EXPECT_EQ(args.front(), "serve");
  EXPECT_TRUE(has("--model-dir", "/mnt/models"));
  EXPECT_TRUE(has("--model-name", "iris"));
  EXPECT_TRUE(has("--model-format", "sklearn"));
  EXPECT_TRUE(has("--http-address", "$(POD_IP)"));
  EXPECT_TRUE(has("--http-port", "8080"));
  EXPECT_TRUE(has("--grpc-port", "8081"));
  EXPECT_TRUE(has("--max-batch-size", "8"));
  EXPECT_EQ(GetString(c["env"][0], "name"), "POD_IP");
  EXPECT_EQ(GetString(c["env"][0]["valueFrom"]["fieldRef"], "fieldPath"), "status.podIP");
  EXPECT_EQ(GetString(c["env"][1], "name"), "STORAGE_URI");
  EXPECT_EQ(GetString(c["readinessProbe"]["httpGet"], "path"), "/v2/models/iris/ready");
  EXPECT_EQ(GetString(c["resources"]["limits"], "cpu"), "1");
  EXPECT_TRUE(c["volumeMounts"][0]["readOnly"].GetBool());
  EXPECT_EQ(GetString(pod["volumes"][0], "name"), "kserve-provision-location");

  // The revision reads back from its Deployment as it was made.
  auto back = RevisionOfDeployment(d);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->name, rev.name);
  EXPECT_EQ(back->number, 2);
  EXPECT_EQ(back->spec_json, rev.spec_json);
  EXPECT_EQ(back->storage_uri, rev.storage_uri);
  EXPECT_EQ(back->container.image, rev.container.image);

  // Without replicas, spec.replicas is left to whoever scales.
  auto unscaled = Parse(DeploymentJson(rev, {"iris", "uid-1"}, config, std::nullopt));
  EXPECT_FALSE(unscaled["spec"].HasMember("replicas"));
}

// Triton's runtime: the storage is a model repository, served whole.
TEST(KubePlacementTest, TritonRevisionServesItsRepository) {
  RevisionSpec rev = SklearnRevision();
  rev.runtime = "kserve-tritonserver";
  rev.model_format = "triton";
  rev.protocol = "v2";
  rev.batcher.reset();
  rev.container.image = "nvcr.io/nvidia/tritonserver:23.05-py3";
  rev.container.args = {"tritonserver", "--model-store=/mnt/models", "--grpc-port=9000",
                        "--http-port=8080"};
  auto d = Parse(DeploymentJson(rev, {"iris", "uid-1"}, {}, 1));
  const auto& c = d["spec"]["template"]["spec"]["containers"][0];
  auto args = Strings(c["args"]);
  const std::vector<std::string> head(args.begin(), args.begin() + 3);
  EXPECT_EQ(head, (std::vector<std::string>{"serve", "--model-repository", "/mnt/models"}));
  for (const char* flag : {"--model-dir", "--model-name", "--model-format"})
    EXPECT_EQ(std::count(args.begin(), args.end(), flag), 0) << flag;
  EXPECT_EQ(GetString(c["readinessProbe"]["httpGet"], "path"), "/v2/health/ready");
  auto back = RevisionOfDeployment(d);
  ASSERT_TRUE(back.has_value());
  EXPECT_TRUE(ServesTritonRepository(*back));
}

TEST(KubePlacementTest, CustomContainerRunsAsWritten) {
  RevisionSpec rev;
  rev.name = "custom-predictor-00001";
  rev.namespace_ = "default";
  rev.isvc = "custom";
  rev.container.name = "kserve-container";
  rev.container.image = "example.com/my-model:1";
  rev.container.command = {"python", "-m", "model"};
  rev.container.args = {"--port", "8080"};
  rev.container.readiness_probe_json = R"({"tcpSocket":{"port":8080}})";
  auto d = Parse(DeploymentJson(rev, {"custom", "u"}, {}, 1));
  const auto& pod = d["spec"]["template"]["spec"];
  EXPECT_FALSE(pod.HasMember("initContainers"));  // no storageUri
  EXPECT_FALSE(pod.HasMember("volumes"));
  const auto& c = pod["containers"][0];
  EXPECT_EQ(GetString(c, "image"), "example.com/my-model:1");
  EXPECT_EQ(Strings(c["command"]), (std::vector<std::string>{"python", "-m", "model"}));
  EXPECT_EQ(Strings(c["args"]), (std::vector<std::string>{"--port", "8080"}));
  EXPECT_EQ(c["readinessProbe"]["tcpSocket"]["port"].GetInt(), 8080);
  EXPECT_EQ(c["env"].Size(), 0u);  // no POD_IP: the container is not Osprey's
  // valueFrom goes to the pod as written (the kubelet resolves it).
  rev.container.env = {{"KEY", "", R"({"secretKeyRef":{"name":"creds","key":"token"}})"}};
  auto with_env = Parse(DeploymentJson(rev, {"custom", "u"}, {}, 1));
  const auto& env = with_env["spec"]["template"]["spec"]["containers"][0]["env"];
  ASSERT_EQ(env.Size(), 1u);
  EXPECT_FALSE(env[0].HasMember("value"));
  EXPECT_EQ(GetString(env[0]["valueFrom"]["secretKeyRef"], "name"), "creds");
  // The operator rebuilds a revision from its Deployment's record: the same pods.
  rev.spec_json = "{}";
  auto rebuilt = ParseRevisionSpec(RevisionSpecJson(rev));
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ(DeploymentJson(*rebuilt, {"custom", "u"}, {}, 1),
            DeploymentJson(rev, {"custom", "u"}, {}, 1));
  rev.container.env.clear();
  EXPECT_TRUE(CheckRunnable(rev).reason.empty());
  // Not a model server: no scrape annotations (it may serve no /metrics).
  EXPECT_FALSE(d["spec"]["template"]["metadata"].HasMember("annotations"));
  auto svc = Parse(ServiceJson(rev, {"custom", "u"}, {}));
  EXPECT_EQ(GetString(svc["metadata"], "name"), "custom-predictor-00001");
  EXPECT_EQ(svc["spec"]["ports"].Size(), 1u);
  EXPECT_EQ(svc["spec"]["ports"][0]["port"].GetInt(), 80);
  EXPECT_EQ(svc["spec"]["ports"][0]["targetPort"].GetInt(), 8080);

  // A port named h2c: the container serves gRPC there; the Service's grpc
  // port (where the gateway sends the revision's gRPC) reaches it.
  rev.container.ports = {{"h2c", 9081, "TCP"}};
  d = Parse(DeploymentJson(rev, {"custom", "u"}, {}, 1));
  const auto& ports = d["spec"]["template"]["spec"]["containers"][0]["ports"];
  ASSERT_EQ(ports.Size(), 2u);
  EXPECT_EQ(GetString(ports[1], "name"), "h2c");
  EXPECT_EQ(ports[1]["containerPort"].GetInt(), 9081);
  svc = Parse(ServiceJson(rev, {"custom", "u"}, {}));
  ASSERT_EQ(svc["spec"]["ports"].Size(), 2u);
  EXPECT_EQ(GetString(svc["spec"]["ports"][1], "name"), "grpc");
  EXPECT_EQ(svc["spec"]["ports"][1]["targetPort"].GetInt(), 9081);
}

// A container's env as name -> value (the last of a name wins, as in a pod).
std::map<std::string, std::string> EnvOf(const rapidjson::Value& container) {
  std::map<std::string, std::string> out;
  if (container.HasMember("env"))
    for (const auto& e : container["env"].GetArray())
      out[GetString(e, "name")] = GetString(e, "value");
  return out;
}

TEST(KubePlacementTest, ReplicasTraceAsTheOperatorSays) {
  RevisionSpec rev = SklearnRevision();
  KubePlacementConfig config;
  auto untraced = Parse(DeploymentJson(rev, {"iris", "u"}, config, 1));
  EXPECT_EQ(EnvOf(untraced["spec"]["template"]["spec"]["containers"][0]).count("OTEL_SERVICE_NAME"),
            0u);
  config.trace_env = {{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"},
                      {"OTEL_TRACES_SAMPLER", "parentbased_traceidratio"},
                      {"OTEL_TRACES_SAMPLER_ARG", "0.25"}};
  config.trace_resource = "deployment.environment=prod";
  rev.container.env.push_back({"OTEL_TRACES_SAMPLER_ARG", "1"});  // the container's own wins
  auto d = Parse(DeploymentJson(rev, {"iris", "u"}, config, 1));
  auto env = EnvOf(d["spec"]["template"]["spec"]["containers"][0]);
  EXPECT_EQ(env["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://collector:4318");
  EXPECT_EQ(env["OTEL_TRACES_SAMPLER"], "parentbased_traceidratio");
  EXPECT_EQ(env["OTEL_TRACES_SAMPLER_ARG"], "1");
  EXPECT_EQ(env["OTEL_SERVICE_NAME"], "iris-predictor");
  EXPECT_TRUE(env["OTEL_RESOURCE_ATTRIBUTES"].starts_with(
      "deployment.environment=prod,service.namespace=models,"))
      << env["OTEL_RESOURCE_ATTRIBUTES"];
  EXPECT_NE(env["OTEL_RESOURCE_ATTRIBUTES"].find("osprey.revision=iris-predictor-00002"),
            std::string::npos);
  EXPECT_EQ(env["STORAGE_URI"], "gs://bucket/iris");
}

TEST(KubePlacementTest, RunnableTable) {
  struct Row {
    std::string image, format, reason;
  } rows[] = {
      {"kserve/sklearnserver:v0.14", "sklearn", ""},
      {"docker.io/kserve/xgbserver@sha256:abc", "xgboost", ""},
      {"kserve/sklearnserver", "", "RuntimeNotRecognized"},
      {"nvcr.io/nvidia/tritonserver:24.01", "tensorrt", "NoSupportingRuntime"},
      {"kserve/sklearnserver", "caffe", "NoSupportingRuntime"},
      {"example.com/anything", "", ""},
  };
  for (const auto& r : rows) {
    RevisionSpec rev;
    rev.container.image = r.image;
    rev.model_format = r.format;
    EXPECT_EQ(CheckRunnable(rev).reason, r.reason) << r.image << " " << r.format;
  }
}

TEST(KubePlacementTest, PodsTable) {
  struct Row {
    std::string status_json;
    bool ready;
    std::string init_state, init_message, crash_reason, crash_message;
  } rows[] = {
      {R"({"conditions":[{"type":"Ready","status":"True"}]})", true, "", "", "", ""},
      {R"({"initContainerStatuses":[{"name":"storage-initializer","state":{"running":{}}}]})",
       false, "running", "", "", ""},
      {R"({"initContainerStatuses":[{"name":"storage-initializer","restartCount":2,
           "state":{"waiting":{"reason":"CrashLoopBackOff"}},
           "lastState":{"terminated":{"exitCode":1,"message":"no such bucket"}}}]})",
       false, "failed", "no such bucket", "", ""},
      {R"({"initContainerStatuses":[{"name":"storage-initializer",
           "state":{"terminated":{"exitCode":0}}}],
          "containerStatuses":[{"name":"kserve-container","restartCount":3,"ready":false,
           "state":{"waiting":{"reason":"CrashLoopBackOff","message":"back-off"}},
           "lastState":{"terminated":{"exitCode":1,"message":"model.joblib: bad file"}}}]})",
       false, "done", "", "CrashLoopBackOff", "model.joblib: bad file"},
      // A Knative revision's pod: its one container, whatever its name.
      {R"({"containerStatuses":[{"name":"user-container","restartCount":1,"ready":false,
           "state":{"terminated":{"exitCode":2,"reason":"Error","message":"no PORT"}}}]})",
       false, "", "", "Error", "no PORT"},
      // Another container of a pod with several: not the serving one.
      {R"({"containerStatuses":[{"name":"sidecar","ready":false,
           "state":{"terminated":{"exitCode":2,"reason":"Error"}}},
          {"name":"kserve-container","ready":true,"state":{"running":{}}}]})",
       false, "", "", "", ""},
  };
  for (const auto& r : rows) {
    auto pod = Parse(StrCat(R"({"metadata":{"name":"p"},"status":)", r.status_json, "}"));
    PodView v = ReadPod(pod);
    EXPECT_EQ(v.ready, r.ready) << r.status_json;
    EXPECT_EQ(v.init_state, r.init_state) << r.status_json;
    EXPECT_EQ(v.init_message, r.init_message) << r.status_json;
    EXPECT_EQ(v.crash_reason, r.crash_reason) << r.status_json;
    EXPECT_EQ(v.crash_message, r.crash_message) << r.status_json;
  }
}

TEST(KubePlacementTest, ObservationsTable) {
  RevisionSpec rev = SklearnRevision();
  auto deploy = Parse(R"({"status":{"replicas":2,"readyReplicas":1}})");
  struct Row {
    const char* what;
    std::vector<PodView> pods;
    bool with_deploy;
    FetchState fetch;
    int ready;
    bool crashed;
  } rows[] = {
      {"nothing yet", {}, false, FetchState::kIdle, 0, false},
      {"downloading",
       {{.name = "a", .init_state = "running"}},
       false,
       FetchState::kRunning,
       0,
       false},
      {"download failed",
       {{.name = "a", .init_state = "failed", .init_message = "403"}},
       false,
       FetchState::kFailed,
       0,
       false},
      {"serving",
       {{.name = "a", .ready = true, .init_state = "done"}},
       true,
       FetchState::kDone,
       1,
       false},
      {"crashing",
       {{.name = "a", .init_state = "done", .crash_reason = "CrashLoopBackOff"}},
       false,
       FetchState::kDone,
       0,
       true},
      {"a deleted pod is not looked at",
       {{.name = "a", .deleting = true, .init_state = "failed", .init_message = "x"}},
       false,
       FetchState::kIdle,
       0,
       false},
  };
  for (const auto& r : rows) {
    RevisionObservations o =
        ObserveDeployment(rev, r.with_deploy ? &deploy : nullptr, r.pods, true, "now");
    EXPECT_EQ(o.fetch, r.fetch) << r.what;
    EXPECT_EQ(o.ready_replicas, r.ready) << r.what;
    EXPECT_EQ(o.crashed, r.crashed) << r.what;
    EXPECT_TRUE(o.has_storage);
  }
}

TEST(KubePlacementTest, StatusReadsBackAsWritten) {
  IsvcStatus s;
  s.url = "http://iris-models.example.com";
  s.predictor_url = "http://iris-predictor-models.example.com";
  s.conditions = {{"PredictorReady", "True", "", ""}, {"Ready", "False", "Reason", "why"}};
  s.transformer = ComponentStatus{"http://iris-transformer-models.example.com",
                                  "iris-transformer-00002",
                                  "iris-transformer-00001",
                                  "iris-transformer-00001",
                                  "",
                                  {{"iris-transformer-00001", 100, "", false}}};
  s.latest_created = "iris-predictor-00002";
  s.latest_ready = "iris-predictor-00001";
  s.latest_rolled_out = "iris-predictor-00001";
  s.previous_rolled_out = "iris-predictor-00001";
  s.traffic = {{"iris-predictor-00001", 90, "prev", false},
               {"iris-predictor-00002", 10, "latest", true}};
  s.transition_status = "InProgress";
  s.active_model_state = "Loaded";
  s.target_model_state = "Loading";
  s.failure_reason = "ModelLoadFailed";
  s.failure_message = "bad";
  s.failure_time = "2026-12-03T07:00:00Z";
  s.total_copies = 2;
  s.failed_copies = 1;
  std::map<std::string, std::string> times = {{"Ready", "2026-12-03T07:00:01Z"},
                                              {"PredictorReady", "2026-12-03T07:00:02Z"}};
  auto isvc =
      Parse(StrCat(R"({"metadata":{"name":"iris"},"status":)", IsvcStatusJson(s, times, 7), "}"));
  StoredStatus back = ReadStatus(isvc);
  EXPECT_TRUE(back.present);
  EXPECT_EQ(back.status, s);
  EXPECT_EQ(back.transition_times, times);
  EXPECT_EQ(back.observed_generation, 7);
  EXPECT_FALSE(ReadStatus(Parse(R"({"metadata":{}})")).present);
}

TEST(KubePlacementTest, ClaimTable) {
  struct Row {
    Claim claim;
    std::map<std::string, std::string> annotations;
    bool want;
  } rows[] = {
      {Claim::kAll, {}, true},
      {Claim::kAll, {{"serving.osprey.dev/controller", "osprey"}}, true},
      {Claim::kAll, {{"serving.osprey.dev/controller", "kserve"}}, false},
      {Claim::kAnnotated, {}, false},
      {Claim::kAnnotated, {{"serving.osprey.dev/controller", "osprey"}}, true},
  };
  for (const auto& r : rows) EXPECT_EQ(Claimed(r.claim, r.annotations), r.want);
}

// A Knative Service's revision from its manifest, as the operator makes it.
RevisionSpec KnativeRev(const std::string& yaml) {
  auto parsed = resources::ParseYaml(yaml);
  EXPECT_TRUE(parsed.ok()) << parsed.status().message();
  const auto& ks = std::get<resources::KnativeService>((*parsed)[0]);
  return KnativeRevision(ks, KnativeTemplateJson(ks), KnativeRevisionName(ks, 1), 1, "t");
}

TEST(KubePlacementTest, AKnativeRevisionRunsItsContainerAsKnativeDoes) {
  RevisionSpec rev = KnativeRev(R"(apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: helloworld-go, namespace: default}
spec:
  template:
    spec:
      containers:
        - image: gcr.io/knative-samples/helloworld-go
          command: [hello]
          env: [{name: TARGET, value: "Go Sample v1"}]
)");
  auto d = Parse(DeploymentJson(rev, {"helloworld-go", "uid-k"}, {}, 1));
  const auto& meta = d["metadata"];
  EXPECT_EQ(GetString(meta, "name"), "helloworld-go-00001-deployment");
  EXPECT_EQ(GetString(meta["labels"], "serving.knative.dev/service"), "helloworld-go");
  EXPECT_EQ(GetString(meta["labels"], "serving.knative.dev/revision"), "helloworld-go-00001");
  EXPECT_FALSE(meta["labels"].HasMember("serving.kserve.io/inferenceservice"));
  const auto& owner = meta["ownerReferences"][0];
  EXPECT_EQ(GetString(owner, "apiVersion"), "serving.knative.dev/v1");
  EXPECT_EQ(GetString(owner, "kind"), "Service");
  EXPECT_EQ(GetString(owner, "uid"), "uid-k");
  const auto& pod = d["spec"]["template"];
  EXPECT_FALSE(pod["metadata"].HasMember("annotations"));  // no scrape of an unknown server
  EXPECT_FALSE(pod["spec"].HasMember("initContainers"));
  const auto& c = pod["spec"]["containers"][0];
  EXPECT_EQ(GetString(c, "name"), "user-container");
  EXPECT_EQ(GetString(c, "image"), "gcr.io/knative-samples/helloworld-go");
  EXPECT_EQ(Strings(c["command"]), std::vector<std::string>{"hello"});
  std::vector<std::string> env;
  for (const auto& e : c["env"].GetArray())
    env.push_back(GetString(e, "name") + "=" + GetString(e, "value"));
  EXPECT_EQ(env, (std::vector<std::string>{"PORT=8080", "K_REVISION=helloworld-go-00001",
                                           "K_CONFIGURATION=helloworld-go",
                                           "K_SERVICE=helloworld-go", "TARGET=Go Sample v1"}));
  EXPECT_EQ(c["ports"][0]["containerPort"].GetInt(), 8080);
  EXPECT_EQ(c["readinessProbe"]["tcpSocket"]["port"].GetInt(), 8080);
  EXPECT_TRUE(CheckRunnable(rev).reason.empty());
  auto svc = Parse(ServiceJson(rev, {"helloworld-go", "uid-k"}, {}));
  EXPECT_EQ(GetString(svc["metadata"], "name"), "helloworld-go-00001");
  EXPECT_EQ(svc["spec"]["ports"].Size(), 1u);
  EXPECT_EQ(svc["spec"]["ports"][0]["port"].GetInt(), 80);
  EXPECT_EQ(svc["spec"]["ports"][0]["targetPort"].GetInt(), 8080);
  EXPECT_EQ(GetString(svc["metadata"]["ownerReferences"][0], "kind"), "Service");
}

TEST(KubePlacementTest, PodAndContainerFieldsGoToThePodAsGiven) {
  RevisionSpec rev = KnativeRev(R"(apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: private, namespace: apps}
spec:
  template:
    spec:
      serviceAccountName: reader
      imagePullSecrets: [{name: registry}]
      volumes: [{name: conf, configMap: {name: app-conf}}]
      containers:
        - image: registry.example.com/app:1
          command: [app]
          envFrom: [{secretRef: {name: app-secrets}}]
          volumeMounts: [{name: conf, mountPath: /etc/app}]
          securityContext: {runAsNonRoot: true}
)");
  auto d = Parse(DeploymentJson(rev, {"private", "u"}, {}, 1));
  const auto& pod = d["spec"]["template"]["spec"];
  EXPECT_EQ(GetString(pod, "serviceAccountName"), "reader");
  EXPECT_EQ(GetString(pod["imagePullSecrets"][0], "name"), "registry");
  ASSERT_EQ(pod["volumes"].Size(), 1u);
  EXPECT_EQ(GetString(pod["volumes"][0]["configMap"], "name"), "app-conf");
  const auto& c = pod["containers"][0];
  EXPECT_EQ(GetString(c["envFrom"][0]["secretRef"], "name"), "app-secrets");
  EXPECT_EQ(GetString(c["volumeMounts"][0], "mountPath"), "/etc/app");
  EXPECT_TRUE(c["securityContext"]["runAsNonRoot"].GetBool());
  // Read back from its Deployment, the revision makes the same Deployment.
  auto back = RevisionOfDeployment(d);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(DeploymentJson(*back, {"private", "u"}, {}, 1),
            DeploymentJson(rev, {"private", "u"}, {}, 1));

  // A custom predictor with a model to download: Osprey's mount and volume
  // first, the given ones after them.
  RevisionSpec custom = SklearnRevision();
  custom.container.image = "example.com/custom:1";
  custom.container.extra_json = R"({"volumeMounts":[{"name":"cache","mountPath":"/cache"}]})";
  custom.spec_json =
      R"({"serviceAccountName":"models","volumes":[{"name":"cache","emptyDir":{}}],)"
      R"("containers":[{"name":"kserve-container","image":"example.com/custom:1"}]})";
  auto cd = Parse(DeploymentJson(custom, {"iris", "u"}, {}, 1));
  const auto& cpod = cd["spec"]["template"]["spec"];
  EXPECT_EQ(GetString(cpod, "serviceAccountName"), "models");
  ASSERT_EQ(cpod["volumes"].Size(), 2u);
  EXPECT_EQ(GetString(cpod["volumes"][0], "name"), "kserve-provision-location");
  EXPECT_EQ(GetString(cpod["volumes"][1], "name"), "cache");
  const auto& mounts = cpod["containers"][0]["volumeMounts"];
  ASSERT_EQ(mounts.Size(), 2u);
  EXPECT_EQ(GetString(mounts[0], "mountPath"), "/mnt/models");
  EXPECT_EQ(GetString(mounts[1], "mountPath"), "/cache");
  EXPECT_EQ(cpod["initContainers"].Size(), 1u);
  // Osprey's own model server is written as Osprey runs it.
  RevisionSpec served = SklearnRevision();
  served.container.extra_json = R"({"securityContext":{"privileged":true}})";
  auto sd = Parse(DeploymentJson(served, {"iris", "u"}, {}, 1));
  EXPECT_FALSE(sd["spec"]["template"]["spec"]["containers"][0].HasMember("securityContext"));
}

TEST(KubePlacementTest, AKnativeContainersOwnPortAndProbeAreKept) {
  RevisionSpec rev = KnativeRev(R"(apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: grpc-ping, namespace: apps}
spec:
  template:
    metadata: {name: grpc-ping-v1}
    spec:
      containers:
        - name: app
          image: ping
          ports: [{name: h2c, containerPort: 9000}]
          readinessProbe: {httpGet: {path: /healthz}, periodSeconds: 2}
)");
  EXPECT_EQ(rev.name, "grpc-ping-v1");
  auto d = Parse(DeploymentJson(rev, {"grpc-ping", "u"}, {}, 1));
  const auto& c = d["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(GetString(c, "name"), "app");
  EXPECT_EQ(GetString(c["env"][0], "value"), "9000");
  EXPECT_EQ(GetString(c["ports"][0], "name"), "h2c");
  EXPECT_EQ(c["ports"][0]["containerPort"].GetInt(), 9000);
  // The probe as written, its port the container's (as Knative defaults it).
  EXPECT_EQ(GetString(c["readinessProbe"]["httpGet"], "path"), "/healthz");
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["port"].GetInt(), 9000);
  EXPECT_EQ(c["readinessProbe"]["periodSeconds"].GetInt(), 2);
  auto svc = Parse(ServiceJson(rev, {"grpc-ping", "u"}, {}));
  ASSERT_EQ(svc["spec"]["ports"].Size(), 2u);
  EXPECT_EQ(svc["spec"]["ports"][0]["targetPort"].GetInt(), 9000);
  EXPECT_EQ(GetString(svc["spec"]["ports"][1], "name"), "grpc");
  EXPECT_EQ(svc["spec"]["ports"][1]["targetPort"].GetInt(), 9000);
  // The revision reads back from its Deployment.
  auto back = RevisionOfDeployment(d);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->kind, kKnativeServiceKind);
  EXPECT_EQ(back->isvc, "grpc-ping");
  EXPECT_EQ(back->container.ports, rev.container.ports);
  // ... and makes the same Deployment again (the operator re-applies it).
  EXPECT_EQ(DeploymentJson(*back, {"grpc-ping", "u"}, {}, 1),
            DeploymentJson(rev, {"grpc-ping", "u"}, {}, 1));
}

TEST(KubePlacementTest, KnativeIsOspreysWhereKnativeServingIsNotInstalled) {
  EXPECT_TRUE(OspreyRunsKnative({"services", "services/status"}));
  EXPECT_FALSE(
      OspreyRunsKnative({"services", "services/status", "revisions", "configurations", "routes"}));
  EXPECT_FALSE(OspreyRunsKnative({}));
}

TEST(KubePlacementTest, AKnativeServicesAddressLeadsToTheGateway) {
  resources::ObjectMeta meta;
  meta.name = "hello";
  meta.namespace_ = "apps";
  KubePlacementConfig config;  // osprey-gateway.osprey-system
  auto svc = Parse(KnativeAddressServiceJson(meta, {"hello", "k1"}, config));
  EXPECT_EQ(GetString(svc["metadata"], "name"), "hello");
  EXPECT_EQ(GetString(svc["metadata"]["ownerReferences"][0], "kind"), "Service");
  EXPECT_EQ(GetString(svc["spec"], "type"), "ExternalName");
  EXPECT_EQ(GetString(svc["spec"], "externalName"),
            "osprey-gateway.osprey-system.svc.cluster.local");
  config.gateway_address = "gw.example.com";
  EXPECT_EQ(GetString(Parse(KnativeAddressServiceJson(meta, {"hello", "k1"}, config))["spec"],
                      "externalName"),
            "gw.example.com");
  // An address with a port, or an IP, cannot be a CNAME.
  config.gateway_address = "127.0.0.1:8080";
  EXPECT_EQ(KnativeAddressServiceJson(meta, {"hello", "k1"}, config), "");
  config.gateway_address = "10.0.0.7";
  EXPECT_EQ(KnativeAddressServiceJson(meta, {"hello", "k1"}, config), "");
}

TEST(KubePlacementTest, AKnativeStatusReadsBackAsWritten) {
  KnativeRecord r;
  r.resource_json =
      R"({"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"hello",)"
      R"("namespace":"default"},"spec":{"template":{"spec":{"containers":[{"image":"h"}]}}}})";
  r.generation = 3;
  r.observed_generation = 3;
  r.status.url = "http://hello.default.example.com";
  r.status.address = "http://hello.default.svc.cluster.local";
  r.status.latest_created = "hello-00002";
  r.status.latest_ready = "hello-00001";
  r.status.conditions = {{"ConfigurationsReady", "Unknown", "RevisionMissing", "waiting"},
                         {"Ready", "Unknown", "RevisionMissing", "waiting"},
                         {"RoutesReady", "True", "", ""}};
  r.status.traffic = {{"hello-00001", 90, "", true}, {"hello-00002", 10, "canary", false}};
  r.transition_times = {{"Ready", "2026-12-04T10:00:00Z"}, {"RoutesReady", "2026-12-04T09:00:00Z"}};
  StoredKnative back = ReadKnativeStatus(Parse(KnativeServiceJson(r, PlatformConfig{})));
  EXPECT_TRUE(back.present);
  EXPECT_EQ(back.status, r.status);
  EXPECT_EQ(back.transition_times, r.transition_times);
  EXPECT_EQ(back.observed_generation, 3);
  EXPECT_FALSE(ReadKnativeStatus(Parse(r.resource_json)).present);
}

}  // namespace
}  // namespace osprey::controlplane
