// The access log and the metrics as observers of hand-made exchanges.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gateway/observers/access_log.h"
#include "gateway/observers/metrics.h"

namespace osprey::gateway {
namespace {

Exchange Make(Exchange::Kind kind, uint32_t id, int http_status, absl::StatusCode code,
              std::chrono::microseconds latency) {
  Exchange e;
  e.kind = kind;
  e.request_id = "rid";
  e.method = kind == Exchange::Kind::kGrpc ? "gRPC" : "POST";
  e.host = "iris.example.com";
  e.target = "/v1/models/iris:predict";
  e.revision_key = id == 0 ? "default/iris-predictor-00001" : "team/fruit-transformer-00002";
  e.revision = id == 0 ? "iris-predictor-00001" : "fruit-transformer-00002";
  e.revision_id = id;
  e.replica_port = 8001;
  e.start = Exchange::Clock::time_point() + std::chrono::hours(1);
  e.end = e.start + latency;
  e.code = code;
  e.http_status = http_status;
  return e;
}

TEST(MetricsObserverTest, CountsByClassAndRendersEveryRevisionGiven) {
  MetricsObserver m;
  using K = Exchange::Kind;
  const auto ok = absl::StatusCode::kOk;
  m.OnComplete(Make(K::kHttp, 0, 200, ok, std::chrono::microseconds(300)));
  m.OnComplete(Make(K::kHttp, 0, 404, ok, std::chrono::microseconds(2000)));
  m.OnComplete(Make(K::kMirror, 0, 502, absl::StatusCode::kInternal, std::chrono::seconds(2)));
  m.OnComplete(Make(K::kGrpc, 0, 0, ok, std::chrono::microseconds(700)));
  m.OnComplete(Make(K::kGrpc, 0, 0, absl::StatusCode::kNotFound, std::chrono::microseconds(700)));
  m.OnComplete(Make(K::kInternal, 0, 0, absl::StatusCode::kInternal, std::chrono::seconds(9)));
  // Held by the activator: a cold start answered after 3 s (2.5 s of it in
  // the queue), and one held 20 ms behind it.
  Exchange cold = Make(K::kHttp, 0, 200, ok, std::chrono::seconds(3));
  cold.cold_start = true;
  cold.queue_wait = std::chrono::milliseconds(2500);
  m.OnComplete(cold);
  Exchange held = Make(K::kHttp, 0, 200, ok, std::chrono::milliseconds(30));
  held.queue_wait = std::chrono::milliseconds(20);
  m.OnComplete(held);
  // A cold start that was refused is not a cold start's duration.
  Exchange refused =
      Make(K::kHttp, 1, 503, absl::StatusCode::kUnavailable, std::chrono::seconds(30));
  refused.cold_start = true;
  refused.queue_wait = std::chrono::seconds(30);
  m.OnComplete(refused);
  MetricsObserver::Revision revisions[] = {
      {"default/iris-predictor-00001", "iris-predictor-00001", 0, 3, 2},
      {"team/fruit-transformer-00002", "fruit-transformer-00002", 1, 0, 0}};
  std::string text;
  m.Render(revisions, &text);
  const std::string iris =
      "namespace=\"default\",inferenceservice=\"iris\",component=\"predictor\","
      "revision=\"iris-predictor-00001\"";
  const std::string fruit =
      "namespace=\"team\",inferenceservice=\"fruit\",component=\"transformer\","
      "revision=\"fruit-transformer-00002\"";
  for (const std::string& line : std::vector<std::string>{
           "# TYPE osprey_gateway_requests_total counter",
           "osprey_gateway_requests_total{" + iris + ",code_class=\"none\"} 1",
           "osprey_gateway_requests_total{" + iris + ",code_class=\"2xx\"} 4",
           "osprey_gateway_requests_total{" + iris + ",code_class=\"4xx\"} 1",
           "osprey_gateway_requests_total{" + iris + ",code_class=\"5xx\"} 2",
           "# TYPE osprey_gateway_request_duration_seconds histogram",
           "osprey_gateway_request_duration_seconds_bucket{" + iris + ",le=\"0.0005\"} 1",
           "osprey_gateway_request_duration_seconds_bucket{" + iris + ",le=\"0.001\"} 3",
           "osprey_gateway_request_duration_seconds_bucket{" + iris + ",le=\"5\"} 7",
           "osprey_gateway_request_duration_seconds_bucket{" + iris + ",le=\"+Inf\"} 8",
           "osprey_gateway_request_duration_seconds_count{" + iris + "} 8",
           "osprey_gateway_request_duration_seconds_count{" + fruit + "} 1",
           "# TYPE osprey_gateway_queue_wait_seconds histogram",
           "osprey_gateway_queue_wait_seconds_bucket{" + iris + ",le=\"0.05\"} 1",
           "osprey_gateway_queue_wait_seconds_bucket{" + iris + ",le=\"5\"} 2",
           "osprey_gateway_queue_wait_seconds_count{" + iris + "} 2",
           "osprey_gateway_queue_wait_seconds_count{" + fruit + "} 1",
           "# TYPE osprey_gateway_cold_start_duration_seconds histogram",
           "osprey_gateway_cold_start_duration_seconds_bucket{" + iris + ",le=\"2\"} 0",
           "osprey_gateway_cold_start_duration_seconds_bucket{" + iris + ",le=\"5\"} 1",
           "osprey_gateway_cold_start_duration_seconds_count{" + iris + "} 1",
           "osprey_gateway_cold_start_duration_seconds_count{" + fruit + "} 0",
           "osprey_gateway_concurrency{" + iris + "} 3",
           "osprey_gateway_queue_depth{" + iris + "} 2",
           "osprey_gateway_queue_depth{" + fruit + "} 0",
       })
    EXPECT_NE(text.find(line + "\n"), std::string::npos) << line << "\n" << text;
  EXPECT_EQ(text.find("osprey_gateway_requests_total{" + fruit + ",code_class=\"2xx\""),
            std::string::npos);
}

TEST(AccessLogObserverTest, OneLinePerHttpExchangeNoneForMirrorsOrGrpc) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("osprey-access-" + std::to_string(::getpid()) + ".log"))
                               .string();
  std::filesystem::remove(path);
  {
    auto log = AccessLogObserver::Open(path);
    ASSERT_TRUE(log.ok()) << log.status();
    const auto ok = absl::StatusCode::kOk;
    (*log)->OnComplete(Make(Exchange::Kind::kHttp, 0, 200, ok, std::chrono::microseconds(1234567)));
    (*log)->OnComplete(Make(Exchange::Kind::kMirror, 0, 200, ok, std::chrono::microseconds(5)));
    (*log)->OnComplete(Make(Exchange::Kind::kGrpc, 0, 0, ok, std::chrono::microseconds(5)));
    Exchange refused = Make(Exchange::Kind::kInternal, 1, 503, absl::StatusCode::kUnavailable,
                            std::chrono::microseconds(42));
    refused.replica_port = 0;
    (*log)->OnComplete(refused);
    Exchange pod = Make(Exchange::Kind::kHttp, 0, 200, ok, std::chrono::microseconds(1000));
    pod.replica_port = 8080;
    pod.replica_host = "10.244.0.7";
    (*log)->OnComplete(pod);
  }  // closing flushes
  std::ifstream in(path);
  std::stringstream got;
  got << in.rdbuf();
  EXPECT_EQ(
      got.str(),
      "rid POST iris.example.com /v1/models/iris:predict default/iris-predictor-00001 200 "
      "1234.567ms "
      "port=8001\n"
      "rid POST iris.example.com /v1/models/iris:predict team/fruit-transformer-00002 503 0.042ms "
      "port=0\n"
      "rid POST iris.example.com /v1/models/iris:predict default/iris-predictor-00001 200 1.000ms "
      "port=8080 host=10.244.0.7\n");
  std::filesystem::remove(path);
  EXPECT_FALSE(AccessLogObserver::Open("/nonexistent-dir/x/access.log").ok());
}

}  // namespace
}  // namespace osprey::gateway
