#include "controlplane/views.h"

#include <gtest/gtest.h>

namespace osprey::controlplane {
namespace {

RevisionSpec SampleSpec() {
  RevisionSpec s;
  s.name = "iris-predictor-00002";
  s.namespace_ = "team";
  s.isvc = "iris";
  s.number = 2;
  s.spec_json = R"({"model":{"modelFormat":{"name":"xgboost"}}})";
  s.created = "2026-12-02T10:00:00Z";
  s.runtime = "kserve-xgbserver";
  s.model_format = "xgboost";
  s.storage_uri = "s3://models/iris";
  s.protocol = "v2";
  s.container.name = "kserve-container";
  s.container.image = "kserve/xgbserver:latest";
  s.container.args = {"--model_name=iris", "--http_port=8080"};
  s.container.env = {{"A", "1"}, {"MODEL_DIR", "/mnt/models"}};
  s.container.probe = resources::Container::Probe::kHttpGet;
  s.container.probe_path = "/healthz";
  s.container.readiness_probe_json = R"({"httpGet":{"path":"/healthz","port":8080}})";
  s.container.resources_json = R"({"limits":{"cpu":"1"}})";
  s.batcher = resources::Batcher{8, 20};
  s.min_replicas = 0;
  s.max_replicas = 3;
  return s;
}

TEST(RevisionSpecJson, RoundTrips) {
  RevisionSpec s = SampleSpec();
  // valueFrom too: the operator rebuilds revisions from this record.
  s.container.env.push_back({"KEY", "", R"({"secretKeyRef":{"name":"creds","key":"token"}})"});
  auto back = ParseRevisionSpec(RevisionSpecJson(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->name, s.name);
  EXPECT_EQ(back->namespace_, s.namespace_);
  EXPECT_EQ(back->number, 2);
  EXPECT_EQ(back->spec_json, s.spec_json);
  EXPECT_EQ(back->runtime, s.runtime);
  EXPECT_EQ(back->protocol, "v2");
  EXPECT_EQ(back->container.name, s.container.name);
  EXPECT_EQ(back->container.image, s.container.image);
  EXPECT_EQ(back->container.args, s.container.args);
  EXPECT_EQ(back->container.env, s.container.env);
  EXPECT_EQ(back->container.probe, s.container.probe);
  EXPECT_EQ(back->container.probe_path, "/healthz");
  EXPECT_EQ(back->container.readiness_probe_json, s.container.readiness_probe_json);
  EXPECT_EQ(back->container.resources_json, s.container.resources_json);
  ASSERT_TRUE(back->batcher.has_value());
  EXPECT_EQ(back->batcher->max_batch_size, 8);
  EXPECT_EQ(back->batcher->max_latency_ms, 20);
  EXPECT_EQ(back->min_replicas, 0);
  EXPECT_EQ(back->max_replicas, 3);
  EXPECT_FALSE(ParseRevisionSpec("not json").ok());
}

// A record of the earlier format: a local command and its readiness path.
TEST(RevisionSpecJson, ReadsRecordsWithALocalCommand) {
  auto old = ParseRevisionSpec(
      R"({"name":"a-predictor-00001","namespace":"default","isvc":"a","number":1,"spec":{},)"
      R"("command":["/bin/osprey","serve","--http-port","{{.Port}}"],)"
      R"("env":[{"name":"X","value":"{{.ModelDir}}"}],"healthPath":"/v2/models/a/ready"})");
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->container.command,
            (std::vector<std::string>{"/bin/osprey", "serve", "--http-port", "{{.Port}}"}));
  EXPECT_EQ(old->container.env, (std::vector<resources::EnvVar>{{"X", "{{.ModelDir}}"}}));
  EXPECT_EQ(old->container.probe, resources::Container::Probe::kHttpGet);
  EXPECT_EQ(old->container.probe_path, "/v2/models/a/ready");
  auto tcp = ParseRevisionSpec(R"({"name":"b","command":["./run"],"healthPath":""})");
  ASSERT_TRUE(tcp.ok());
  EXPECT_EQ(tcp->container.probe, resources::Container::Probe::kTcpSocket);
}

TEST(IsvcJson, KServeShapedStatus) {
  IsvcRecord r;
  r.resource_json = R"({"apiVersion":"serving.kserve.io/v1beta1","kind":"InferenceService",)"
                    R"("metadata":{"name":"iris","namespace":"team"},"spec":{"predictor":{}}})";
  r.created = "2026-12-02T10:00:00Z";
  r.generation = 3;
  r.observed_generation = 3;
  r.status.url = "http://iris-team.example.com";
  r.status.conditions = {{"Ready", "True", "", ""}};
  r.status.latest_created = "iris-predictor-00002";
  r.status.traffic = {{"iris-predictor-00002", 10, "latest", true},
                      {"iris-predictor-00001", 90, "prev", false}};
  r.status.transition_status = "UpToDate";
  r.status.total_copies = 1;
  r.transition_times["Ready"] = "2026-12-02T10:01:00Z";
  const std::string json = IsvcJson(r);
  for (
      const char* want : {
          R"("metadata":{"name":"iris","namespace":"team","creationTimestamp":"2026-12-02T10:00:00Z","generation":3})",
          R"("conditions":[{"lastTransitionTime":"2026-12-02T10:01:00Z","status":"True","type":"Ready"}])",
          R"({"latestRevision":true,"percent":10,"revisionName":"iris-predictor-00002","tag":"latest","url":"http://latest-iris-team.example.com"})",
          R"({"latestRevision":false,"percent":90,"revisionName":"iris-predictor-00001","tag":"prev","url":"http://prev-iris-team.example.com"})",
          R"("transitionStatus":"UpToDate")",
          R"("observedGeneration":3)",
      })
    EXPECT_NE(json.find(want), std::string::npos) << want << "\nin " << json;
}

TEST(RevisionJson, PhaseReplicasAndStorage) {
  RevisionRecord r;
  r.spec = SampleSpec();
  r.observed.phase = RevisionPhase::kFailed;
  r.observed.reason = "RuntimeNotRecognized";
  r.desired = 1;
  r.storage = {"s3://models/iris", "done", 10, 10, 1, ""};
  r.replicas = {
      {"team/iris-predictor-00002/0", 42, 9001, "Ready", 1, "exited with status 1", false}};
  const std::string json = RevisionJson(r);
  for (
      const char* want : {
          R"("apiVersion":"serving.knative.dev/v1","kind":"Revision")",
          R"("labels":{"serving.kserve.io/inferenceservice":"iris","component":"predictor"})",
          R"("phase":"Failed","reason":"RuntimeNotRecognized")",
          R"("storage":{"uri":"s3://models/iris","phase":"done","bytesDone":10,"bytesTotal":10,"filesDone":1})",
          R"("replicaStatuses":[{"id":"team/iris-predictor-00002/0","pid":42,"port":9001,"state":"Ready","restarts":1,"lastExit":"exited with status 1","adopted":false}])",
      })
    EXPECT_NE(json.find(want), std::string::npos) << want << "\nin " << json;
  EXPECT_EQ(json.find(R"("local")"), std::string::npos) << "no local command when it cannot run";
  r.command = {"/bin/osprey", "serve", "--http-port", "{{.Port}}"};
  r.readiness_path = "/v2/models/iris/ready";
  EXPECT_NE(RevisionJson(r).find(
                R"("local":{"command":["/bin/osprey","serve","--http-port","{{.Port}}"],)"
                R"("readinessPath":"/v2/models/iris/ready"})"),
            std::string::npos)
      << RevisionJson(r);
}

TEST(PodAutoscalerJson, IdleIsNoTraffic) {
  AutoscalerRecord idle{"iris-predictor-00001", "default", "t", 0, 0, 0, "Stable", 0, 0, false};
  EXPECT_NE(PodAutoscalerJson(idle).find(R"("ready":"False","reason":"NoTraffic")"),
            std::string::npos);
  AutoscalerRecord busy{"iris-predictor-00001", "default", "t", 3, 3, 2, "Panic", 4.5, 9, true};
  const std::string json = PodAutoscalerJson(busy);
  EXPECT_NE(json.find(R"("desiredScale":3,"actualScale":3,"readyScale":2,"ready":"True",)"
                      R"("reason":"Panic")"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("panicking":true)"), std::string::npos);
  EXPECT_EQ(ListJson({"1", "{}"}), R"({"items":[1,{}]})");
}

TEST(ComponentAsKnative, ThePredictorAsKServesKnativeService) {
  resources::ObjectMeta meta;
  meta.name = "iris";
  meta.namespace_ = "ml";
  ComponentStatus status;
  status.url = "http://iris-predictor-ml.example.com";
  status.latest_created = "iris-predictor-00002";
  status.latest_ready = "iris-predictor-00001";
  status.traffic = {{"iris-predictor-00001", 100, "prev", false}};
  const Condition ready{"PredictorReady", "True", "", ""};
  RevisionSpec latest;
  latest.container.image = "kserve/sklearnserver:v0.14";
  latest.container.args = {"--model_name=iris"};
  PlatformConfig config;
  const std::string json =
      KnativeServiceJson(ComponentAsKnative(meta, "predictor", status, &ready, &latest,
                                            "2026-01-01T00:00:00Z", 3, "2026-01-01T00:00:05Z"),
                         config);
  for (
      const char* want :
      {R"("name":"iris-predictor","namespace":"ml")",
       R"("serving.kserve.io/inferenceservice":"iris")",
       R"("containers":[{"name":"kserve-container","image":"kserve/sklearnserver:v0.14","args":["--model_name=iris"]}])",
       R"("url":"http://iris-predictor-ml.example.com")",
       R"("latestCreatedRevisionName":"iris-predictor-00002")",
       R"("latestReadyRevisionName":"iris-predictor-00001")",
       R"({"lastTransitionTime":"2026-01-01T00:00:05Z","status":"True","type":"Ready"})",
       R"("observedGeneration":3)",
       R"({"latestRevision":false,"percent":100,"revisionName":"iris-predictor-00001","tag":"prev","url":"http://prev-iris-predictor-ml.example.com"})"})
    EXPECT_NE(json.find(want), std::string::npos) << want << "\n" << json;
}

}  // namespace
}  // namespace osprey::controlplane
