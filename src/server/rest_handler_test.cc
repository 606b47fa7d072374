#include "server/rest_handler.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <optional>

#include "backends/testing/fake_backend.h"

namespace osprey {
namespace {

using testing::FakeBackend;
using testing::FakeRepository;

// Calls the handler (no sockets) and waits for its answer, which comes on
// another thread for an inference through a batcher and for a repository
// load or unload.
HttpResponse Call(RestHandler& handler, std::string_view method, std::string_view target,
                  std::string body = "") {
  HttpRequest req;
  req.method = method;
  req.target = target;
  req.body = std::make_shared<const std::string>(std::move(body));
  req.arrival = std::chrono::steady_clock::now();
  struct Answer {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<HttpResponse> response;
  };
  auto answer = std::make_shared<Answer>();
  handler.Handle(req, [answer](HttpResponse r) {
    std::lock_guard<std::mutex> lock(answer->mu);
    answer->response = std::move(r);
    answer->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(answer->mu);
  bool answered = answer->cv.wait_for(lock, std::chrono::seconds(30),
                                      [&] { return answer->response.has_value(); });
  EXPECT_TRUE(answered) << method << " " << target << ": no answer within 30 s";
  return answer->response.value_or(HttpResponse{});
}

// Routes that need no model, through the handler alone (no sockets).
TEST(RestHandlerTest, RoutesWithoutModels) {
  Metrics metrics;
  ModelRegistry registry(ModelRegistry::Options{}, &metrics);
  InferenceCore core(&registry);
  RestHandler handler(ServerInfo{}, &core, &metrics);
  auto call = [&](std::string_view method, std::string_view target, std::string body = "") {
    return Call(handler, method, target, std::move(body));
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

// A model "m" of the fake backend (FP32 [-1, 4] in, the same out), served
// from a repository through the handler.
struct FakeServer {
  FakeRepository repo;
  FakeBackend fake;
  Metrics metrics;
  std::unique_ptr<ModelRegistry> registry;
  std::unique_ptr<InferenceCore> core;
  std::unique_ptr<RestHandler> handler;

  explicit FakeServer(FakeBackend::Options options = {}, BatchingOptions batching = {})
      : fake(std::move(options)) {
    repo.Add("m", "3");
    ModelRegistry::Options registry_options;
    registry_options.repository = repo.root();
    registry_options.backends = {&fake};
    registry_options.batching = batching;
    registry = std::make_unique<ModelRegistry>(registry_options, &metrics);
    core = std::make_unique<InferenceCore>(registry.get());
    handler = std::make_unique<RestHandler>(ServerInfo{}, core.get(), &metrics);
  }
  HttpResponse Call(std::string_view method, std::string_view target, std::string body = "") {
    return osprey::Call(*handler, method, target, std::move(body));
  }
};

TEST(RestHandlerTest, RepositoryLoadAndUnloadAnswerAsBefore) {
  FakeServer server;
  HttpResponse index = server.Call("POST", "/v2/repository/index", "{}");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.body, R"([{"name":"m","version":"3","state":"UNAVAILABLE","reason":""}])");
  EXPECT_EQ(server.Call("GET", "/v2/health/ready").status, 503);

  HttpResponse load = server.Call("POST", "/v2/repository/models/m/load");
  EXPECT_EQ(load.status, 200);
  EXPECT_EQ(load.body, R"({"name":"m","load":true})");
  EXPECT_EQ(server.Call("GET", "/v2/health/ready").body, R"({"ready":true})");
  EXPECT_EQ(server.Call("POST", "/v2/repository/index", R"({"ready":true})").body,
            R"([{"name":"m","version":"3","state":"READY","reason":""}])");

  HttpResponse unload = server.Call("POST", "/v2/repository/models/m/unload");
  EXPECT_EQ(unload.status, 200);
  EXPECT_EQ(unload.body, R"({"name":"m","unload":true})");
  EXPECT_EQ(server.fake.live_models(), 0);
  EXPECT_EQ(server.Call("GET", "/v2/models/m/ready").status, 503);

  struct Case {
    const char* method;
    const char* target;
    int status;
    const char* body;
  } errors[] = {
      {"POST", "/v2/repository/models/absent/load", 404, "model 'absent' not found in repository"},
      {"POST", "/v2/repository/models/m/unload", 404, "model 'm' is not loaded"},
      {"POST", "/v2/repository/models/m/frobnicate", 404, "no route"},
      {"GET", "/v2/repository/models/m/load", 405, "use POST"},
  };
  for (const Case& c : errors) {
    HttpResponse r = server.Call(c.method, c.target);
    EXPECT_EQ(r.status, c.status) << c.target << " -> " << r.body;
    EXPECT_NE(r.body.find(c.body), std::string::npos) << c.target << " -> " << r.body;
  }

  FakeServer broken(FakeBackend::Options{.load_status = absl::InternalError("no weights")});
  HttpResponse failed = broken.Call("POST", "/v2/repository/models/m/load");
  EXPECT_EQ(failed.status, 500);
  EXPECT_EQ(failed.body, R"({"error":"no weights"})");
  HttpResponse metrics = broken.Call("GET", "/metrics");
  EXPECT_NE(metrics.body.find("osprey_http_responses_total{code=\"5xx\"} 1"), std::string::npos)
      << metrics.body;
}

TEST(RestHandlerTest, V2InferenceThroughTheHandler) {
  FakeServer server(FakeBackend::Options{.fail_marker = -1.0});
  ASSERT_EQ(server.Call("POST", "/v2/repository/models/m/load").status, 200);

  HttpResponse metadata = server.Call("GET", "/v2/models/m");
  EXPECT_EQ(metadata.status, 200);
  EXPECT_NE(metadata.body.find(R"("platform":"fake")"), std::string::npos) << metadata.body;
  EXPECT_NE(metadata.body.find(R"({"name":"INPUT0","datatype":"FP32","shape":[-1,4]})"),
            std::string::npos)
      << metadata.body;
  EXPECT_EQ(server.Call("GET", "/v2/models/m/versions/3/ready").status, 200);
  EXPECT_EQ(server.Call("GET", "/v2/models/m/versions/2/ready").status, 404);

  HttpResponse ok = server.Call("POST", "/v2/models/m/infer", R"({"id":"q1","inputs":[
      {"name":"INPUT0","datatype":"FP32","shape":[2,4],"data":[1,2,3,4,5,6,7,8.5]}]})");
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.body,
            R"({"model_name":"m","model_version":"3","id":"q1","outputs":[{"name":"OUTPUT0",)"
            R"("datatype":"FP32","shape":[2,4],"data":[1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.5]}]})");

  struct Case {
    const char* body;
    int status;
    const char* error;
  } errors[] = {
      {R"({"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1,4],"data":[-1,0,0,0]}]})", 400,
       "row 0 of input 'INPUT0' starts with the fake's failure marker -1"},
      {R"({"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]})", 400,
       "expects shape [-1,4], got [1,3]"},
      {R"({"inputs":[{"name":"INPUT0","datatype":"INT32","shape":[1,4],"data":[1,2,3,4]}]})", 400,
       "expects datatype FP32, got INT32"},
      {R"({"inputs":[)", 400, "invalid JSON"},
  };
  for (const Case& c : errors) {
    HttpResponse r = server.Call("POST", "/v2/models/m/infer", c.body);
    EXPECT_EQ(r.status, c.status) << c.body << " -> " << r.body;
    EXPECT_NE(r.body.find(c.error), std::string::npos) << c.body << " -> " << r.body;
  }
  HttpResponse unknown = server.Call("POST", "/v2/models/nope/infer",
                                     R"({"inputs":[{"name":"INPUT0","datatype":"FP32",)"
                                     R"("shape":[1,4],"data":[1,2,3,4]}]})");
  EXPECT_EQ(unknown.status, 404) << unknown.body;

  ModelMetrics& m = *server.metrics.ForModel("m");
  EXPECT_EQ(m.success.load(), 1u);
  EXPECT_EQ(m.failure.load(), 4u);  // marker, shape, datatype, JSON
}

