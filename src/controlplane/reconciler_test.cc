#include "controlplane/reconciler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace osprey::controlplane {
namespace {

using resources::InferenceService;

InferenceService ModelIsvc(const std::string& format, const std::string& uri = "/models/iris") {
  InferenceService isvc;
  isvc.meta.name = "iris";
  isvc.meta.namespace_ = "default";
  resources::ModelSpec model;
  model.format.name = format;
  model.storage_uri = uri;
  isvc.predictor.model = model;
  return isvc;
}

PlatformConfig Config() {
  PlatformConfig c;
  c.domain = "example.com";
  c.gateway_port = 8080;
  c.osprey_binary = "/bin/osprey";
  return c;
}

bool Contains(const std::vector<std::string>& v, const std::string& a, const std::string& b) {
  for (size_t i = 0; i + 1 < v.size(); ++i)
    if (v[i] == a && v[i + 1] == b) return true;
  return false;
}

TEST(ResolveRevision, BuiltinRuntimesRunOnOspreyServe) {
  PlatformConfig config = Config();
  const auto& cluster = resources::BuiltinClusterRuntimes();
  struct Case {
    std::string format, runtime, backend;
  } cases[] = {{"sklearn", "kserve-sklearnserver", "sklearn"},
               {"xgboost", "kserve-xgbserver", "xgboost"},
               {"lightgbm", "kserve-lgbserver", "lightgbm"},
               {"pmml", "kserve-pmmlserver", "pmml"},
               {"pytorch", "kserve-torchserve", "pytorch"},
               {"tensorflow", "kserve-tensorflow-serving", "tensorflow"},
               {"paddle", "kserve-paddleserver", "paddle"}};
  for (const auto& c : cases) {
    RevisionSpec rev = ResolveRevision(ModelIsvc(c.format), "{}", 1, "t", {}, cluster, config);
    EXPECT_EQ(rev.failure_reason, "") << c.format << ": " << rev.failure_message;
    EXPECT_EQ(rev.name, "iris-predictor-00001");
    EXPECT_EQ(rev.runtime, c.runtime) << c.format;
    ASSERT_FALSE(rev.command.empty()) << c.format;
    EXPECT_EQ(rev.command[0], "/bin/osprey");
    EXPECT_TRUE(Contains(rev.command, "--model-format", c.backend)) << c.format;
    EXPECT_TRUE(Contains(rev.command, "--model-dir", "{{.ModelDir}}"));
    EXPECT_TRUE(Contains(rev.command, "--http-port", "{{.Port}}"));
    EXPECT_TRUE(Contains(rev.command, "--model-name", "iris"));
    EXPECT_EQ(rev.health_path, "/v2/models/iris/ready");
  }
}

TEST(ResolveRevision, BatcherBecomesServeFlags) {
  InferenceService isvc = ModelIsvc("xgboost");
  isvc.predictor.batcher = resources::Batcher{16, 5};
  RevisionSpec rev =
      ResolveRevision(isvc, "{}", 2, "t", {}, resources::BuiltinClusterRuntimes(), Config());
  EXPECT_EQ(rev.name, "iris-predictor-00002");
  EXPECT_TRUE(Contains(rev.command, "--max-batch-size", "16"));
  EXPECT_TRUE(Contains(rev.command, "--max-queue-delay-us", "5000"));
}

TEST(ResolveRevision, FormatsThatCannotRunHereSayWhy) {
  RevisionSpec rev = ResolveRevision(ModelIsvc("tensorrt"), "{}", 1, "t", {},
                                     resources::BuiltinClusterRuntimes(), Config());
  EXPECT_EQ(rev.failure_reason, "NoSupportingRuntime");
  EXPECT_NE(rev.failure_message.find("GPU"), std::string::npos) << rev.failure_message;
  EXPECT_TRUE(rev.command.empty());

  rev = ResolveRevision(ModelIsvc("no-such-format"), "{}", 1, "t", {},
                        resources::BuiltinClusterRuntimes(), Config());
  EXPECT_EQ(rev.failure_reason, "NoSupportingRuntime");
}

// A container's readinessProbe replaces the model route as the readiness
// check when it can run here (httpGet over HTTP, tcpSocket).
TEST(ResolveRevision, ReadinessProbeOfTheContainer) {
  using Probe = resources::Container::Probe;
  struct Case {
    Probe probe;
    std::string path;
    std::string want;
  } cases[] = {
      {Probe::kNone, "", "/v1/models/custom"},
      {Probe::kHttpGet, "/healthz", "/healthz"},
      {Probe::kHttpGet, "/", "/"},
      {Probe::kTcpSocket, "", ""},  // empty: a TCP connect
      {Probe::kOther, "", "/v1/models/custom"},
  };
  for (const auto& c : cases) {
    InferenceService isvc;
    isvc.meta.name = "custom";
    resources::Container container;
    container.name = "kserve-container";
    container.command = {"./serve"};
    container.probe = c.probe;
    container.probe_path = c.path;
    isvc.predictor.containers = {container};
    RevisionSpec rev = ResolveRevision(isvc, "{}", 1, "t", {}, {}, Config());
    EXPECT_EQ(rev.failure_reason, "");
    EXPECT_EQ(rev.health_path, c.want) << static_cast<int>(c.probe);
  }
}

TEST(ResolveRevision, CustomContainerRunsItsCommandWithTemplatesAndPort) {
  InferenceService isvc;
  isvc.meta.name = "custom";
  isvc.meta.namespace_ = "team";
  isvc.meta.labels["app"] = "demo";
  resources::Container c;
  c.name = "kserve-container";
  c.image = "example/custom:1";
  c.command = {"python3", "model.py"};
  c.args = {"--model_name={{.Name}}",  "--http_port=8080", "--ns", "{{.Namespace}}",
            "--label={{.Labels.app}}", "--port",           "9000", "--dir=/mnt/models/sub"};
  c.env = {{"STORAGE_URI", "file:///models/custom"}, {"MODEL_DIR", "/mnt/models"}};
  isvc.predictor.containers = {c};
  RevisionSpec rev = ResolveRevision(isvc, "{}", 1, "t", {}, {}, Config());
  EXPECT_EQ(rev.failure_reason, "");
  std::vector<std::string> want = {
      "python3",      "model.py", "--model_name=custom", "--http_port={{.Port}}",  "--ns", "team",
      "--label=demo", "--port",   "{{.Port}}",           "--dir={{.ModelDir}}/sub"};
  EXPECT_EQ(rev.command, want);
  EXPECT_EQ(rev.storage_uri, "file:///models/custom");
  EXPECT_EQ(rev.health_path, "/v1/models/custom");
  auto env = std::find(rev.env.begin(), rev.env.end(),
                       std::pair<std::string, std::string>("MODEL_DIR", "{{.ModelDir}}"));
  EXPECT_NE(env, rev.env.end());
}

TEST(ResolveRevision, ImageWithoutCommandNeedsTheImageTable) {
  InferenceService isvc;
  isvc.meta.name = "custom";
  resources::Container c;
  c.name = "kserve-container";
  c.image = "registry.example.com/team/model:2";
  isvc.predictor.containers = {c};
  PlatformConfig config = Config();
  RevisionSpec rev = ResolveRevision(isvc, "{}", 1, "t", {}, {}, config);
  EXPECT_EQ(rev.failure_reason, "RuntimeNotRecognized");
  EXPECT_NE(rev.failure_message.find("registry.example.com/team/model:2"), std::string::npos);

  config.images.insert(config.images.begin(),
                       ImageMapping{"registry.example.com/team/model", false, {"/opt/model/run"}});
  rev = ResolveRevision(isvc, "{}", 1, "t", {}, {}, config);
  EXPECT_EQ(rev.failure_reason, "");
  EXPECT_EQ(rev.command, std::vector<std::string>{"/opt/model/run"});
}

TEST(ExpandTemplates, KnownKeysExpandOthersStay) {
  resources::ObjectMeta meta;
  meta.name = "iris";
  meta.namespace_ = "ns";
  meta.annotations["a"] = "x";
  EXPECT_EQ(ExpandTemplates(
                "{{.Name}}-{{ .Namespace }}-{{.Annotations.a}}-{{.Labels.none}}-{{.Port}}", meta),
            "iris-ns-x--{{.Port}}");
}

// Revisions of `isvc` as table rows describe them: a spec, a number, a phase.
struct Rev {
  int number;
  std::string spec;
  RevisionPhase phase;
  std::string reason = "";
};

// Reconcile(isvc with spec `spec` and revisions `revs`), on the built-in runtimes.
ReconcilePlan ReconcileRows(const InferenceService& isvc, const std::string& spec,
                            const std::vector<Rev>& revs, const std::string& latest_rolled_out,
                            const std::string& previous_rolled_out = "") {
  static const PlatformConfig config = Config();
  static const std::vector<resources::ServingRuntime> none;
  const auto& cluster = resources::BuiltinClusterRuntimes();
  ReconcileInput in;
  in.isvc = &isvc;
  in.spec_json = spec;
  for (const auto& r : revs) {
    RevisionView v;
    v.spec = ResolveRevision(isvc, r.spec, r.number, "t", none, cluster, config);
    v.observed.phase = r.phase;
    v.observed.reason = r.reason;
    in.revisions.push_back(v);
  }
  in.namespace_runtimes = &none;
  in.cluster_runtimes = &cluster;
  in.config = &config;
  in.now = "2026-01-01T00:00:00Z";
  in.latest_rolled_out = latest_rolled_out;
  in.previous_rolled_out = previous_rolled_out;
  return Reconcile(in);
}

// The reconciler's table: revisions and what is observed of them -> plan.

struct Case {
  std::string name;
  std::string spec;
  std::string format = "xgboost";
  int min_replicas = 1;
  std::vector<Rev> revisions;
  std::string latest_rolled_out = "";
  // expectations
  int create = 0;  // number of the revision created, 0: none
  std::map<std::string, int> replicas;
  std::string traffic;
  std::string ready;  // Ready condition status
  std::string ready_reason;
  std::string transition;
  std::string active_state;
  std::string target_state;
  std::string previous_rolled_out = "";
};

TEST(Reconcile, Table) {
  const std::string r1 = "iris-predictor-00001", r2 = "iris-predictor-00002";
  using P = RevisionPhase;
  std::vector<Case> cases = {
      {"first apply creates revision 1",
       "A",
       "xgboost",
       1,
       {},
       "",
       1,
       {{r1, 1}},
       "",
       "Unknown",
       "Pending",
       "InProgress",
       "Pending",
       "Pending"},
      {"revision 1 loading",
       "A",
       "xgboost",
       1,
       {{1, "A", P::kLoading}},
       "",
       0,
       {{r1, 1}},
       "",
       "Unknown",
       "Loading",
       "InProgress",
       "Pending",
       "Loading"},
      {"revision 1 ready takes all traffic",
       "A",
       "xgboost",
       1,
       {{1, "A", P::kReady}},
       "",
       0,
       {{r1, 1}},
       r1,
       "True",
       "",
       "UpToDate",
       "Loaded",
       "Loaded"},
      {"minReplicas 3",
       "A",
       "xgboost",
       3,
       {{1, "A", P::kReady}},
       r1,
       0,
       {{r1, 3}},
       r1,
       "True",
       "",
       "UpToDate",
       "Loaded",
       "Loaded"},
      {"spec change creates revision 2, 1 keeps serving",
       "B",
       "xgboost",
       1,
       {{1, "A", P::kReady}},
       r1,
       2,
       {{r1, 1}, {r2, 1}},
       r1,
       "Unknown",
       "Pending",
       "InProgress",
       "Loaded",
       "Pending"},
      {"revision 2 failed: 1 keeps serving, Ready False",
       "B",
       "xgboost",
       1,
       {{1, "A", P::kReady}, {2, "B", P::kFailed, "ModelLoadFailed"}},
       r1,
       0,
       {{r1, 1}, {r2, 1}},
       r1,
       "False",
       "ModelLoadFailed",
       "BlockedByFailedLoad",
       "Loaded",
       "FailedToLoad"},
      {"revision 2 ready: traffic moves, 1 retired",
       "B",
       "xgboost",
       1,
       {{1, "A", P::kReady}, {2, "B", P::kReady}},
       r1,
       0,
       {{r2, 1}},
       r2,
       "True",
       "",
       "UpToDate",
       "Loaded",
       "Loaded",
       r1},
      {"first revision failed: nothing serves",
       "A",
       "xgboost",
       1,
       {{1, "A", P::kFailed, "ModelLoadFailed"}},
       "",
       0,
       {{r1, 1}},
       "",
       "False",
       "ModelLoadFailed",
       "BlockedByFailedLoad",
       "FailedToLoad",
       "FailedToLoad"},
      {"unrunnable format: no replicas, InvalidSpec",
       "A",
       "tensorrt",
       1,
       {},
       "",
       1,
       {},
       "",
       "False",
       "NoSupportingRuntime",
       "InvalidSpec",
       "",
       "FailedToLoad"},
      {"back to an older spec makes a new revision",
       "A",
       "xgboost",
       1,
       {{1, "A", P::kRetired}, {2, "B", P::kReady}},
       r2,
       3,
       {{r2, 1}, {"iris-predictor-00003", 1}},
       r2,
       "Unknown",
       "Pending",
       "InProgress",
       "Loaded",
       "Pending"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    InferenceService isvc = ModelIsvc(c.format);
    isvc.predictor.min_replicas = c.min_replicas;
    ReconcilePlan plan = ReconcileRows(isvc, c.spec, c.revisions, c.latest_rolled_out);
    EXPECT_EQ(plan.create.has_value() ? plan.create->number : 0, c.create);
    EXPECT_EQ(plan.replicas, c.replicas);
    ASSERT_LE(plan.status.traffic.size(), 1u);
    EXPECT_EQ(plan.status.traffic.empty() ? "" : plan.status.traffic[0].revision, c.traffic);
    if (!plan.status.traffic.empty()) {
      EXPECT_EQ(plan.status.traffic[0].percent, 100);
    }
    EXPECT_EQ(plan.status.url, "http://iris-default.example.com:8080");
    const Condition* ready = nullptr;
    for (const auto& cond : plan.status.conditions)
      if (cond.type == "Ready") ready = &cond;
    ASSERT_NE(ready, nullptr);
    EXPECT_EQ(ready->status, c.ready);
    EXPECT_EQ(ready->reason, c.ready_reason);
    EXPECT_EQ(plan.status.transition_status, c.transition);
    EXPECT_EQ(plan.status.active_model_state, c.active_state);
    EXPECT_EQ(plan.status.target_model_state, c.target_state);
    EXPECT_EQ(plan.status.previous_rolled_out, c.previous_rolled_out);
  }
}

// KServe's canary rollout, step by step: the spec (which revision's spec and
// canaryTrafficPercent), what is ready, and the traffic that results.
TEST(Reconcile, CanaryRolloutTable) {
  const std::string r1 = "iris-predictor-00001", r2 = "iris-predictor-00002",
                    r3 = "iris-predictor-00003";
  using P = RevisionPhase;
  struct Step {
    std::string name;
    std::string spec;
    std::optional<int> canary;
    std::vector<Rev> revisions;
    std::string latest_rolled_out, previous_rolled_out;
    // expectations
    int create;
    std::vector<TrafficTarget> traffic;
    std::string want_latest_rolled_out, want_previous_rolled_out;
    std::set<std::string> aspired;
  };
  std::vector<Step> steps = {
      {"1: v1 applied",
       "v1",
       std::nullopt,
       {{1, "v1", P::kReady}},
       "",
       "",
       0,
       {{r1, 100, "", true}},
       r1,
       "",
       {r1}},
      {"2: v2 with canary 10, not ready yet: v1 keeps everything",
       "v2",
       10,
       {{1, "v1", P::kReady}, {2, "v2", P::kLoading}},
       r1,
       "",
       0,
       {{r1, 100, "prev", false}},
       r1,
       "",
       {r1, r2}},
      {"2: v2 ready takes 10%",
       "v2",
       10,
       {{1, "v1", P::kReady}, {2, "v2", P::kReady}},
       r1,
       "",
       0,
       {{r2, 10, "latest", true}, {r1, 90, "prev", false}},
       r1,
       "",
       {r1, r2}},
      {"3: canary 0 rolls back, v2 stays deployed",
       "v2",
       0,
       {{1, "v1", P::kReady}, {2, "v2", P::kReady}},
       r1,
       "",
       0,
       {{r2, 0, "latest", true}, {r1, 100, "prev", false}},
       r1,
       "",
       {r1, r2}},
      {"4: canary 30",
       "v2",
       30,
       {{1, "v1", P::kReady}, {2, "v2", P::kReady}},
       r1,
       "",
       0,
       {{r2, 30, "latest", true}, {r1, 70, "prev", false}},
       r1,
       "",
       {r1, r2}},
      {"5: field removed: v2 promoted",
       "v2",
       std::nullopt,
       {{1, "v1", P::kReady}, {2, "v2", P::kReady}},
       r1,
       "",
       0,
       {{r2, 100, "", true}},
       r2,
       r1,
       {r2}},
      {"6: v3 with canary 20 is created",
       "v3",
       20,
       {{1, "v1", P::kRetired}, {2, "v2", P::kReady}},
       r2,
       r1,
       3,
       {{r2, 100, "prev", false}},
       r2,
       r1,
       {r2, r3}},
      {"6: v3 ready takes 20%",
       "v3",
       20,
       {{1, "v1", P::kRetired}, {2, "v2", P::kReady}, {3, "v3", P::kReady}},
       r2,
       r1,
       0,
       {{r3, 20, "latest", true}, {r2, 80, "prev", false}},
       r2,
       r1,
       {r2, r3}},
      {"a failing canary never gets traffic",
       "v3",
       20,
       {{1, "v1", P::kRetired}, {2, "v2", P::kReady}, {3, "v3", P::kFailed, "ModelLoadFailed"}},
       r2,
       r1,
       0,
       {{r2, 100, "prev", false}},
       r2,
       r1,
       {r2, r3}},
  };
  for (const auto& step : steps) {
    SCOPED_TRACE(step.name);
    InferenceService isvc = ModelIsvc("xgboost");
    isvc.predictor.canary_traffic_percent = step.canary;
    ReconcilePlan plan = ReconcileRows(isvc, step.spec, step.revisions, step.latest_rolled_out,
                                       step.previous_rolled_out);
    EXPECT_EQ(plan.create.has_value() ? plan.create->number : 0, step.create);
    EXPECT_EQ(plan.status.traffic, step.traffic);
    EXPECT_EQ(plan.status.latest_rolled_out, step.want_latest_rolled_out);
    EXPECT_EQ(plan.status.previous_rolled_out, step.want_previous_rolled_out);
    std::set<std::string> aspired;
    for (const auto& [name, min] : plan.replicas) aspired.insert(name);
    EXPECT_EQ(aspired, step.aspired);
  }
}

TEST(ServiceUrl, DomainTemplate) {
  resources::ObjectMeta meta;
  meta.name = "mnist";
  meta.namespace_ = "default";
  PlatformConfig config;
  config.domain = "taco-cat.xyz";
  config.gateway_port = 80;
  EXPECT_EQ(ServiceUrl(meta, config), "http://mnist-default.taco-cat.xyz");
  config.domain_template = "{{.Name}}.{{.Namespace}}.{{.Domain}}";
  config.gateway_port = 8080;
  EXPECT_EQ(ServiceUrl(meta, config), "http://mnist.default.taco-cat.xyz:8080");
}

}  // namespace
}  // namespace osprey::controlplane
