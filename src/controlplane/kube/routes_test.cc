// `osprey gateway`'s reading of the cluster, as tables: EndpointSlices to
// ready endpoints, InferenceServices to their routing, both to the route
// table (through PlanRoutes, as the gateway builds it), and the
// Deployments its autoscaler scales.

#include "controlplane/kube/routes.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>
#include <vector>

#include "common/strings.h"
#include "controlplane/knative.h"
#include "controlplane/kube/objects.h"

namespace osprey::controlplane {
namespace {

rapidjson::Document Parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  EXPECT_FALSE(d.HasParseError()) << text;
  return d;
}

// An EndpointSlice of Service `service` in `ns`, with `endpoints` (JSON
// array entries) and `ports` (JSON array).
std::string Slice(const std::string& ns, const std::string& service, const std::string& endpoints,
                  const std::string& ports = R"([{"name":"http","port":8080,"protocol":"TCP"},)"
                                             R"({"name":"grpc","port":8081,"protocol":"TCP"}])",
                  const std::string& type = "IPv4") {
  return StrCat(R"({"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",)",
                R"("metadata":{"name":")", service, R"(-abcde","namespace":")", ns,
                R"(","labels":{"kubernetes.io/service-name":")", service, R"("}},)",
                R"("addressType":")", type, R"(","endpoints":)", endpoints, R"(,"ports":)", ports,
                "}");
}

std::string Ready(const std::string& ip, const std::string& conditions = R"({"ready":true})") {
  return StrCat(R"({"addresses":[")", ip, R"("],"conditions":)", conditions, "}");
}

std::string Endpoints(const std::vector<Endpoint>& ready) {
  std::string s;
  for (const auto& e : ready) StrAppend(&s, e.address, ":", e.http_port, "/", e.grpc_port, " ");
  return s;
}

TEST(KubeRoutesTest, ASliceGivesItsReadyEndpointsWithTheirHttpAndGrpcPorts) {
  const std::string http_only = R"([{"name":"http","port":8080}])";
  struct Case {
    const char* name;
    std::string slice;
    std::string want;  // "address:http/grpc " each
  } cases[] = {
      {"ready ones only",
       Slice("models", "iris-predictor-00001",
             StrCat("[", Ready("10.244.0.5"), ",", Ready("10.244.0.6", R"({"ready":false})"), ",",
                    Ready("10.244.0.7"), "]")),
       "10.244.0.5:8080/8081 10.244.0.7:8080/8081 "},
      {"no ready condition reads as ready",
       Slice("models", "r", StrCat("[", Ready("10.0.0.1", "{}"), "]")), "10.0.0.1:8080/8081 "},
      {"terminating is not ready",
       Slice("models", "r",
             StrCat("[", Ready("10.0.0.1", R"({"serving":true,"terminating":true})"), "]")),
       ""},
      {"no grpc port", Slice("models", "r", StrCat("[", Ready("10.0.0.1"), "]"), http_only),
       "10.0.0.1:8080/0 "},
      {"one unnamed port is http",
       Slice("models", "r", StrCat("[", Ready("10.0.0.1"), "]"), R"([{"port":9000}])"),
       "10.0.0.1:9000/0 "},
      {"no http port: nothing to call",
       Slice("models", "r", StrCat("[", Ready("10.0.0.1"), "]"),
             R"([{"name":"metrics","port":9090}])"),
       ""},
      {"IPv6", Slice("models", "r", StrCat("[", Ready("fd00::5"), "]"), http_only, "IPv6"),
       "fd00::5:8080/0 "},
      {"FQDN slices are not followed",
       Slice("models", "r", StrCat("[", Ready("pod.example.com"), "]"), http_only, "FQDN"), ""},
      {"no endpoints yet", Slice("models", "r", "null"), ""},
      {"first address of each", Slice("models", "r", R"([{"addresses":["10.0.0.9","10.0.0.8"]}])"),
       "10.0.0.9:8080/8081 "},
  };
  for (const auto& c : cases) {
    SliceView v = ReadEndpointSlice(Parse(c.slice));
    EXPECT_EQ(v.namespace_, "models") << c.name;
    EXPECT_EQ(Endpoints(v.ready), c.want) << c.name;
  }
  EXPECT_EQ(ReadEndpointSlice(Parse(Slice("models", "iris-predictor-00001", "[]"))).service,
            "iris-predictor-00001");
}