TEST(RestHandlerTest, V1PredictThroughTheHandlerAndItsBatcher) {
  FakeServer server(FakeBackend::Options{}, BatchingOptions{.max_batch_size = 8});
  ASSERT_EQ(server.Call("POST", "/v2/repository/models/m/load").status, 200);
  EXPECT_EQ(server.Call("GET", "/v1/models").body, R"({"models":["m"]})");
  EXPECT_EQ(server.Call("GET", "/v1/models/m").body, R"({"name":"m","ready":true})");

  HttpResponse r =
      server.Call("POST", "/v1/models/m:predict", R"({"instances":[[1,2,3,4],[5,6,7,8]]})");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"({"predictions":[[1.0,2.0,3.0,4.0],[5.0,6.0,7.0,8.0]]})");
  EXPECT_EQ(server.fake.executed_rows(), (std::vector<int64_t>{1, 2}));  // warm-up, predict

  HttpResponse wide = server.Call("POST", "/v1/models/m:predict", R"({"instances":[[1,2,3]]})");
  EXPECT_EQ(wide.status, 400);
  EXPECT_NE(wide.body.find("instance 0 has 3 values"), std::string::npos) << wide.body;
  EXPECT_EQ(server.Call("POST", "/v1/models/m:explain", "{}").status, 501);
}

}  // namespace
}  // namespace osprey
