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
  return c;
}

bool Contains(const std::vector<std::string>& v, const std::string& a, const std::string& b) {
  for (size_t i = 0; i + 1 < v.size(); ++i)
    if (v[i] == a && v[i + 1] == b) return true;
  return false;
}

// Revisions are in KServe's terms: the runtime's container with the model's
// args and env, templates expanded, /mnt/models and ports as written. How
// they run locally is tested in local/placement_test.cc.
TEST(ResolveRevision, BuiltinRuntimesGiveTheirContainer) {
  const auto& cluster = resources::BuiltinClusterRuntimes();
  struct Case {
    std::string format, runtime, image;
  } cases[] = {{"sklearn", "kserve-sklearnserver", "kserve/sklearnserver"},
               {"xgboost", "kserve-xgbserver", "kserve/xgbserver"},
               {"lightgbm", "kserve-lgbserver", "kserve/lgbserver"},
               {"pmml", "kserve-pmmlserver", "kserve/pmmlserver"},
               {"pytorch", "kserve-torchserve", "pytorch/torchserve-kfs"},
               {"tensorflow", "kserve-tensorflow-serving", "tensorflow/serving"},
               {"paddle", "kserve-paddleserver", "kserve/paddleserver"}};
  for (const auto& c : cases) {
    InferenceService isvc = ModelIsvc(c.format);
    isvc.predictor.model->args = {"--workers={{.Annotations.workers}}"};
    isvc.predictor.model->env = {{"MODEL_NAME", "{{.Name}}"}};
    isvc.meta.annotations["workers"] = "3";
    RevisionSpec rev = ResolveRevision(isvc, "{}", 1, "t", {}, cluster, Config());
    EXPECT_EQ(rev.failure_reason, "") << c.format << ": " << rev.failure_message;
    EXPECT_EQ(rev.name, "iris-predictor-00001");
    EXPECT_EQ(rev.runtime, c.runtime) << c.format;
    EXPECT_EQ(rev.model_format, c.format);
    EXPECT_EQ(rev.storage_uri, "/models/iris");
    EXPECT_EQ(rev.container.name, "kserve-container") << c.format;
    EXPECT_TRUE(rev.container.image.starts_with(c.image))
        << c.format << ": " << rev.container.image;
    ASSERT_FALSE(rev.container.args.empty()) << c.format;
    EXPECT_EQ(rev.container.args.back(), "--workers=3") << c.format;
    ASSERT_FALSE(rev.container.env.empty());
    EXPECT_EQ(rev.container.env.back(), (resources::EnvVar{"MODEL_NAME", "iris"})) << c.format;
    for (const auto& a : rev.container.args)
      EXPECT_EQ(a.find("{{.Name}}"), std::string::npos) << c.format << ": " << a;
  }
}

TEST(ResolveRevision, BatcherIsKept) {
  InferenceService isvc = ModelIsvc("xgboost");
  isvc.predictor.batcher = resources::Batcher{16, 5};
  RevisionSpec rev =
      ResolveRevision(isvc, "{}", 2, "t", {}, resources::BuiltinClusterRuntimes(), Config());
  EXPECT_EQ(rev.name, "iris-predictor-00002");
  ASSERT_TRUE(rev.batcher.has_value());
  EXPECT_EQ(rev.batcher->max_batch_size, 16);
  EXPECT_EQ(rev.batcher->max_latency_ms, 5);
}

TEST(ResolveRevision, FormatsNoRuntimeServesSayWhy) {
  PlatformConfig config = Config();
  config.format_notes["tensorrt"] = "tensorrt needs a GPU here";
  RevisionSpec rev = ResolveRevision(ModelIsvc("tensorrt"), "{}", 1, "t", {},
                                     resources::BuiltinClusterRuntimes(), config);
  EXPECT_EQ(rev.failure_reason, "NoSupportingRuntime");
  EXPECT_NE(rev.failure_message.find("; tensorrt needs a GPU here"), std::string::npos)
      << rev.failure_message;

  rev = ResolveRevision(ModelIsvc("no-such-format"), "{}", 1, "t", {},
                        resources::BuiltinClusterRuntimes(), config);
  EXPECT_EQ(rev.failure_reason, "NoSupportingRuntime");
}

// The model's resources go over the runtime's, key by key, as KServe merges
// the predictor's container into the runtime's.
TEST(ResolveRevision, ModelResourcesOverTheRuntimes) {
  InferenceService isvc = ModelIsvc("sklearn");
  isvc.predictor.model->resources_json = R"({"limits":{"memory":"256Mi"}})";
  RevisionSpec rev =
      ResolveRevision(isvc, "{}", 1, "t", {}, resources::BuiltinClusterRuntimes(), Config());
  EXPECT_NE(rev.container.resources_json.find(R"("memory":"256Mi")"), std::string::npos)
      << rev.container.resources_json;
  EXPECT_NE(rev.container.resources_json.find(R"("cpu":"1")"), std::string::npos)
      << rev.container.resources_json;
  EXPECT_NE(rev.container.resources_json.find(R"("requests")"), std::string::npos);
  isvc.predictor.model->resources_json = "{}";
  rev = ResolveRevision(isvc, "{}", 1, "t", {}, resources::BuiltinClusterRuntimes(), Config());
  EXPECT_EQ(rev.container.resources_json.find("256Mi"), std::string::npos);
}