// An InferenceService `iris` in `models` with its status: traffic entries
// ("revision:percent[:tag]") and the latest created and ready revisions.
// Status traffic entries from "revision:percent[:tag]" each; with
// `latest_created`, latestRevision says whether an entry is it.
std::string TrafficJson(const std::vector<std::string>& traffic,
                        const std::string& latest_created) {
  std::string t;
  for (const auto& entry : traffic) {
    const size_t c1 = entry.find(':');
    const size_t c2 = entry.find(':', c1 + 1);
    const std::string rev = entry.substr(0, c1);
    const std::string percent = entry.substr(c1 + 1, c2 == std::string::npos ? c2 : c2 - c1 - 1);
    const std::string tag = c2 == std::string::npos ? "" : entry.substr(c2 + 1);
    StrAppend(&t, t.empty() ? "" : ",", R"({"revisionName":")", rev, R"(","percent":)", percent,
              tag.empty() ? "" : StrCat(R"(,"tag":")", tag, R"(")"),
              latest_created.empty()  ? ""
              : rev == latest_created ? R"(,"latestRevision":true)"
                                      : R"(,"latestRevision":false)",
              "}");
  }
  return t;
}

std::string Isvc(const std::vector<std::string>& traffic, const std::string& latest_created,
                 const std::string& latest_ready, const std::string& annotations = "{}",
                 const std::string& predictor_extra = "") {
  const std::string t = TrafficJson(traffic, latest_created);
  return StrCat(
      R"({"apiVersion":"serving.kserve.io/v1beta1","kind":"InferenceService",)",
      R"("metadata":{"name":"iris","namespace":"models","uid":"u1","resourceVersion":"7",)",
      R"("annotations":)", annotations, R"(},)",
      R"("spec":{"predictor":{"timeout":30,"containerConcurrency":4,)", predictor_extra,
      R"("model":{"modelFormat":{"name":"sklearn"},"storageUri":"gs://b/iris"}}},)",
      R"("status":{"url":"http://iris-models.example.com","components":{"predictor":{)",
      R"("latestCreatedRevision":")", latest_created, R"(","latestReadyRevision":")", latest_ready,
      R"(","traffic":[)", t, "]}}}}");
}

TEST(KubeRoutesTest, AnInferenceServiceAspiresItsTrafficRevisionsAndItsLatestCreated) {
  struct Case {
    const char* name;
    std::string isvc;
    std::vector<std::string> aspired;
  } cases[] = {
      {"one revision",
       Isvc({"iris-predictor-00001:100"}, "iris-predictor-00001", "iris-predictor-00001"),
       {"models/iris-predictor-00001"}},
      {"canary: both, in traffic order",
       Isvc({"iris-predictor-00001:90:prev", "iris-predictor-00002:10:latest"},
            "iris-predictor-00002", "iris-predictor-00002"),
       {"models/iris-predictor-00001", "models/iris-predictor-00002"}},
      {"a new revision not ready yet takes no traffic but is aspired",
       Isvc({"iris-predictor-00001:100"}, "iris-predictor-00002", "iris-predictor-00001"),
       {"models/iris-predictor-00001", "models/iris-predictor-00002"}},
      {"no status yet", Isvc({}, "", ""), {}},
  };
  for (const auto& c : cases) {
    IsvcView v = ReadInferenceService(Parse(c.isvc));
    EXPECT_EQ(v.routing.aspired, c.aspired) << c.name;
    EXPECT_EQ(v.routing.meta.name, "iris");
    EXPECT_EQ(v.routing.meta.namespace_, "models");
    EXPECT_EQ(v.routing.timeout_seconds, 30);
    ASSERT_TRUE(v.spec.has_value());
    EXPECT_EQ(v.Component("predictor")->container_concurrency, 4);
  }
  // A spec that does not parse is still routed by its status, not scaled.
  rapidjson::Document bad = Parse(Isvc({"iris-predictor-00001:100"}, "iris-predictor-00001",
                                       "iris-predictor-00001", R"({"a":"b"})"));
  bad["spec"]["predictor"].RemoveMember("model");
  IsvcView v = ReadInferenceService(bad);
  EXPECT_FALSE(v.spec.has_value());
  EXPECT_EQ(v.routing.meta.name, "iris");
  EXPECT_EQ(v.routing.meta.annotations.at("a"), "b");
  EXPECT_EQ(v.routing.aspired, std::vector<std::string>{"models/iris-predictor-00001"});
}

