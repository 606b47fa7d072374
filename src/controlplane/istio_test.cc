#include "controlplane/istio.h"

#include <gtest/gtest.h>

#include <optional>
#include <set>

#include "controlplane/knative.h"

namespace osprey::controlplane {
namespace {

resources::VirtualService Bookinfo() {
  auto parsed = resources::ParseYaml(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo}
spec:
  hosts: ["*"]
  gateways: [bookinfo-gateway]
  http:
  - match:
    - uri: {exact: /productpage}
    - uri: {exact: /login}
    route:
    - destination: {host: productpage, port: {number: 9080}}
)");
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return std::get<resources::VirtualService>((*parsed)[0]);
}

resources::ServiceEntry Productpage() {
  auto parsed = resources::ParseYaml(R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: productpage}
spec:
  hosts: [productpage.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 34567}}]
)");
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return std::get<resources::ServiceEntry>((*parsed)[0]);
}

resources::IstioGateway Gateway(const std::string& name) {
  resources::IstioGateway g;
  g.meta.name = name;
  g.servers = {{80, "http", "HTTP", {"*"}}};
  return g;
}

TEST(IstioFqdn, ShortNamesAreInTheNamespace) {
  EXPECT_EQ(IstioFqdn("reviews", "prod"), "reviews.prod.svc.cluster.local");
  EXPECT_EQ(IstioFqdn("reviews.test", "prod"), "reviews.test.svc.cluster.local");
  EXPECT_EQ(IstioFqdn("reviews.test.svc", "prod"), "reviews.test.svc.cluster.local");
  EXPECT_EQ(IstioFqdn("api.example.com", "prod"), "api.example.com");
}

TEST(CombineShares, MultipliesAndRoundsToOneHundred) {
  EXPECT_EQ(CombineShares({{90, {{"a", 50}, {"b", 50}}}, {10, {{"c", 100}}}}),
            (std::vector<KeyShare>{{"a", 45}, {"b", 45}, {"c", 10}}));
  EXPECT_EQ(CombineShares({{50, {{"a", 33}, {"b", 67}}}, {50, {{"c", 100}}}}),
            (std::vector<KeyShare>{{"a", 17}, {"b", 33}, {"c", 50}}));
  // An unknown destination's weight stays unserved.
  EXPECT_EQ(CombineShares({{80, {}}, {20, {{"c", 100}}}}), (std::vector<KeyShare>{{"c", 20}}));
  EXPECT_TRUE(CombineShares({{100, {}}}).empty());
}

TEST(PlanIstio, BookinfoThroughAServiceEntry) {
  const auto vs = Bookinfo();
  const auto se = Productpage();
  const auto gw = Gateway("bookinfo-gateway");
  IstioInput in;
  in.virtual_services = {&vs};
  in.service_entries = {&se};
  in.gateways = {&gw};
  IstioPlan plan = PlanIstio(in);
  EXPECT_TRUE(plan.problems.empty());
  ASSERT_EQ(plan.routes.size(), 2u);  // one per match
  for (const auto& r : plan.routes) {
    EXPECT_TRUE(r.wildcard);
    EXPECT_EQ(r.route.hosts, std::vector<std::string>{"*"});
    EXPECT_EQ(r.split, (std::vector<KeyShare>{{"default/serviceentry:productpage:9080", 100}}));
  }
  EXPECT_EQ(plan.routes[0].route.uri->value, "/productpage");
  EXPECT_EQ(plan.routes[1].route.uri->value, "/login");
  const RevisionRouting& ep = plan.endpoints.at("default/serviceentry:productpage:9080");
  EXPECT_EQ(ep.target.ports, std::vector<uint16_t>{34567});
  EXPECT_EQ(ep.target.hosts, std::vector<std::string>{"127.0.0.1"});

  // Through PlanRoutes: matched by path on any host, 404 elsewhere.
  gateway::RouteTable t = PlanRoutes({}, plan.endpoints, PlatformConfig{}, {}, plan.routes);
  auto none = [](std::string_view) { return std::string_view(); };
  const gateway::Route* r = gateway::MatchRoute(t, "any.host", "/login", none, {}, "GET");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(t.revisions[r->split[0].revision].ports, std::vector<uint16_t>{34567});
  EXPECT_EQ(gateway::MatchRoute(t, "any.host", "/other", none, {}, "GET"), nullptr);
}

