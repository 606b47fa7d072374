#include "controlplane/knative.h"

#include <gtest/gtest.h>

#include "controlplane/routing.h"

namespace osprey::controlplane {
namespace {

resources::KnativeService Hello() {
  resources::KnativeService ks;
  ks.meta.name = "hello";
  ks.meta.namespace_ = "default";
  resources::Container c;
  c.name = "user-container";
  c.image = "hello";
  c.command = {"hello"};
  ks.revision.containers = {c};
  ks.revision.min_replicas = 0;
  ks.revision.timeout_seconds = 300;
  ks.traffic = {{.latest_revision = true, .percent = 100}};
  return ks;
}

RevisionView Rev(const resources::KnativeService& ks, const std::string& name, int number,
                 RevisionPhase phase) {
  RevisionView v;
  v.spec = KnativeRevision(ks, KnativeTemplateJson(ks), name, number, "t");
  v.observed.phase = phase;
  return v;
}

std::vector<std::string> Conditions(const KnativePlan& p) {
  std::vector<std::string> out;
  for (const auto& c : p.status.conditions)
    out.push_back(c.type + "=" + c.status + (c.reason.empty() ? "" : ":" + c.reason));
  return out;
}

std::vector<std::string> Traffic(const KnativePlan& p) {
  std::vector<std::string> out;
  for (const auto& t : p.status.traffic)
    out.push_back(t.revision + ":" + std::to_string(t.percent) +
                  (t.tag.empty() ? "" : "#" + t.tag) + (t.latest ? "@latest" : ""));
  return out;
}

KnativePlan Plan(const resources::KnativeService& ks, std::vector<RevisionView> revisions,
                 std::vector<TrafficTarget> stored = {}) {
  static const PlatformConfig config;
  KnativeInput in;
  in.service = &ks;
  in.template_json = KnativeTemplateJson(ks);
  in.revisions = std::move(revisions);
  in.config = &config;
  in.now = "now";
  in.stored_traffic = std::move(stored);
  return ReconcileKnative(in);
}

using Phase = RevisionPhase;

TEST(ReconcileKnative, FirstRevisionThenReady) {
  const auto ks = Hello();
  KnativePlan first = Plan(ks, {});
  ASSERT_TRUE(first.create.has_value());
  EXPECT_EQ(first.create->name, "hello-00001");
  EXPECT_EQ(first.create->kind, kKnativeServiceKind);
  EXPECT_EQ(first.create->container.command, std::vector<std::string>{"hello"});
  EXPECT_EQ(first.replicas, (std::map<std::string, int>{{"hello-00001", 0}}));
  EXPECT_EQ(Conditions(first),
            (std::vector<std::string>{"ConfigurationsReady=Unknown:RevisionMissing",
                                      "Ready=Unknown:RevisionMissing",
                                      "RoutesReady=Unknown:RevisionMissing"}));
  EXPECT_TRUE(first.status.traffic.empty());
  EXPECT_EQ(first.status.url, "http://hello.default.example.com:8080");
  EXPECT_EQ(first.status.address, "http://hello.default.svc.cluster.local");

  KnativePlan ready = Plan(ks, {Rev(ks, "hello-00001", 1, Phase::kReady)});
  EXPECT_FALSE(ready.create.has_value());
  EXPECT_EQ(ready.status.latest_created, "hello-00001");
  EXPECT_EQ(ready.status.latest_ready, "hello-00001");
  EXPECT_EQ(Conditions(ready), (std::vector<std::string>{"ConfigurationsReady=True", "Ready=True",
                                                         "RoutesReady=True"}));
  EXPECT_EQ(Traffic(ready), std::vector<std::string>{"hello-00001:100@latest"});
}

TEST(ReconcileKnative, Table) {
  const auto v1 = Hello();
  auto v2 = Hello();
  v2.revision.containers[0].env = {{"TARGET", "v2"}};
  auto split = v2;  // 90/10 by name, the new one tagged
  split.traffic = {{.revision_name = "hello-00001", .percent = 90},
                   {.revision_name = "hello-00002", .percent = 10, .tag = "candidate"}};
  auto missing = v1;
  missing.traffic = {{.revision_name = "hello-00009", .percent = 100}};
  auto named = v2;
  named.revision_name = "hello-blue";
  const std::vector<TrafficTarget> stored = {{"hello-00001", 100, "", true}};
  struct Row {
    std::string what;
    resources::KnativeService spec;
    std::vector<RevisionView> revisions;
    std::string create;  // "" none
    std::vector<std::string> traffic;
    std::vector<std::string> conditions;
    std::map<std::string, int> replicas;
  } rows[] = {
      {"a template change makes the next revision; the old keeps the traffic until it is ready",
       v2,
       {Rev(v1, "hello-00001", 1, Phase::kReady)},
       "hello-00002",
       {"hello-00001:100@latest"},
       {"ConfigurationsReady=Unknown:RevisionMissing", "Ready=Unknown:RevisionMissing",
        "RoutesReady=True"},
       {{"hello-00001", 0}, {"hello-00002", 0}}},
      {"once ready it takes the traffic and the old one retires",
       v2,
       {Rev(v1, "hello-00001", 1, Phase::kReady), Rev(v2, "hello-00002", 2, Phase::kReady)},
       "",
       {"hello-00002:100@latest"},
       {"ConfigurationsReady=True", "Ready=True", "RoutesReady=True"},
       {{"hello-00002", 0}}},
      {"a failed latest revision fails the configuration; traffic stays",
       v2,
       {Rev(v1, "hello-00001", 1, Phase::kReady), Rev(v2, "hello-00002", 2, Phase::kFailed)},
       "",
       {"hello-00001:100@latest"},
       {"ConfigurationsReady=False:RevisionFailed", "Ready=False:RevisionFailed",
        "RoutesReady=True"},
       {{"hello-00001", 0}, {"hello-00002", 0}}},
      {"a split by revision name with a tag",
       split,
       {Rev(v1, "hello-00001", 1, Phase::kReady), Rev(v2, "hello-00002", 2, Phase::kReady)},
       "",
       {"hello-00001:90", "hello-00002:10#candidate"},
       {"ConfigurationsReady=True", "Ready=True", "RoutesReady=True"},
       {{"hello-00001", 0}, {"hello-00002", 0}}},
      {"a split naming a revision not ready yet keeps the last traffic",
       split,
       {Rev(v1, "hello-00001", 1, Phase::kReady), Rev(v2, "hello-00002", 2, Phase::kLoading)},
       "",
       {"hello-00001:100@latest"},
       {"ConfigurationsReady=Unknown:RevisionMissing", "Ready=Unknown:RevisionMissing",
        "RoutesReady=Unknown:RevisionMissing"},
       {{"hello-00001", 0}, {"hello-00002", 0}}},
      {"a missing revision in traffic fails the route",
       missing,
       {Rev(v1, "hello-00001", 1, Phase::kReady)},
       "",
       {"hello-00001:100@latest"},
       {"ConfigurationsReady=True", "Ready=False:RevisionMissing",
        "RoutesReady=False:RevisionMissing"},
       {{"hello-00001", 0}}},
      {"a failed revision named in traffic fails the route",
       split,
       {Rev(v1, "hello-00001", 1, Phase::kReady), Rev(v2, "hello-00002", 2, Phase::kFailed)},
       "",
       {"hello-00001:100@latest"},
       {"ConfigurationsReady=False:RevisionFailed", "Ready=False:RevisionFailed",
        "RoutesReady=False:RevisionFailed"},
       {{"hello-00001", 0}, {"hello-00002", 0}}},
      {"the template's own name names the revision",
       named,
       {Rev(v1, "hello-00001", 1, Phase::kReady)},
       "hello-blue",
       {"hello-00001:100@latest"},
       {"ConfigurationsReady=Unknown:RevisionMissing", "Ready=Unknown:RevisionMissing",
        "RoutesReady=True"},
       {{"hello-00001", 0}, {"hello-blue", 0}}},
  };
  for (const Row& row : rows) {
    KnativePlan p = Plan(row.spec, row.revisions, stored);
    EXPECT_EQ(p.create ? p.create->name : "", row.create) << row.what;
    EXPECT_EQ(Traffic(p), row.traffic) << row.what;
    EXPECT_EQ(Conditions(p), row.conditions) << row.what;
    EXPECT_EQ(p.replicas, row.replicas) << row.what;
  }
}

TEST(ReconcileKnative, LatestReadyNeverGoesBackAndScaledAwayStaysRoutable) {
  const auto v1 = Hello();
  auto v2 = Hello();
  v2.revision.containers[0].env = {{"TARGET", "v2"}};
  auto retired = Rev(v1, "hello-00001", 1, Phase::kRetired);
  retired.observed.ever_ready = true;
  auto ready2 = Rev(v2, "hello-00002", 2, Phase::kReady);
  ready2.observed.ever_ready = true;
  // Pinned by name to a revision scaled away: still routable (it is started again).
  auto pinned = v2;
  pinned.traffic = {{.revision_name = "hello-00001", .percent = 100}};
  KnativeInput in;
  PlatformConfig config;
  in.service = &pinned;
  in.template_json = KnativeTemplateJson(pinned);
  in.revisions = {retired, ready2};
  in.config = &config;
  in.stored_latest_ready = "hello-00002";
  KnativePlan p = ReconcileKnative(in);
  EXPECT_EQ(Traffic(p), std::vector<std::string>{"hello-00001:100"});
  EXPECT_EQ(p.status.latest_ready, "hello-00002");
  EXPECT_EQ(p.replicas, (std::map<std::string, int>{{"hello-00001", 0}, {"hello-00002", 0}}));
  // A newer latest created that is not ready yet keeps the stored latest ready,
  // even when an older one is Ready.
  auto v3 = Hello();
  v3.revision.containers[0].env = {{"TARGET", "v3"}};
  auto loading3 = Rev(v3, "hello-00003", 3, Phase::kLoading);
  in.service = &v3;
  in.template_json = KnativeTemplateJson(v3);
  in.revisions = {Rev(v1, "hello-00001", 1, Phase::kReady), ready2, loading3};
  EXPECT_EQ(ReconcileKnative(in).status.latest_ready, "hello-00002");
}

TEST(ReconcileKnative, MinScaleKeepsReplicas) {
  auto ks = Hello();
  ks.revision.min_replicas = 2;
  KnativePlan p = Plan(ks, {});
  ASSERT_TRUE(p.create.has_value());
  EXPECT_EQ(p.create->min_replicas, 2);
  EXPECT_EQ(p.replicas.at("hello-00001"), 2);
}

TEST(KnativeRoutes, HostsTagsAndSplit) {
  resources::ObjectMeta meta;
  meta.name = "hello";
  meta.namespace_ = "default";
  KnativeRouting k;
  k.meta = meta;
  k.timeout_seconds = 30;
  k.traffic = {{"hello-00001", 90, "", false}, {"hello-00002", 10, "candidate", false}};
  k.aspired = {"default/hello-00001", "default/hello-00002"};
  std::map<std::string, RevisionRouting> revisions;
  for (const char* name : {"hello-00001", "hello-00002"}) {
    RevisionRouting& r = revisions[std::string("default/") + name];
    r.target.key = std::string("default/") + name;
    r.target.revision = name;
    r.aspired = true;
    r.phase = RevisionPhase::kReady;
  }
  PlatformConfig config;
  gateway::RouteTable t = PlanRoutes({}, revisions, config, {k});
  ASSERT_EQ(t.revisions.size(), 2u);
  auto none = [](std::string_view) { return std::string_view(); };
  const gateway::Route* main = gateway::MatchRoute(t, "hello.default.example.com", "/", none);
  ASSERT_NE(main, nullptr);
  ASSERT_EQ(main->split.size(), 2u);
  EXPECT_EQ(t.revisions[main->split[0].revision].revision, "hello-00001");
  EXPECT_EQ(main->split[0].percent, 90);
  EXPECT_EQ(main->split[1].percent, 10);
  EXPECT_EQ(main->timeout_ms, 30000);
  EXPECT_EQ(gateway::MatchRoute(t, "hello.default.svc.cluster.local:80", "/", none), main);
  const gateway::Route* tag =
      gateway::MatchRoute(t, "candidate-hello.default.example.com", "/", none);
  ASSERT_NE(tag, nullptr);
  ASSERT_EQ(tag->split.size(), 1u);
  EXPECT_EQ(t.revisions[tag->split[0].revision].revision, "hello-00002");
  const gateway::Route* path = gateway::MatchRoute(t, "other", "/serving/default/hello/x", none);
  ASSERT_NE(path, nullptr);
  EXPECT_EQ(gateway::RouteTarget(*path, "/serving/default/hello/x"), "/x");
  EXPECT_EQ(gateway::MatchRoute(t, "nope.default.example.com", "/", none), nullptr);
}

TEST(KnativeTest, TransitionsStampTimesAndEventTheReadyChange) {
  auto status = [](const char* ready, const char* message = "") {
    KnativeStatus s;
    s.conditions = {{"ConfigurationsReady", ready, "", message},
                    {"Ready", ready, "", message},
                    {"RoutesReady", "True", "", ""}};
    return s;
  };
  std::map<std::string, std::string> times;
  // First status: every condition stamped; not ready is no change from nothing.
  EXPECT_TRUE(KnativeTransition({}, status("Unknown"), "hello", "t1", &times).empty());
  EXPECT_EQ(times, (std::map<std::string, std::string>{
                       {"ConfigurationsReady", "t1"}, {"Ready", "t1"}, {"RoutesReady", "t1"}}));
  std::vector<EventRecord> e =
      KnativeTransition(status("Unknown"), status("True"), "hello", "t2", &times);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], (EventRecord{"Normal", "ServiceReady", "Service hello is Ready"}));
  EXPECT_EQ(times["Ready"], "t2");
  EXPECT_EQ(times["RoutesReady"], "t1");  // unchanged: kept
  e = KnativeTransition(status("True"), status("False", "revision failed"), "hello", "t3", &times);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], (EventRecord{"Warning", "ServiceNotReady", "revision failed"}));
  EXPECT_TRUE(KnativeTransition(status("False"), status("False"), "hello", "t4", &times).empty());
  EXPECT_EQ(times["Ready"], "t3");
}

}  // namespace
}  // namespace osprey::controlplane