RevisionSpec Revision(int number, const std::string& spec_json, int min_replicas = 1) {
  RevisionSpec r;
  r.name = StrCat("iris-predictor-0000", number);
  r.namespace_ = "models";
  r.isvc = "iris";
  r.number = number;
  r.spec_json = spec_json;
  r.created = "2026-12-03T07:00:00Z";
  r.runtime = "kserve-sklearnserver";
  r.model_format = "sklearn";
  r.storage_uri = "gs://b/iris";
  r.container.name = "kserve-container";
  r.container.image = "kserve/sklearnserver:latest";
  r.min_replicas = min_replicas;
  return r;
}

DeploymentView Deployed(const RevisionSpec& rev, int replicas, int ready) {
  rapidjson::Document d = Parse(DeploymentJson(rev, {"iris", "u1"}, {}, replicas));
  d.AddMember("status", rapidjson::Value(rapidjson::kObjectType), d.GetAllocator());
  d["status"].AddMember("readyReplicas", ready, d.GetAllocator());
  std::optional<DeploymentView> v = ReadDeployment(d);
  EXPECT_TRUE(v.has_value());
  return *v;
}

// What a table routes, as text: "host -> rev@endpoints:percent ..." per
// route of a service's own host (components' hosts and paths are
// routing_test's).
std::string Describe(const gateway::RouteTable& t) {
  std::string s;
  for (const auto& r : t.routes) {
    if (!r.component.empty() || r.rewrite.has_value()) continue;
    StrAppend(&s, r.hosts.empty() ? "?" : r.hosts[0], " ->");
    for (const auto& w : r.split) {
      const auto& rev = t.revisions[w.revision];
      StrAppend(&s, " ", rev.revision, "@");
      for (size_t i = 0; i < rev.ports.size(); ++i)
        StrAppend(&s, i ? "," : "", rev.hosts[i], ":", rev.ports[i]);
      StrAppend(&s, ":", w.percent);
    }
    if (r.mirror) StrAppend(&s, " mirror ", t.revisions[r.mirror->revision].revision);
    s += "\n";
  }
  return s;
}