TEST(PlanIstio, CatchAllRoutesLeaveModelsAndInternalCallsToTheirServices) {
  auto parsed = resources::ParseYaml(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: all}
spec:
  hosts: ["*"]
  http: [{route: [{destination: {host: productpage, port: {number: 9080}}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: ["*.shop.example.com", reviews]
  http: [{rewrite: {uri: /v1}, route: [{destination: {host: productpage, port: {number: 9080}}}]}]
)");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const auto all = std::get<resources::VirtualService>((*parsed)[0]);
  const auto shop = std::get<resources::VirtualService>((*parsed)[1]);
  const auto se = Productpage();
  IstioInput in;
  in.virtual_services = {&all, &shop};
  in.service_entries = {&se};
  IstioPlan plan = PlanIstio(in);
  // An InferenceService served by model name: its route has no host here.
  std::map<std::string, RevisionRouting> revisions = plan.endpoints;
  revisions["default/iris-predictor-00001"].target.key = "default/iris-predictor-00001";
  gateway::RouteTable t = PlanRoutes({}, revisions, PlatformConfig{}, {}, plan.routes);
  gateway::Route iris;
  iris.name = "iris";
  iris.model_name = "iris";
  iris.hosts = {"iris-default.example.com"};
  iris.split = {{t.revisions.size(), 100}};
  t.revisions.push_back(revisions["default/iris-predictor-00001"].target);
  t.routes.push_back(iris);
  auto none = [](std::string_view) { return std::string_view(); };
  // The model name wins over the catch-all; anything else goes to it.
  const gateway::Route* r =
      gateway::MatchRoute(t, "localhost", "/v1/models/iris:predict", none, {}, "POST");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->name, "iris");
  r = gateway::MatchRoute(t, "localhost", "/other", none, {}, "GET");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->name, "all");
  // The more specific wildcard first; a short host covers its in-cluster names.
  EXPECT_EQ(gateway::MatchRoute(t, "eu.shop.example.com", "/x", none, {}, "GET")->name, "shop");
  EXPECT_EQ(
      gateway::MatchRoute(t, "reviews.default.svc.cluster.local", "/x", none, {}, "GET")->name,
      "shop");
  // A rewrite without a uri match replaces the leading "/".
  EXPECT_EQ(gateway::RouteTarget(*gateway::MatchRoute(t, "reviews", "/x", none, {}, "GET"), "/x"),
            "/v1x");
  // gRPC and in-process calls (no method) never take a VirtualService route.
  EXPECT_EQ(gateway::MatchRoute(t, "eu.shop.example.com", "/x", none), nullptr);
}

TEST(PlanIstio, UnboundOrUnknownIsAProblem) {
  const auto vs = Bookinfo();
  IstioInput in;
  in.virtual_services = {&vs};
  IstioPlan unbound = PlanIstio(in);
  EXPECT_TRUE(unbound.routes.empty());
  EXPECT_EQ(unbound.problems.at("default/bookinfo"),
            std::vector<std::string>{"gateway default/bookinfo-gateway does not exist"});
  const auto gw = Gateway("bookinfo-gateway");
  in.gateways = {&gw};
  IstioPlan unknown = PlanIstio(in);
  ASSERT_EQ(unknown.routes.size(), 2u);
  EXPECT_TRUE(unknown.routes[0].split.empty());
  ASSERT_EQ(unknown.problems.at("default/bookinfo").size(), 1u);  // once per HTTPRoute
  EXPECT_NE(unknown.problems.at("default/bookinfo")[0].find(
                "productpage.default.svc.cluster.local) is not a Knative Service"),
            std::string::npos);
}

TEST(PlanIstio, WeightsOverServicesMatchesAndPolicy) {
  auto parsed = resources::ParseYaml(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews.example.com]
  http:
  - match:
    - headers: {end-user: {exact: jason}}
      uri: {prefix: /api}
      method: {exact: POST}
      queryParams: {v: {regex: "[0-9]+"}}
    rewrite: {uri: /v2}
    route:
    - {destination: {host: hello}, weight: 80}
    - {destination: {host: iris}, weight: 20}
    retries: {attempts: 3, perTryTimeout: 100ms, retryOn: 5xx}
    fault: {abort: {httpStatus: 418, percentage: {value: 10}}}
    headers: {response: {set: {x-v: "2"}}}
)");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const auto vs = std::get<resources::VirtualService>((*parsed)[0]);
  IstioInput in;
  in.virtual_services = {&vs};
  in.services["hello.default.svc.cluster.local"] = {{"default/hello-00001", 50},
                                                    {"default/hello-00002", 50}};
  in.services["iris.default.svc.cluster.local"] = {{"default/iris-predictor-00001", 100}};
  IstioPlan plan = PlanIstio(in);
  EXPECT_TRUE(plan.problems.empty());
  ASSERT_EQ(plan.routes.size(), 1u);
  const KeyedRoute& k = plan.routes[0];
  EXPECT_FALSE(k.wildcard);
  EXPECT_EQ(k.split, (std::vector<KeyShare>{{"default/hello-00001", 40},
                                            {"default/hello-00002", 40},
                                            {"default/iris-predictor-00001", 20}}));
  EXPECT_EQ(k.route.retries, 3);
  ASSERT_NE(k.route.policy, nullptr);
  EXPECT_TRUE(k.route.policy->retry_5xx);
  EXPECT_EQ(k.route.policy->per_try_timeout_ms, 100);
  EXPECT_EQ(k.route.policy->abort_status, 418);
  EXPECT_EQ(k.route.rewrite, "/v2");
  std::map<std::string, RevisionRouting> revisions;
  for (const char* key :
       {"default/hello-00001", "default/hello-00002", "default/iris-predictor-00001"})
    revisions[key].target.key = key;
  gateway::RouteTable t = PlanRoutes({}, revisions, PlatformConfig{}, {}, plan.routes);
  auto jason = [](std::string_view name) {
    return name == "end-user" ? std::string_view("jason") : std::string_view();
  };
  auto none = [](std::string_view) { return std::string_view(); };
  const gateway::Route* r =
      gateway::MatchRoute(t, "reviews.example.com", "/api/x", jason, {}, "POST", "a=1&v=42");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(gateway::RouteTarget(*r, "/api/x?v=42"), "/v2/x?v=42");
  EXPECT_EQ(gateway::MatchRoute(t, "reviews.example.com", "/api/x", none, {}, "POST", "v=42"),
            nullptr);
  EXPECT_EQ(gateway::MatchRoute(t, "reviews.example.com", "/api/x", jason, {}, "GET", "v=42"),
            nullptr);
  EXPECT_EQ(gateway::MatchRoute(t, "reviews.example.com", "/api/x", jason, {}, "POST", "v=x"),
            nullptr);
  EXPECT_EQ(gateway::MatchRoute(t, "reviews.example.com", "/web", jason, {}, "POST", "v=1"),
            nullptr);
}

