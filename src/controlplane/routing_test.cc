#include "controlplane/routing.h"

#include <gtest/gtest.h>

namespace osprey::controlplane {
namespace {

using gateway::RouteTable;

RevisionRouting Rev(const std::string& key, std::vector<uint16_t> ports, bool aspired = true,
                    RevisionPhase phase = RevisionPhase::kReady, int cc = 0) {
  RevisionRouting r;
  r.target.key = key;
  r.target.revision = key.substr(key.find('/') + 1);
  r.target.ports = std::move(ports);
  r.target.container_concurrency = cc;
  r.aspired = aspired;
  r.phase = phase;
  return r;
}

ServiceRouting Service(std::vector<TrafficTarget> traffic, std::string latest,
                       std::map<std::string, std::string> annotations = {},
                       std::vector<std::string> aspired = {}) {
  ServiceRouting s;
  s.meta.name = "iris";
  s.meta.namespace_ = "default";
  s.meta.annotations = std::move(annotations);
  s.status.traffic = std::move(traffic);
  s.status.latest_created = std::move(latest);
  s.aspired = std::move(aspired);
  return s;
}

// A table as text, one route per line: "hosts|model|split|mirror", then the
// revisions: "key:ports".
std::string Render(const RouteTable& t) {
  std::string out;
  for (const auto& r : t.routes) {
    for (const auto& h : r.hosts) out += h + ",";
    out += "|" + r.model_name + "|";
    for (const auto& w : r.split)
      out += t.revisions[w.revision].revision + "=" + std::to_string(w.percent) + ",";
    if (r.mirror)
      out += "|mirror " + t.revisions[r.mirror->revision].revision + "=" +
             std::to_string(r.mirror->percent);
    out += "\n";
  }
  for (const auto& r : t.revisions) {
    out += r.key + ":";
    for (auto p : r.ports) out += std::to_string(p) + ",";
    out += "\n";
  }
  return out;
}

TEST(PlanRoutes, Table) {
  PlatformConfig config;
  const std::map<std::string, RevisionRouting> revisions = {
      {"default/iris-predictor-00001", Rev("default/iris-predictor-00001", {9001})},
      {"default/iris-predictor-00002", Rev("default/iris-predictor-00002", {9002, 9003})},
      {"default/iris-predictor-00003",
       Rev("default/iris-predictor-00003", {}, true, RevisionPhase::kLoading)},
      {"default/iris-predictor-00004",
       Rev("default/iris-predictor-00004", {}, false, RevisionPhase::kRetired)},
  };
  const std::string r1 = "iris-predictor-00001", r2 = "iris-predictor-00002",
                    r3 = "iris-predictor-00003";
  const std::map<std::string, std::string> tags = {
      {"serving.kserve.io/enable-tag-routing", "true"}};
  struct Case {
    const char* name;
    ServiceRouting service;
    std::string want;
  } cases[] = {
      {"all traffic to one revision", Service({{r1, 100, "", true}}, r1),
       "iris-default.example.com,|iris|iris-predictor-00001=100,\n"
       "default/iris-predictor-00001:9001,\n"},
      {"canary split", Service({{r2, 10, "latest", true}, {r1, 90, "prev", false}}, r2),
       "iris-default.example.com,|iris|iris-predictor-00002=10,iris-predictor-00001=90,\n"
       "default/iris-predictor-00002:9002,9003,\n"
       "default/iris-predictor-00001:9001,\n"},
      {"a 0% entry keeps no split share", Service({{r2, 0, "latest", true}, {r1, 100}}, r2),
       "iris-default.example.com,|iris|iris-predictor-00001=100,\n"
       "default/iris-predictor-00001:9001,\n"},
      {"aspired revisions are in the table without traffic",
       Service({{r1, 100}}, r3, {},
               {"default/iris-predictor-00001", "default/iris-predictor-00003"}),
       "iris-default.example.com,|iris|iris-predictor-00001=100,\n"
       "default/iris-predictor-00001:9001,\n"
       "default/iris-predictor-00003:\n"},
      {"tag routing: latest- and prev- hosts",
       Service({{r2, 10, "latest", true}, {r1, 90, "prev"}}, r2, tags),
       "latest-iris-default.example.com,||iris-predictor-00002=100,\n"
       "prev-iris-default.example.com,||iris-predictor-00001=100,\n"
       "iris-default.example.com,|iris|iris-predictor-00002=10,iris-predictor-00001=90,\n"
       "default/iris-predictor-00002:9002,9003,\n"
       "default/iris-predictor-00001:9001,\n"},
      {"tag routing: no latest- host for a retired latest revision",
       Service({{r1, 100}}, "iris-predictor-00004", tags),
       "iris-default.example.com,|iris|iris-predictor-00001=100,\n"
       "default/iris-predictor-00001:9001,\n"},
      {"mirror to the ready latest revision, capped at 100",
       Service({{r1, 100, "prev"}, {r2, 0, "latest", true}}, r2,
               {{"serving.osprey.dev/mirror-percent", "250"}}),
       "iris-default.example.com,|iris|iris-predictor-00001=100,|mirror iris-predictor-00002=100\n"
       "default/iris-predictor-00001:9001,\n"
       "default/iris-predictor-00002:9002,9003,\n"},
      {"no mirror while the latest revision is not ready",
       Service({{r1, 100}}, r3, {{"serving.osprey.dev/mirror-percent", "20"}}),
       "iris-default.example.com,|iris|iris-predictor-00001=100,\n"
       "default/iris-predictor-00001:9001,\n"},
      {"a traffic entry of an unknown revision is left out",
       Service({{"iris-predictor-00009", 100}}, r1), "iris-default.example.com,|iris|\n"},
  };
  for (const auto& c : cases) {
    RouteTable t = PlanRoutes({c.service}, revisions, config);
    EXPECT_EQ(Render(t), c.want) << c.name;
    for (const auto& r : t.routes) EXPECT_NE(r.draws, nullptr) << c.name;
    for (size_t i = 0; i < t.routes.size(); ++i)
      for (size_t j = i + 1; j < t.routes.size(); ++j)
        EXPECT_NE(t.routes[i].draws, t.routes[j].draws) << c.name << ": a draw counter each";
  }
}

TEST(PlanRoutes, TimeoutAndNamespaces) {
  PlatformConfig config;
  config.domain = "models.corp";
  config.domain_template = "{{.Name}}.{{.Namespace}}.{{.Domain}}";
  ServiceRouting a = Service({{"iris-predictor-00001", 100}}, "iris-predictor-00001");
  a.timeout_seconds = 3;
  ServiceRouting b = a;
  b.meta.namespace_ = "team";
  b.timeout_seconds.reset();
  std::map<std::string, RevisionRouting> revisions = {
      {"default/iris-predictor-00001", Rev("default/iris-predictor-00001", {1})},
      {"team/iris-predictor-00001", Rev("team/iris-predictor-00001", {2})}};
  RouteTable t = PlanRoutes({a, b}, revisions, config);
  ASSERT_EQ(t.routes.size(), 2u);
  EXPECT_EQ(t.routes[0].hosts, std::vector<std::string>{"iris.default.models.corp"});
  EXPECT_EQ(t.routes[0].timeout_ms, 3000);
  EXPECT_EQ(t.routes[1].hosts, std::vector<std::string>{"iris.team.models.corp"});
  EXPECT_EQ(t.routes[1].namespace_, "team");
  EXPECT_EQ(t.routes[1].timeout_ms, 0);
  ASSERT_EQ(t.revisions.size(), 2u);
  EXPECT_EQ(t.revisions[t.routes[1].split[0].revision].ports, std::vector<uint16_t>{2});
}

TEST(SameRoutes, ComparesWhatRoutesNotTheDrawCounters) {
  PlatformConfig config;
  std::map<std::string, RevisionRouting> revisions = {
      {"default/iris-predictor-00001", Rev("default/iris-predictor-00001", {9001})},
      {"default/iris-predictor-00002", Rev("default/iris-predictor-00002", {9002})}};
  ServiceRouting s = Service({{"iris-predictor-00001", 100}}, "iris-predictor-00001");
  RouteTable a = PlanRoutes({s}, revisions, config);
  EXPECT_TRUE(SameRoutes(a, PlanRoutes({s}, revisions, config)));

  ServiceRouting split =
      Service({{"iris-predictor-00001", 50}, {"iris-predictor-00002", 50}}, "iris-predictor-00002");
  EXPECT_FALSE(SameRoutes(a, PlanRoutes({split}, revisions, config)));
  ServiceRouting timeout = s;
  timeout.timeout_seconds = 5;
  EXPECT_FALSE(SameRoutes(a, PlanRoutes({timeout}, revisions, config)));
  auto more = revisions;
  more["default/iris-predictor-00001"].target.ports.push_back(9005);
  EXPECT_FALSE(SameRoutes(a, PlanRoutes({s}, more, config))) << "a replica joined";
  auto moved = revisions;
  moved["default/iris-predictor-00001"].target.hosts = {"10.0.0.7"};
  EXPECT_FALSE(SameRoutes(a, PlanRoutes({s}, moved, config))) << "same port, another host";
  auto limited = revisions;
  limited["default/iris-predictor-00001"].target.container_concurrency = 4;
  EXPECT_FALSE(SameRoutes(a, PlanRoutes({s}, limited, config)));
  ServiceRouting mirrored = s;
  mirrored.meta.annotations[kMirrorAnnotation] = "10";
  mirrored.status.latest_created = "iris-predictor-00002";
  EXPECT_FALSE(SameRoutes(a, PlanRoutes({mirrored}, revisions, config)));
}

}  // namespace
}  // namespace osprey::controlplane