TEST(KubeRoutesTest, TheRouteTableSplitsAsTheStatusSaysOverTheReadyEndpoints) {
  const std::string r1 = "iris-predictor-00001", r2 = "iris-predictor-00002";
  const std::string canary = Isvc({r1 + ":90:prev", r2 + ":10:latest"}, r2, r2,
                                  R"({"serving.kserve.io/enable-tag-routing":"true"})");
  struct Case {
    const char* name;
    std::string isvc;
    std::vector<std::string> slices;
    std::string want;
  } cases[] = {
      {"canary 90/10 with tags",
       canary,
       {Slice("models", r1, StrCat("[", Ready("10.0.0.1"), ",", Ready("10.0.0.2"), "]")),
        Slice("models", r2, StrCat("[", Ready("10.0.0.3"), "]"))},
       "latest-iris-models.example.com -> iris-predictor-00002@10.0.0.3:8080:100\n"
       "prev-iris-models.example.com -> iris-predictor-00001@10.0.0.1:8080,10.0.0.2:8080:100\n"
       "iris-models.example.com -> iris-predictor-00001@10.0.0.1:8080,10.0.0.2:8080:90 "
       "iris-predictor-00002@10.0.0.3:8080:10\n"},
      {"a revision's endpoints over several slices, once each; other namespaces' and other "
       "services' slices are not its",
       Isvc({r1 + ":100"}, r1, r1),
       {Slice("models", r1, StrCat("[", Ready("10.0.0.1"), "]")),
        Slice("models", r1, StrCat("[", Ready("10.0.0.1"), ",", Ready("10.0.0.4"), "]")),
        Slice("other", r1, StrCat("[", Ready("10.9.9.9"), "]")),
        Slice("models", "iris-predictor-00001-private", StrCat("[", Ready("10.8.8.8"), "]"))},
       "iris-models.example.com -> iris-predictor-00001@10.0.0.1:8080,10.0.0.4:8080:100\n"},
      {"at zero: routed with no endpoint (requests wait in the gateway's queue)",
       Isvc({r1 + ":100"}, r1, r1),
       {},
       "iris-models.example.com -> iris-predictor-00001@:100\n"},
      {"an endpoint not ready leaves the route",
       Isvc({r1 + ":100"}, r1, r1),
       {Slice("models", r1,
              StrCat("[", Ready("10.0.0.1", R"({"ready":false})"), ",", Ready("10.0.0.2"), "]"))},
       "iris-models.example.com -> iris-predictor-00001@10.0.0.2:8080:100\n"},
      {"mirror to the latest once it is ready",
       Isvc({r1 + ":100"}, r2, r2, R"({"serving.osprey.dev/mirror-percent":"20"})"),
       {Slice("models", r1, StrCat("[", Ready("10.0.0.1"), "]"))},
       "iris-models.example.com -> iris-predictor-00001@10.0.0.1:8080:100 mirror "
       "iris-predictor-00002\n"},
      {"no mirror to a latest that is not ready",
       Isvc({r1 + ":100"}, r2, r1, R"({"serving.osprey.dev/mirror-percent":"20"})"),
       {Slice("models", r1, StrCat("[", Ready("10.0.0.1"), "]"))},
       "iris-models.example.com -> iris-predictor-00001@10.0.0.1:8080:100\n"},
  };
  PlatformConfig config;
  config.gateway_port = 80;
  for (const auto& c : cases) {
    std::vector<SliceView> slices;
    for (const auto& s : c.slices) slices.push_back(ReadEndpointSlice(Parse(s)));
    ClusterRouting routing = RoutingFromCluster({ReadInferenceService(Parse(c.isvc))}, slices, {});
    gateway::RouteTable table = PlanRoutes(routing.services, routing.revisions, config);
    EXPECT_EQ(Describe(table), c.want) << c.name;
  }
}

