#include "gateway/entry.h"

#include <gtest/gtest.h>

namespace osprey::gateway {
namespace {

RouteTable Table() {
  RouteTable t;
  t.targets = {{"default", "iris", "iris-predictor-00001", {1001}, 0},
               {"team", "iris", "iris-predictor-00003", {1002}, 0},
               {"team", "flowers", "flowers-predictor-00001", {}, 0}};
  t.hosts = {{"iris-default.example.com", 0},
             {"iris-team.example.com", 1},
             {"flowers-team.example.com", 2}};
  return t;
}

TEST(FindTarget, Table) {
  RouteTable t = Table();
  struct Case {
    std::string host, path, want;  // want: "ns/name" or "" for none
  } cases[] = {
      {"iris-team.example.com", "/v1/models/iris:predict", "team/iris"},
      {"IRIS-TEAM.example.com:8080", "/anything", "team/iris"},
      {"iris-default.example.com", "/v2/models/other/infer", "default/iris"},
      {"127.0.0.1:8080", "/v1/models/iris:predict", "default/iris"},  // path, default ns first
      {"127.0.0.1:8080", "/v2/models/flowers/infer", "team/flowers"},
      {"127.0.0.1:8080", "/v2/models/flowers", "team/flowers"},
      {"127.0.0.1:8080", "/v2/models/nothing/infer", ""},
      {"unknown.example.com", "/v2/health/ready", ""},
      {"", "/v1/models/", ""},
  };
  for (const auto& c : cases) {
    const RouteTarget* got = FindTarget(t, c.host, c.path);
    std::string name = got ? got->namespace_ + "/" + got->name : "";
    EXPECT_EQ(name, c.want) << c.host << " " << c.path;
  }
}

}  // namespace
}  // namespace osprey::gateway
