// The REST routes behind the real HTTP server, called with a real client.

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "backends/testing/fake_backend.h"
#include "common/strings.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "server/rest_handler.h"

namespace osprey {
namespace {

using testing::FakeBackend;
using testing::FakeGate;
using testing::FakeRepository;

absl::StatusOr<HttpClientResponse> Send(
    uint16_t port, std::string method, std::string path, std::string body = "",
    std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  HttpClient client;
  HttpClientRequest request;
  request.method = std::move(method);
  request.url = StrCat("http://127.0.0.1:", port, path);
  request.body = std::move(body);
  request.timeout = timeout;
  return client.Send(request);
}

// A model that takes two seconds to load is loading on the server's only
// event loop's watch; that loop keeps answering everything else meanwhile.
TEST(RestServerTest, ASlowLoadLeavesTheEventLoopFree) {
  FakeRepository repo;
  repo.Add("fast", "", "fast");
  repo.Add("slow", "", "slow");
  FakeGate load_started;
  load_started.Open();  // counts the loads, holds none
  constexpr auto kLoad = std::chrono::seconds(2);
  FakeBackend fast(FakeBackend::Options{.name = "fast"});
  FakeBackend slow(FakeBackend::Options{
      .name = "slow", .load_delay = kLoad, .on_load = [&load_started](const LoadOptions&) {
        load_started.Pass();
        return absl::OkStatus();
      }});

  Metrics metrics;
  ModelRegistry::Options options;
  options.repository = repo.root();
  options.backends = {&fast, &slow};
  ModelRegistry registry(options, &metrics);
  InferenceCore core(&registry);
  RestHandler handler(ServerInfo{}, &core, &metrics);
  HttpServer::Options http;
  http.address = "127.0.0.1";
  http.port = 0;
  http.threads = 1;
  auto server = HttpServer::Start(http, &handler);
  ASSERT_TRUE(server.ok()) << server.status();
  const uint16_t port = (*server)->port();

  auto fast_load = Send(port, "POST", "/v2/repository/models/fast/load");
  ASSERT_TRUE(fast_load.ok()) << fast_load.status();
  ASSERT_EQ(fast_load->status, 200) << fast_load->body;

  absl::StatusOr<HttpClientResponse> slow_load = absl::UnknownError("not sent");
  std::atomic<bool> slow_answered{false};
  std::jthread loader([&] {
    slow_load = Send(port, "POST", "/v2/repository/models/slow/load");
    slow_answered = true;
  });
  ASSERT_TRUE(load_started.WaitArrivals(1));
  const auto load_began = std::chrono::steady_clock::now();

  // Answered at once, though the load holds the loader for two seconds.
  const auto timeout = std::chrono::milliseconds(1500);
  auto ready = Send(port, "GET", "/v2/health/ready", "", timeout);
  ASSERT_TRUE(ready.ok()) << ready.status();
  EXPECT_EQ(ready->status, 503);
  EXPECT_EQ(ready->body, R"({"ready":false})");
  auto index = Send(port, "POST", "/v2/repository/index", "{}", timeout);
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_NE(index->body.find(R"({"name":"slow","version":"1","state":"LOADING","reason":""})"),
            std::string::npos)
      << index->body;
  auto infer = Send(port, "POST", "/v2/models/fast/infer",
                    R"({"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1,4],)"
                    R"("data":[1,2,3,4]}]})",
                    timeout);
  ASSERT_TRUE(infer.ok()) << infer.status();
  EXPECT_EQ(infer->status, 200) << infer->body;
  EXPECT_FALSE(slow_answered.load());
  EXPECT_LT(std::chrono::steady_clock::now() - load_began, kLoad)
      << "the answers above waited for the load";

  loader.join();
  ASSERT_TRUE(slow_load.ok()) << slow_load.status();
  EXPECT_EQ(slow_load->status, 200);
  EXPECT_EQ(slow_load->body, R"({"name":"slow","load":true})");
  EXPECT_GE(std::chrono::steady_clock::now() - load_began, kLoad - std::chrono::milliseconds(50));
  auto ready_now = Send(port, "GET", "/v2/health/ready");
  ASSERT_TRUE(ready_now.ok()) << ready_now.status();
  EXPECT_EQ(ready_now->status, 200);
  EXPECT_TRUE((*server)->Drain(std::chrono::seconds(5)));
}

}  // namespace
}  // namespace osprey