template <typename T>
T ParseOne(const std::string& yaml) {
  auto parsed = resources::ParseYaml(yaml);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return std::get<T>((*parsed)[0]);
}

// Bookinfo's reviews: three versions behind one host, as endpoints with
// labels, and a VirtualService sending 80% to v1 and 20% to v3.
struct Reviews {
  resources::ServiceEntry se =
      ParseOne<resources::ServiceEntry>(R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9001}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: 9002}, labels: {version: v2}}
  - {address: 127.0.0.1, ports: {http: 9003}, labels: {version: v3}}
  - {address: 127.0.0.2, ports: {http: 9003}, labels: {version: v3}}
)");
  resources::VirtualService vs =
      ParseOne<resources::VirtualService>(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 80
    - destination: {host: reviews, subset: v3}
      weight: 20
)");
  resources::DestinationRule dr =
      ParseOne<resources::DestinationRule>(R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    outlierDetection: {consecutive5xxErrors: 1}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v3
    labels: {version: v3}
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}
)");
  IstioInput Input() const {
    IstioInput in;
    in.virtual_services = {&vs};
    in.service_entries = {&se};
    in.destination_rules = {&dr};
    return in;
  }
};

TEST(PlanIstio, SubsetsOfAServiceEntryAreTheirOwnEndpointSets) {
  Reviews r;
  IstioPlan plan = PlanIstio(r.Input());
  EXPECT_TRUE(plan.problems.empty());
  ASSERT_EQ(plan.routes.size(), 1u);
  EXPECT_EQ(plan.routes[0].split,
            (std::vector<KeyShare>{{"default/serviceentry:reviews:9080:v1", 80},
                                   {"default/serviceentry:reviews:9080:v3", 20}}));
  const auto& v3 = plan.endpoints.at("default/serviceentry:reviews:9080:v3").target;
  EXPECT_EQ(v3.ports, (std::vector<uint16_t>{9003, 9003}));
  EXPECT_EQ(v3.hosts, (std::vector<std::string>{"127.0.0.1", "127.0.0.2"}));
  EXPECT_EQ(plan.endpoints.at("default/serviceentry:reviews:9080:v1").target.ports,
            (std::vector<uint16_t>{9001}));
  // The host's policy, and the subset's blocks over it.
  const auto& v1p = *plan.policies.at("default/serviceentry:reviews:9080:v1");
  EXPECT_EQ(v1p.balance, gateway::PoolPolicy::Balance::kRandom);
  EXPECT_EQ(v1p.consecutive_5xx, 1);
  const auto& v3p = *plan.policies.at("default/serviceentry:reviews:9080:v3");
  EXPECT_EQ(v3p.balance, gateway::PoolPolicy::Balance::kRoundRobin);
  EXPECT_EQ(v3p.consecutive_5xx, 1);
}

