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
// revisions: "key:ports". `all`: with the components' routes and the
// path-based ones, as "[component] uri -> rewrite hosts|model|split".
std::string Render(const RouteTable& t, bool all = false) {
  std::string out;
  for (const auto& r : t.routes) {
    if (!all && (!r.component.empty() || r.rewrite.has_value())) continue;
    if (all && !r.component.empty()) out += "[" + r.component + "] ";
    if (all && r.uri.has_value())
      out += (r.uri->kind == gateway::StringMatch::Kind::kSuffix ? "*" : "") + r.uri->value +
             (r.uri->kind == gateway::StringMatch::Kind::kPrefix ? "*" : "") +
             (r.uri->kind == gateway::StringMatch::Kind::kPrefixSuffix ? "*" + r.uri->suffix : "") +
             (r.rewrite ? " -> " + *r.rewrite : "") + " ";
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
  std::erase_if(t.routes, [](const auto& r) { return !r.component.empty() || r.uri; });
  ASSERT_EQ(t.routes.size(), 2u);
  EXPECT_EQ(t.routes[0].hosts, std::vector<std::string>{"iris.default.models.corp"});
  EXPECT_EQ(t.routes[0].timeout_ms, 3000);
  EXPECT_EQ(t.routes[1].hosts, std::vector<std::string>{"iris.team.models.corp"});
  EXPECT_EQ(t.routes[1].namespace_, "team");
  EXPECT_EQ(t.routes[1].timeout_ms, 0);
  ASSERT_EQ(t.revisions.size(), 2u);
  EXPECT_EQ(t.revisions[t.routes[1].split[0].revision].ports, std::vector<uint16_t>{2});
}

// A predictor serving its model under another name (--model_name): the
// service's and the predictor's routes are found by that name; with a
// transformer in front, the service's own route keeps the service's name.
TEST(PlanRoutes, ServedModelName) {
  ServiceRouting s = Service({{"iris-predictor-00001", 100}}, "iris-predictor-00001");
  s.served_model_name = "flowers";
  std::map<std::string, RevisionRouting> revisions = {
      {"default/iris-predictor-00001", Rev("default/iris-predictor-00001", {1})}};
  RouteTable t = PlanRoutes({s}, revisions, PlatformConfig{});
  for (const auto& r : t.routes)
    if (!r.uri) EXPECT_EQ(r.model_name, "flowers") << r.component;
  s.status.transformer = ComponentStatus{};
  s.status.transformer->traffic = {{"iris-transformer-00001", 100}};
  s.status.transformer->latest_created = "iris-transformer-00001";
  revisions["default/iris-transformer-00001"] = Rev("default/iris-transformer-00001", {2});
  t = PlanRoutes({s}, revisions, PlatformConfig{});
  for (const auto& r : t.routes) {
    if (r.uri) continue;
    EXPECT_EQ(r.model_name, r.component == "predictor" ? "flowers" : "iris") << r.component;
  }
}

// A transformer takes the service's host; each component keeps its own
// host and path, where the transformer reaches the predictor; V1 :explain
// goes to the explainer.
TEST(PlanRoutes, ComponentsAndPaths) {
  PlatformConfig config;
  const std::map<std::string, RevisionRouting> revisions = {
      {"default/iris-predictor-00001", Rev("default/iris-predictor-00001", {9001})},
      {"default/iris-transformer-00001", Rev("default/iris-transformer-00001", {9101})},
      {"default/iris-transformer-00002", Rev("default/iris-transformer-00002", {9102})},
      {"default/iris-explainer-00001", Rev("default/iris-explainer-00001", {9201})},
  };
  ServiceRouting plain = Service({{"iris-predictor-00001", 100}}, "iris-predictor-00001");
  ServiceRouting both = plain;
  both.status.transformer = ComponentStatus{
      "",
      "iris-transformer-00002",
      "iris-transformer-00002",
      "",
      "",
      {{"iris-transformer-00002", 20, "latest", true}, {"iris-transformer-00001", 80, "prev"}}};
  both.status.explainer = ComponentStatus{
      "", "iris-explainer-00001", "iris-explainer-00001", "", "", {{"iris-explainer-00001", 100}}};
  both.transformer_timeout_seconds = 7;
  struct Case {
    const char* name;
    ServiceRouting service;
    std::string want;
  } cases[] = {
      {"a predictor alone: its host, its path, the service's host and path", plain,
       "[predictor] /serving/default/iris-predictor/* -> / *,||iris-predictor-00001=100,\n"
       "[predictor] iris-predictor-default.example.com,|iris|iris-predictor-00001=100,\n"
       "/serving/default/iris/* -> / *,||iris-predictor-00001=100,\n"
       "iris-default.example.com,|iris|iris-predictor-00001=100,\n"
       "default/iris-predictor-00001:9001,\n"},
      {"transformer first, explainer for :explain", both,
       "[predictor] /serving/default/iris-predictor/* -> / *,||iris-predictor-00001=100,\n"
       "[predictor] iris-predictor-default.example.com,|iris|iris-predictor-00001=100,\n"
       "[transformer] /serving/default/iris-transformer/* -> / *,||"
       "iris-transformer-00002=20,iris-transformer-00001=80,\n"
       "[transformer] iris-transformer-default.example.com,|iris|"
       "iris-transformer-00002=20,iris-transformer-00001=80,\n"
       "[explainer] /serving/default/iris-explainer/* -> / *,||iris-explainer-00001=100,\n"
       "[explainer] iris-explainer-default.example.com,|iris|iris-explainer-00001=100,\n"
       "/serving/default/iris/*:explain -> / *,||iris-explainer-00001=100,\n"
       "*:explain iris-default.example.com,|iris|iris-explainer-00001=100,\n"
       "/serving/default/iris/* -> / *,||iris-transformer-00002=20,iris-transformer-00001=80,\n"
       "iris-default.example.com,|iris|iris-transformer-00002=20,iris-transformer-00001=80,\n"
       "default/iris-predictor-00001:9001,\n"
       "default/iris-transformer-00002:9102,\n"
       "default/iris-transformer-00001:9101,\n"
       "default/iris-explainer-00001:9201,\n"},
  };
  for (const auto& c : cases) {
    RouteTable t = PlanRoutes({c.service}, revisions, config);
    EXPECT_EQ(Render(t, true), c.want) << c.name;
  }
  RouteTable t = PlanRoutes({both}, revisions, config);
  auto none = [](std::string_view) { return std::string_view(); };
  const gateway::Route* r = gateway::MatchRoute(
      t, "127.0.0.1:8080", "/serving/default/iris-predictor/v1/models/iris", none);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->component, "predictor");
  EXPECT_EQ(gateway::RouteTarget(*r, "/serving/default/iris-predictor/v1/models/iris:predict?x=1"),
            "/v1/models/iris:predict?x=1");
  r = gateway::MatchRoute(t, "iris-default.example.com", "/v1/models/iris:predict", none);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->timeout_ms, 7000) << "the transformer's timeout";
  EXPECT_EQ(t.revisions[r->split[0].revision].revision, "iris-transformer-00002");
  r = gateway::MatchRoute(t, "iris-default.example.com", "/v1/models/iris:explain", none);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(t.revisions[r->split[0].revision].revision, "iris-explainer-00001");
  // :explain by the service's path, and by model name on any host.
  r = gateway::MatchRoute(t, "127.0.0.1", "/serving/default/iris/v1/models/iris:explain", none);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(t.revisions[r->split[0].revision].revision, "iris-explainer-00001");
  EXPECT_EQ(gateway::RouteTarget(*r, "/serving/default/iris/v1/models/iris:explain"),
            "/v1/models/iris:explain");
  r = gateway::MatchRoute(t, "127.0.0.1", "/serving/default/iris/v1/models/iris:predict", none);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(t.revisions[r->split[0].revision].revision, "iris-transformer-00002");
  r = gateway::MatchRoute(t, "127.0.0.1", "/v1/models/iris:explain", none);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(t.revisions[r->split[0].revision].revision, "iris-explainer-00001");
  // The model-name fallback: the service's own route, or the predictor's.
  r = gateway::MatchRoute(t, "127.0.0.1", "/v2/models/iris", none);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->component, "");
  r = gateway::MatchRoute(t, "127.0.0.1", "/v2/models/iris", none, "predictor");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->component, "predictor");
}