TEST(ResolveRevision, CustomContainerIsKeptWithTemplatesExpanded) {
  InferenceService isvc;
  isvc.meta.name = "custom";
  isvc.meta.namespace_ = "team";
  isvc.meta.labels["app"] = "demo";
  resources::Container c;
  c.name = "kserve-container";
  c.image = "example/custom:1";
  c.command = {"python3", "model.py"};
  c.args = {"--model_name={{.Name}}",  "--ns",   "{{.Namespace}}",
            "--label={{.Labels.app}}", "--port", "9000",
            "--dir=/mnt/models/sub"};
  c.env = {{"STORAGE_URI", "file:///models/{{.Name}}"}, {"MODEL_DIR", "/mnt/models"}};
  c.probe = resources::Container::Probe::kHttpGet;
  c.probe_path = "/healthz";
  isvc.predictor.containers = {c};
  RevisionSpec rev = ResolveRevision(isvc, "{}", 1, "t", {}, {}, Config());
  EXPECT_EQ(rev.failure_reason, "");
  EXPECT_EQ(rev.runtime, "");
  EXPECT_EQ(rev.container.command, (std::vector<std::string>{"python3", "model.py"}));
  EXPECT_EQ(rev.container.args,
            (std::vector<std::string>{"--model_name=custom", "--ns", "team", "--label=demo",
                                      "--port", "9000", "--dir=/mnt/models/sub"}));
  EXPECT_EQ(rev.storage_uri, "file:///models/custom");
  EXPECT_EQ(rev.container.env[1], (resources::EnvVar{"MODEL_DIR", "/mnt/models"}));
  EXPECT_EQ(rev.container.probe_path, "/healthz");
}