TEST(PlanIstio, AnUnknownSubsetOrOneSelectingNothingIsAProblem) {
  Reviews r;
  r.vs.http[0].route[1].subset = "v9";
  r.dr.subsets.push_back({"v4", {{"version", "v4"}}, {}});
  r.vs.http[0].route[0].subset = "v4";
  IstioPlan plan = PlanIstio(r.Input());
  EXPECT_TRUE(plan.routes[0].split.empty());  // both shares unserved: 503
  EXPECT_EQ(plan.problems.at("default/reviews"),
            (std::vector<std::string>{
                "destination reviews subset v4 (version=v4) selects no endpoint of ServiceEntry "
                "reviews",
                "destination reviews subset v9: DestinationRule default/reviews has no such "
                "subset"}));
  IstioInput no_rule = r.Input();
  no_rule.destination_rules.clear();
  plan = PlanIstio(no_rule);
  EXPECT_EQ(plan.problems.at("default/reviews")[0],
            "destination reviews subset v4: no DestinationRule for "
            "reviews.default.svc.cluster.local");
}

TEST(PlanIstio, SubsetsOfAServiceSelectRoutedRevisionsByLabel) {
  auto vs = ParseOne<resources::VirtualService>(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hello}
spec:
  hosts: [hello.example.com]
  http:
  - match: [{headers: {x-canary: {exact: "yes"}}}]
    route: [{destination: {host: hello, subset: canary}}]
  - route: [{destination: {host: hello, subset: stable}}]
)");
  auto dr = ParseOne<resources::DestinationRule>(R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: hello}
spec:
  host: hello.default.svc.cluster.local
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 4}, http: {http2MaxRequests: 2, http1MaxPendingRequests: 3}}}
  subsets:
  - {name: canary, labels: {track: canary}}
  - {name: stable, labels: {track: stable}}
)");
  IstioInput in;
  in.virtual_services = {&vs};
  in.destination_rules = {&dr};
  in.services["hello.default.svc.cluster.local"] = {
      {"default/hello-00001", 45}, {"default/hello-00002", 45}, {"default/hello-00003", 10}};
  in.revision_labels["default/hello-00001"] = {{"track", "stable"}};
  in.revision_labels["default/hello-00002"] = {{"track", "stable"}};
  in.revision_labels["default/hello-00003"] = {{"track", "canary"}};
  IstioPlan plan = PlanIstio(in);
  EXPECT_TRUE(plan.problems.empty());
  ASSERT_EQ(plan.routes.size(), 2u);
  EXPECT_EQ(plan.routes[0].split, (std::vector<KeyShare>{{"default/hello-00003", 100}}));
  EXPECT_EQ(plan.routes[1].split,
            (std::vector<KeyShare>{{"default/hello-00001", 50}, {"default/hello-00002", 50}}));
  // The host's policy over each of its revisions.
  for (const char* key : {"default/hello-00001", "default/hello-00002", "default/hello-00003"}) {
    ASSERT_TRUE(plan.policies.contains(key)) << key;
    EXPECT_EQ(plan.policies.at(key)->max_in_flight, 4);
    EXPECT_EQ(plan.policies.at(key)->max_requests, 2);
    EXPECT_EQ(plan.policies.at(key)->max_pending, 3);
  }
}