// Each route carries its component's logger: a component's own routes, the
// service's main routes the entry component's, :explain the explainer's.
TEST(PlanRoutes, LoggersPerComponent) {
  PlatformConfig config;
  const std::map<std::string, RevisionRouting> revisions = {
      {"default/iris-predictor-00001", Rev("default/iris-predictor-00001", {9001})},
      {"default/iris-transformer-00001", Rev("default/iris-transformer-00001", {9101})},
      {"default/iris-explainer-00001", Rev("default/iris-explainer-00001", {9201})},
  };
  ServiceRouting s = Service({{"iris-predictor-00001", 100}}, "iris-predictor-00001",
                             {{"team", "fraud"}, {"other", "x"}});
  s.status.transformer =
      ComponentStatus{"", "iris-transformer-00001",         "iris-transformer-00001", "",
                      "", {{"iris-transformer-00001", 100}}};
  s.status.explainer = ComponentStatus{
      "", "iris-explainer-00001", "iris-explainer-00001", "", "", {{"iris-explainer-00001", 100}}};
  s.predictor_logger = resources::Logger{"http://sink/p", "response", {"x-a"}, {"team", "absent"}};
  s.transformer_logger = resources::Logger{"http://sink/t", "request", {}, {}};
  RouteTable t = PlanRoutes({s}, revisions, config);
  std::string got;
  for (const auto& r : t.routes) {
    got += (r.component.empty() ? std::string("service") : r.component) +
           (r.uri ? " " + r.uri->value + r.uri->suffix : "") + ": ";
    if (r.logger) {
      got += r.logger->component + " " + r.logger->url +
             " mode=" + std::to_string(static_cast<int>(r.logger->mode));
      for (const auto& h : r.logger->metadata_headers) got += " h=" + h;
      for (const auto& [k, v] : r.logger->annotations) got += " a=" + k + "=" + v;
    } else {
      got += "none";
    }
    got += "\n";
  }
  EXPECT_EQ(got,
            "predictor /serving/default/iris-predictor/: predictor http://sink/p mode=2 h=x-a "
            "a=team=fraud\n"
            "predictor: predictor http://sink/p mode=2 h=x-a a=team=fraud\n"
            "transformer /serving/default/iris-transformer/: transformer http://sink/t mode=1\n"
            "transformer: transformer http://sink/t mode=1\n"
            "explainer /serving/default/iris-explainer/: none\n"
            "explainer: none\n"
            "service /serving/default/iris/:explain: none\n"
            "service :explain: none\n"
            "service /serving/default/iris/: transformer http://sink/t mode=1\n"
            "service: transformer http://sink/t mode=1\n");
}

