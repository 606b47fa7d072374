#include "gateway/route_table.h"

#include <gtest/gtest.h>

#include <map>

namespace osprey::gateway {
namespace {

RouteTable Table() {
  RouteTable t;
  t.revisions = {{"default/iris-1", "iris-1", {1001}, {}, {}, {}, 0},
                 {"team/iris-3", "iris-3", {1002}, {}, {}, {}, 0},
                 {"team/flowers-1", "flowers-1", {}, {}, {}, {}, 0},
                 {"team/iris-4", "iris-4", {1003}, {}, {}, {}, 0}};
  Route iris;
  iris.namespace_ = "default";
  iris.name = iris.model_name = "iris";
  iris.hosts = {"iris-default.example.com"};
  iris.split = {{0, 100}};
  Route team_latest;
  team_latest.namespace_ = "team";
  team_latest.name = "iris";
  team_latest.hosts = {"latest-iris-team.example.com"};
  team_latest.split = {{3, 100}};
  Route team_canary_header;  // a header match: testers reach the canary
  team_canary_header.namespace_ = "team";
  team_canary_header.name = "iris";
  team_canary_header.hosts = {"iris-team.example.com"};
  team_canary_header.headers = {{"X-Canary", {StringMatch::Kind::kExact, "yes"}}};
  team_canary_header.split = {{3, 100}};
  Route team;
  team.namespace_ = "team";
  team.name = team.model_name = "iris";
  team.hosts = {"iris-team.example.com"};
  team.split = {{1, 90}, {3, 10}};
  Route flowers;
  flowers.namespace_ = "team";
  flowers.name = flowers.model_name = "flowers";
  flowers.hosts = {"flowers-team.example.com"};
  flowers.uri = StringMatch{StringMatch::Kind::kPrefix, "/v2/"};
  flowers.split = {{2, 100}};
  t.routes = {iris, team_latest, team_canary_header, team, flowers};
  return t;
}

TEST(MatchRoute, Table) {
  RouteTable t = Table();
  struct Case {
    std::string host, path, header;  // header: value of X-Canary ("" absent)
    int want;                        // index into t.routes, -1 none
  } cases[] = {
      {"iris-team.example.com", "/v1/models/iris:predict", "", 3},
      {"IRIS-TEAM.example.com:8080", "/anything", "", 3},
      {"iris-team.example.com", "/v1/models/iris:predict", "yes", 2},
      {"iris-team.example.com", "/v1/models/iris:predict", "no", 3},
      {"latest-iris-team.example.com", "/v1/models/iris:predict", "", 1},
      {"iris-default.example.com", "/v2/models/other/infer", "", 0},
      {"127.0.0.1:8080", "/v1/models/iris:predict", "", 0},  // by path, "default" first
      {"127.0.0.1:8080", "/v2/models/flowers/infer", "", 4},
      {"127.0.0.1:8080", "/v1/models/flowers:predict", "", -1},  // the uri match says /v2/
      {"127.0.0.1:8080", "/v2/models/nothing/infer", "", -1},
      {"unknown.example.com", "/v2/health/ready", "", -1},
      {"", "/v1/models/", "", -1},
  };
  for (const auto& c : cases) {
    const Route* got = MatchRoute(t, c.host, c.path, [&](std::string_view name) {
      return internal::HeaderNameEquals(name, "x-canary") ? std::string_view(c.header)
                                                          : std::string_view();
    });
    int index = got == nullptr ? -1 : static_cast<int>(got - t.routes.data());
    EXPECT_EQ(index, c.want) << c.host << " " << c.path << " " << c.header;
  }
}

TEST(MatchRoute, ListenerPorts) {
  RouteTable t = Table();
  Route side;  // bound to a Gateway with servers on 80 and 8088
  side.hosts = {"side.example.com"};
  side.ports = {80, 8088};
  side.split = {{0, 100}};
  Route only_side = side;  // a match on port 8088
  only_side.ports = {8088};
  only_side.uri = StringMatch{StringMatch::Kind::kPrefix, "/only"};
  t.routes.insert(t.routes.begin(), {only_side, side});
  auto none = [](std::string_view) { return std::string_view(); };
  auto at = [&](std::string_view host, std::string_view path, int port) {
    const Route* r = MatchRoute(t, host, path, none, {}, "GET", {}, port);
    return r == nullptr ? -1 : static_cast<int>(r - t.routes.data());
  };
  EXPECT_EQ(at("side.example.com", "/only/x", 8088), 0);
  EXPECT_EQ(at("side.example.com", "/only/x", kMainPort), 1);
  EXPECT_EQ(at("side.example.com", "/x", 8088), 1);
  EXPECT_EQ(at("side.example.com", "/x", 9000), -1);
  // The services' own routes (no ports) take the gateway's own port only.
  EXPECT_EQ(at("iris-team.example.com", "/x", kMainPort), 5);
  EXPECT_EQ(at("iris-team.example.com", "/x", 8088), -1);
  EXPECT_EQ(at("127.0.0.1", "/v1/models/iris:predict", 8088), -1);
}

TEST(PickWeighted, CumulativePercents) {
  std::vector<WeightedRevision> split = {{7, 10}, {8, 0}, {9, 90}};
  struct Case {
    double u;
    size_t want;
  } cases[] = {{0, 7}, {9.999, 7}, {10, 9}, {50, 9}, {99.999, 9}, {100, 9}};
  for (const auto& c : cases) EXPECT_EQ(PickWeighted(split, c.u)->revision, c.want) << c.u;
  EXPECT_EQ(PickWeighted({{1, 0}}, 5), nullptr);
  EXPECT_EQ(PickWeighted({}, 5), nullptr);
  // Short of 100: the rest is nobody's.
  EXPECT_EQ(PickWeighted({{1, 70}}, 69.9)->revision, 1u);
  EXPECT_EQ(PickWeighted({{1, 70}}, 70), nullptr);
  EXPECT_EQ(PickWeighted({{1, 70}}, 100), nullptr);
  // The draw sequence splits any run of requests as the weights say.
  for (int start : {0, 12345}) {
    std::map<size_t, int> seen;
    for (int i = 0; i < 10000; ++i) ++seen[PickWeighted(split, SplitDraw(start + i))->revision];
    EXPECT_NEAR(seen[7], 1000, 10);
    EXPECT_NEAR(seen[9], 9000, 10);
    std::map<size_t, int> few;
    for (int i = 0; i < 100; ++i) ++few[PickWeighted(split, SplitDraw(start + i))->revision];
    EXPECT_NEAR(few[7], 10, 2);
  }
  // Over evenly spaced draws the split is the configured one.
  std::map<size_t, int> counts;
  for (int i = 0; i < 10000; ++i) ++counts[PickWeighted(split, i / 100.0)->revision];
  EXPECT_EQ(counts[7], 1000);
  EXPECT_EQ(counts[9], 9000);
}

TEST(RouteTable, ServiceAndComponentFromTheRevisionName) {
  using P = std::pair<std::string_view, std::string_view>;
  EXPECT_EQ(RevisionService("iris-predictor-00001"), P("iris", "predictor"));
  EXPECT_EQ(RevisionService("my-model-transformer-00012"), P("my-model", "transformer"));
  EXPECT_EQ(RevisionService("iris-1"), P("iris", ""));  // a Knative Service's
  EXPECT_EQ(RevisionService("helloworld-go-00001"), P("helloworld-go", ""));
  EXPECT_EQ(RevisionService("iris"), P());
  EXPECT_EQ(RevisionService("iris-predictor-0000x"), P());
  EXPECT_EQ(RevisionService("-predictor-00001"), P());
}

}  // namespace
}  // namespace osprey::gateway