TEST(PlanIstio, TheClosestDestinationRuleOfAHostWins) {
  auto rule = [](const std::string& ns, const std::string& host, const char* lb) {
    resources::DestinationRule dr;
    dr.meta.namespace_ = ns;
    dr.meta.name = "r";
    dr.host = host;
    dr.traffic_policy.load_balancer = resources::IstioLoadBalancer{lb, "", ""};
    return dr;
  };
  const auto root_wild = rule("istio-system", "*.svc.cluster.local", "RANDOM");
  const auto elsewhere = rule("prod", "hello.default.svc.cluster.local", "ROUND_ROBIN");
  const auto root_exact = rule("istio-system", "hello.default.svc.cluster.local", "ROUND_ROBIN");
  const auto own_wild = rule("default", "*.default.svc.cluster.local", "LEAST_REQUEST");
  IstioInput in;
  in.services["hello.default.svc.cluster.local"] = {{"default/hello-00001", 100}};
  using Balance = gateway::PoolPolicy::Balance;
  auto balance = [&](std::vector<const resources::DestinationRule*> rules) {
    in.destination_rules = std::move(rules);
    IstioPlan plan = PlanIstio(in);
    auto it = plan.policies.find("default/hello-00001");
    return it == plan.policies.end() ? std::optional<Balance>() : it->second->balance;
  };
  EXPECT_EQ(balance({&root_wild}), Balance::kRandom);  // the root namespace's apply to all
  EXPECT_EQ(balance({&elsewhere}), std::nullopt);      // another namespace's to none
  EXPECT_EQ(balance({&root_wild, &elsewhere, &root_exact}), Balance::kRoundRobin);
  EXPECT_EQ(balance({&root_wild, &root_exact, &own_wild}), Balance::kLeastRequest);
  // Exported elsewhere only: not for this namespace's clients.
  auto hidden = own_wild;
  hidden.export_to = {"prod"};
  EXPECT_EQ(balance({&root_exact, &hidden}), Balance::kRoundRobin);
  hidden.export_to = {"."};
  EXPECT_EQ(balance({&root_exact, &hidden}), Balance::kLeastRequest);
  // A revision two hosts reach takes the best fitting rule of either.
  const auto predictor = rule("default", "hello-predictor", "ROUND_ROBIN");
  in.services["hello-predictor.default.svc.cluster.local"] = {{"default/hello-00001", 100}};
  EXPECT_EQ(balance({&own_wild, &predictor}), Balance::kRoundRobin);
  EXPECT_EQ(balance({&predictor, &own_wild}), Balance::kRoundRobin);
}

TEST(AddServiceHosts, AnInferenceServicesEntryAndComponentHosts) {
  resources::ObjectMeta meta;
  meta.name = "iris";
  meta.namespace_ = "ml";
  IsvcStatus status;
  status.traffic = {{"iris-predictor-00001", 90}, {"iris-predictor-00002", 10}};
  IstioInput in;
  AddServiceHosts(meta, status, &in);
  const std::vector<KeyShare> want = {{"ml/iris-predictor-00001", 90},
                                      {"ml/iris-predictor-00002", 10}};
  EXPECT_EQ(in.services.at("iris.ml.svc.cluster.local"), want);
  EXPECT_EQ(in.services.at("iris-predictor.ml.svc.cluster.local"), want);
  EXPECT_FALSE(in.services.contains("iris-transformer.ml.svc.cluster.local"));
}

TEST(RevisionPodLabels, OwnLabelsAndTheServingOnes) {
  RevisionSpec rev;
  rev.name = "hello-00002";
  rev.isvc = "hello";
  rev.kind = kKnativeServiceKind;
  resources::Component c;
  c.labels = {{"track", "canary"}};
  EXPECT_EQ(RevisionPodLabels(rev, &c),
            (std::map<std::string, std::string>{{"serving.knative.dev/configuration", "hello"},
                                                {"serving.knative.dev/revision", "hello-00002"},
                                                {"serving.knative.dev/service", "hello"},
                                                {"track", "canary"}}));
  rev.kind = "InferenceService";
  rev.name = "iris-predictor-00001";
  rev.isvc = "iris";
  EXPECT_EQ(RevisionPodLabels(rev, nullptr).at("serving.kserve.io/inferenceservice"), "iris");
}