TEST(ResolveRevision, PredictorWithoutModelOrContainerIsInvalid) {
  InferenceService isvc;
  isvc.meta.name = "empty";
  RevisionSpec rev = ResolveRevision(isvc, "{}", 1, "t", {}, {}, Config());
  EXPECT_EQ(rev.failure_reason, "InvalidPredictorSpec");
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
    EXPECT_EQ(plan.create.empty() ? 0 : plan.create.front().number, c.create);
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
    EXPECT_EQ(plan.create.empty() ? 0 : plan.create.front().number, step.create);
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

namespace osprey::controlplane {
namespace {

InferenceService WithTransformer() {
  InferenceService isvc = ModelIsvc("xgboost");
  resources::Component t;
  resources::Container c;
  c.name = "kserve-container";
  c.image = "example.com/t:1";
  c.command = {"python3", "t.py"};
  c.args = {"--protocol", "grpc-v2"};
  c.env = {{"STORAGE_URI", "/code"}};
  t.containers = {c};
  t.container_concurrency = 4;
  isvc.transformer = t;
  return isvc;
}

TEST(ResolveComponentRevision, KServesArgumentsAreAppendedUnlessGiven) {
  InferenceService isvc = WithTransformer();
  RevisionSpec rev = ResolveComponentRevision(isvc, "transformer", "{}", 3, "t");
  EXPECT_EQ(rev.name, "iris-transformer-00003");
  EXPECT_EQ(rev.component, "transformer");
  EXPECT_EQ(rev.failure_reason, "");
  EXPECT_EQ(rev.storage_uri, "/code");
  EXPECT_EQ(rev.container.args,
            (std::vector<std::string>{"--protocol", "grpc-v2", "--model_name", "iris",
                                      "--predictor_host", "iris-predictor.default", "--http_port",
                                      "8080", "--workers", "4"}));
  isvc.transformer->containers[0].args = {"--model_name=other", "--http_port", "9000"};
  rev = ResolveComponentRevision(isvc, "transformer", "{}", 1, "t");
  EXPECT_EQ(rev.container.args, (std::vector<std::string>{
                                    "--model_name=other", "--http_port", "9000", "--predictor_host",
                                    "iris-predictor.default", "--workers", "4"}));
  isvc.explainer = resources::Component{};
  isvc.explainer->explainer_type = "art";
  isvc.explainer->explainer_container = resources::Container{
      "kserve-container", "kserve/art-explainer:latest", {}, {"--adversary_type", "SquareAttack"}};
  rev = ResolveComponentRevision(isvc, "explainer", "{}", 1, "t");
  EXPECT_EQ(rev.container.image, "kserve/art-explainer:latest");
  EXPECT_EQ(rev.runtime, "art-explainer");
  EXPECT_EQ(rev.container.args,
            (std::vector<std::string>{"--adversary_type", "SquareAttack", "--model_name", "iris",
                                      "--predictor_host", "iris-predictor.default", "--http_port",
                                      "8080"}));
  isvc.explainer->explainer_type.clear();
  isvc.explainer->explainer_container.reset();
  rev = ResolveComponentRevision(isvc, "explainer", "{}", 1, "t");
  EXPECT_EQ(rev.failure_reason, "InvalidSpec");
}

// Each component rolls out on its own; the service is Ready when all are,
// and takes traffic once the transformer (its entry) and the predictor are.
TEST(Reconcile, TransformerAndExplainerHaveTheirOwnRevisionsAndConditions) {
  static const PlatformConfig config = Config();
  static const std::vector<resources::ServingRuntime> none;
  const auto& cluster = resources::BuiltinClusterRuntimes();
  InferenceService isvc = WithTransformer();
  isvc.transformer->canary_traffic_percent = 30;
  auto input = [&](const std::vector<std::pair<std::string, RevisionPhase>>& revs) {
    ReconcileInput in;
    in.isvc = &isvc;
    in.spec_json = "{\"p\":1}";
    in.transformer_json = "{\"t\":2}";
    for (const auto& [name, phase] : revs) {
      RevisionView v;
      const std::string component = name.substr(5, name.rfind('-') - 5);
      const int number = std::stoi(name.substr(name.rfind('-') + 1));
      v.spec =
          component == "predictor"
              ? ResolveRevision(isvc, in.spec_json, number, "t", none, cluster, config)
              : ResolveComponentRevision(isvc, component,
                                         "{\"t\":" + std::to_string(number + 1) + "}", number, "t");
      v.observed.phase = phase;
      in.revisions.push_back(v);
    }
    in.namespace_runtimes = &none;
    in.cluster_runtimes = &cluster;
    in.config = &config;
    in.now = "t";
    return in;
  };
  auto condition = [](const ReconcilePlan& p, const std::string& type) {
    for (const auto& c : p.status.conditions)
      if (c.type == type) return c.status;
    return std::string("absent");
  };
  // First apply: a revision of each component.
  ReconcilePlan plan = Reconcile(input({}));
  ASSERT_EQ(plan.create.size(), 2u);
  EXPECT_EQ(plan.create[0].name, "iris-predictor-00001");
  EXPECT_EQ(plan.create[1].name, "iris-transformer-00001");
  EXPECT_EQ(condition(plan, "TransformerReady"), "Unknown");
  EXPECT_EQ(condition(plan, "ExplainerReady"), "absent");
  ASSERT_TRUE(plan.status.transformer.has_value());
  EXPECT_EQ(plan.status.transformer->url, "http://iris-transformer-default.example.com:8080");
  EXPECT_EQ(plan.status.predictor_url, "http://iris-predictor-default.example.com:8080");

  // The predictor ready, the transformer not: no traffic can enter.
  plan = Reconcile(input({{"iris-predictor-00001", RevisionPhase::kReady},
                          {"iris-transformer-00001", RevisionPhase::kLoading}}));
  EXPECT_TRUE(plan.create.empty());
  EXPECT_EQ(condition(plan, "PredictorReady"), "True");
  EXPECT_EQ(condition(plan, "IngressReady"), "False");
  EXPECT_EQ(condition(plan, "Ready"), "Unknown");

  // Both ready.
  plan = Reconcile(input({{"iris-predictor-00001", RevisionPhase::kReady},
                          {"iris-transformer-00001", RevisionPhase::kReady}}));
  EXPECT_EQ(condition(plan, "Ready"), "True");
  EXPECT_EQ(plan.status.transformer->latest_rolled_out, "iris-transformer-00001");
  EXPECT_EQ(plan.replicas.size(), 2u);

  // A new transformer spec: a canary of the transformer alone.
  IsvcStatus stored = plan.status;
  ReconcileInput in = input({{"iris-predictor-00001", RevisionPhase::kReady},
                             {"iris-transformer-00001", RevisionPhase::kReady},
                             {"iris-transformer-00002", RevisionPhase::kReady}});
  in.transformer_json = "{\"t\":3}";
  in.stored = &stored;
  plan = Reconcile(in);
  EXPECT_TRUE(plan.create.empty());
  EXPECT_EQ(plan.status.transformer->traffic,
            (std::vector<TrafficTarget>{{"iris-transformer-00002", 30, "latest", true},
                                        {"iris-transformer-00001", 70, "prev", false}}));
  EXPECT_EQ(plan.status.traffic,
            (std::vector<TrafficTarget>{{"iris-predictor-00001", 100, "", true}}));

  // A transformer that failed makes the service not Ready, with its reason.
  ReconcileInput failed = input({{"iris-predictor-00001", RevisionPhase::kReady},
                                 {"iris-transformer-00001", RevisionPhase::kFailed}});
  failed.revisions[1].observed.reason = "ContainerCrashed";
  plan = Reconcile(failed);
  EXPECT_EQ(condition(plan, "TransformerReady"), "False");
  for (const auto& c : plan.status.conditions)
    if (c.type == "Ready") EXPECT_EQ(c.reason, "ContainerCrashed");

  // An executor that does not run transformers leaves them out.
  ReconcileInput predictor_only = input({});
  predictor_only.run_transformer = false;
  plan = Reconcile(predictor_only);
  EXPECT_EQ(plan.create.size(), 1u);
  EXPECT_FALSE(plan.status.transformer.has_value());
}

}  // namespace
}  // namespace osprey::controlplane