TEST(KubeRoutesTest, TargetsCarryGrpcTimeoutAndEachRevisionsOwnContainerConcurrency) {
  const std::string r1 = "iris-predictor-00001", r2 = "iris-predictor-00002";
  IsvcView isvc = ReadInferenceService(Parse(Isvc({r1 + ":50", r2 + ":50"}, r2, r2)));
  // Revision 1 was made with containerConcurrency 2; the spec says 4 now.
  std::vector<DeploymentView> deployments = {
      Deployed(Revision(1, R"({"containerConcurrency":2,"model":{"modelFormat":{"name":"sklearn"},)"
                           R"("storageUri":"gs://b/iris"}})"),
               1, 1)};
  std::vector<SliceView> slices = {
      ReadEndpointSlice(Parse(Slice("models", r1, StrCat("[", Ready("10.0.0.1"), "]")))),
      ReadEndpointSlice(
          Parse(Slice("models", r2, StrCat("[", Ready("fd00::2"), "]"),
                      R"([{"name":"http","port":8080},{"name":"grpc","port":8081}])", "IPv6")))};
  ClusterRouting routing = RoutingFromCluster({isvc}, slices, deployments);
  ASSERT_EQ(routing.revisions.size(), 2u);
  const auto& t1 = routing.revisions.at("models/" + r1).target;
  const auto& t2 = routing.revisions.at("models/" + r2).target;
  EXPECT_EQ(t1.container_concurrency, 2);
  EXPECT_EQ(t2.container_concurrency, 4);
  EXPECT_EQ(t1.grpc_targets, std::vector<std::string>{"10.0.0.1:8081"});
  EXPECT_EQ(t2.grpc_targets, std::vector<std::string>{"[fd00::2]:8081"});
  EXPECT_EQ(t2.hosts, std::vector<std::string>{"fd00::2"});
  gateway::RouteTable table = PlanRoutes(routing.services, routing.revisions, {});
  std::vector<gateway::Route> own = table.routes;
  std::erase_if(own, [](const auto& r) { return !r.component.empty() || r.uri; });
  ASSERT_EQ(own.size(), 1u);
  EXPECT_EQ(own[0].timeout_ms, 30000);
  EXPECT_EQ(own[0].model_name, "iris");
  // Unchanged cluster, same routes; an endpoint moving to another host is a change.
  EXPECT_TRUE(
      SameRoutes(table, PlanRoutes(RoutingFromCluster({isvc}, slices, deployments).services,
                                   RoutingFromCluster({isvc}, slices, deployments).revisions, {})));
  slices[0].ready[0].address = "10.0.0.9";
  ClusterRouting moved = RoutingFromCluster({isvc}, slices, deployments);
  EXPECT_FALSE(SameRoutes(table, PlanRoutes(moved.services, moved.revisions, {})));
}

TEST(KubeRoutesTest, ScaleTargetsAreOspreysKpaRevisionsWithTheirSettings) {
  const std::string r1 = "iris-predictor-00001", r2 = "iris-predictor-00002";
  const std::string spec =
      R"({"minReplicas":0,"maxReplicas":5,"scaleTarget":10,"model":{"modelFormat":{"name":"sklearn"},)"
      R"("storageUri":"gs://b/iris"}})";
  std::vector<DeploymentView> deployments = {Deployed(Revision(1, spec, 0), 2, 2),
                                             Deployed(Revision(2, spec, 0), 0, 0)};
  autoscaler::KpaSpec defaults;
  struct Case {
    const char* name;
    std::string isvc;
    std::string want;  // "key aspired min..max target; " each
  } cases[] = {
      {"both aspired, with the revision's own settings and the annotations",
       Isvc({r1 + ":100"}, r2, r1, R"({"autoscaling.knative.dev/target":"3"})"),
       "models/iris-predictor-00001 aspired 0..5 target 3 at 2 (2 ready); "
       "models/iris-predictor-00002 aspired 0..5 target 3 at 0 (0 ready); "},
      {"a revision out of traffic and not the latest: to zero", Isvc({r2 + ":100"}, r2, r2),
       "models/iris-predictor-00001 retired at 2 (2 ready); "
       "models/iris-predictor-00002 aspired 0..5 target 10 at 0 (0 ready); "},
      {"an HPA scales it: not the gateway",
       Isvc({r1 + ":100"}, r1, r1, R"({"serving.kserve.io/autoscalerClass":"hpa"})"), ""},
  };
  for (const auto& c : cases) {
    std::string got;
    for (const auto& t :
         ScaleTargets({ReadInferenceService(Parse(c.isvc))}, deployments, defaults)) {
      EXPECT_EQ(t.deployment, t.revision + "-deployment");
      if (t.aspired)
        StrAppend(&got, t.key, " aspired ", t.kpa.min_scale, "..", t.kpa.max_scale, " target ",
                  t.kpa.target, " at ", t.replicas, " (", t.ready_replicas, " ready); ");
      else
        StrAppend(&got, t.key, " retired at ", t.replicas, " (", t.ready_replicas, " ready); ");
    }
    EXPECT_EQ(got, c.want) << c.name;
  }
  // Another InferenceService's revisions, or one that is gone: not scaled.
  deployments[0].revision.isvc = "other";
  EXPECT_EQ(ScaleTargets({ReadInferenceService(Parse(Isvc({r2 + ":100"}, r2, r2)))}, deployments,
                         defaults)
                .size(),
            1u);
  EXPECT_TRUE(ScaleTargets({}, deployments, defaults).empty());
}

// A Knative Service "hello" in "apps" with its status: traffic entries
// "revision:percent[:tag]", the latest created and ready revisions.
std::string Ksvc(const std::vector<std::string>& traffic, const std::string& latest_created,
                 const std::string& latest_ready) {
  const std::string t = TrafficJson(traffic, "");
  return StrCat(
      R"({"apiVersion":"serving.knative.dev/v1","kind":"Service",)",
      R"("metadata":{"name":"hello","namespace":"apps","uid":"k1","resourceVersion":"3"},)",
      R"("spec":{"template":{"metadata":{"annotations":{"autoscaling.knative.dev/target":"7",)",
      R"("autoscaling.knative.dev/max-scale":"4"}},"spec":{"containerConcurrency":2,)",
      R"("timeoutSeconds":20,"containers":[{"image":"hello","command":["hello"]}]}}},)",
      R"("status":{"url":"http://hello.apps.example.com","latestCreatedRevisionName":")",
      latest_created, R"(","latestReadyRevisionName":")", latest_ready, R"(","traffic":[)", t,
      "]}}");
}

DeploymentView KnativeDeployed(const std::string& ksvc_json, int number, int replicas, int ready) {
  auto parsed = resources::FromJson(ksvc_json);
  EXPECT_TRUE(parsed.ok()) << parsed.status().message();
  const auto& ks = std::get<resources::KnativeService>(*parsed);
  RevisionSpec rev =
      KnativeRevision(ks, KnativeTemplateJson(ks), KnativeRevisionName(ks, number), number, "t");
  rapidjson::Document d = Parse(DeploymentJson(rev, {"hello", "k1"}, {}, replicas));
  d.AddMember("status", rapidjson::Value(rapidjson::kObjectType), d.GetAllocator());
  d["status"].AddMember("readyReplicas", ready, d.GetAllocator());
  std::optional<DeploymentView> v = ReadDeployment(d);
  EXPECT_TRUE(v.has_value());
  return *v;
}

TEST(KubeRoutesTest, AKnativeServiceRoutesByItsStatusAndScalesByItsTemplate) {
  const std::string json =
      Ksvc({"hello-00001:90", "hello-00002:10:canary"}, "hello-00003", "hello-00002");
  KsvcView k = ReadKnativeService(Parse(json));
  ASSERT_TRUE(k.spec.has_value());
  EXPECT_EQ(k.routing.timeout_seconds, 20);
  EXPECT_EQ(k.routing.aspired,
            (std::vector<std::string>{"apps/hello-00001", "apps/hello-00002", "apps/hello-00003"}));
  std::vector<DeploymentView> deployments = {KnativeDeployed(json, 1, 1, 1),
                                             KnativeDeployed(json, 2, 1, 1),
                                             KnativeDeployed(json, 3, 1, 0)};
  std::vector<SliceView> slices = {
      ReadEndpointSlice(Parse(Slice("apps", "hello-00001", "[" + Ready("10.0.0.1") + "]",
                                    R"([{"name":"http","port":8080,"protocol":"TCP"}])"))),
      ReadEndpointSlice(Parse(Slice("apps", "hello-00002", "[" + Ready("10.0.0.2") + "]",
                                    R"([{"name":"http","port":8080,"protocol":"TCP"}])")))};
  ClusterRouting routing = RoutingFromCluster({}, slices, deployments, {k});
  ASSERT_EQ(routing.knative.size(), 1u);
  ASSERT_EQ(routing.revisions.size(), 3u);
  const auto& r1 = routing.revisions.at("apps/hello-00001");
  EXPECT_EQ(r1.target.hosts, std::vector<std::string>{"10.0.0.1"});
  EXPECT_EQ(r1.target.container_concurrency, 2);
  EXPECT_EQ(r1.phase, RevisionPhase::kReady);
  // The latest created has no endpoint yet and takes no traffic: pending.
  EXPECT_EQ(routing.revisions.at("apps/hello-00003").phase, RevisionPhase::kPending);
  PlatformConfig config;
  gateway::RouteTable table =
      PlanRoutes(routing.services, routing.revisions, config, routing.knative);
  std::string hosts;
  for (const auto& r : table.routes)
    if (!r.hosts.empty() && r.hosts[0].find("example.com") != std::string::npos) {
      StrAppend(&hosts, r.hosts[0], ":");
      for (const auto& w : r.split)
        StrAppend(&hosts, " ", table.revisions[w.revision].revision, "=", w.percent);
      StrAppend(&hosts, "; ");
    }
  EXPECT_NE(hosts.find("hello.apps.example.com: hello-00001=90 hello-00002=10; "),
            std::string::npos)
      << hosts;
  EXPECT_NE(hosts.find("canary-hello.apps.example.com: hello-00002=100; "), std::string::npos)
      << hosts;

  // Scale: every revision of the Service, with the template's KPA settings;
  // one older than its status's and out of it is retired; one newer than
  // any its status names is the operator's latest (the status lags): aspired.
  std::string got;
  autoscaler::KpaSpec defaults;
  const std::string moved = Ksvc({"hello-00002:100"}, "hello-00002", "hello-00002");
  for (const auto& t : ScaleTargets({}, deployments, defaults, {ReadKnativeService(Parse(moved))}))
    StrAppend(&got, t.revision,
              t.aspired ? StrCat(" target ", t.kpa.target, " max ", t.kpa.max_scale) : " retired",
              "; ");
  // target 7 capped by containerConcurrency 2, as Knative caps it.
  EXPECT_EQ(got, "hello-00001 retired; hello-00002 target 2 max 4; hello-00003 target 2 max 4; ");
  // The Service gone (or not parsed): its revisions are not scaled.
  EXPECT_TRUE(ScaleTargets({}, deployments, defaults).empty());
}

TEST(KubeRoutesTest, AScaleIsWrittenWhenTheDecisionChanges) {
  struct Case {
    int desired;
    bool activating;
    int last;
    int current;
    int want_replicas;
    bool want_write;
  } cases[] = {
      {2, false, -1, 2, 2, false},  // first decision: already there
      {2, false, -1, 1, 2, true},   // first decision: differs from what runs
      {2, false, 2, 1, 2, false},   // unchanged decision: not written again
      {3, false, 2, 2, 3, true},    // changed
      {0, false, 1, 1, 0, true},    // to zero
      {0, true, 0, 0, 1, true},     // a request waits: one at once
      {0, true, 0, 1, 1, true},     // what runs may lag the last write: the decision counts
      {2, true, 2, 2, 2, false},    // activating with replicas: unchanged
  };
  for (const auto& c : cases) {
    ScaleWrite w = ScaleFor(c.desired, c.activating, c.last, c.current);
    EXPECT_EQ(w.replicas, c.want_replicas)
        << c.desired << " " << c.activating << " " << c.last << " " << c.current;
    EXPECT_EQ(w.write, c.want_write)
        << c.desired << " " << c.activating << " " << c.last << " " << c.current;
  }
}

}  // namespace
}  // namespace osprey::controlplane