TEST(PlanIstio, DestinationsCarryTheirOwnHeaderChanges) {
  auto vs = ParseOne<resources::VirtualService>(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hello}
spec:
  hosts: [hello.example.com]
  http:
  - headers: {request: {set: {x-route: "1"}}}
    route:
    - destination: {host: hello}
      weight: 60
      headers:
        request: {set: {x-dest: hello}}
        response: {add: {x-served: hello}, remove: [server]}
    - destination: {host: other}
      weight: 40
)");
  IstioInput in;
  in.virtual_services = {&vs};
  in.services["hello.default.svc.cluster.local"] = {{"default/hello-00001", 100}};
  in.services["other.default.svc.cluster.local"] = {{"default/other-00001", 100}};
  IstioPlan plan = PlanIstio(in);
  ASSERT_EQ(plan.routes.size(), 1u);
  const KeyedRoute& r = plan.routes[0];
  EXPECT_EQ(r.route.policy->headers.request_set,
            (std::vector<std::pair<std::string, std::string>>{{"x-route", "1"}}));
  ASSERT_EQ(r.split_headers.size(), 1u);
  const gateway::HeaderOps& h = *r.split_headers.at("default/hello-00001");
  EXPECT_EQ(h.request_set, (std::vector<std::pair<std::string, std::string>>{{"x-dest", "hello"}}));
  EXPECT_EQ(h.response_add,
            (std::vector<std::pair<std::string, std::string>>{{"x-served", "hello"}}));
  EXPECT_EQ(h.response_remove, std::vector<std::string>{"server"});
  // Through PlanRoutes: on the split's entry.
  std::map<std::string, RevisionRouting> revisions;
  for (const char* key : {"default/hello-00001", "default/other-00001"}) {
    revisions[key].target.key = key;
    revisions[key].aspired = true;
    revisions[key].phase = RevisionPhase::kReady;
  }
  gateway::RouteTable table = PlanRoutes({}, revisions, PlatformConfig{}, {}, plan.routes);
  ASSERT_FALSE(table.routes.empty());
  ASSERT_EQ(table.routes[0].split.size(), 2u);
  EXPECT_NE(table.routes[0].split[0].headers, nullptr);
  EXPECT_EQ(table.routes[0].split[1].headers, nullptr);
}

TEST(PlanIstio, GatewayPortsAreListenersOfTheirVirtualServices) {
  auto vs = ParseOne<resources::VirtualService>(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: side}
spec:
  hosts: [side.example.com]
  gateways: [side, mesh]
  http:
  - match: [{uri: {prefix: /a}, port: 8088}, {uri: {prefix: /b}, port: 9999}]
    route: [{destination: {host: hello}}]
  - route: [{destination: {host: hello}}]
)");
  resources::IstioGateway side = Gateway("side");
  side.servers.push_back({8088, "http-side", "HTTP", {"*"}});
  IstioInput in;
  in.virtual_services = {&vs};
  in.gateways = {&side};
  in.services["hello.default.svc.cluster.local"] = {{"default/hello-00001", 100}};
  IstioPlan plan = PlanIstio(in);
  ASSERT_EQ(plan.listeners.size(), 1u);
  EXPECT_FALSE(plan.listeners.at(8088).https);
  ASSERT_EQ(plan.routes.size(), 3u);
  EXPECT_EQ(plan.routes[0].route.ports, std::vector<int>{8088});
  // Port 9999 is no Gateway's: with mesh bound, an in-mesh service port
  // (the gateway's own HTTP port).
  EXPECT_EQ(plan.routes[1].route.ports, std::vector<int>{80});
  EXPECT_EQ(plan.routes[2].route.ports, (std::vector<int>{80, 8088}));
  EXPECT_TRUE(plan.problems.empty());
  // Without mesh, a match on a port no Gateway has is a problem.
  vs.gateways = {"side"};
  plan = PlanIstio(in);
  ASSERT_EQ(plan.routes.size(), 2u);
  EXPECT_EQ(plan.problems.at("default/side"),
            std::vector<std::string>{
                "a match on port 9999 is on no port of the VirtualService's gateways"});
  // Bound to mesh (or nothing) only: the gateway's own HTTP port, not its
  // HTTPS one.
  vs.gateways = {"mesh"};
  vs.http[0].match.pop_back();
  vs.http[0].match[0].port = 0;
  plan = PlanIstio(in);
  EXPECT_EQ(plan.routes[0].route.ports, std::vector<int>{80});
}