TEST(TraceSampling, AnnotationTable) {
  struct Case {
    const char* value;  // nullptr: no annotation
    std::optional<double> want;
  };
  const Case cases[] = {
      {nullptr, std::nullopt},
      {"0", 0.0},
      {"1", 1.0},
      {"0.25", 0.25},
      {" 0.5 ", 0.5},
      {"1e-2", 0.01},
      {"", std::nullopt},
      {"1.5", std::nullopt},
      {"-0.1", std::nullopt},
      {"25%", std::nullopt},
      {"half", std::nullopt},
      {"nan", std::nullopt},
      {"0.5x", std::nullopt},
  };
  for (const Case& c : cases) {
    std::map<std::string, std::string> annotations = {{"team", "ml"}};
    if (c.value != nullptr) annotations[kTraceSamplingAnnotation] = c.value;
    EXPECT_EQ(TraceSamplingOf(annotations), c.want) << (c.value ? c.value : "(none)");
  }
}

// Every route of the service carries its ratio: the transformer's hop and
// the predictor's decide alike.
TEST(PlanRoutes, TraceSamplingOnEveryRouteOfTheService) {
  const std::map<std::string, RevisionRouting> revisions = {
      {"default/iris-predictor-00001", Rev("default/iris-predictor-00001", {9001})},
      {"default/iris-transformer-00001", Rev("default/iris-transformer-00001", {9101})}};
  ServiceRouting s = Service({{"iris-predictor-00001", 100}}, "iris-predictor-00001",
                             {{kTraceSamplingAnnotation, "0.25"}});
  s.status.transformer =
      ComponentStatus{"", "iris-transformer-00001",         "iris-transformer-00001", "",
                      "", {{"iris-transformer-00001", 100}}};
  RouteTable t = PlanRoutes({s}, revisions, {});
  ASSERT_FALSE(t.routes.empty());
  for (const auto& r : t.routes) EXPECT_EQ(r.trace_sampling, 0.25) << r.component;
  ServiceRouting plain = Service({{"iris-predictor-00001", 100}}, "iris-predictor-00001");
  for (const auto& r : PlanRoutes({plain}, revisions, {}).routes)
    EXPECT_FALSE(r.trace_sampling.has_value());
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
  ServiceRouting logged = s;
  logged.predictor_logger = resources::Logger{"http://sink", "all", {}, {}};
  RouteTable l = PlanRoutes({logged}, revisions, config);
  EXPECT_FALSE(SameRoutes(a, l)) << "a logger added";
  EXPECT_TRUE(SameRoutes(l, PlanRoutes({logged}, revisions, config)));
  logged.predictor_logger->mode = "request";
  EXPECT_FALSE(SameRoutes(l, PlanRoutes({logged}, revisions, config))) << "its mode changed";
  ServiceRouting sampled = s;
  sampled.meta.annotations[kTraceSamplingAnnotation] = "0";
  EXPECT_FALSE(SameRoutes(a, PlanRoutes({sampled}, revisions, config))) << "a sampling ratio";
}

}  // namespace
}  // namespace osprey::controlplane
