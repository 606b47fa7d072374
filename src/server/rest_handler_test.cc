#include "server/rest_handler.h"

#include <gtest/gtest.h>

#include <optional>

namespace osprey {
namespace {

// Routes that need no model, through the handler alone (no sockets).
TEST(RestHandlerTest, RoutesWithoutModels) {
  Metrics metrics;
  ModelRegistry registry(ModelRegistry::Options{}, &metrics);
  InferenceCore core(&registry);
  RestHandler handler(ServerInfo{}, &core, &metrics);
  auto call = [&](std::string_view method, std::string_view target, std::string body = "") {
    HttpRequest req;
    req.method = method;
    req.target = target;
    req.body = std::make_shared<const std::string>(std::move(body));
    // Routes without a model answer before Handle returns.
    std::optional<HttpResponse> answer;
    handler.Handle(req, [&answer](HttpResponse r) { answer = std::move(r); });
    EXPECT_TRUE(answer.has_value()) << target;
    return answer.value_or(HttpResponse{});
  };
  struct Case {
    const char* method;
    const char* target;
    int status;
    const char* body_part;
  } cases[] = {
      {"GET", "/", 200, R"("status":"alive")"},
      {"GET", "/v2/health/live", 200, R"("live":true)"},
      {"GET", "/v2/health/ready?verbose=1", 503, R"("ready":false)"},
      {"GET", "/v2", 200, R"("extensions":["binary_tensor_data")"},
      {"POST", "/v2", 405, "use GET"},
      {"GET", "/v1/models", 200, R"({"models":[]})"},
      {"GET", "/v1/models/m", 404, "model 'm' not found"},
      {"POST", "/v1/models/m:predict", 404, "model 'm' not found"},
      {"POST", "/v1/models/m:frobnicate", 404, "no route"},
      {"GET", "/v2/models/m/infer", 405, "use POST"},
      {"POST", "/v2/models/m/infer", 400, "invalid JSON"},
      {"GET", "/v2/models/m/versions/", 404, "no route"},
      {"POST", "/v2/repository/index", 200, "[]"},
      {"POST", "/v2/repository/models/m/load", 404, "server has none"},
      {"POST", "/v2/repository/models/m/unload", 404, "is not loaded"},
      {"GET", "/nope", 404, "no route for /nope"},
  };
  for (const auto& c : cases) {
    HttpResponse r = call(c.method, c.target);
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.target << " -> " << r.body;
    EXPECT_NE(r.body.find(c.body_part), std::string::npos)
        << c.method << " " << c.target << " -> " << r.body;
  }
  HttpResponse m = call("GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(m.body.find("osprey_http_responses_total{code=\"4xx\"}"), std::string::npos);
}

}  // namespace
}  // namespace osprey