TEST(PlanIstio, HttpsServersAreTlsListenersAndHttpsRedirectAnswersFirst) {
  auto gw = ParseOne<resources::IstioGateway>(R"(apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [shop.example.com]
    tls: {httpsRedirect: true}
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: SIMPLE, serverCertificate: /certs/shop.pem, privateKey: /certs/shop.key}
  - port: {number: 443, name: https-api, protocol: HTTPS}
    hosts: ["*.api.example.com"]
    tls: {mode: SIMPLE, serverCertificate: /certs/api.pem, privateKey: /certs/api.key}
)");
  auto other = ParseOne<resources::IstioGateway>(R"(apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: other}
spec:
  servers:
  - port: {number: 443, name: plain, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 80, name: wrong, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /c.key}
)");
  auto vs = ParseOne<resources::VirtualService>(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop.example.com]
  gateways: [shop]
  http:
  - route: [{destination: {host: hello}}]
)");
  IstioInput in;
  in.virtual_services = {&vs};
  in.gateways = {&gw, &other};
  in.services["hello.default.svc.cluster.local"] = {{"default/hello-00001", 100}};
  IstioPlan plan = PlanIstio(in);
  // 443: HTTPS with both servers' certificates, each for its hosts.
  ASSERT_EQ(plan.listeners.size(), 1u);
  const Listener& l = plan.listeners.at(443);
  EXPECT_TRUE(l.https);
  ASSERT_EQ(l.certificates.size(), 2u);
  EXPECT_EQ(l.certificates[0],
            (ListenerCertificate{{"shop.example.com"}, "/certs/shop.pem", "/certs/shop.key"}));
  EXPECT_EQ(l.certificates[1].hosts, std::vector<std::string>{"*.api.example.com"});
  // The other Gateway's HTTP server on 443 and HTTPS server on 80 are left out.
  EXPECT_EQ(plan.gateway_problems.at("default/other"),
            (std::vector<std::string>{
                "server on port 443 (HTTP) is left out: another Gateway's server there is HTTPS",
                "server on port 80 is HTTPS: port 80 is the gateway's HTTP port (serve HTTPS on "
                "443)"}));
  EXPECT_FALSE(plan.gateway_problems.contains("default/shop"));
  // Port 80's redirect to https (HTTP requests only: not gRPC nor
  // in-process calls) is apart, to go first where TLS ends at the gateway;
  // the VirtualService's route takes both ports.
  ASSERT_EQ(plan.https_redirects.size(), 1u);
  const gateway::Route& redirect = plan.https_redirects[0].route;
  EXPECT_EQ(redirect.ports, std::vector<int>{80});
  EXPECT_EQ(redirect.hosts, std::vector<std::string>{"shop.example.com"});
  EXPECT_TRUE(redirect.http_only);
  ASSERT_TRUE(redirect.policy && redirect.policy->redirect);
  EXPECT_EQ(redirect.policy->redirect->scheme, "https");
  EXPECT_EQ(redirect.policy->redirect->port, 0);
  EXPECT_EQ(redirect.policy->redirect->code, 301);
  ASSERT_EQ(plan.routes.size(), 1u);
  EXPECT_EQ(plan.routes[0].route.ports, (std::vector<int>{80, 443}));
  // Port 443 served elsewhere: the redirect says where.
  in.https_port = 8443;
  EXPECT_EQ(PlanIstio(in).https_redirects[0].route.policy->redirect->port, 8443);
  // A match on port 80 stays on port 80 (a redirect there to https does
  // not answer on 443 too); a VirtualService bound to nothing takes 80 only.
  vs.http[0].match.push_back({});
  vs.http[0].match[0].port = 80;
  plan = PlanIstio(in);
  EXPECT_EQ(plan.routes[0].route.ports, std::vector<int>{80});
  vs.gateways.clear();
  vs.http[0].match[0].port = 0;
  plan = PlanIstio(in);
  EXPECT_EQ(plan.routes[0].route.ports, std::vector<int>{80});
}

}  // namespace
}  // namespace osprey::controlplane
